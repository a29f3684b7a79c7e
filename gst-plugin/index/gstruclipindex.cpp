/**
 * SECTION:element-ruclipindex
 * @title: ruclipindex
 *
 * Adds the frames ruclipfilter analysed to a search index: per frame its
 * camera, wall-clock time (UTC), PTS, image embedding, labels, a small JPEG
 * thumbnail and the frame larger (frame-width) for the search page.
 * `ruclip search --db LOCATION "красная машина" --camera gate --since 2h`
 * and `ruclip serve` find them from another process. Buffers pass through
 * untouched. In mode=async a result rides on a buffer a few frames
 * after the one analysed: its time is the analysed frame's, its thumbnail
 * the frame it arrived on.
 *
 * |[
 * gst-launch-1.0 rtspsrc location=rtsp://cam1/stream ! decodebin ! \
 *   ruclipfilter model=/models/m labels="человек;машина" interval-time=1000000000 mode=async ! \
 *   ruclipindex location=postgresql://indexer@db.local/ruclip camera=gate ! fakesink
 * ]|
 *
 * location is a SQLite file or a postgresql:// URI (one index for many
 * machines). The element asks ruclipfilter upstream for the embeddings
 * itself (the "ruclip-attach-embedding" event). Writes happen on a thread of
 * their own through a bounded queue (queue-size; the oldest waiting frame is
 * dropped when it is full, counted in rows-dropped): the stream never waits
 * for the database; a lost connection is retried with backoff and the queue
 * sent again. A frame whose embedding is within min-change of the last one
 * stored is skipped (rows-unchanged), unless keep-every has passed. EOS waits
 * up to flush-timeout for the queue to be stored. Details: docs/search.md.
 */
#include "gstruclipindex.h"

#include <gst/video/video.h>

#include <chrono>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>

#include "ruclip/index/writer.h"
#include "ruclipmeta.h"

GST_DEBUG_CATEGORY_STATIC (gst_ruclip_index_debug);
#define GST_CAT_DEFAULT gst_ruclip_index_debug

namespace {

constexpr int kThumbnailWidth = 192;
// Seconds from the NTP epoch (1900) to the Unix one (1970).
constexpr int64_t kNtpToUnixSeconds = 2208988800LL;

enum {
  PROP_0,
  PROP_LOCATION,
  PROP_CAMERA,
  PROP_MIN_CHANGE,
  PROP_KEEP_EVERY,
  PROP_QUEUE_SIZE,
  PROP_MAX_AGE,
  PROP_FLUSH_TIMEOUT,
  PROP_FRAME_WIDTH,
  PROP_ROWS_STORED,
  PROP_ROWS_UNCHANGED,
  PROP_ROWS_DROPPED,
};

struct Settings {
  std::string location;
  std::string camera;
  double min_change = 0.01;
  guint64 keep_every = 3600 * GST_SECOND;
  guint queue_size = 256;
  guint64 max_age = 0;
  guint64 flush_timeout = 5 * GST_SECOND;
  guint frame_width = 640;
};

}  // namespace

// Everything C++ the element owns; allocated in init, freed in finalize.
struct RuClipIndexState {
  std::mutex lock;  // settings and the writer pointer
  Settings settings;
  std::unique_ptr<ruclip::index::Writer> writer;  // made at the first embedding
  std::string camera;                             // the name in use (start())
  bool failed = false;                            // the writer gave up (an error was posted)
  bool connection_warned = false;                 // a warning per outage, not per retry

  // Streaming thread.
  GstVideoInfo info;
  bool have_info = false;
  GstVideoConverter *converter = nullptr;  // to the thumbnail's RGB
  GstVideoInfo thumb_info;
  GstVideoConverter *frame_converter = nullptr;  // to the larger frame's RGB (frame-width)
  GstVideoInfo frame_info;
  bool asked_for_embeddings = false;
  guint64 results_without_embedding = 0;
  guint64 last_frame = G_MAXUINT64;  // the analysed frame whose result was taken last
};

struct _GstRuClipIndex {
  GstBaseTransform parent;
  RuClipIndexState *state;
};

G_DEFINE_TYPE (GstRuClipIndex, gst_ruclip_index, GST_TYPE_BASE_TRANSFORM);
GST_ELEMENT_REGISTER_DEFINE_WITH_CODE (ruclipindex, "ruclipindex", GST_RANK_NONE, GST_TYPE_RUCLIP_INDEX,
    ruclip_meta_register ());

