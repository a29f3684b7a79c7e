/* The result format of ruclipfilter (ruclipmeta.h): field names, their types,
 * registration of RuClipMeta. Nothing else in the project spells a field. */
#include "ruclipmeta.h"

#define FIELD_LABELS "labels"
#define FIELD_SCORES "scores"
#define FIELD_COSINES "cosines"
#define FIELD_SCORING "scoring"
#define FIELD_PROBABILITIES "probabilities"
#define FIELD_PRESENCES "presences"
#define FIELD_SMOOTHED "smoothed-scores"
#define FIELD_SOURCE_PTS "source-pts"
#define FIELD_FRAME "frame"
#define FIELD_FRESH "fresh"
#define FIELD_MODEL "model"
#define FIELD_EMBEDDING "embedding"
#define FIELD_REGIONS "regions"
#define FIELD_TIMESTAMP "timestamp"
#define FIELD_RUNNING_TIME "running-time"
#define FIELD_ID "id"
#define FIELD_ROI_TYPE "roi-type"

/* A copy of the whole structure on every transform: the result describes the
 * analyzed frame, not this buffer's geometry, so scaling or converting the
 * video keeps it as it is (GstCustomMeta only copies on plain buffer copies). */
static gboolean
copy_field (GQuark field, const GValue * value, gpointer user_data)
{
  gst_structure_id_set_value ((GstStructure *) user_data, field, value);
  return TRUE;
}

static gboolean
ruclip_meta_transform (GstBuffer * dest, GstCustomMeta * meta, GstBuffer * src, GQuark type, gpointer data,
    gpointer user_data)
{
  GstCustomMeta *copy;
  (void) src, (void) type, (void) data, (void) user_data;
  copy = gst_buffer_add_custom_meta (dest, RUCLIP_META_NAME);
  if (!copy)
    return FALSE;
  gst_structure_foreach (gst_custom_meta_get_structure (meta), copy_field, gst_custom_meta_get_structure (copy));
  return TRUE;
}

void
ruclip_meta_register (void)
{
  static gsize registered = 0;
  if (g_once_init_enter (&registered)) {
    /* No tags: elements that drop video-geometry metas on conversion keep it. */
    static const gchar *tags[] = { NULL };
    gst_meta_register_custom (RUCLIP_META_NAME, tags, ruclip_meta_transform, NULL, NULL);
    g_once_init_leave (&registered, 1);
  }
}

/* ---- reading ---- */

const GstStructure *
ruclip_buffer_get_result (GstBuffer * buffer)
{
  GstCustomMeta *meta;
  ruclip_meta_register ();
  meta = gst_buffer_get_custom_meta (buffer, RUCLIP_META_NAME);
  return meta ? gst_custom_meta_get_structure (meta) : NULL;
}

gboolean
ruclip_structure_is_result (const GstStructure * s)
{
  return s && gst_structure_has_name (s, RUCLIP_RESULT_MESSAGE);
}

static const GValue *
array_item (const GstStructure * s, const gchar * field, guint i)
{
  const GValue *array = gst_structure_get_value (s, field);
  if (!array || !GST_VALUE_HOLDS_ARRAY (array) || i >= gst_value_array_get_size (array))
    return NULL;
  return gst_value_array_get_value (array, i);
}

static guint
array_size (const GstStructure * s, const gchar * field)
{
  const GValue *array = gst_structure_get_value (s, field);
  return array && GST_VALUE_HOLDS_ARRAY (array) ? gst_value_array_get_size (array) : 0;
}

static gdouble
double_item (const GstStructure * s, const gchar * field, guint i)
{
  const GValue *v = array_item (s, field, i);
  return v && G_VALUE_HOLDS_DOUBLE (v) ? g_value_get_double (v) : 0.0;
}

static guint64
uint64_field (const GstStructure * s, const gchar * field, guint64 fallback)
{
  guint64 v = fallback;
  gst_structure_get_uint64 (s, field, &v);
  return v;
}

static gdouble
double_field (const GstStructure * s, const gchar * field)
{
  gdouble v = 0.0;
  gst_structure_get_double (s, field, &v);
  return v;
}

guint
ruclip_result_n_labels (const GstStructure * result)
{
  return array_size (result, FIELD_LABELS);
}

