/**
 * SECTION:element-ruclipfilter
 * @title: ruclipfilter
 *
 * Labels video frames with Russian phrases, zero-shot, with a ruCLIP model
 * (Sber AI's Russian CLIP). Pixels pass through untouched; every analyzed
 * buffer, and every later buffer until the next result, carries a
 * GstCustomMeta "RuClipMeta" with the labels best first (see ruclipmeta.h),
 * and with post-messages=true each analysis is also an element message
 * named "ruclip" on the bus.
 *
 * |[
 * gst-launch-1.0 -m filesrc location=clip.mp4 ! decodebin ! videoconvert ! \
 *   ruclipfilter model=/models/ruclip-vit-base-patch32-384 \
 *   labels="человек;автомобиль;пустая улица" interval=15 post-messages=true ! fakesink
 * ]|
 *
 * mode=sync analyzes a sampled frame on the streaming thread and attaches the
 * result to that very buffer (exact; for files). mode=async never makes a
 * frame wait (for live sources): a worker thread embeds the newest sampled
 * frames, and its results ride on later buffers, marked with the PTS of the
 * frame they came from; requests the worker can't keep up with are dropped and
 * counted (requests-dropped), never queued without bound.
 *
 * Many streams in one process (a media server, an NVR): every ruclipfilter
 * asking for the same model folder, device and precision shares one loaded
 * model (set model-instance-id to keep a separate one), and the sampled
 * frames of all of them, sync and async, are embedded together in batches of
 * up to batch-size, waiting at most batch-timeout for each other; streams
 * take turns, and each result goes back to its own stream and frame. CPU
 * threads (num-threads) are process-wide. The queueing, batching, drain and
 * flush machinery is ruclip::InferenceScheduler (core/include/ruclip/scheduler.h).
 *
 * |[
 * gst-launch-1.0 \
 *   rtspsrc location=rtsp://cam1/stream ! decodebin ! ruclipfilter model=/models/m labels="человек;пусто" mode=async ! fakesink \
 *   rtspsrc location=rtsp://cam2/stream ! decodebin ! ruclipfilter model=/models/m labels="человек;пусто" mode=async ! fakesink
 * ]| (one copy of the model, one batch for both cameras)
 */
#include "gstruclipfilter.h"

#include <gst/video/video.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "ruclip/error.h"
#include "ruclip/image.h"
#include "ruclip/labels.h"
#include "ruclip/model.h"
#include "ruclip/presence.h"
#include "ruclip/scheduler.h"
#include "ruclip/segments.h"
#include "ruclip/shared_model.h"
#include "ruclip/zero_shot.h"
#include "cuda_context.h"
#include "ruclipmeta.h"
#include "video_frame.h"

GST_DEBUG_CATEGORY (gst_ruclip_filter_debug);  // cuda_context.cpp logs here too
#define GST_CAT_DEFAULT gst_ruclip_filter_debug

#define VIDEO_FORMATS "{ RGB, BGR, RGBA, BGRA, RGBx, BGRx, xRGB, xBGR, GRAY8, I420, NV12 }"
// GStreamer's CUDA memory (gst-plugins-bad's gst/cuda/gstcudamemory.h; these
// two names here, so builds without that library still negotiate it away):
// frames a hardware decoder or cudaupload left on the GPU, read there by the
// model. cuda_context.h shares the model's CUDA context with their producers.
#define CUDA_MEMORY_FEATURE "memory:CUDAMemory"
#define GST_MAP_CUDA_MEMORY ((GstMapFlags) (GST_MAP_FLAG_LAST << 1))

typedef enum {
  RUCLIP_MODE_SYNC,
  RUCLIP_MODE_ASYNC,
} RuClipMode;

typedef enum {
  RUCLIP_PRECISION_FP32,
  RUCLIP_PRECISION_BF16,
  RUCLIP_PRECISION_FP16,
  RUCLIP_PRECISION_INT8,
  RUCLIP_PRECISION_AUTO,
  RUCLIP_PRECISION_INT8_MIXED,
} RuClipPrecision;

#define GST_TYPE_RUCLIP_PRECISION (ruclip_precision_get_type ())
static GType
ruclip_precision_get_type (void)
{
  static GType type = 0;
  static const GEnumValue values[] = {
    {RUCLIP_PRECISION_FP32, "32-bit float: the reference numbers", "fp32"},
    {RUCLIP_PRECISION_BF16, "bfloat16: CPUs with native bf16 (AVX-512 BF16, AMX) and GPUs; several times "
          "faster there, embeddings within 1% of fp32. On a CPU without it: fp32, with a warning", "bf16"},
    {RUCLIP_PRECISION_FP16, "float16: GPUs only", "fp16"},
    {RUCLIP_PRECISION_INT8, "int8 linear layers (weights per channel, activations per call; oneDNN): the "
          "fastest precision on many CPUs, with or without bf16; CPU only", "int8"},
    {RUCLIP_PRECISION_INT8_MIXED, "int8 with each block's MLP output product in fp32: the int8 for CPUs "
          "without AVX-512 VNNI; CPU only", "int8-mixed"},
    {RUCLIP_PRECISION_AUTO, "the fastest whose accuracy holds here, measured at load: int8 (CPUs with AVX-512 "
          "VNNI or AMX) or int8-mixed (others) where it beats bf16 (CPUs with native bf16) or fp32 by a margin, else "
          "that one; fp16 on GPUs", "auto"},
    {0, NULL, NULL},
  };
  if (g_once_init_enter (&type)) {
    GType t = g_enum_register_static ("GstRuClipFilterPrecision", values);
    g_once_init_leave (&type, t);
  }
  return type;
}

typedef enum {
  RUCLIP_REGION_FULL_FRAME,
  RUCLIP_REGION_ROI_LIST,
} RuClipRegion;

#define GST_TYPE_RUCLIP_REGION (ruclip_region_get_type ())
static GType
ruclip_region_get_type (void)
{
  static GType type = 0;
  static const GEnumValue values[] = {
    {RUCLIP_REGION_FULL_FRAME, "Classify the whole frame", "full-frame"},
    {RUCLIP_REGION_ROI_LIST, "Classify each GstVideoRegionOfInterestMeta of the frame (sync mode)", "roi-list"},
    {0, NULL, NULL},
  };
  if (g_once_init_enter (&type)) {
    GType t = g_enum_register_static ("GstRuClipFilterInferenceRegion", values);
    g_once_init_leave (&type, t);
  }
  return type;
}

typedef enum {
  RUCLIP_SCORING_AUTO,
  RUCLIP_SCORING_SOFTMAX,
  RUCLIP_SCORING_PRESENCE,
} RuClipScoring;

#define GST_TYPE_RUCLIP_SCORING (ruclip_scoring_get_type ())
static GType
ruclip_scoring_get_type (void)
{
  static GType type = 0;
  static const GEnumValue values[] = {
    {RUCLIP_SCORING_AUTO, "presence with one label, softmax with several", "auto"},
    {RUCLIP_SCORING_SOFTMAX, "softmax over the labels: which of them the frame is most like", "softmax"},
    {RUCLIP_SCORING_PRESENCE, "each label against the background alone: whether it is there", "presence"},
    {0, NULL, NULL},
  };
  if (g_once_init_enter (&type)) {
    GType t = g_enum_register_static ("GstRuClipFilterScoring", values);
    g_once_init_leave (&type, t);
  }
  return type;
}

#define GST_TYPE_RUCLIP_MODE (ruclip_mode_get_type ())
static GType
ruclip_mode_get_type (void)
{
  static GType type = 0;
  static const GEnumValue values[] = {
    {RUCLIP_MODE_SYNC, "Analyze on the streaming thread; the result goes on the analyzed buffer itself", "sync"},
    {RUCLIP_MODE_ASYNC, "Analyze on a worker thread; frames never wait, results go on later buffers", "async"},
    {0, NULL, NULL},
  };
  if (g_once_init_enter (&type)) {
    GType t = g_enum_register_static ("GstRuClipFilterMode", values);
    g_once_init_leave (&type, t);
  }
  return type;
}

enum {
  PROP_0,
  PROP_MODEL,
  PROP_LABELS,
  PROP_LABELS_FILE,
  PROP_TEMPLATES,
  PROP_INTERVAL,
  PROP_INTERVAL_TIME,
  PROP_TOP_K,
  PROP_THRESHOLD,
  PROP_DEVICE,
  PROP_NUM_THREADS,
  PROP_BATCH_SIZE,
  PROP_BATCH_TIMEOUT,
  PROP_QUEUE_SIZE,
  PROP_MODEL_INSTANCE_ID,
  PROP_MODE,
  PROP_POST_MESSAGES,
  PROP_ATTACH_EMBEDDING,
  PROP_ACTIVE_LABELS,
  PROP_FRAMES_ANALYZED,
  PROP_REQUESTS_DROPPED,
  PROP_PRECISION,
  PROP_STATS,
  PROP_SEGMENTS,
  PROP_SMOOTHING,
  PROP_SEGMENT_START,
  PROP_SEGMENT_END,
  PROP_SEGMENT_MIN_DURATION,
  PROP_LABEL_THRESHOLDS,
  PROP_INFERENCE_REGION,
  PROP_OBJECT_CLASS,
  PROP_SCORING,
  PROP_PRESENCE_MARGIN,
  PROP_PRESENCE_BASELINE,
  PROP_BACKGROUND_FILE,
};

// Regions smaller than this (either side, after clipping to the frame) are
// not classified: too few pixels to say anything.
#define MIN_REGION_SIDE 4

#define DEFAULT_BATCH_SIZE 8
#define DEFAULT_BATCH_TIMEOUT (5 * GST_MSECOND)
#define DEFAULT_QUEUE_SIZE 1