#define parent_class gst_ruclip_index_parent_class

static Settings
copy_settings (RuClipIndexState * st)
{
  std::lock_guard<std::mutex> guard (st->lock);
  return st->settings;
}

static ruclip::index::WriterStats
writer_stats (RuClipIndexState * st)
{
  std::lock_guard<std::mutex> guard (st->lock);
  return st->writer ? st->writer->stats () : ruclip::index::WriterStats ();
}

// The camera's name: the property, else the pipeline's name when it was
// given one, else the element's.
static std::string
camera_name (GstRuClipIndex * self, const Settings & s)
{
  if (!s.camera.empty ())
    return s.camera;
  GstObject *top = GST_OBJECT (self);
  while (GST_OBJECT_PARENT (top))
    top = GST_OBJECT_PARENT (top);
  gchar *name = gst_object_get_name (top);
  std::string out = name ? name : "";
  g_free (name);
  if (top == GST_OBJECT (self) || out.empty () || g_str_has_prefix (out.c_str (), "pipeline")) {
    name = gst_object_get_name (GST_OBJECT (self));
    out = name;
    g_free (name);
  }
  return out;
}

// Wall-clock time of the frame, microseconds UTC: the capture time the
// source stamped (a reference timestamp meta: RTSP's NTP time, or Unix
// time), else the system clock at capture (the pipeline clock's time of the
// buffer, where the stream keeps to its clock), else now.
static int64_t
wall_time_of (GstRuClipIndex * self, GstBuffer * buffer)
{
  static GstCaps *ntp = gst_caps_new_empty_simple ("timestamp/x-ntp");
  static GstCaps *unix_time = gst_caps_new_empty_simple ("timestamp/x-unix");
  if (GstReferenceTimestampMeta * m = gst_buffer_get_reference_timestamp_meta (buffer, ntp))
    return (int64_t) (m->timestamp / 1000) - kNtpToUnixSeconds * 1000000;
  if (GstReferenceTimestampMeta * m = gst_buffer_get_reference_timestamp_meta (buffer, unix_time))
    return (int64_t) (m->timestamp / 1000);
  const int64_t now = ruclip::index::wall_clock_now ();
  GstBaseTransform *trans = GST_BASE_TRANSFORM (self);
  GstClock *clock = gst_element_get_clock (GST_ELEMENT (self));
  const GstClockTime pts = GST_BUFFER_PTS (buffer);
  if (!clock || !GST_CLOCK_TIME_IS_VALID (pts)) {
    if (clock)
      gst_object_unref (clock);
    return now;
  }
  const GstClockTime running = gst_segment_to_running_time (&trans->segment, GST_FORMAT_TIME, pts);
  const GstClockTime clock_now = gst_clock_get_time (clock);
  gst_object_unref (clock);
  if (!GST_CLOCK_TIME_IS_VALID (running))
    return now;
  const GstClockTimeDiff behind =
      GST_CLOCK_DIFF (gst_element_get_base_time (GST_ELEMENT (self)) + running, clock_now);
  // A stream that doesn't keep to the clock (a file decoded as fast as it
  // goes) is far from it: its frames are stamped as they arrive.
  if (behind < 0 || behind > 10 * (GstClockTimeDiff) GST_SECOND)
    return now;
  return now - behind / 1000;
}

// The JPEG of a thumbnail's RGB pixels (`pixels`: width, height as two
// uint32, then the frame in GstVideoInfo's RGB layout), by GStreamer's own
// encoder (jpegenc).
static std::vector<uint8_t>
encode_jpeg (const std::vector<uint8_t> & pixels)
{
  guint32 wh[2];
  if (pixels.size () < sizeof wh)
    return {};
  std::memcpy (wh, pixels.data (), sizeof wh);
  GstVideoInfo info;
  gst_video_info_set_format (&info, GST_VIDEO_FORMAT_RGB, wh[0], wh[1]);
  if (pixels.size () != sizeof wh + info.size)
    return {};
  GstBuffer *buffer = gst_buffer_new_memdup (pixels.data () + sizeof wh, info.size);
  GstCaps *caps = gst_video_info_to_caps (&info);
  GstSample *sample = gst_sample_new (buffer, caps, nullptr, nullptr);
  gst_buffer_unref (buffer);
  gst_caps_unref (caps);
  GstCaps *jpeg_caps = gst_caps_new_empty_simple ("image/jpeg");
  GError *error = nullptr;
  GstSample *jpeg = gst_video_convert_sample (sample, jpeg_caps, 10 * GST_SECOND, &error);
  gst_caps_unref (jpeg_caps);
  gst_sample_unref (sample);
  if (!jpeg) {
    const std::string message = error ? error->message : "no encoder";
    g_clear_error (&error);
    throw std::runtime_error ("JPEG encoding failed: " + message);
  }
  std::vector<uint8_t> out;
  GstMapInfo map;
  if (gst_buffer_map (gst_sample_get_buffer (jpeg), &map, GST_MAP_READ)) {
    out.assign (map.data, map.data + map.size);
    gst_buffer_unmap (gst_sample_get_buffer (jpeg), &map);
  }
  gst_sample_unref (jpeg);
  return out;
}