const gchar *
ruclip_result_label (const GstStructure * result, guint i)
{
  const GValue *v = array_item (result, FIELD_LABELS, i);
  return v && G_VALUE_HOLDS_STRING (v) ? g_value_get_string (v) : NULL;
}

gdouble
ruclip_result_score (const GstStructure * result, guint i)
{
  return double_item (result, FIELD_SCORES, i);
}

gdouble
ruclip_result_cosine (const GstStructure * result, guint i)
{
  return double_item (result, FIELD_COSINES, i);
}

static gboolean
get_double_item (const GstStructure * result, const gchar * field, guint i, gdouble * out)
{
  const GValue *v = array_item (result, field, i);
  if (!v || !G_VALUE_HOLDS_DOUBLE (v))
    return FALSE;
  *out = g_value_get_double (v);
  return TRUE;
}

gboolean
ruclip_result_get_smoothed_score (const GstStructure * result, guint i, gdouble * score)
{
  return get_double_item (result, FIELD_SMOOTHED, i, score);
}

const gchar *
ruclip_result_scoring (const GstStructure * result)
{
  const gchar *scoring = gst_structure_get_string (result, FIELD_SCORING);
  return scoring ? scoring : "softmax";
}

gboolean
ruclip_result_get_probability (const GstStructure * result, guint i, gdouble * probability)
{
  return get_double_item (result, FIELD_PROBABILITIES, i, probability);
}

gboolean
ruclip_result_get_presence (const GstStructure * result, guint i, gdouble * presence)
{
  return get_double_item (result, FIELD_PRESENCES, i, presence);
}

gboolean
ruclip_result_is_fresh (const GstStructure * result)
{
  gboolean fresh = FALSE;
  gst_structure_get_boolean (result, FIELD_FRESH, &fresh);
  return fresh;
}

GstClockTime
ruclip_result_source_pts (const GstStructure * result)
{
  return uint64_field (result, FIELD_SOURCE_PTS, GST_CLOCK_TIME_NONE);
}

guint64
ruclip_result_frame (const GstStructure * result)
{
  return uint64_field (result, FIELD_FRAME, G_MAXUINT64);
}

const gchar *
ruclip_result_model (const GstStructure * result)
{
  const gchar *model = gst_structure_get_string (result, FIELD_MODEL);
  return model ? model : "";
}

GstClockTime
ruclip_result_timestamp (const GstStructure * result)
{
  return uint64_field (result, FIELD_TIMESTAMP, GST_CLOCK_TIME_NONE);
}

GstClockTime
ruclip_result_running_time (const GstStructure * result)
{
  return uint64_field (result, FIELD_RUNNING_TIME, GST_CLOCK_TIME_NONE);
}

guint
ruclip_result_embedding_size (const GstStructure * result)
{
  return array_size (result, FIELD_EMBEDDING);
}

gdouble
ruclip_result_embedding_value (const GstStructure * result, guint i)
{
  return double_item (result, FIELD_EMBEDDING, i);
}

gboolean
ruclip_result_has_regions (const GstStructure * result)
{
  const GValue *regions = gst_structure_get_value (result, FIELD_REGIONS);
  return regions && GST_VALUE_HOLDS_ARRAY (regions);
}

guint
ruclip_result_n_regions (const GstStructure * result)
{
  return array_size (result, FIELD_REGIONS);
}

const GstStructure *
ruclip_result_region (const GstStructure * result, guint i)
{
  const GValue *v = array_item (result, FIELD_REGIONS, i);
  return v && GST_VALUE_HOLDS_STRUCTURE (v) ? gst_value_get_structure (v) : NULL;
}

gboolean
ruclip_region_get_box (const GstStructure * region, gint * id, const gchar ** roi_type, guint * x, guint * y,
    guint * w, guint * h)
{
  guint box[4];
  if (!gst_structure_get_uint (region, "x", &box[0]) || !gst_structure_get_uint (region, "y", &box[1]) ||
      !gst_structure_get_uint (region, "w", &box[2]) || !gst_structure_get_uint (region, "h", &box[3]))
    return FALSE;
  *x = box[0], *y = box[1], *w = box[2], *h = box[3];
  if (id && !gst_structure_get_int (region, FIELD_ID, id))
    *id = 0;
  if (roi_type) {
    const gchar *type = gst_structure_get_string (region, FIELD_ROI_TYPE);
    *roi_type = type ? type : "";
  }
  return TRUE;
}