namespace {

// Properties read when the stream starts or labels are rebuilt (under settings_lock).
struct Settings {
  std::string model;
  std::string labels;
  std::string labels_file;
  std::string templates;
  std::string device = "auto";
  std::string model_instance_id;
  gint num_threads = 0;
  RuClipPrecision precision = RUCLIP_PRECISION_FP32;
  guint batch_size = DEFAULT_BATCH_SIZE;
  guint64 batch_timeout = DEFAULT_BATCH_TIMEOUT;
  guint queue_size = DEFAULT_QUEUE_SIZE;
  RuClipMode mode = RUCLIP_MODE_SYNC;
  // Smoothing and segments (ruclip/segments.h); off unless segments or smoothing is set.
  bool segments = false;
  guint64 smoothing = 0;
  gdouble segment_start = 0.5, segment_end = 0.4;
  guint64 segment_min_duration = 0;
  std::string label_thresholds;
  RuClipRegion inference_region = RUCLIP_REGION_FULL_FRAME;
  std::string object_class;  // roi types to classify, ';' or ',' separated; empty: all
  // Presence (ruclip/presence.h).
  RuClipScoring scoring = RUCLIP_SCORING_AUTO;
  gdouble presence_margin = 0.0;
  guint presence_baseline = 0;  // warm-up analyses; 0: no baseline
  std::string background_file;
};

// Properties read for every frame: plain values, so that a frame that is only
// passed through reads a few atomics and takes no lock.
struct Knobs {
  guint interval = 1;
  guint64 interval_time = 0;
  guint top_k = 0;
  gdouble threshold = 0.0;
  bool post_messages = false;
  bool attach_embedding = false;
};

struct AtomicKnobs {
  std::atomic<guint> interval{1};
  std::atomic<guint64> interval_time{0};
  std::atomic<guint> top_k{0};
  std::atomic<gdouble> threshold{0.0};
  std::atomic<bool> post_messages{false};
  std::atomic<bool> attach_embedding{false};
  Knobs load () const
  {
    return Knobs{interval, interval_time, top_k, threshold, post_messages, attach_embedding};
  }
};

// Count and total time of one kind of work, for the 'stats' property.
struct Timing {
  std::atomic<guint64> count{0}, nanoseconds{0};
  void add (std::chrono::steady_clock::time_point since)
  {
    count++;
    nanoseconds += std::chrono::duration_cast<std::chrono::nanoseconds> (std::chrono::steady_clock::now () -
        since).count ();
  }
  void add_ms (double ms)
  {
    count++;
    nanoseconds += (guint64) (ms * 1e6);
  }
  double mean_ms () const
  {
    const guint64 n = count;
    return n ? nanoseconds / 1e6 / n : 0.0;
  }
  void reset ()
  {
    count = 0;
    nanoseconds = 0;
  }
};

// One analysis: what goes into the meta and the bus message.
// One classified region (inference-region=roi-list).
struct RegionResult {
  ruclip::Scoring scoring = ruclip::Scoring::kSoftmax;
  gint id = 0;
  std::string type;
  guint x = 0, y = 0, w = 0, h = 0;  // as the region meta says (not clipped)
  std::vector<ruclip::LabelScore> scores;  // best first, after top-k and threshold
};

struct Result {
  ruclip::Scoring scoring = ruclip::Scoring::kSoftmax;  // what ranks `scores` and what thresholds apply to
  std::vector<ruclip::LabelScore> scores;  // best first, after top-k and threshold
  bool regions_mode = false;               // roi-list: `regions` is the result, `scores` empty
  std::vector<RegionResult> regions;
  std::vector<double> smoothed;            // each of `scores`' labels smoothed over time (segments.h); may be empty
  std::vector<ruclip::LabelScore> all;     // every label (kept only when a segment tracker reads them)
  std::vector<float> embedding;            // normalized; empty unless attach-embedding
  guint64 frame = 0;
  GstClockTime pts = GST_CLOCK_TIME_NONE;
  GstClockTime running_time = GST_CLOCK_TIME_NONE;
  std::string model;
};

std::vector<std::string> collect_labels (const Settings & s)
{
  std::vector<std::string> labels = ruclip::split_list (s.labels);
  if (!s.labels_file.empty ()) {
    std::vector<std::string> more = ruclip::read_labels_file (s.labels_file);
    labels.insert (labels.end (), more.begin (), more.end ());
  }
  if (labels.empty ())
    throw ruclip::Error ("no labels: set the 'labels' property (\"кошка;собака\") or 'labels-file'");
  return labels;
}

// A softmax over one label is always 1.0: refused rather than reported.
void check_scoring (ruclip::Scoring scoring, const std::vector<std::string> & labels)
{
  if (scoring == ruclip::Scoring::kSoftmax && labels.size () == 1)
    throw ruclip::Error ("scoring=softmax with the single label '" + labels[0] + "': a softmax over one label is "
        "always 1.0; use scoring=presence (or auto, when the stream starts with one label) to ask whether it is "
        "there, or give more labels");
}

// The background-file's entries; empty: the model's own background, else the default one.
std::vector<std::string> collect_background (const Settings & s)
{
  if (s.background_file.empty ())
    return {};
  std::vector<std::string> background = ruclip::read_labels_file (s.background_file);
  if (background.empty ())
    throw ruclip::Error ("background-file '" + s.background_file + "': no entries");
  return background;
}

// auto (ruclip::default_scoring) is decided when the stream starts, so that
// scores don't change kind under an open segment.
ruclip::Scoring effective_scoring (RuClipScoring scoring, size_t labels)
{
  if (scoring == RUCLIP_SCORING_AUTO)
    return ruclip::default_scoring (labels);
  return scoring == RUCLIP_SCORING_PRESENCE ? ruclip::Scoring::kPresence : ruclip::Scoring::kSoftmax;
}


// labels, scoring, scores (of `scoring`), probabilities, presences, cosines of `scores`.
void set_scores (GstStructure * s, const std::vector<ruclip::LabelScore> & scores, ruclip::Scoring scoring)
{
  std::vector<const gchar *> labels;
  std::vector<gdouble> chosen, probabilities, presences, cosines;
  for (const auto & score : scores) {
    labels.push_back (score.label.c_str ());
    chosen.push_back (score.score (scoring));
    probabilities.push_back (score.probability);
    presences.push_back (score.presence);
    cosines.push_back (score.cosine);
  }
  const guint n = (guint) scores.size ();
  ruclip_result_set_labels (s, n, labels.data (), chosen.data (), cosines.data ());
  ruclip_result_set_scoring (s, ruclip::scoring_name (scoring), n, probabilities.data (), presences.data ());
}

// A region's result as its GstVideoRegionOfInterestMeta param (with_box
// false) or as an item of RuClipMeta's regions.
GstStructure *region_structure (const RegionResult & r, const std::string & model, bool with_box)
{
  GstStructure *s = with_box ? ruclip_region_new (r.id, r.type.c_str (), r.x, r.y, r.w, r.h) : ruclip_result_new ();
  set_scores (s, r.scores, r.scoring);
  ruclip_result_set_model (s, model.c_str ());
  return s;
}

// The fields shared by RuClipMeta and the bus message.
void fill_result (GstStructure * s, const Result & r, bool fresh)
{
  set_scores (s, r.scores, r.scoring);
  if (r.regions_mode) {
    ruclip_result_init_regions (s);
    for (const auto & region : r.regions)
      ruclip_result_take_region (s, region_structure (region, r.model, true));
  }
  ruclip_result_set_frame (s, r.pts, r.frame, fresh, r.model.c_str ());
  if (!r.embedding.empty ())
    ruclip_result_set_embedding (s, (guint) r.embedding.size (), r.embedding.data ());
  if (!r.smoothed.empty ())
    ruclip_result_set_smoothed_scores (s, (guint) r.smoothed.size (), r.smoothed.data ());
}

// A segment event as the "ruclip-segment" message and downstream event carry it.
GstStructure *segment_structure (const ruclip::SegmentEvent & e, const std::string & model, ruclip::Scoring scoring)
{
  const ruclip::Segment & seg = e.segment;
  RuClipSegment out = {};
  out.is_start = e.kind == ruclip::SegmentEvent::Kind::kStart;
  out.label = seg.label.c_str ();
  out.start_pts = seg.start;
  out.end_pts = seg.end;
  out.start_running_time = seg.start_running_time;
  out.end_running_time = seg.end_running_time;
  out.frames = seg.frames;
  out.mean_score = seg.mean_score;
  out.peak_score = seg.peak_score;
  out.model = model.c_str ();
  out.scoring = ruclip::scoring_name (scoring);
  return ruclip_segment_to_structure (&out);
}

const char *
precision_nick (RuClipPrecision precision)
{
  // The enum's nick ("fp32", "bf16", ...) is what ruclip::parse_precision takes.
  return g_enum_get_value (G_ENUM_CLASS (g_type_class_peek (GST_TYPE_RUCLIP_PRECISION)), precision)->value_nick;
}

}  // namespace

// Everything C++ the element owns; allocated in init, freed in finalize. The
// frames' queue, batching, drain, flush and label rebuilds live in the
// model's shared ruclip::InferenceScheduler (core/include/ruclip/scheduler.h);
// this is the glue between it and the element.
struct RuClipFilterState {
  std::mutex settings_lock;
  Settings settings;
  AtomicKnobs knobs;

  // Between start() and stop(), under `lock`; the streaming thread uses them
  // without it (stop() runs when no buffer is in flight).
  std::mutex lock;
  std::shared_ptr<ruclip::SharedModel> shared;
  std::unique_ptr<ruclip::InferenceScheduler::Stream> stream;
  bool running = false;  // label changes go to the stream
  std::shared_ptr<const Result> latest;
  // An async analysis failed: every later buffer returns it, as queue keeps srcresult.
  std::atomic<GstFlowReturn> worker_result{GST_FLOW_OK};

  // Streaming-thread state.
  ruclip_gst::IntervalSampler sampler;  // interval, interval-time; frame indices
  Settings active;  // the settings the stream started with (model, mode, ...)
  // sync mode on a GPU: the model uploads a sampled frame once and
  // preprocesses it there; otherwise the CPU does it on the streaming thread
  // (in parallel across streams).
  bool frames_to_gpu = false;
  // async mode on a GPU: a sampled frame is preprocessed there at once
  // (Model::prepare_frame) and only the device pixels wait for the model.
  bool prepare_on_gpu = false;
  // The negotiated caps are CUDA memory (set_info).
  bool cuda_memory = false;
  // Whether the loaded model reads frames in CUDA memory: -1 before start().
  std::atomic<int> model_reads_cuda{-1};
  int model_cuda_device = -1;  // the model's CUDA device (start())
  // The model's CUDA context, offered to producers of CUDA memory.
  ruclip_gst::CudaContextShare cuda_context;
  // Where negotiated CUDA frames live was checked (first analyzed frame).
  bool cuda_frames_checked = false;