// The writer's failures, on its thread: a warning when the index becomes
// unreachable (once per outage), an error when the writer gives up.
static void
on_writer_error (GstRuClipIndex * self, const std::string & message, bool fatal)
{
  RuClipIndexState *st = self->state;
  if (fatal) {
    {
      std::lock_guard<std::mutex> guard (st->lock);
      st->failed = true;
    }
    GST_ELEMENT_ERROR (self, RESOURCE, WRITE, ("Cannot store frames in the index: %s", message.c_str ()), (NULL));
    return;
  }
  bool warn;
  {
    std::lock_guard<std::mutex> guard (st->lock);
    warn = !st->connection_warned;
    st->connection_warned = true;
  }
  if (warn)
    GST_ELEMENT_WARNING (self, RESOURCE, WRITE, ("Index unreachable, retrying: %s", message.c_str ()),
        ("frames wait in a queue of queue-size; the oldest are dropped when it is full"));
  else
    GST_DEBUG_OBJECT (self, "retrying: %s", message.c_str ());
}

static void
make_writer (GstRuClipIndex * self, int dim, const std::string & model)
{
  RuClipIndexState *st = self->state;
  const Settings s = copy_settings (st);
  ruclip::index::WriterOptions o;
  o.location = s.location;
  o.camera = st->camera;
  o.queue_size = s.queue_size;
  o.min_change = s.min_change;
  o.keep_every = (int64_t) (s.keep_every / 1000);
  o.max_age = (int64_t) (s.max_age / 1000);
  o.model = model;
  o.dim = dim;
  o.encode_jpeg = [](const std::vector<uint8_t> & pixels) { return encode_jpeg (pixels); };
  o.on_error = [self](const std::string & message, bool fatal) { on_writer_error (self, message, fatal); };
  auto writer = std::make_unique<ruclip::index::Writer> (std::move (o));
  GST_INFO_OBJECT (self, "indexing camera '%s' into %s (%d-dimensional embeddings)", st->camera.c_str (),
      ruclip::index::Store::printable (s.location).c_str (), dim);
  std::lock_guard<std::mutex> guard (st->lock);
  st->writer = std::move (writer);
}

// Waits for the queue to be stored (EOS, stop): up to flush-timeout.
static void
flush_writer (GstRuClipIndex * self)
{
  RuClipIndexState *st = self->state;
  ruclip::index::Writer *writer;
  {
    std::lock_guard<std::mutex> guard (st->lock);
    writer = st->writer.get ();
  }
  if (!writer)
    return;
  const guint64 timeout = copy_settings (st).flush_timeout;
  if (!writer->flush (std::chrono::milliseconds (timeout / GST_MSECOND))) {
    const ruclip::index::WriterStats stats = writer->stats ();
    GST_ELEMENT_WARNING (self, RESOURCE, WRITE, ("%" G_GUINT64_FORMAT " frames not stored in the index in time",
            stats.pending), ("flush-timeout %" GST_TIME_FORMAT, GST_TIME_ARGS (timeout)));
  }
}

// A converter from `in` to RGB at most `width` wide, the aspect kept; its
// output described in `out`.
static GstVideoConverter *
make_converter (const GstVideoInfo * in, int width, GstVideoInfo * out)
{
  const int w = std::max (1, std::min (width, GST_VIDEO_INFO_WIDTH (in)));
  const int h = std::max (1, (int) ((gint64) GST_VIDEO_INFO_HEIGHT (in) * w / std::max (1, GST_VIDEO_INFO_WIDTH (in))));
  gst_video_info_set_format (out, GST_VIDEO_FORMAT_RGB, w, h);
  // The converter scales and converts colour, never frame rate or interlacing.
  GST_VIDEO_INFO_FPS_N (out) = GST_VIDEO_INFO_FPS_N (in);
  GST_VIDEO_INFO_FPS_D (out) = GST_VIDEO_INFO_FPS_D (in);
  GST_VIDEO_INFO_INTERLACE_MODE (out) = GST_VIDEO_INFO_INTERLACE_MODE (in);
  return gst_video_converter_new (const_cast<GstVideoInfo *> (in), out, nullptr);
}