/* ---- writing ---- */

GstStructure *
ruclip_buffer_add_result (GstBuffer * buffer)
{
  GstCustomMeta *old, *meta;
  ruclip_meta_register ();
  /* A second ruclipfilter downstream replaces the first one's result. */
  old = gst_buffer_get_custom_meta (buffer, RUCLIP_META_NAME);
  if (old)
    gst_buffer_remove_meta (buffer, (GstMeta *) old);
  meta = gst_buffer_add_custom_meta (buffer, RUCLIP_META_NAME);
  return meta ? gst_custom_meta_get_structure (meta) : NULL;
}

GstStructure *
ruclip_result_new (void)
{
  return gst_structure_new_empty (RUCLIP_RESULT_MESSAGE);
}

static void
set_double_array (GstStructure * s, const gchar * field, guint n, const gdouble * values)
{
  GValue array = G_VALUE_INIT, v = G_VALUE_INIT;
  guint i;
  gst_value_array_init (&array, n);
  g_value_init (&v, G_TYPE_DOUBLE);
  for (i = 0; i < n; ++i) {
    g_value_set_double (&v, values[i]);
    gst_value_array_append_value (&array, &v);
  }
  g_value_unset (&v);
  gst_structure_take_value (s, field, &array);
}

void
ruclip_result_set_labels (GstStructure * result, guint n, const gchar * const *labels, const gdouble * scores,
    const gdouble * cosines)
{
  GValue array = G_VALUE_INIT, v = G_VALUE_INIT;
  guint i;
  gst_value_array_init (&array, n);
  g_value_init (&v, G_TYPE_STRING);
  for (i = 0; i < n; ++i) {
    g_value_set_string (&v, labels[i]);
    gst_value_array_append_value (&array, &v);
  }
  g_value_unset (&v);
  gst_structure_take_value (result, FIELD_LABELS, &array);
  set_double_array (result, FIELD_SCORES, n, scores);
  set_double_array (result, FIELD_COSINES, n, cosines);
}

void
ruclip_result_set_scoring (GstStructure * result, const gchar * scoring, guint n, const gdouble * probabilities,
    const gdouble * presences)
{
  gst_structure_set (result, FIELD_SCORING, G_TYPE_STRING, scoring ? scoring : "softmax", NULL);
  if (probabilities)
    set_double_array (result, FIELD_PROBABILITIES, n, probabilities);
  if (presences)
    set_double_array (result, FIELD_PRESENCES, n, presences);
}

void
ruclip_result_set_smoothed_scores (GstStructure * result, guint n, const gdouble * scores)
{
  set_double_array (result, FIELD_SMOOTHED, n, scores);
}

void
ruclip_result_set_frame (GstStructure * result, GstClockTime source_pts, guint64 frame, gboolean fresh,
    const gchar * model)
{
  gst_structure_set (result, FIELD_SOURCE_PTS, G_TYPE_UINT64, (guint64) source_pts, FIELD_FRAME, G_TYPE_UINT64,
      frame, FIELD_FRESH, G_TYPE_BOOLEAN, fresh, FIELD_MODEL, G_TYPE_STRING, model ? model : "", NULL);
}

void
ruclip_result_set_model (GstStructure * result, const gchar * model)
{
  gst_structure_set (result, FIELD_MODEL, G_TYPE_STRING, model ? model : "", NULL);
}

void
ruclip_result_set_times (GstStructure * result, GstClockTime timestamp, GstClockTime running_time)
{
  gst_structure_set (result, FIELD_TIMESTAMP, G_TYPE_UINT64, (guint64) timestamp, FIELD_RUNNING_TIME,
      G_TYPE_UINT64, (guint64) running_time, NULL);
}

void
ruclip_result_set_embedding (GstStructure * result, guint n, const gfloat * values)
{
  GValue array = G_VALUE_INIT, v = G_VALUE_INIT;
  guint i;
  gst_value_array_init (&array, n);
  g_value_init (&v, G_TYPE_DOUBLE);
  for (i = 0; i < n; ++i) {
    g_value_set_double (&v, values[i]);
    gst_value_array_append_value (&array, &v);
  }
  g_value_unset (&v);
  gst_structure_take_value (result, FIELD_EMBEDDING, &array);
}