  // segments/smoothing: fed each result once, in stream order, on the streaming thread.
  std::unique_ptr<ruclip::SegmentTracker> tracker;
  // Presence with the margin and, on whole frames, the stream's baseline: fed
  // each analysis once, in stream order (the streaming thread in sync mode,
  // the scheduler's in async mode).
  std::unique_ptr<ruclip::PresenceCalibrator> presence, region_presence;
  float logit_scale = 1.0f;
  ruclip::Scoring scoring = ruclip::Scoring::kSoftmax;  // `scoring` as resolved at start()
  guint64 last_tracked_frame = G_MAXUINT64;
  GstClockTime stream_end = GST_CLOCK_TIME_NONE;  // PTS + duration of the last buffer
  // inference-region=roi-list: the object-class types, parsed at start (empty: every region).
  std::set<std::string> object_classes;

  std::atomic<guint64> frames_analyzed{0};
  std::atomic<guint64> requests_dropped{0};
  // Time in transform_ip for frames only passed through / sampled for
  // analysis, of which preprocessing; time in the model per analyzed frame.
  Timing passed, sampled, preprocessing, inference;
};

struct _GstRuClipFilter {
  GstVideoFilter parent;
  RuClipFilterState *state;
};

#define gst_ruclip_filter_parent_class parent_class
G_DEFINE_TYPE (GstRuClipFilter, gst_ruclip_filter, GST_TYPE_VIDEO_FILTER);
GST_ELEMENT_REGISTER_DEFINE_WITH_CODE (ruclipfilter, "ruclipfilter", GST_RANK_NONE, GST_TYPE_RUCLIP_FILTER,
    ruclip_meta_register ());

static Settings
copy_settings (RuClipFilterState * st)
{
  std::lock_guard<std::mutex> guard (st->settings_lock);
  return st->settings;
}

// top-k and threshold as set now, on the scores of `scoring` (ranked by them).
static void
apply_knobs (std::vector<ruclip::LabelScore> * scores, const Knobs & k, ruclip::Scoring scoring)
{
  if (k.top_k > 0 && scores->size () > k.top_k)
    scores->resize (k.top_k);
  while (!scores->empty () && scores->back ().score (scoring) < k.threshold)
    scores->pop_back ();
}

// Presence as the margin (and the baseline) say; ranked by the scoring in use.
static ruclip::Scoring
calibrate (RuClipFilterState * st, ruclip::PresenceCalibrator & presence, std::vector<ruclip::LabelScore> * scores)
{
  const ruclip::Scoring scoring = st->scoring;
  presence.apply (scores, st->logit_scale);
  if (scoring == ruclip::Scoring::kSoftmax)
    ruclip::rank_scores (scores, scoring);
  return scoring;
}

// One analysis of the whole frame.
static std::shared_ptr<Result>
make_result (RuClipFilterState * st, ruclip::FrameAnalysis && a, const Knobs & k)
{
  auto r = std::make_shared<Result> ();
  r->scoring = calibrate (st, *st->presence, &a.scores);
  if (st->tracker)
    r->all = a.scores;
  r->scores = std::move (a.scores);
  apply_knobs (&r->scores, k, r->scoring);
  if (k.attach_embedding)
    r->embedding = std::move (a.embedding);
  r->frame = a.frame;
  r->pts = a.pts;
  r->running_time = a.running_time;
  r->model = st->active.model;
  return r;
}

static void
post_result (GstRuClipFilter * self, const Result & r, bool fresh)
{
  GstStructure *s = ruclip_result_new ();
  fill_result (s, r, fresh);
  ruclip_result_set_times (s, r.pts, r.running_time);
  gst_element_post_message (GST_ELEMENT (self), gst_message_new_element (GST_OBJECT (self), s));
}

static void
push_segments (GstRuClipFilter * self, const std::vector<ruclip::SegmentEvent> & events, ruclip::Scoring scoring)
{
  for (const auto & e : events) {
    GST_DEBUG_OBJECT (self, "segment %s: '%s' from %" GST_TIME_FORMAT " to %" GST_TIME_FORMAT ", %" G_GUINT64_FORMAT
        " analyses, mean %.3f", e.kind == ruclip::SegmentEvent::Kind::kStart ? "starts" : "ends",
        e.segment.label.c_str (), GST_TIME_ARGS (e.segment.start), GST_TIME_ARGS (e.segment.end),
        (guint64) e.segment.frames, e.segment.mean_score);
    GstStructure *s = segment_structure (e, self->state->active.model, scoring);
    gst_element_post_message (GST_ELEMENT (self), gst_message_new_element (GST_OBJECT (self), gst_structure_copy (s)));
    gst_pad_push_event (GST_BASE_TRANSFORM_SRC_PAD (self), gst_event_new_custom (GST_EVENT_CUSTOM_DOWNSTREAM, s));
  }
}

static void
attach_result (GstBuffer * buffer, const Result & r, bool fresh)
{
  // A second ruclipfilter downstream replaces the first one's result.
  fill_result (ruclip_buffer_add_result (buffer), r, fresh);
}

// Feeds a result to the segment tracker the first time the stream sees it:
// returns the result with its smoothed scores (to attach and keep as the
// latest), and posts/pushes the segments that start or end there.
static std::shared_ptr<const Result>
track (GstRuClipFilter * self, std::shared_ptr<const Result> r)
{
  RuClipFilterState *st = self->state;
  if (!st->tracker || !r || r->frame == st->last_tracked_frame)
    return r;
  st->last_tracked_frame = r->frame;
  std::vector<ruclip::SegmentEvent> events;
  const std::vector<double> smoothed = st->tracker->add (r->pts, r->running_time, r->all, &events, r->scoring);
  auto with = std::make_shared<Result> (*r);
  for (const auto & shown : with->scores)
    for (size_t i = 0; i < r->all.size (); ++i)
      if (r->all[i].label == shown.label)
        with->smoothed.push_back (smoothed[i]);
  {
    std::lock_guard<std::mutex> guard (st->lock);
    if (st->latest == r)
      st->latest = with;
  }
  push_segments (self, events, r->scoring);
  return with;
}

// Counts the model time of one analysis and logs how it was batched.
static void
note_analysis (GstRuClipFilter * self, const ruclip::FrameAnalysis & a)
{
  self->state->inference.add_ms (a.inference_ms);
  GST_LOG_OBJECT (self, "frame %" G_GUINT64_FORMAT " (pts %" GST_TIME_FORMAT "): in a batch of %d frames from %d "
      "stream(s), %.1f ms after it was sampled", a.frame, GST_TIME_ARGS (a.pts), a.batch_frames, a.batch_streams,
      a.latency_ms);
}

// async: the scheduler's thread delivers a result of this stream.
static void
on_async_result (GstRuClipFilter * self, ruclip::FrameAnalysis && a)
{
  RuClipFilterState *st = self->state;
  note_analysis (self, a);
  const Knobs k = st->knobs.load ();
  std::shared_ptr<Result> r = make_result (st, std::move (a), k);
  {
    std::lock_guard<std::mutex> guard (st->lock);
    st->latest = r;
  }
  st->frames_analyzed++;
  if (k.post_messages)
    post_result (self, *r, false);
}

static void
on_async_error (GstRuClipFilter * self, const std::string & error)
{
  GST_ELEMENT_ERROR (self, STREAM, FAILED, ("Frame analysis failed"), ("%s (model %s)", error.c_str (),
          self->state->active.model.c_str ()));
  self->state->worker_result = GST_FLOW_ERROR;
}

// Asks the stream for the labels as the properties say now (built off this thread).
static void
request_label_rebuild (GstRuClipFilter * self)
{
  RuClipFilterState *st = self->state;
  const Settings s = copy_settings (st);
  std::lock_guard<std::mutex> guard (st->lock);
  if (!st->running)
    return;  // not streaming: start() builds them (and re-checks at its end)
  try {
    const std::vector<std::string> labels = collect_labels (s);
    check_scoring (st->scoring, labels);
    st->stream->set_labels (labels, ruclip::split_list (s.templates), collect_background (s));
    GST_DEBUG_OBJECT (self, "label rebuild requested");
  } catch (const std::exception & e) {
    // A labels file that can't be read: the stream goes on with the labels it had.
    GST_ELEMENT_WARNING (self, RESOURCE, SETTINGS, ("New labels not applied: %s", e.what ()), (NULL));
  }
}

static void
close_stream (RuClipFilterState * st)
{
  std::unique_ptr<ruclip::InferenceScheduler::Stream> stream;
  std::shared_ptr<ruclip::SharedModel> shared;
  {
    std::lock_guard<std::mutex> guard (st->lock);
    st->running = false;
    stream = std::move (st->stream);
    shared = std::move (st->shared);
    st->latest.reset ();
  }
  // Outside the lock: close() waits for this stream's callbacks, which take it.
  stream.reset ();
  shared.reset ();  // the last element of a model frees it here
}

// "cuda:N" -> N ("cuda" is device 0); -1 elsewhere.
static int
cuda_device_index (const std::string & device)
{
  if (device == "cuda")
    return 0;
  if (device.rfind ("cuda:", 0) != 0)
    return -1;
  return std::atoi (device.c_str () + 5);
}