static void
free_converters (RuClipIndexState * st)
{
  for (GstVideoConverter ** c : {&st->converter, &st->frame_converter}) {
    if (*c)
      gst_video_converter_free (*c);
    *c = nullptr;
  }
}

// The frame scaled into `out`'s RGB, with its size in front (encode_jpeg).
static std::vector<uint8_t>
scaled_pixels (GstVideoConverter * converter, GstVideoInfo * in_info, GstVideoInfo * out_info, GstBuffer * buffer)
{
  GstVideoFrame in;
  if (!converter || !gst_video_frame_map (&in, in_info, buffer, GST_MAP_READ))
    return {};
  const guint32 wh[2] = { (guint32) GST_VIDEO_INFO_WIDTH (out_info), (guint32) GST_VIDEO_INFO_HEIGHT (out_info) };
  std::vector<uint8_t> out (sizeof wh + out_info->size);
  std::memcpy (out.data (), wh, sizeof wh);
  GstBuffer *target = gst_buffer_new_wrapped_full ((GstMemoryFlags) 0, out.data () + sizeof wh,
      out_info->size, 0, out_info->size, nullptr, nullptr);
  GstVideoFrame scaled;
  if (gst_video_frame_map (&scaled, out_info, target, GST_MAP_WRITE)) {
    gst_video_converter_frame (converter, &in, &scaled);
    gst_video_frame_unmap (&scaled);
  } else {
    out.clear ();
  }
  gst_buffer_unref (target);
  gst_video_frame_unmap (&in);
  return out;
}

static gboolean
gst_ruclip_index_start (GstBaseTransform * trans)
{
  GstRuClipIndex *self = GST_RUCLIP_INDEX (trans);
  RuClipIndexState *st = self->state;
  const Settings s = copy_settings (st);
  if (s.location.empty ()) {
    GST_ELEMENT_ERROR (self, RESOURCE, NOT_FOUND, ("No index: set the location property"),
        ("a SQLite file path or a postgresql:// URI"));
    return FALSE;
  }
  std::lock_guard<std::mutex> guard (st->lock);
  st->camera = camera_name (self, s);
  st->failed = false;
  st->connection_warned = false;
  st->asked_for_embeddings = false;
  st->results_without_embedding = 0;
  st->last_frame = G_MAXUINT64;
  return TRUE;
}

static gboolean
gst_ruclip_index_stop (GstBaseTransform * trans)
{
  GstRuClipIndex *self = GST_RUCLIP_INDEX (trans);
  RuClipIndexState *st = self->state;
  flush_writer (self);
  std::unique_ptr<ruclip::index::Writer> writer;
  {
    std::lock_guard<std::mutex> guard (st->lock);
    writer = std::move (st->writer);
  }
  if (writer) {
    const ruclip::index::WriterStats stats = writer->stats ();
    GST_INFO_OBJECT (self, "stored %" G_GUINT64_FORMAT ", unchanged %" G_GUINT64_FORMAT ", dropped %"
        G_GUINT64_FORMAT ", not stored %" G_GUINT64_FORMAT, stats.stored, stats.unchanged, stats.dropped,
        stats.pending);
  }
  free_converters (st);
  st->have_info = false;
  return TRUE;
}

