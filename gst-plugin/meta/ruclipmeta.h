/* ruclipmeta.h: the results ruclipfilter produces, as buffer meta, bus
 * messages and downstream events. The one definition of their fields: every
 * element, tool and application reads and writes them through this API.
 *
 * Link: pkg-config gstreamer-ruclip-1.0 (libgstruclipmeta-1.0; needs only
 * GStreamer core). Usable from C and C++.
 *
 *   const GstStructure *r = ruclip_buffer_get_result (buffer);
 *   if (r && ruclip_result_is_fresh (r))
 *     for (guint i = 0; i < ruclip_result_n_labels (r); i++)
 *       g_print ("%s %.3f\n", ruclip_result_label (r, i), ruclip_result_score (r, i));
 *
 *   // on the bus: element messages of ruclipfilter
 *   RuClipSegment seg;
 *   if (ruclip_segment_parse (gst_message_get_structure (msg), &seg) && !seg.is_start)
 *     g_print ("%s from %" GST_TIME_FORMAT "\n", seg.label, GST_TIME_ARGS (seg.start_pts));
 *
 * Threads: every function may be called from any thread; a structure is
 * read or written by one thread at a time, as any GstStructure.
 *
 * The result structure (RuClipMeta on a buffer, the "ruclip" message):
 *   labels          array of string   best first (after top-k and threshold)
 *   scoring         string    what "scores" holds: "softmax" (probabilities over
 *                             the labels) or "presence" (each label against the
 *                             background alone); absent: "softmax"
 *   scores          array of double   the scores of `scoring`, same order
 *   probabilities   array of double   softmax probabilities, same order
 *   presences       array of double   presence scores, same order
 *   cosines         array of double   cosine similarities, same order
 *   smoothed-scores array of double   with segments or smoothing: the smoothed
 *                                     scores, same order
 *   source-pts      guint64   PTS of the analyzed frame (GST_CLOCK_TIME_NONE if none)
 *   frame           guint64   index of the analyzed frame since the stream started
 *   fresh           gboolean  TRUE when this very buffer was analyzed
 *   model           string    the model folder
 *   embedding       array of double   the normalized image embedding
 *                                     (attach-embedding=true only)
 *   regions         array of structure "ruclip-region" (inference-region=roi-list
 *                                     only; empty when the frame had none):
 *                   id (gint, the GstVideoRegionOfInterestMeta's), roi-type
 *                   (string), x, y, w, h (guint), and labels/scoring/scores/
 *                   probabilities/presences/cosines/model as above: read them with the ruclip_result_* functions
 *   timestamp       guint64   the message only: PTS of the analyzed frame
 *   running-time    guint64   the message only: its running time
 * Each classified GstVideoRegionOfInterestMeta also gets a param structure
 * named "ruclip" with that region's labels/scores/cosines/model.
 *
 * The attach-embedding request ("ruclip-attach-embedding", a custom upstream
 * event, no fields): an element downstream that needs the embeddings
 * (ruclipindex) sends it, and ruclipfilter attaches them from then on, as
 * with attach-embedding=true.
 *
 * The segment structure ("ruclip-segment" element message and custom
 * downstream event, posted/sent when a label starts or stops holding):
 *   event (string "start"|"end"), label (string), start-pts, end-pts,
 *   start-running-time, end-running-time, frames (guint64), mean-score,
 *   peak-score (double, of the scores of `scoring`), model, scoring (string).
 *   See RuClipSegment.
 */
#ifndef RUCLIP_META_H
#define RUCLIP_META_H

#include <gst/gst.h>

G_BEGIN_DECLS

#define RUCLIP_META_NAME "RuClipMeta"          /* the GstCustomMeta */
#define RUCLIP_RESULT_MESSAGE "ruclip"         /* element message / ROI param name */
#define RUCLIP_REGION_NAME "ruclip-region"     /* items of a result's "regions" */
#define RUCLIP_SEGMENT_NAME "ruclip-segment"   /* element message and custom event */

/* Registers the RuClipMeta custom meta (idempotent; every ruclip element does
 * it when registered). */
void ruclip_meta_register (void);

/* ---- reading a result (meta, message or region) ---- */

/* The result on @buffer, or NULL when it carries none. */
const GstStructure *ruclip_buffer_get_result (GstBuffer * buffer);
/* TRUE for a "ruclip" result message structure. */
gboolean ruclip_structure_is_result (const GstStructure * s);

guint ruclip_result_n_labels (const GstStructure * result);
/* NULL / 0.0 past the end. */
const gchar *ruclip_result_label (const GstStructure * result, guint i);
gdouble ruclip_result_score (const GstStructure * result, guint i);
gdouble ruclip_result_cosine (const GstStructure * result, guint i);
/* "softmax" or "presence": what ruclip_result_score returns. */
const gchar *ruclip_result_scoring (const GstStructure * result);
/* The softmax probability and the presence of label i, whichever the scoring;
 * FALSE when the result does not carry it (an older producer). */