static gboolean
gst_ruclip_filter_start (GstBaseTransform * trans)
{
  GstRuClipFilter *self = GST_RUCLIP_FILTER (trans);
  RuClipFilterState *st = self->state;
  const Settings s = copy_settings (st);

  if (s.model.empty ()) {
    GST_ELEMENT_ERROR (self, RESOURCE, SETTINGS, ("No model: set the 'model' property to a ruCLIP model folder"),
        (NULL));
    return FALSE;
  }
  const char *precision = precision_nick (s.precision);
  std::shared_ptr<ruclip::SharedModel> shared;
  try {
    ruclip::ModelOptions options;
    options.device = ruclip::Device::parse (s.device);
    options.num_threads = s.num_threads;
    options.precision = ruclip::parse_precision (precision);
    const guint64 loads = ruclip::shared_model_loads ();
    std::vector<std::string> warnings;
    shared = ruclip::acquire_shared_model (s.model, options, s.model_instance_id, &warnings);
    const bool loaded = ruclip::shared_model_loads () != loads && shared->holders () == 1;
    GST_INFO_OBJECT (self, "model %s on %s (%s): %s instance %" G_GUINT64_FORMAT ", %ld user(s); %s",
        s.model.c_str (), s.device.c_str (), precision, loaded ? "loaded" : "shares", shared->instance (),
        shared->holders (), shared->model ().kernels ().summary ().c_str ());
    for (const auto & w : warnings)
      GST_ELEMENT_WARNING (self, RESOURCE, SETTINGS, ("%s", w.c_str ()), ("model %s", s.model.c_str ()));
  } catch (const std::exception & e) {
    GST_ELEMENT_ERROR (self, RESOURCE, OPEN_READ, ("Cannot load model '%s': %s", s.model.c_str (), e.what ()),
        (NULL));
    return FALSE;
  }

  ruclip::StreamOptions o;
  o.mode = s.mode == RUCLIP_MODE_SYNC ? ruclip::StreamMode::kSync : ruclip::StreamMode::kAsync;
  o.queue_size = (int) s.queue_size;
  o.batch_size = (int) s.batch_size;
  o.batch_timeout = std::chrono::microseconds (s.batch_timeout / 1000);
  o.on_result = [self](ruclip::FrameAnalysis && a) { on_async_result (self, std::move (a)); };
  o.on_error = [self](const std::string & e) { on_async_error (self, e); };
  o.on_labels = [self](const std::shared_ptr<const ruclip::LabelSet> & set) {
    GST_INFO_OBJECT (self, "now scoring against %zu labels", set->labels.size ());
  };
  o.on_labels_error = [self](const std::string & e) {
    // The stream goes on with the labels it had; the application hears why.
    GST_ELEMENT_WARNING (self, RESOURCE, SETTINGS, ("New labels not applied: %s", e.c_str ()), (NULL));
  };
  std::unique_ptr<ruclip::InferenceScheduler::Stream> stream = shared->scheduler ().open_stream (o);
  try {
    const std::vector<std::string> labels = collect_labels (s);
    st->scoring = effective_scoring (s.scoring, labels.size ());
    check_scoring (st->scoring, labels);
    stream->set_labels_now (labels, ruclip::split_list (s.templates), collect_background (s));
  } catch (const std::exception & e) {
    GST_ELEMENT_ERROR (self, RESOURCE, SETTINGS, ("Invalid labels, templates or background: %s", e.what ()), (NULL));
    return FALSE;
  }
  try {
    ruclip::PresenceOptions po;
    po.margin = s.presence_margin;
    st->region_presence = std::make_unique<ruclip::PresenceCalibrator> (po);
    po.baseline_warmup = (int) s.presence_baseline;
    st->presence = std::make_unique<ruclip::PresenceCalibrator> (po);
  } catch (const std::exception & e) {
    GST_ELEMENT_ERROR (self, RESOURCE, SETTINGS, ("Invalid presence settings: %s", e.what ()), (NULL));
    return FALSE;
  }
  st->logit_scale = shared->model ().logit_scale ();

  if (s.inference_region == RUCLIP_REGION_ROI_LIST && (s.mode != RUCLIP_MODE_SYNC || s.segments || s.smoothing)) {
    GST_ELEMENT_ERROR (self, RESOURCE, SETTINGS, ("inference-region=roi-list needs mode=sync and no segments or "
            "smoothing (they follow whole-frame labels)"), (NULL));
    return FALSE;
  }
  st->tracker.reset ();
  if (s.segments || s.smoothing > 0) {
    try {
      ruclip::SegmentOptions so;
      so.smoothing = s.smoothing;
      so.thresholds = {s.segment_start, s.segment_end};
      so.per_label = ruclip::parse_label_thresholds (s.label_thresholds, so.thresholds);
      so.min_duration = s.segment_min_duration;
      st->tracker = std::make_unique<ruclip::SegmentTracker> (so);
    } catch (const std::exception & e) {
      GST_ELEMENT_ERROR (self, RESOURCE, SETTINGS, ("Invalid segment settings: %s", e.what ()), (NULL));
      return FALSE;
    }
  }
  st->last_tracked_frame = G_MAXUINT64;
  st->stream_end = GST_CLOCK_TIME_NONE;
  std::string classes = s.object_class;
  std::replace (classes.begin (), classes.end (), ',', ';');
  const std::vector<std::string> types = ruclip::split_list (classes);
  st->object_classes = std::set<std::string> (types.begin (), types.end ());
  st->active = s;
  st->frames_to_gpu = s.mode == RUCLIP_MODE_SYNC && shared->model ().device () != "cpu";
  st->prepare_on_gpu = s.mode == RUCLIP_MODE_ASYNC && shared->model ().reads_cuda_frames ();
  st->model_reads_cuda = shared->model ().reads_cuda_frames () ? 1 : 0;
  st->model_cuda_device = cuda_device_index (shared->model ().device ());
  if (st->model_reads_cuda == 1) {
    const std::string why = st->cuda_context.share_device (GST_ELEMENT (self), st->model_cuda_device);
    if (!why.empty ())
      GST_WARNING_OBJECT (self, "no CUDA context to offer upstream (%s): producers of CUDA memory make their own, "
          "and the model reads their frames across contexts", why.c_str ());
  }
  st->sampler.reset ();
  st->frames_analyzed = 0;
  st->requests_dropped = 0;
  st->worker_result = GST_FLOW_OK;
  for (Timing * t : {&st->passed, &st->sampled, &st->preprocessing, &st->inference})
    t->reset ();
  const size_t labels = stream->labels ()->labels.size ();
  {
    std::lock_guard<std::mutex> guard (st->lock);
    st->shared = std::move (shared);
    st->stream = std::move (stream);
    st->running = true;
  }
  // Labels set while this start() built the set from older ones: rebuild.
  const Settings now = copy_settings (st);
  if (now.labels != s.labels || now.labels_file != s.labels_file || now.templates != s.templates ||
      now.background_file != s.background_file)
    request_label_rebuild (self);
  GST_INFO_OBJECT (self, "%zu labels, mode %s, batch-size %u, batch-timeout %" GST_TIME_FORMAT ", queue-size %u",
      labels, s.mode == RUCLIP_MODE_SYNC ? "sync" : "async", s.batch_size, GST_TIME_ARGS (s.batch_timeout),
      s.queue_size);
  return TRUE;
}

static gboolean
gst_ruclip_filter_stop (GstBaseTransform * trans)
{
  close_stream (GST_RUCLIP_FILTER (trans)->state);
  GST_RUCLIP_FILTER (trans)->state->model_reads_cuda = -1;
  return TRUE;
}

// ruclipindex downstream asks for the embeddings (ruclipmeta.h).
static gboolean
gst_ruclip_filter_src_event (GstBaseTransform * trans, GstEvent * event)
{
  if (ruclip_event_is_attach_embedding (event)) {
    GST_INFO_OBJECT (trans, "attaching embeddings: an element downstream asked for them");
    GST_RUCLIP_FILTER (trans)->state->knobs.attach_embedding = true;
    gst_event_unref (event);
    return TRUE;
  }
  return GST_BASE_TRANSFORM_CLASS (parent_class)->src_event (trans, event);
}

static void
gst_ruclip_filter_set_context (GstElement * element, GstContext * context)
{
  GST_RUCLIP_FILTER (element)->state->cuda_context.set_context (element, context);
  GST_ELEMENT_CLASS (parent_class)->set_context (element, context);
}

static gboolean
gst_ruclip_filter_query (GstBaseTransform * trans, GstPadDirection direction, GstQuery * query)
{
  if (GST_QUERY_TYPE (query) == GST_QUERY_CONTEXT &&
      GST_RUCLIP_FILTER (trans)->state->cuda_context.answer_query (GST_ELEMENT (trans), query))
    return TRUE;
  return GST_BASE_TRANSFORM_CLASS (parent_class)->query (trans, direction, query);
}

// Negotiated CUDA frames must be on the model's device; in its own context
// they are read with no copy across contexts (cuda_context.h).
static bool
check_cuda_frames (GstRuClipFilter * self, GstBuffer * buffer)
{
  RuClipFilterState *st = self->state;
  st->cuda_frames_checked = true;
  const ruclip_gst::CudaPlacement p = st->cuda_context.placement (gst_buffer_peek_memory (buffer, 0));
  if (!ruclip_gst::CudaContextShare::available () || !p.cuda_memory)
    return true;  // mapping says whether the model can read them
  if (p.device != st->model_cuda_device) {
    GST_ELEMENT_ERROR (self, RESOURCE, SETTINGS, ("Frames are on CUDA device %d, the model on cuda:%d", p.device,
            st->model_cuda_device), ("set device=cuda:%d, or give the producer the model's device", p.device));
    return false;
  }
  if (p.model_context)
    GST_INFO_OBJECT (self, "frames in the model's own CUDA context (device %d)", p.device);
  else
    GST_INFO_OBJECT (self, "frames from another CUDA context on device %d: read across contexts", p.device);
  return true;
}

// CUDA memory is offered only where the model reads it: a model on a CUDA
// device (start() says); before start, unless device=cpu. Elsewhere the
// element negotiates system memory only.
static bool
accepts_cuda_memory (GstRuClipFilter * self)
{
  const int reads = self->state->model_reads_cuda;
  if (reads >= 0)
    return reads == 1;
  return copy_settings (self->state).device != "cpu";
}