static gboolean
gst_ruclip_index_set_caps (GstBaseTransform * trans, GstCaps * incaps, GstCaps *)
{
  GstRuClipIndex *self = GST_RUCLIP_INDEX (trans);
  RuClipIndexState *st = self->state;
  if (!gst_video_info_from_caps (&st->info, incaps)) {
    GST_ELEMENT_ERROR (self, CORE, NEGOTIATION, ("Not raw video caps"), ("%" GST_PTR_FORMAT, incaps));
    return FALSE;
  }
  st->have_info = true;
  free_converters (st);
  st->converter = make_converter (&st->info, kThumbnailWidth, &st->thumb_info);
  // The larger frame only where it is larger than the thumbnail.
  const guint frame_width = copy_settings (st).frame_width;
  const guint thumb_width = (guint) GST_VIDEO_INFO_WIDTH (&st->thumb_info);
  if (frame_width > thumb_width && (guint) GST_VIDEO_INFO_WIDTH (&st->info) > thumb_width)
    st->frame_converter = make_converter (&st->info, (int) frame_width, &st->frame_info);
  const int width = GST_VIDEO_INFO_WIDTH (&st->thumb_info), height = GST_VIDEO_INFO_HEIGHT (&st->thumb_info);
  GST_DEBUG_OBJECT (self, "thumbnails %dx%d from %" GST_PTR_FORMAT, width, height, incaps);
  // ruclipfilter upstream attaches the embeddings from now on.
  if (!st->asked_for_embeddings) {
    st->asked_for_embeddings = true;
    gst_pad_push_event (trans->sinkpad, ruclip_attach_embedding_event_new ());
  }
  return st->converter != nullptr;
}

static GstFlowReturn
gst_ruclip_index_transform_ip (GstBaseTransform * trans, GstBuffer * buffer)
{
  GstRuClipIndex *self = GST_RUCLIP_INDEX (trans);
  RuClipIndexState *st = self->state;
  // A result is taken once: on the frame it is for (sync mode, "fresh"), or
  // on the first buffer it rides on (async mode: a few frames later).
  const GstStructure *result = ruclip_buffer_get_result (buffer);
  if (!result || ruclip_result_frame (result) == st->last_frame)
    return GST_FLOW_OK;
  st->last_frame = ruclip_result_frame (result);
  {
    std::lock_guard<std::mutex> guard (st->lock);
    if (st->failed)
      return GST_FLOW_ERROR;  // posted by the writer
  }
  const guint dim = ruclip_result_embedding_size (result);
  if (dim == 0) {
    // Frames analysed before ruclipfilter heard the request.
    if (st->results_without_embedding++ == 0)
      GST_INFO_OBJECT (self, "a result without an embedding: asked ruclipfilter for them");
    return GST_FLOW_OK;
  }
  std::vector<float> embedding (dim);
  for (guint i = 0; i < dim; ++i)
    embedding[i] = (float) ruclip_result_embedding_value (result, i);
  bool have_writer;
  {
    std::lock_guard<std::mutex> guard (st->lock);
    have_writer = st->writer != nullptr;
  }
  if (!have_writer) {
    try {
      make_writer (self, (int) dim, ruclip_result_model (result));
    } catch (const std::exception & e) {
      GST_ELEMENT_ERROR (self, RESOURCE, SETTINGS, ("%s", e.what ()), (NULL));
      return GST_FLOW_ERROR;
    }
  }
  ruclip::index::Writer *writer = st->writer.get ();  // only stop() resets it, after streaming
  {
    // The index is reachable again: the next outage gets its own warning.
    std::lock_guard<std::mutex> guard (st->lock);
    if (st->connection_warned && writer->stats ().connected) {
      st->connection_warned = false;
      GST_INFO_OBJECT (self, "the index is reachable again");
    }
  }
  // The analysed frame's time: this buffer's, less how far behind it the
  // result arrived (async mode).
  const GstClockTime pts = GST_BUFFER_PTS (buffer);
  const GstClockTime source_pts = ruclip_result_source_pts (result);
  int64_t wall_time = wall_time_of (self, buffer);
  if (GST_CLOCK_TIME_IS_VALID (pts) && GST_CLOCK_TIME_IS_VALID (source_pts) && source_pts <= pts)
    wall_time -= (int64_t) ((pts - source_pts) / 1000);
  if (!writer->changed (embedding, wall_time)) {
    GST_LOG_OBJECT (self, "unchanged frame at %" GST_TIME_FORMAT, GST_TIME_ARGS (GST_BUFFER_PTS (buffer)));
    return GST_FLOW_OK;
  }
  ruclip::index::Sample sample;
  sample.time = GST_CLOCK_TIME_IS_VALID (source_pts) ? source_pts / 1e9 : GST_CLOCK_TIME_IS_VALID (pts) ? pts / 1e9 : 0;
  sample.wall_time = wall_time;
  for (guint i = 0; i < ruclip_result_n_labels (result); ++i)
    sample.labels += std::string (i ? ";" : "") + ruclip_result_label (result, i);
  sample.embedding = std::move (embedding);
  sample.thumbnail = scaled_pixels (st->converter, &st->info, &st->thumb_info, buffer);
  if (st->frame_converter)
    sample.frame = scaled_pixels (st->frame_converter, &st->info, &st->frame_info, buffer);
  writer->add (std::move (sample));
  return GST_FLOW_OK;
}