gboolean ruclip_result_get_probability (const GstStructure * result, guint i, gdouble * probability);
gboolean ruclip_result_get_presence (const GstStructure * result, guint i, gdouble * presence);
/* FALSE when the result has no smoothed scores (no segments or smoothing). */
gboolean ruclip_result_get_smoothed_score (const GstStructure * result, guint i, gdouble * score);
gboolean ruclip_result_is_fresh (const GstStructure * result);
GstClockTime ruclip_result_source_pts (const GstStructure * result);
/* G_MAXUINT64 when not set. */
guint64 ruclip_result_frame (const GstStructure * result);
/* "" when not set. */
const gchar *ruclip_result_model (const GstStructure * result);
/* The message's own times (GST_CLOCK_TIME_NONE when not set). */
GstClockTime ruclip_result_timestamp (const GstStructure * result);
GstClockTime ruclip_result_running_time (const GstStructure * result);
/* The embedding's length, 0 when not attached; and its values. */
guint ruclip_result_embedding_size (const GstStructure * result);
gdouble ruclip_result_embedding_value (const GstStructure * result, guint i);

/* Regions: FALSE when the result is for the whole frame (no "regions"). */
gboolean ruclip_result_has_regions (const GstStructure * result);
guint ruclip_result_n_regions (const GstStructure * result);
/* The i-th region (its labels through ruclip_result_*), NULL past the end. */
const GstStructure *ruclip_result_region (const GstStructure * result, guint i);
/* A region's box (x, y, w, h: required pointers, left as they were on FALSE)
 * and, where the pointers are given, its id (0 when absent) and roi-type
 * ("" when absent). FALSE when the box is incomplete. */
gboolean ruclip_region_get_box (const GstStructure * region, gint * id, const gchar ** roi_type,
    guint * x, guint * y, guint * w, guint * h);

/* ---- writing a result (ruclipfilter; tests, applications that fake one) ---- */

/* A new empty RuClipMeta structure on @buffer, replacing one already there.
 * Owned by the buffer. */
GstStructure *ruclip_buffer_add_result (GstBuffer * buffer);
/* An empty "ruclip" result structure (for a message or a ROI param). */
GstStructure *ruclip_result_new (void);
/* labels[i], scores[i], cosines[i] for i < n, best first. */
void ruclip_result_set_labels (GstStructure * result, guint n, const gchar * const *labels,
    const gdouble * scores, const gdouble * cosines);
/* Which scores ruclip_result_set_labels was given ("softmax" or "presence"),
 * and both kinds for the same n labels (either may be NULL). */
void ruclip_result_set_scoring (GstStructure * result, const gchar * scoring, guint n,
    const gdouble * probabilities, const gdouble * presences);
void ruclip_result_set_smoothed_scores (GstStructure * result, guint n, const gdouble * scores);
void ruclip_result_set_frame (GstStructure * result, GstClockTime source_pts, guint64 frame, gboolean fresh,
    const gchar * model);
void ruclip_result_set_model (GstStructure * result, const gchar * model);
void ruclip_result_set_times (GstStructure * result, GstClockTime timestamp, GstClockTime running_time);
void ruclip_result_set_embedding (GstStructure * result, guint n, const gfloat * values);
/* Starts an empty "regions" list (a frame whose regions were all skipped). */
void ruclip_result_init_regions (GstStructure * result);
/* Appends @region (takes it) to "regions", starting the list if needed. */
void ruclip_result_take_region (GstStructure * result, GstStructure * region);
/* A new "ruclip-region" structure with a box; add labels with ruclip_result_set_labels. */
GstStructure *ruclip_region_new (gint id, const gchar * roi_type, guint x, guint y, guint w, guint h);

/* ---- the attach-embedding request ---- */

#define RUCLIP_ATTACH_EMBEDDING_EVENT "ruclip-attach-embedding"
/* A new custom upstream event asking ruclipfilter for embeddings. */
GstEvent *ruclip_attach_embedding_event_new (void);
gboolean ruclip_event_is_attach_embedding (GstEvent * event);

/* ---- segments ---- */

typedef struct {
  gboolean is_start;            /* event "start"; FALSE: "end" */
  const gchar *label;           /* borrowed from the structure parsed */
  GstClockTime start_pts, end_pts;  /* end_pts: GST_CLOCK_TIME_NONE at a start */
  GstClockTime start_running_time, end_running_time;
  guint64 frames;               /* analyses in the segment */
  gdouble mean_score, peak_score;
  const gchar *model;           /* borrowed */
  const gchar *scoring;         /* "softmax" or "presence" (borrowed; NULL writes "softmax") */
} RuClipSegment;

/* A new "ruclip-segment" structure of @segment. */
GstStructure *ruclip_segment_to_structure (const RuClipSegment * segment);
/* Fills @segment from a "ruclip-segment" structure (strings borrowed from
 * it); FALSE when @s is not one (another name, or event not start/end). */
gboolean ruclip_segment_parse (const GstStructure * s, RuClipSegment * segment);

G_END_DECLS

#endif /* RUCLIP_META_H */