static GstCaps *
gst_ruclip_filter_transform_caps (GstBaseTransform * trans, GstPadDirection direction, GstCaps * caps,
    GstCaps * filter)
{
  GstCaps *result = GST_BASE_TRANSFORM_CLASS (parent_class)->transform_caps (trans, direction, caps, filter);
  if (accepts_cuda_memory (GST_RUCLIP_FILTER (trans)))
    return result;
  result = gst_caps_make_writable (result);
  for (guint i = gst_caps_get_size (result); i-- > 0;) {
    GstCapsFeatures *features = gst_caps_get_features (result, i);
    if (features && !gst_caps_features_is_any (features) &&
        gst_caps_features_contains (features, CUDA_MEMORY_FEATURE))
      gst_caps_remove_structure (result, i);
  }
  GST_LOG_OBJECT (trans, "no CUDA memory (the model doesn't read it): %" GST_PTR_FORMAT, result);
  return result;
}

static gboolean
gst_ruclip_filter_set_info (GstVideoFilter * filter, GstCaps * incaps, GstVideoInfo *, GstCaps *, GstVideoInfo *)
{
  GstRuClipFilter *self = GST_RUCLIP_FILTER (filter);
  GstCapsFeatures *features = gst_caps_get_features (incaps, 0);
  const bool cuda = features && gst_caps_features_contains (features, CUDA_MEMORY_FEATURE);
  if (cuda && !accepts_cuda_memory (self)) {
    GST_ELEMENT_ERROR (self, CORE, NEGOTIATION, ("Frames in CUDA memory need a model on a CUDA device"),
        ("caps %" GST_PTR_FORMAT "; put cudadownload before the element otherwise", incaps));
    return FALSE;
  }
  self->state->cuda_memory = cuda;
  self->state->cuda_frames_checked = false;
  GST_INFO_OBJECT (self, "frames in %s memory", cuda ? "CUDA" : "system");
  return TRUE;
}

static bool
wanted_region_type (const RuClipFilterState * st, const char *type)
{
  return st->object_classes.empty () || st->object_classes.count (type ? type : "") > 0;
}

// inference-region=roi-list on a sampled frame (sync mode): every region of
// the wanted types is cropped (clipped to the frame), preprocessed as a
// picture of its own, and all go to the model together; each region's meta
// gets a "ruclip" param, and the buffer a RuClipMeta listing them.
static GstFlowReturn
analyze_regions (GstRuClipFilter * self, GstBuffer * buffer, ruclip_gst::MappedFrame * frame,
    const ruclip::FrameView & view,
    const ruclip::FrameRequest & tags, const Knobs & k)
{
  RuClipFilterState *st = self->state;
  const Settings & s = st->active;
  const ruclip::Normalization norm = st->shared->model ().normalization ();
  std::vector<GstVideoRegionOfInterestMeta *> metas;
  std::vector<ruclip::FrameRequest> requests;
  const auto preprocess_start = std::chrono::steady_clock::now ();
  gpointer state = NULL;
  while (GstMeta * m = gst_buffer_iterate_meta_filtered (buffer, &state, GST_VIDEO_REGION_OF_INTEREST_META_API_TYPE)) {
    auto *roi = (GstVideoRegionOfInterestMeta *) m;
    const char *type = g_quark_to_string (roi->roi_type);
    if (!wanted_region_type (st, type)) {
      GST_LOG_OBJECT (self, "region %d (%s) skipped: not in object-class", roi->id, type);
      continue;
    }
    const ruclip::FrameView crop = ruclip::crop (view, (int) std::min<guint> (roi->x, G_MAXINT),
        (int) std::min<guint> (roi->y, G_MAXINT), (int) std::min<guint> (roi->w, G_MAXINT),
        (int) std::min<guint> (roi->h, G_MAXINT));
    if (crop.width < MIN_REGION_SIDE || crop.height < MIN_REGION_SIDE) {
      GST_LOG_OBJECT (self, "region %d (%s, %ux%u at %u,%u) skipped: %dx%d inside the frame", roi->id, type, roi->w,
          roi->h, roi->x, roi->y, crop.width, crop.height);
      continue;
    }
    ruclip::FrameRequest req = tags;
    req.pixels.resize (3 * (size_t) norm.resolution * norm.resolution);
    try {
      ruclip::preprocess (crop, norm, req.pixels.data ());
    } catch (const std::exception & e) {
      GST_ELEMENT_ERROR (self, STREAM, FORMAT, ("Cannot read a region of the frame"), ("region %d: %s", roi->id,
              e.what ()));
      return GST_FLOW_ERROR;
    }
    requests.push_back (std::move (req));
    metas.push_back (roi);
  }
  if (!requests.empty ())
    st->preprocessing.add (preprocess_start);
  // The pixels are copied out: unmapped, the buffer is writable again for the metas.
  frame->unmap ();
  std::vector<ruclip::FrameAnalysis> analyses;
  std::string error;
  switch (st->stream->submit_all (std::move (requests), &analyses, &error)) {
    case ruclip::InferenceScheduler::Stream::Submitted::kFlushing:
      return GST_FLOW_FLUSHING;
    case ruclip::InferenceScheduler::Stream::Submitted::kFailed:
      GST_ELEMENT_ERROR (self, STREAM, FAILED, ("Frame analysis failed"), ("%s (model %s, frame %" G_GUINT64_FORMAT
              ", regions)", error.c_str (), s.model.c_str (), tags.frame));
      return GST_FLOW_ERROR;
    default:
      break;
  }
  auto r = std::make_shared<Result> ();
  r->regions_mode = true;
  r->scoring = st->scoring;
  r->frame = tags.frame;
  r->pts = tags.pts;
  r->running_time = tags.running_time;
  r->model = s.model;
  for (size_t i = 0; i < analyses.size (); ++i) {
    note_analysis (self, analyses[i]);
    GstVideoRegionOfInterestMeta *roi = metas[i];
    RegionResult region;
    region.id = roi->id;
    region.type = g_quark_to_string (roi->roi_type) ? g_quark_to_string (roi->roi_type) : "";
    region.x = roi->x, region.y = roi->y, region.w = roi->w, region.h = roi->h;
    region.scores = std::move (analyses[i].scores);
    region.scoring = calibrate (st, *st->region_presence, &region.scores);
    apply_knobs (&region.scores, k, region.scoring);
    gst_video_region_of_interest_meta_add_param (roi, region_structure (region, s.model, false));
    r->regions.push_back (std::move (region));
  }
  GST_LOG_OBJECT (self, "frame %" G_GUINT64_FORMAT ": %zu region(s) classified", tags.frame, r->regions.size ());
  {
    std::lock_guard<std::mutex> guard (st->lock);
    st->latest = r;
  }
  st->frames_analyzed++;
  attach_result (buffer, *r, true);
  if (k.post_messages)
    post_result (self, *r, true);
  return GST_FLOW_OK;
}

static GstFlowReturn
gst_ruclip_filter_transform_ip (GstBaseTransform * trans, GstBuffer * buffer)
{
  GstRuClipFilter *self = GST_RUCLIP_FILTER (trans);
  GstVideoFilter *filter = GST_VIDEO_FILTER (trans);
  RuClipFilterState *st = self->state;
  if (!filter->negotiated)
    return GST_FLOW_NOT_NEGOTIATED;
  const GstFlowReturn worker_result = st->worker_result;
  if (worker_result != GST_FLOW_OK)
    return worker_result;

  const auto start = std::chrono::steady_clock::now ();
  const Knobs k = st->knobs.load ();
  const Settings & s = st->active;  // only changes between streams (start())
  ruclip::InferenceScheduler::Stream & stream = *st->stream;  // set from start() to stop()
  const GstClockTime pts = GST_BUFFER_PTS (buffer);
  if (GST_CLOCK_TIME_IS_VALID (pts))
    st->stream_end = pts + (GST_BUFFER_DURATION_IS_VALID (buffer) ? GST_BUFFER_DURATION (buffer) : 0);
  guint64 index = 0;
  const bool analyze = st->sampler.take (pts, k.interval, k.interval_time, &index);
  // The result this buffer carries, taken before its own request is queued:
  // in async mode a frame's own result must not land on it.
  std::shared_ptr<const Result> latest;
  {
    std::lock_guard<std::mutex> guard (st->lock);
    latest = st->latest;
  }

  if (analyze) {
    ruclip::FrameRequest req;
    req.frame = index;
    req.pts = pts;
    req.running_time = gst_segment_to_running_time (&trans->segment, GST_FORMAT_TIME, pts);
    const ruclip::Normalization norm = st->shared->model ().normalization ();

    if (st->cuda_memory && !st->cuda_frames_checked && !check_cuda_frames (self, buffer))
      return GST_FLOW_ERROR;
    ruclip_gst::MappedFrame frame (&filter->in_info, buffer,  // unmapped on every way out
        st->cuda_memory ? (GstMapFlags) (GST_MAP_READ | GST_MAP_CUDA_MEMORY) : GST_MAP_READ);
    if (!frame.mapped ()) {
      GST_ELEMENT_ERROR (self, STREAM, FAILED, ("Could not map the video frame for reading"), (NULL));
      return GST_FLOW_ERROR;
    }
    ruclip::FrameView view;
    try {
      if (!frame.view (&view))
        throw ruclip::Error ("unsupported format");
      if (st->cuda_memory)
        view.memory = ruclip::FrameMemory::kCuda;  // device pointers: only the model's GPU path reads them
      if (s.inference_region == RUCLIP_REGION_ROI_LIST) {
        const GstFlowReturn ret = analyze_regions (self, buffer, &frame, view, req, k);  // unmaps the frame
        st->sampled.add (start);
        return ret;
      }
      if (st->frames_to_gpu) {
        req.view = &view;  // mapped until submit() returns (sync mode)
      } else if (st->prepare_on_gpu) {
        // Preprocessed on the GPU now: the frame may be unmapped once staged.
        const auto preprocess_start = std::chrono::steady_clock::now ();
        req.prepared = st->shared->model ().prepare_frame (view);
        st->preprocessing.add (preprocess_start);
      } else {
        const auto preprocess_start = std::chrono::steady_clock::now ();
        req.pixels.resize (3 * (size_t) norm.resolution * norm.resolution);
        ruclip::preprocess (view, norm, req.pixels.data ());
        st->preprocessing.add (preprocess_start);
      }
    } catch (const std::exception & e) {
      GST_ELEMENT_ERROR (self, STREAM, FORMAT, ("Cannot read the frame"), ("%s", e.what ()));
      return GST_FLOW_ERROR;
    }

    if (s.mode == RUCLIP_MODE_SYNC) {
      ruclip::FrameAnalysis a;
      std::string error;
      const auto submitted = stream.submit (std::move (req), &a, &error);
      frame.unmap ();
      switch (submitted) {
        case ruclip::InferenceScheduler::Stream::Submitted::kFlushing:
          GST_DEBUG_OBJECT (self, "flushing: frame %" G_GUINT64_FORMAT " not analyzed", index);
          return GST_FLOW_FLUSHING;
        case ruclip::InferenceScheduler::Stream::Submitted::kFailed:
          GST_ELEMENT_ERROR (self, STREAM, FAILED, ("Frame analysis failed"), ("%s (model %s, frame %"
                  G_GUINT64_FORMAT ")", error.c_str (), s.model.c_str (), index));
          return GST_FLOW_ERROR;
        default:
          break;
      }
      note_analysis (self, a);
      std::shared_ptr<const Result> r = make_result (st, std::move (a), k);
      {
        std::lock_guard<std::mutex> guard (st->lock);
        st->latest = r;
      }
      st->frames_analyzed++;
      r = track (self, r);
      attach_result (buffer, *r, true);
      if (k.post_messages)
        post_result (self, *r, true);
      st->sampled.add (start);
      return GST_FLOW_OK;
    }

    frame.unmap ();
    guint64 dropped = 0;
    if (stream.submit (std::move (req), nullptr, nullptr, &dropped) ==
        ruclip::InferenceScheduler::Stream::Submitted::kFlushing)
      return GST_FLOW_FLUSHING;
    if (dropped) {
      st->requests_dropped += dropped;
      GST_DEBUG_OBJECT (self, "frame %" G_GUINT64_FORMAT ": dropped %" G_GUINT64_FORMAT " older waiting frame(s) "
          "(queue-size %u; %" G_GUINT64_FORMAT " so far)", index, dropped, s.queue_size,
          (guint64) st->requests_dropped);
    }
  }

  latest = track (self, latest);  // async: a new result reaches the stream
  if (latest)
    attach_result (buffer, *latest, false);
  (analyze ? st->sampled : st->passed).add (start);
  return GST_FLOW_OK;
}