void
ruclip_result_init_regions (GstStructure * result)
{
  GValue array = G_VALUE_INIT;
  gst_value_array_init (&array, 0);
  gst_structure_take_value (result, FIELD_REGIONS, &array);
}

void
ruclip_result_take_region (GstStructure * result, GstStructure * region)
{
  GValue *array, v = G_VALUE_INIT;
  /* Appended in place: `result` is the caller's writable structure. */
  if (!ruclip_result_has_regions (result))
    ruclip_result_init_regions (result);
  array = (GValue *) gst_structure_get_value (result, FIELD_REGIONS);
  g_value_init (&v, GST_TYPE_STRUCTURE);
  g_value_take_boxed (&v, region);
  gst_value_array_append_and_take_value (array, &v);
}

GstStructure *
ruclip_region_new (gint id, const gchar * roi_type, guint x, guint y, guint w, guint h)
{
  return gst_structure_new (RUCLIP_REGION_NAME, FIELD_ID, G_TYPE_INT, id, FIELD_ROI_TYPE, G_TYPE_STRING,
      roi_type ? roi_type : "", "x", G_TYPE_UINT, x, "y", G_TYPE_UINT, y, "w", G_TYPE_UINT, w, "h", G_TYPE_UINT, h,
      NULL);
}

/* ---- segments ---- */

GstStructure *
ruclip_segment_to_structure (const RuClipSegment * seg)
{
  return gst_structure_new (RUCLIP_SEGMENT_NAME,
      "event", G_TYPE_STRING, seg->is_start ? "start" : "end",
      "label", G_TYPE_STRING, seg->label ? seg->label : "",
      "start-pts", G_TYPE_UINT64, (guint64) seg->start_pts, "end-pts", G_TYPE_UINT64, (guint64) seg->end_pts,
      "start-running-time", G_TYPE_UINT64, (guint64) seg->start_running_time,
      "end-running-time", G_TYPE_UINT64, (guint64) seg->end_running_time,
      "mean-score", G_TYPE_DOUBLE, seg->mean_score, "peak-score", G_TYPE_DOUBLE, seg->peak_score,
      "frames", G_TYPE_UINT64, seg->frames, FIELD_MODEL, G_TYPE_STRING, seg->model ? seg->model : "",
      FIELD_SCORING, G_TYPE_STRING, seg->scoring ? seg->scoring : "softmax", NULL);
}

gboolean
ruclip_segment_parse (const GstStructure * s, RuClipSegment * seg)
{
  const gchar *event, *label, *model, *scoring;
  if (!s || !gst_structure_has_name (s, RUCLIP_SEGMENT_NAME))
    return FALSE;
  event = gst_structure_get_string (s, "event");
  if (!event || (g_strcmp0 (event, "start") != 0 && g_strcmp0 (event, "end") != 0))
    return FALSE;
  seg->is_start = g_strcmp0 (event, "start") == 0;
  label = gst_structure_get_string (s, "label");
  model = gst_structure_get_string (s, FIELD_MODEL);
  seg->label = label ? label : "";
  seg->model = model ? model : "";
  scoring = gst_structure_get_string (s, FIELD_SCORING);
  seg->scoring = scoring ? scoring : "softmax";
  seg->start_pts = uint64_field (s, "start-pts", GST_CLOCK_TIME_NONE);
  seg->end_pts = uint64_field (s, "end-pts", GST_CLOCK_TIME_NONE);
  seg->start_running_time = uint64_field (s, "start-running-time", GST_CLOCK_TIME_NONE);
  seg->end_running_time = uint64_field (s, "end-running-time", GST_CLOCK_TIME_NONE);
  seg->frames = uint64_field (s, "frames", 0);
  seg->mean_score = double_field (s, "mean-score");
  seg->peak_score = double_field (s, "peak-score");
  return TRUE;
}

GstEvent *
ruclip_attach_embedding_event_new (void)
{
  return gst_event_new_custom (GST_EVENT_CUSTOM_UPSTREAM, gst_structure_new_empty (RUCLIP_ATTACH_EMBEDDING_EVENT));
}

gboolean
ruclip_event_is_attach_embedding (GstEvent * event)
{
  return GST_EVENT_TYPE (event) == GST_EVENT_CUSTOM_UPSTREAM &&
      gst_event_has_name (event, RUCLIP_ATTACH_EMBEDDING_EVENT);
}