static gboolean
gst_ruclip_index_sink_event (GstBaseTransform * trans, GstEvent * event)
{
  if (GST_EVENT_TYPE (event) == GST_EVENT_EOS)
    flush_writer (GST_RUCLIP_INDEX (trans));
  return GST_BASE_TRANSFORM_CLASS (parent_class)->sink_event (trans, event);
}

static void
gst_ruclip_index_set_property (GObject * object, guint prop_id, const GValue * value, GParamSpec * pspec)
{
  RuClipIndexState *st = GST_RUCLIP_INDEX (object)->state;
  std::lock_guard<std::mutex> guard (st->lock);
  Settings & s = st->settings;
  switch (prop_id) {
    case PROP_LOCATION: s.location = g_value_get_string (value) ? g_value_get_string (value) : ""; break;
    case PROP_CAMERA: s.camera = g_value_get_string (value) ? g_value_get_string (value) : ""; break;
    case PROP_MIN_CHANGE: s.min_change = g_value_get_double (value); break;
    case PROP_KEEP_EVERY: s.keep_every = g_value_get_uint64 (value); break;
    case PROP_QUEUE_SIZE: s.queue_size = g_value_get_uint (value); break;
    case PROP_MAX_AGE: s.max_age = g_value_get_uint64 (value); break;
    case PROP_FLUSH_TIMEOUT: s.flush_timeout = g_value_get_uint64 (value); break;
    case PROP_FRAME_WIDTH: s.frame_width = g_value_get_uint (value); break;
    default: G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec); break;
  }
}

static void
gst_ruclip_index_get_property (GObject * object, guint prop_id, GValue * value, GParamSpec * pspec)
{
  RuClipIndexState *st = GST_RUCLIP_INDEX (object)->state;
  const Settings s = copy_settings (st);
  const ruclip::index::WriterStats stats = writer_stats (st);
  switch (prop_id) {
    case PROP_LOCATION: g_value_set_string (value, s.location.c_str ()); break;
    case PROP_CAMERA: g_value_set_string (value, s.camera.c_str ()); break;
    case PROP_MIN_CHANGE: g_value_set_double (value, s.min_change); break;
    case PROP_KEEP_EVERY: g_value_set_uint64 (value, s.keep_every); break;
    case PROP_QUEUE_SIZE: g_value_set_uint (value, s.queue_size); break;
    case PROP_MAX_AGE: g_value_set_uint64 (value, s.max_age); break;
    case PROP_FLUSH_TIMEOUT: g_value_set_uint64 (value, s.flush_timeout); break;
    case PROP_FRAME_WIDTH: g_value_set_uint (value, s.frame_width); break;
    case PROP_ROWS_STORED: g_value_set_uint64 (value, stats.stored); break;
    case PROP_ROWS_UNCHANGED: g_value_set_uint64 (value, stats.unchanged); break;
    case PROP_ROWS_DROPPED: g_value_set_uint64 (value, stats.dropped); break;
    default: G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec); break;
  }
}

static void
gst_ruclip_index_finalize (GObject * object)
{
  GstRuClipIndex *self = GST_RUCLIP_INDEX (object);
  free_converters (self->state);
  delete self->state;
  G_OBJECT_CLASS (parent_class)->finalize (object);
}

static void
gst_ruclip_index_init (GstRuClipIndex * self)
{
  self->state = new RuClipIndexState ();
  gst_base_transform_set_passthrough (GST_BASE_TRANSFORM (self), TRUE);
}