static gboolean
gst_ruclip_filter_sink_event (GstBaseTransform * trans, GstEvent * event)
{
  GstRuClipFilter *self = GST_RUCLIP_FILTER (trans);
  RuClipFilterState *st = self->state;
  switch (GST_EVENT_TYPE (event)) {
    case GST_EVENT_EOS:
      // Drain: every sampled frame is analyzed (and posted) before EOS goes
      // on; a flush meanwhile ends the wait.
      if (st->stream) {
        GST_DEBUG_OBJECT (self, "EOS: draining");
        const bool drained = st->stream->drain ();
        GST_DEBUG_OBJECT (self, "EOS: %s", drained ? "drained" : "drain interrupted by a flush");
      }
      if (st->tracker) {
        // The last result (async: maybe not on any buffer yet), then every open segment ends.
        std::shared_ptr<const Result> latest;
        {
          std::lock_guard<std::mutex> guard (st->lock);
          latest = st->latest;
        }
        track (self, latest);
        std::vector<ruclip::SegmentEvent> events;
        st->tracker->finish (st->stream_end, gst_segment_to_running_time (&trans->segment, GST_FORMAT_TIME,
                st->stream_end), &events);
        push_segments (self, events, latest ? latest->scoring : ruclip::Scoring::kSoftmax);
      }
      break;
    case GST_EVENT_FLUSH_START:
      if (st->stream) {
        // After this no result of an earlier frame is delivered.
        st->stream->flush_start ();
        std::lock_guard<std::mutex> guard (st->lock);
        st->latest.reset ();
        GST_DEBUG_OBJECT (self, "flush: waiting frames dropped, results in flight discarded");
      }
      break;
    case GST_EVENT_FLUSH_STOP:
      if (st->stream)
        st->stream->flush_stop ();
      if (st->tracker)
        st->tracker->reset ();
      // After flush_start: no analysis of this stream is being calibrated now.
      if (st->presence)
        st->presence->reset ();
      st->last_tracked_frame = G_MAXUINT64;
      st->sampler.forget_last ();
      st->worker_result = GST_FLOW_OK;
      break;
    default:
      break;
  }
  return GST_BASE_TRANSFORM_CLASS (parent_class)->sink_event (trans, event);
}

static void
gst_ruclip_filter_set_property (GObject * object, guint prop_id, const GValue * value, GParamSpec * pspec)
{
  GstRuClipFilter *self = GST_RUCLIP_FILTER (object);
  RuClipFilterState *st = self->state;
  bool labels_changed = false;
  {
    std::lock_guard<std::mutex> guard (st->settings_lock);
    Settings & s = st->settings;
    auto str = [value] { const gchar *v = g_value_get_string (value); return std::string (v ? v : ""); };
    switch (prop_id) {
      case PROP_MODEL: s.model = str (); break;
      case PROP_LABELS: s.labels = str (); labels_changed = true; break;
      case PROP_LABELS_FILE: s.labels_file = str (); labels_changed = true; break;
      case PROP_TEMPLATES: s.templates = str (); labels_changed = true; break;
      case PROP_INTERVAL: st->knobs.interval = g_value_get_uint (value); break;
      case PROP_INTERVAL_TIME: st->knobs.interval_time = g_value_get_uint64 (value); break;
      case PROP_TOP_K: st->knobs.top_k = g_value_get_uint (value); break;
      case PROP_THRESHOLD: st->knobs.threshold = g_value_get_double (value); break;
      case PROP_DEVICE: s.device = str (); break;
      case PROP_MODEL_INSTANCE_ID: s.model_instance_id = str (); break;
      case PROP_NUM_THREADS: s.num_threads = g_value_get_int (value); break;
      case PROP_PRECISION: s.precision = (RuClipPrecision) g_value_get_enum (value); break;
      case PROP_BATCH_SIZE: s.batch_size = g_value_get_uint (value); break;
      case PROP_BATCH_TIMEOUT: s.batch_timeout = g_value_get_uint64 (value); break;
      case PROP_QUEUE_SIZE: s.queue_size = g_value_get_uint (value); break;
      case PROP_MODE: s.mode = (RuClipMode) g_value_get_enum (value); break;
      case PROP_POST_MESSAGES: st->knobs.post_messages = g_value_get_boolean (value); break;
      case PROP_ATTACH_EMBEDDING: st->knobs.attach_embedding = g_value_get_boolean (value); break;
      case PROP_SEGMENTS: s.segments = g_value_get_boolean (value); break;
      case PROP_SMOOTHING: s.smoothing = g_value_get_uint64 (value); break;
      case PROP_SEGMENT_START: s.segment_start = g_value_get_double (value); break;
      case PROP_SEGMENT_END: s.segment_end = g_value_get_double (value); break;
      case PROP_SEGMENT_MIN_DURATION: s.segment_min_duration = g_value_get_uint64 (value); break;
      case PROP_LABEL_THRESHOLDS: s.label_thresholds = str (); break;
      case PROP_INFERENCE_REGION: s.inference_region = (RuClipRegion) g_value_get_enum (value); break;
      case PROP_OBJECT_CLASS: s.object_class = str (); break;
      case PROP_SCORING: s.scoring = (RuClipScoring) g_value_get_enum (value); break;
      case PROP_PRESENCE_MARGIN: s.presence_margin = g_value_get_double (value); break;
      case PROP_PRESENCE_BASELINE: s.presence_baseline = g_value_get_uint (value); break;
      case PROP_BACKGROUND_FILE: s.background_file = str (); labels_changed = true; break;
      default: G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec); break;
    }
  }
  if (labels_changed)
    request_label_rebuild (self);
}

