/* ruclipmeta.h: reading the labels ruclipfilter attaches to buffers.
 *
 * Header-only; needs nothing but GStreamer core. Usable from C and C++.
 *
 * Every analyzed buffer, and every later buffer carrying an earlier result,
 * has a GstCustomMeta named "RuClipMeta" whose GstStructure holds:
 *   labels      GstValueArray of gchararray  best first
 *   scores      GstValueArray of gdouble     probabilities, same order
 *   cosines     GstValueArray of gdouble     cosine similarities, same order
 *   source-pts  guint64   PTS of the analyzed frame (GST_CLOCK_TIME_NONE if it had none)
 *   frame       guint64   index of the analyzed frame since the stream started
 *   fresh       gboolean  TRUE when this very buffer was analyzed
 *   model       gchararray the model folder
 *   embedding   GstValueArray of gdouble  the normalized image embedding
 *                                         (only with attach-embedding=true)
 *
 *   const GstStructure *r = ruclip_buffer_get_result (buffer);
 *   if (r)
 *     for (guint i = 0; i < ruclip_result_n_labels (r); i++)
 *       g_print ("%s %.3f\n", ruclip_result_label (r, i), ruclip_result_score (r, i));
 */
#ifndef RUCLIP_META_H
#define RUCLIP_META_H

#include <gst/gst.h>

G_BEGIN_DECLS

#define RUCLIP_META_NAME "RuClipMeta"

/* The result structure on @buffer, or NULL when it carries none (or no
 * ruclipfilter has been created in this process yet, so the meta is unknown). */
static inline const GstStructure *
ruclip_buffer_get_result (GstBuffer * buffer)
{
  GstCustomMeta *meta = gst_buffer_get_custom_meta (buffer, RUCLIP_META_NAME);
  return meta ? gst_custom_meta_get_structure (meta) : NULL;
}

static inline guint
ruclip_result_n_labels (const GstStructure * result)
{
  const GValue *labels = gst_structure_get_value (result, "labels");
  return labels ? gst_value_array_get_size (labels) : 0;
}

static inline const gchar *
ruclip_result_label (const GstStructure * result, guint i)
{
  const GValue *labels = gst_structure_get_value (result, "labels");
  if (!labels || i >= gst_value_array_get_size (labels))
    return NULL;
  return g_value_get_string (gst_value_array_get_value (labels, i));
}

static inline gdouble
ruclip_result_array_double (const GstStructure * result, const gchar * field, guint i)
{
  const GValue *values = gst_structure_get_value (result, field);
  if (!values || i >= gst_value_array_get_size (values))
    return 0.0;
  return g_value_get_double (gst_value_array_get_value (values, i));
}

static inline gdouble
ruclip_result_score (const GstStructure * result, guint i)
{
  return ruclip_result_array_double (result, "scores", i);
}

static inline gdouble
ruclip_result_cosine (const GstStructure * result, guint i)
{
  return ruclip_result_array_double (result, "cosines", i);
}

static inline gboolean
ruclip_result_is_fresh (const GstStructure * result)
{
  gboolean fresh = FALSE;
  gst_structure_get_boolean (result, "fresh", &fresh);
  return fresh;
}

static inline GstClockTime
ruclip_result_source_pts (const GstStructure * result)
{
  guint64 pts = GST_CLOCK_TIME_NONE;
  gst_structure_get_uint64 (result, "source-pts", &pts);
  return pts;
}

G_END_DECLS

#endif /* RUCLIP_META_H */