static void
gst_ruclip_index_class_init (GstRuClipIndexClass * klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS (klass);
  GstBaseTransformClass *trans_class = GST_BASE_TRANSFORM_CLASS (klass);
  gobject_class->set_property = gst_ruclip_index_set_property;
  gobject_class->get_property = gst_ruclip_index_get_property;
  gobject_class->finalize = gst_ruclip_index_finalize;

  const GParamFlags rw_ready = (GParamFlags) (G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
      GST_PARAM_MUTABLE_READY);
  const GParamFlags ro = (GParamFlags) (G_PARAM_READABLE | G_PARAM_STATIC_STRINGS);
  g_object_class_install_property (gobject_class, PROP_LOCATION,
      g_param_spec_string ("location", "Location", "The index: a SQLite file or a postgresql:// URI", NULL,
          rw_ready));
  g_object_class_install_property (gobject_class, PROP_CAMERA,
      g_param_spec_string ("camera", "Camera", "The camera's name in the index (default: the pipeline's, else "
          "the element's)", NULL, rw_ready));
  g_object_class_install_property (gobject_class, PROP_MIN_CHANGE,
      g_param_spec_double ("min-change", "Minimum change", "Skip a frame within this 1 - cosine of the last "
          "one stored (0: store every analysed frame)", 0.0, 2.0, 0.01, rw_ready));
  g_object_class_install_property (gobject_class, PROP_KEEP_EVERY,
      g_param_spec_uint64 ("keep-every", "Keep every", "Store a frame at least this often (ns), changed or not",
          0, G_MAXUINT64, 3600 * GST_SECOND, rw_ready));
  g_object_class_install_property (gobject_class, PROP_QUEUE_SIZE,
      g_param_spec_uint ("queue-size", "Queue size", "Frames waiting for the index at most; the oldest is "
          "dropped beyond", 1, 1000000, 256, rw_ready));
  g_object_class_install_property (gobject_class, PROP_MAX_AGE,
      g_param_spec_uint64 ("max-age", "Maximum age", "Remove this camera's frames older than this (ns) from "
          "the index; 0 keeps them", 0, G_MAXUINT64, 0, rw_ready));
  g_object_class_install_property (gobject_class, PROP_FLUSH_TIMEOUT,
      g_param_spec_uint64 ("flush-timeout", "Flush timeout", "At EOS, wait this long (ns) for the queue to be "
          "stored", 0, G_MAXUINT64, 5 * GST_SECOND, rw_ready));
  g_object_class_install_property (gobject_class, PROP_FRAME_WIDTH,
      g_param_spec_uint ("frame-width", "Frame width", "Also keep the frame this wide (pixels, as a JPEG) for the "
          "search page's viewer; 0 keeps the thumbnail only", 0, 4096, 640, rw_ready));
  g_object_class_install_property (gobject_class, PROP_ROWS_STORED,
      g_param_spec_uint64 ("rows-stored", "Rows stored", "Frames committed to the index", 0, G_MAXUINT64, 0, ro));
  g_object_class_install_property (gobject_class, PROP_ROWS_UNCHANGED,
      g_param_spec_uint64 ("rows-unchanged", "Rows unchanged", "Frames skipped by min-change", 0, G_MAXUINT64, 0,
          ro));
  g_object_class_install_property (gobject_class, PROP_ROWS_DROPPED,
      g_param_spec_uint64 ("rows-dropped", "Rows dropped", "Frames pushed out of the full queue", 0, G_MAXUINT64,
          0, ro));

  GstCaps *caps = gst_caps_from_string (GST_VIDEO_CAPS_MAKE (GST_VIDEO_FORMATS_ALL));
  gst_element_class_add_pad_template (element_class, gst_pad_template_new ("sink", GST_PAD_SINK, GST_PAD_ALWAYS, caps));
  gst_element_class_add_pad_template (element_class, gst_pad_template_new ("src", GST_PAD_SRC, GST_PAD_ALWAYS, caps));
  gst_caps_unref (caps);
  gst_element_class_set_static_metadata (element_class, "ruCLIP search index", "Sink/Analyzer/Video",
      "Stores ruclipfilter's analysed frames (embedding, labels, thumbnail, camera, time) in a search index",
      "ruclip-gst developers");

  trans_class->start = GST_DEBUG_FUNCPTR (gst_ruclip_index_start);
  trans_class->stop = GST_DEBUG_FUNCPTR (gst_ruclip_index_stop);
  trans_class->set_caps = GST_DEBUG_FUNCPTR (gst_ruclip_index_set_caps);
  trans_class->transform_ip = GST_DEBUG_FUNCPTR (gst_ruclip_index_transform_ip);
  trans_class->sink_event = GST_DEBUG_FUNCPTR (gst_ruclip_index_sink_event);
  trans_class->transform_ip_on_passthrough = TRUE;
  GST_DEBUG_CATEGORY_INIT (gst_ruclip_index_debug, "ruclipindex", 0, "ruCLIP search index writer");
}