static void
gst_ruclip_filter_get_property (GObject * object, guint prop_id, GValue * value, GParamSpec * pspec)
{
  RuClipFilterState *st = GST_RUCLIP_FILTER (object)->state;
  if (prop_id == PROP_ACTIVE_LABELS || prop_id == PROP_STATS) {
    std::shared_ptr<const ruclip::LabelSet> set;
    ruclip::InferenceScheduler::Stream::Stats stream_stats;
    guint64 instance = 0;
    long holders = 0;
    ruclip::InferenceScheduler::Totals totals;
    {
      std::lock_guard<std::mutex> guard (st->lock);
      if (st->stream) {
        set = st->stream->labels ();
        stream_stats = st->stream->stats ();
        instance = st->shared->instance ();
        holders = st->shared->holders ();
        totals = st->shared->scheduler ().totals ();
      }
    }
    if (prop_id == PROP_ACTIVE_LABELS) {
      std::string joined;
      if (set)
        for (const auto & l : set->labels)
          joined += (joined.empty () ? "" : ";") + l;
      g_value_set_string (value, joined.c_str ());
      return;
    }
    g_value_take_boxed (value, gst_structure_new ("ruclip-stats",
            "frames", G_TYPE_UINT64, (guint64) (st->passed.count + st->sampled.count),
            "frames-sampled", G_TYPE_UINT64, (guint64) st->sampled.count,
            "passthrough-ms", G_TYPE_DOUBLE, st->passed.mean_ms (),
            "sampled-ms", G_TYPE_DOUBLE, st->sampled.mean_ms (),
            "preprocess-ms", G_TYPE_DOUBLE, st->preprocessing.mean_ms (),
            "inference-ms", G_TYPE_DOUBLE, st->inference.mean_ms (),
            "inference-calls", G_TYPE_UINT64, (guint64) st->inference.count,
            "latency-p50-ms", G_TYPE_DOUBLE, stream_stats.latency_p50_ms,
            "latency-p95-ms", G_TYPE_DOUBLE, stream_stats.latency_p95_ms,
            "batch-mean-frames", G_TYPE_DOUBLE, totals.batches ? (double) totals.frames / totals.batches : 0.0,
            "model-instance", G_TYPE_UINT64, instance,
            "model-users", G_TYPE_INT, (gint) holders, NULL));
    return;
  }
  if (prop_id == PROP_FRAMES_ANALYZED) {
    g_value_set_uint64 (value, st->frames_analyzed);
    return;
  }
  if (prop_id == PROP_REQUESTS_DROPPED) {
    g_value_set_uint64 (value, st->requests_dropped);
    return;
  }
  const Knobs k = st->knobs.load ();
  switch (prop_id) {
    case PROP_INTERVAL: g_value_set_uint (value, k.interval); return;
    case PROP_INTERVAL_TIME: g_value_set_uint64 (value, k.interval_time); return;
    case PROP_TOP_K: g_value_set_uint (value, k.top_k); return;
    case PROP_THRESHOLD: g_value_set_double (value, k.threshold); return;
    case PROP_POST_MESSAGES: g_value_set_boolean (value, k.post_messages); return;
    case PROP_ATTACH_EMBEDDING: g_value_set_boolean (value, k.attach_embedding); return;
    default: break;
  }
  std::lock_guard<std::mutex> guard (st->settings_lock);
  const Settings & s = st->settings;
  switch (prop_id) {
    case PROP_MODEL: g_value_set_string (value, s.model.c_str ()); break;
    case PROP_LABELS: g_value_set_string (value, s.labels.c_str ()); break;
    case PROP_LABELS_FILE: g_value_set_string (value, s.labels_file.c_str ()); break;
    case PROP_TEMPLATES: g_value_set_string (value, s.templates.c_str ()); break;
    case PROP_DEVICE: g_value_set_string (value, s.device.c_str ()); break;
    case PROP_MODEL_INSTANCE_ID: g_value_set_string (value, s.model_instance_id.c_str ()); break;
    case PROP_NUM_THREADS: g_value_set_int (value, s.num_threads); break;
    case PROP_PRECISION: g_value_set_enum (value, s.precision); break;
    case PROP_BATCH_SIZE: g_value_set_uint (value, s.batch_size); break;
    case PROP_BATCH_TIMEOUT: g_value_set_uint64 (value, s.batch_timeout); break;
    case PROP_QUEUE_SIZE: g_value_set_uint (value, s.queue_size); break;
    case PROP_MODE: g_value_set_enum (value, s.mode); break;
    case PROP_SEGMENTS: g_value_set_boolean (value, s.segments); break;
    case PROP_SMOOTHING: g_value_set_uint64 (value, s.smoothing); break;
    case PROP_SEGMENT_START: g_value_set_double (value, s.segment_start); break;
    case PROP_SEGMENT_END: g_value_set_double (value, s.segment_end); break;
    case PROP_SEGMENT_MIN_DURATION: g_value_set_uint64 (value, s.segment_min_duration); break;
    case PROP_LABEL_THRESHOLDS: g_value_set_string (value, s.label_thresholds.c_str ()); break;
    case PROP_INFERENCE_REGION: g_value_set_enum (value, s.inference_region); break;
    case PROP_OBJECT_CLASS: g_value_set_string (value, s.object_class.c_str ()); break;
    case PROP_SCORING: g_value_set_enum (value, s.scoring); break;
    case PROP_PRESENCE_MARGIN: g_value_set_double (value, s.presence_margin); break;
    case PROP_PRESENCE_BASELINE: g_value_set_uint (value, s.presence_baseline); break;
    case PROP_BACKGROUND_FILE: g_value_set_string (value, s.background_file.c_str ()); break;
    default: G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec); break;
  }
}

static void
gst_ruclip_filter_finalize (GObject * object)
{
  GstRuClipFilter *self = GST_RUCLIP_FILTER (object);
  close_stream (self->state);
  delete self->state;
  self->state = NULL;
  G_OBJECT_CLASS (parent_class)->finalize (object);
}

static void
gst_ruclip_filter_init (GstRuClipFilter * self)
{
  self->state = new RuClipFilterState ();
  // In place, never passthrough: the base class makes the buffer (not its
  // memory) writable so the meta can be added; pixels are never copied.
  gst_base_transform_set_in_place (GST_BASE_TRANSFORM (self), TRUE);
  gst_base_transform_set_passthrough (GST_BASE_TRANSFORM (self), FALSE);
}

static void
gst_ruclip_filter_class_init (GstRuClipFilterClass * klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS (klass);
  GstBaseTransformClass *trans_class = GST_BASE_TRANSFORM_CLASS (klass);

  gobject_class->set_property = gst_ruclip_filter_set_property;
  gobject_class->get_property = gst_ruclip_filter_get_property;
  gobject_class->finalize = gst_ruclip_filter_finalize;

  const GParamFlags rw = (GParamFlags) (G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS);
  const GParamFlags rw_playing = (GParamFlags) (rw | GST_PARAM_MUTABLE_PLAYING);
  const GParamFlags rw_ready = (GParamFlags) (rw | GST_PARAM_MUTABLE_READY);
  const GParamFlags ro = (GParamFlags) (G_PARAM_READABLE | G_PARAM_STATIC_STRINGS);

  g_object_class_install_property (gobject_class, PROP_MODEL,
      g_param_spec_string ("model", "Model folder",
          "ruCLIP model folder: config.json, the weights (model.safetensors or pytorch_model.bin) and the "
          "tokenizer (bpe.model or sentencepiece.model), e.g. a published ai-forever/ruclip-vit-* folder; or "
          "ruCLIP v1's ViT-B32-small.pt with vocab.json and merges.txt (models/README.md), or the weights "
          "file itself. "
          "Elements of one process asking for the same folder, device and precision share one loaded copy "
          "(see model-instance-id)",
          NULL, rw_ready));
  g_object_class_install_property (gobject_class, PROP_LABELS,
      g_param_spec_string ("labels", "Labels",
          "Russian labels separated by ';', e.g. \"человек;автомобиль;пустая улица\". Changeable while "
          "PLAYING: the new text embeddings are computed off the streaming thread and swapped in whole. Each "
          "element has its own; elements sharing a model with the identical labels and templates share their "
          "embeddings (computed once)",
          NULL, rw_playing));
  g_object_class_install_property (gobject_class, PROP_LABELS_FILE,
      g_param_spec_string ("labels-file", "Labels file",
          "File with one label per line ('#' starts a comment line); added after 'labels'. Re-read when set "
          "while PLAYING",
          NULL, rw_playing));
  g_object_class_install_property (gobject_class, PROP_TEMPLATES,
      g_param_spec_string ("templates", "Templates",
          "Prompt templates separated by ';', '{}' marks the label, e.g. \"фото, на котором изображено {}\"; "
          "each label's embedding is averaged over the templates. Empty: the model's own (\"templates\" in its "
          "config.json), else "
          "the reference ruCLIP's six default templates",
          NULL, rw_playing));
  g_object_class_install_property (gobject_class, PROP_INTERVAL,
      g_param_spec_uint ("interval", "Interval", "Analyze every Nth frame (1 = every frame)", 1, G_MAXUINT, 1,
          rw_playing));
  g_object_class_install_property (gobject_class, PROP_INTERVAL_TIME,
      g_param_spec_uint64 ("interval-time", "Interval time",
          "Analyze at most once per this many nanoseconds of buffer PTS (0 = no limit); applies together "
          "with 'interval'",
          0, G_MAXUINT64, 0, rw_playing));
  g_object_class_install_property (gobject_class, PROP_TOP_K,
      g_param_spec_uint ("top-k", "Top K", "Report at most this many labels, best first (0 = all)", 0, G_MAXUINT,
          0, rw_playing));
  g_object_class_install_property (gobject_class, PROP_THRESHOLD,
      g_param_spec_double ("threshold", "Threshold", "Labels whose score is below this are not reported",
          0.0, 1.0, 0.0, rw_playing));
  g_object_class_install_property (gobject_class, PROP_DEVICE,
      g_param_spec_string ("device", "Device",
          "Where the model runs: cpu, cuda, cuda:N, or auto (the first GPU when there is one, else cpu)", "auto",
          rw_ready));
  g_object_class_install_property (gobject_class, PROP_MODEL_INSTANCE_ID,
      g_param_spec_string ("model-instance-id", "Model instance id",
          "Empty (default): share the loaded model, its label embeddings and its batching with every element "
          "of the process asking for the same model, device and precision. Any other value: share only with "
          "the elements giving the same id (a separate copy of the weights and its own scheduler)",
          NULL, rw_ready));
  g_object_class_install_property (gobject_class, PROP_NUM_THREADS,
      g_param_spec_int ("num-threads", "Threads",
          "CPU threads for inference (0 = all online CPUs). Process-wide: every model of the process computes "
          "on LibTorch's one thread pool. The first element (or application) to load a model sets it; while "
          "that model is in use, a different value here is not applied and the element posts a warning "
          "saying what runs. An application sets it for all with ruclip::set_process_cpu_threads",
          0, 1024, 0, rw_ready));
  g_object_class_install_property (gobject_class, PROP_PRECISION,
      g_param_spec_enum ("precision", "Precision",
          "Arithmetic of the model: fp32; bf16 (CPUs with AVX-512 BF16 or AMX, and GPUs; elsewhere fp32 and a "
          "warning); fp16 (GPUs only); int8, int8-mixed (CPU); auto. The kernels chosen for this CPU are logged at INFO",
          GST_TYPE_RUCLIP_PRECISION, RUCLIP_PRECISION_FP32, rw_ready));
  g_object_class_install_property (gobject_class, PROP_BATCH_SIZE,
      g_param_spec_uint ("batch-size", "Batch size",
          "Most sampled frames embedded in one model call. Frames of every element sharing the model are "
          "batched together, up to the largest batch-size among them. One sync stream alone sends one frame "
          "at a time",
          1, 256, DEFAULT_BATCH_SIZE, rw_ready));
  g_object_class_install_property (gobject_class, PROP_BATCH_TIMEOUT,
      g_param_spec_uint64 ("batch-timeout", "Batch timeout",
          "Nanoseconds a sampled frame may wait for frames of other streams sharing the model to join its "
          "batch (the smallest value among them applies). A batch starts earlier when it is full or every "
          "stream has a frame waiting",
          0, 10 * GST_SECOND, DEFAULT_BATCH_TIMEOUT, rw_ready));
  g_object_class_install_property (gobject_class, PROP_QUEUE_SIZE,
      g_param_spec_uint ("queue-size", "Queue size",
          "async mode: how many of this element's sampled frames may wait for the model; a newer frame "
          "pushes the oldest out (counted in requests-dropped). 1: only the newest waits",
          1, 256, DEFAULT_QUEUE_SIZE, rw_ready));
  g_object_class_install_property (gobject_class, PROP_MODE,
      g_param_spec_enum ("mode", "Mode",
          "sync: a sampled frame waits for its own result (exact, for files); async: frames never wait, "
          "results go on later buffers (for live sources)",
          GST_TYPE_RUCLIP_MODE, RUCLIP_MODE_SYNC, rw_ready));
  g_object_class_install_property (gobject_class, PROP_POST_MESSAGES,
      g_param_spec_boolean ("post-messages", "Post messages",
          "Post an element message named \"ruclip\" per analysis (labels, scores, cosines, source-pts, frame, "
          "fresh, model, timestamp, running-time)",
          FALSE, rw_playing));
  g_object_class_install_property (gobject_class, PROP_ATTACH_EMBEDDING,
      g_param_spec_boolean ("attach-embedding", "Attach embedding",
          "Also put the normalized image embedding into the meta and messages (field \"embedding\")", FALSE,
          rw_playing));
  g_object_class_install_property (gobject_class, PROP_ACTIVE_LABELS,
      g_param_spec_string ("active-labels", "Active labels",
          "The labels results are scored against right now, ';'-separated (after a change, once its "
          "embeddings are ready)",
          NULL, ro));
  g_object_class_install_property (gobject_class, PROP_FRAMES_ANALYZED,
      g_param_spec_uint64 ("frames-analyzed", "Frames analyzed", "Frames analyzed since the stream started", 0,
          G_MAXUINT64, 0, ro));
  g_object_class_install_property (gobject_class, PROP_REQUESTS_DROPPED,
      g_param_spec_uint64 ("requests-dropped", "Requests dropped",
          "async mode: sampled frames of this element dropped because more than queue-size waited", 0,
          G_MAXUINT64, 0, ro));
  g_object_class_install_property (gobject_class, PROP_STATS,
      g_param_spec_boxed ("stats", "Statistics",
          "Since the stream started: frames, frames-sampled, mean milliseconds this element spent on a "
          "passed-through frame (passthrough-ms) and on a sampled one (sampled-ms; in sync mode it includes "
          "the wait for the model), of which preprocess-ms (CPU preprocessing); inference-ms, the mean "
          "duration of the model calls that embedded this element's frames (a call embeds up to batch-size "
          "frames, maybe of several streams), and inference-calls, how many of its frames were embedded; "
          "latency-p50-ms and "
          "latency-p95-ms from sampling a frame to its result (the last 1024 analyses); batch-mean-frames, the "
          "mean frames per model call of the shared model since it was loaded; model-instance (the "
          "same number for every element sharing one loaded model) and model-users (how many share it); see "
          "scripts/bench-pipeline.py and bench/streams.py",
          GST_TYPE_STRUCTURE, ro));

  g_object_class_install_property (gobject_class, PROP_SEGMENTS,
      g_param_spec_boolean ("segments", "Segments",
          "Turn results into time segments: when a label starts or stops holding (its score, smoothed if "
          "'smoothing' is set, reaches segment-start / falls below segment-end), post an element message "
          "\"ruclip-segment\" and send the same structure downstream as a custom event (event: start|end, "
          "label, start-pts, end-pts, start-running-time, end-running-time, mean-score, peak-score, frames, "
          "model); at EOS every open segment ends", FALSE, rw_ready));
  g_object_class_install_property (gobject_class, PROP_SMOOTHING,
      g_param_spec_uint64 ("smoothing", "Smoothing",
          "Time constant, in nanoseconds of PTS, of the exponential smoothing of each label's score over the "
          "analyzed frames (0 = none). Smoothed scores go into the meta as \"smoothed-scores\" beside the raw "
          "ones, and segments follow them", 0, G_MAXUINT64, 0, rw_ready));
  g_object_class_install_property (gobject_class, PROP_SEGMENT_START,
      g_param_spec_double ("segment-start", "Segment start",
          "A label's segment starts when its (smoothed) score reaches this", 0.0, 1.0, 0.5, rw_ready));
  g_object_class_install_property (gobject_class, PROP_SEGMENT_END,
      g_param_spec_double ("segment-end", "Segment end",
          "... and ends when it falls below this (hysteresis: at most segment-start)", 0.0, 1.0, 0.4, rw_ready));
  g_object_class_install_property (gobject_class, PROP_SEGMENT_MIN_DURATION,
      g_param_spec_uint64 ("segment-min-duration", "Segment minimum duration",
          "Nanoseconds a label must hold before its segment is reported (its start message then carries the "
          "start it had); shorter ones are dropped", 0, G_MAXUINT64, 0, rw_ready));
  g_object_class_install_property (gobject_class, PROP_LABEL_THRESHOLDS,
      g_param_spec_string ("label-thresholds", "Label thresholds",
          "Per-label segment-start[:segment-end], ';'-separated, e.g. \"человек:0.6:0.3;собака:0.7\"", NULL,
          rw_ready));

  g_object_class_install_property (gobject_class, PROP_SCORING,
      g_param_spec_enum ("scoring", "Scoring", "What the scores mean (docs/tagging-and-search.md, \"Presence\")",
          GST_TYPE_RUCLIP_SCORING, RUCLIP_SCORING_AUTO, rw_ready));
  g_object_class_install_property (gobject_class, PROP_PRESENCE_MARGIN,
      g_param_spec_double ("presence-margin", "Presence margin",
          "Logits a label must beat the background by for presence 0.5", -100.0, 100.0, 0.0, rw_ready));
  g_object_class_install_property (gobject_class, PROP_PRESENCE_BASELINE,
      g_param_spec_uint ("presence-baseline", "Presence baseline",
          "Analyses of warm-up before the stream's own baseline raises the bar (0 = no baseline)", 0, G_MAXINT, 0,
          rw_ready));
  g_object_class_install_property (gobject_class, PROP_BACKGROUND_FILE,
      g_param_spec_string ("background-file", "Background file",
          "Descriptions a label must beat, one per line (default: the model's, else built-in)", NULL, rw_playing));

  g_object_class_install_property (gobject_class, PROP_INFERENCE_REGION,
      g_param_spec_enum ("inference-region", "Inference region",
          "full-frame: classify the frame. roi-list: classify each GstVideoRegionOfInterestMeta of a sampled "
          "frame (a detector's boxes): its crop, clipped to the frame, goes through the same preprocessing as a "
          "picture of its own, the crops of a frame share model calls, and each region's meta gets a param "
          "structure \"ruclip\" (labels, scores, cosines, model); RuClipMeta lists them in \"regions\" (id, "
          "roi-type, x, y, w, h, labels, scores, cosines). Regions outside the frame or under 4x4 pixels inside "
          "it are skipped; a sampled frame without regions gets a RuClipMeta with no regions. Sync mode only",
          GST_TYPE_RUCLIP_REGION, RUCLIP_REGION_FULL_FRAME, rw_ready));
  g_object_class_install_property (gobject_class, PROP_OBJECT_CLASS,
      g_param_spec_string ("object-class", "Object class",
          "inference-region=roi-list: classify only regions of these types (roi_type, e.g. \"face;person\"; "
          "';' or ',' separated). Empty: every region", NULL, rw_ready));

  // CUDA memory first: preferred where the model reads it (transform_caps
  // drops it elsewhere).
  GstCaps *caps = gst_caps_from_string (GST_VIDEO_CAPS_MAKE_WITH_FEATURES (CUDA_MEMORY_FEATURE, VIDEO_FORMATS) "; "
      GST_VIDEO_CAPS_MAKE (VIDEO_FORMATS));
  gst_element_class_add_pad_template (element_class, gst_pad_template_new ("sink", GST_PAD_SINK, GST_PAD_ALWAYS, caps));
  gst_element_class_add_pad_template (element_class, gst_pad_template_new ("src", GST_PAD_SRC, GST_PAD_ALWAYS, caps));
  gst_caps_unref (caps);

  gst_element_class_set_static_metadata (element_class, "ruCLIP zero-shot labels", "Filter/Analyzer/Video",
      "Labels video frames with Russian phrases (zero-shot ruCLIP) and attaches them as RuClipMeta",
      "ruclip-gst developers");

  trans_class->start = GST_DEBUG_FUNCPTR (gst_ruclip_filter_start);
  trans_class->stop = GST_DEBUG_FUNCPTR (gst_ruclip_filter_stop);
  trans_class->query = GST_DEBUG_FUNCPTR (gst_ruclip_filter_query);
  element_class->set_context = GST_DEBUG_FUNCPTR (gst_ruclip_filter_set_context);
  trans_class->transform_ip = GST_DEBUG_FUNCPTR (gst_ruclip_filter_transform_ip);
  trans_class->transform_caps = GST_DEBUG_FUNCPTR (gst_ruclip_filter_transform_caps);
  GST_VIDEO_FILTER_CLASS (klass)->set_info = GST_DEBUG_FUNCPTR (gst_ruclip_filter_set_info);
  trans_class->sink_event = GST_DEBUG_FUNCPTR (gst_ruclip_filter_sink_event);
  trans_class->src_event = GST_DEBUG_FUNCPTR (gst_ruclip_filter_src_event);
  trans_class->transform_ip_on_passthrough = FALSE;

  gst_type_mark_as_plugin_api (GST_TYPE_RUCLIP_MODE, (GstPluginAPIFlags) 0);
  gst_type_mark_as_plugin_api (GST_TYPE_RUCLIP_REGION, (GstPluginAPIFlags) 0);
  gst_type_mark_as_plugin_api (GST_TYPE_RUCLIP_PRECISION, (GstPluginAPIFlags) 0);
  GST_DEBUG_CATEGORY_INIT (gst_ruclip_filter_debug, "ruclipfilter", 0, "ruCLIP zero-shot video labels");
}
