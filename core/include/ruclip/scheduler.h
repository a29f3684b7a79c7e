// Many streams, one model: the frames every stream samples are embedded
// together, in batches, on one thread per loaded model; each result goes back
// to the stream and frame it came from. The machinery behind ruclipfilter,
// free of GStreamer (an NVR or media server using the core API directly runs
// the same code).
//
//   auto shared = ruclip::acquire_shared_model(dir, options);   // shared_model.h
//   auto stream = shared->scheduler().open_stream({.mode = StreamMode::kSync});
//   stream->set_labels_now({"кошка", "собака"});
//   FrameAnalysis a;
//   stream->submit(std::move(request), &a);   // a.scores: best first
//
// Batching: a batch holds at most the largest batch_size among the open
// streams; the worker starts it once every open stream has a frame waiting,
// the batch is full, or the oldest frame has waited the smallest
// batch_timeout among the streams. Streams take turns (one frame each, round
// robin from where the last batch stopped), so no stream starves another.
//
// Labels: each stream has its own label set; identical sets (same labels,
// templates and background) are computed once and shared while in use. set_labels builds on
// the scheduler's label thread, off the caller's and off the frames' thread.
//
// Concurrency: every Stream method may be called from any thread, each
// Stream from several at once (a streaming thread submits and drains while
// an application thread changes labels and another flushes). The callbacks
// run on the scheduler's threads, never two at once for one stream; they must
// not close their own stream or destroy the scheduler.
#pragma once
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "ruclip/image.h"
#include "ruclip/zero_shot.h"

namespace ruclip {

// A sampled frame. The tags (frame, pts, running_time) come back unchanged
// with its analysis.
struct FrameRequest {
  uint64_t frame = 0;
  uint64_t pts = UINT64_MAX;
  uint64_t running_time = UINT64_MAX;
  // Either the preprocessed pixels (3 x R x R, preprocess() of image.h) ...
  std::vector<float> pixels;
  // ... or, in sync mode only, the frame itself, which must stay valid until
  // submit returns: the model preprocesses it (on a GPU, there) ...
  const FrameView* view = nullptr;
  // ... or the frame as this scheduler's model prepared it (Model::prepare_frame:
  // on a GPU, pixels already in device memory), in either mode.
  std::shared_ptr<const PreparedFrame> prepared;
};

struct FrameAnalysis {
  uint64_t frame = 0, pts = UINT64_MAX, running_time = UINT64_MAX;  // the request's tags
  std::shared_ptr<const LabelSet> labels;  // the set it was scored against
  std::vector<LabelScore> scores;          // every label of that set, best first
  std::vector<float> embedding;            // the normalized image embedding
  int batch_frames = 0;                    // frames in the model call that embedded it
  int batch_streams = 0;                   // streams they came from
  double latency_ms = 0;                   // submit to scored
  double inference_ms = 0;                 // the model call alone
};

enum class StreamMode {
  kSync,   // submit() waits for the frame's own analysis
  kAsync,  // submit() returns at once; results go to on_result
};

struct StreamOptions {
  StreamMode mode = StreamMode::kSync;
  // async: how many of this stream's frames may wait; a newer one pushes the
  // oldest out (counted in Stats::dropped).
  int queue_size = 1;
  int batch_size = 8;  // most frames per model call (the largest of the open streams applies)
  std::chrono::microseconds batch_timeout{5000};  // the smallest of the open streams applies
  // async: each analysis, on the scheduler's thread, in submit order.
  std::function<void(FrameAnalysis&&)> on_result;
  // async: an analysis failed (the frames of that model call are lost).
  std::function<void(const std::string& error)> on_error;
  // set_labels: the new set is active, or why it was not applied (the old one stays).
  std::function<void(const std::shared_ptr<const LabelSet>&)> on_labels;
  std::function<void(const std::string& error)> on_labels_error;
};

class InferenceScheduler {
 public:
  class Stream;
  struct Impl;

  // Runs `model`'s image tower for every stream opened here. The model
  // must outlive the scheduler.
  explicit InferenceScheduler(Model& model);
  ~InferenceScheduler();  // after every Stream is closed
  InferenceScheduler(const InferenceScheduler&) = delete;
  InferenceScheduler& operator=(const InferenceScheduler&) = delete;

  std::unique_ptr<Stream> open_stream(StreamOptions options);

  // The label set of `labels` x `templates` with `background` (defaults as
  // build_label_set), shared with every stream using the identical one.
  // Computed once even when asked for from several threads at the same time.
  std::shared_ptr<const LabelSet> label_set(const std::vector<std::string>& labels,
                                            const std::vector<std::string>& templates = {},
                                            const std::vector<std::string>& background = {});

  struct Totals {
    uint64_t batches = 0, frames = 0;  // model calls and the frames in them
    uint64_t label_sets_built = 0;     // distinct sets computed (not taken from another stream)
    int streams = 0;                   // open now
  };
  Totals totals() const;

 private:
  std::unique_ptr<Impl> impl_;
};

class InferenceScheduler::Stream {
 public:
  ~Stream();  // close()

  // Labels. set_labels_now builds on the calling thread (or takes the
  // identical set another stream uses) and throws ruclip::Error as
  // build_label_set does. set_labels returns at once: the set is built on
  // the label thread, then swapped in whole (on_labels); a newer call before
  // that replaces the older request.
  void set_labels_now(const std::vector<std::string>& labels, const std::vector<std::string>& templates = {},
                      const std::vector<std::string>& background = {});
  void set_labels(const std::vector<std::string>& labels, const std::vector<std::string>& templates = {},
                  const std::vector<std::string>& background = {});
  std::shared_ptr<const LabelSet> labels() const;  // null before the first set

  enum class Submitted {
    kQueued,    // async: waiting for the worker
    kAnalyzed,  // sync: *out holds the frame's analysis
    kFlushing,  // refused or interrupted by flush_start()/close(): no result
    kFailed,    // sync: the analysis failed, *error says why
  };
  // sync: waits for this frame's analysis only. async: queues it; `dropped`
  // (when given) gets how many older frames it pushed out. Throws
  // ruclip::Error when no label set was set.
  Submitted submit(FrameRequest request, FrameAnalysis* out = nullptr, std::string* error = nullptr,
                   uint64_t* dropped = nullptr);
  // sync only: several requests at once (the regions of one frame), queued
  // together so they share model calls; waits for all of them, `out` in order.
  Submitted submit_all(std::vector<FrameRequest> requests, std::vector<FrameAnalysis>* out,
                       std::string* error = nullptr);

  // Waits until every frame submitted so far is analyzed and delivered
  // (on_result has returned). false when flush_start() or close() interrupted it.
  bool drain();
  // Drops the waiting frames and discards the results of those in flight;
  // wakes drain() and a waiting submit(); submit refuses frames until
  // flush_stop(). Returns once no on_result of an earlier frame runs: none
  // comes after it.
  void flush_start();
  void flush_stop();
  // Leaves the scheduler: waiting frames are dropped, results in flight
  // discarded; returns once no callback of this stream runs. Idempotent.
  void close();

  struct Stats {
    uint64_t submitted = 0, analyzed = 0, dropped = 0, failed = 0, discarded = 0;
    double latency_p50_ms = 0, latency_p95_ms = 0;  // of the last 1024 analyses
  };
  Stats stats() const;

  struct State;

 private:
  friend class InferenceScheduler;
  Stream(InferenceScheduler::Impl* scheduler, std::shared_ptr<State> state);
  InferenceScheduler::Impl* scheduler_;
  std::shared_ptr<State> state_;
};

}  // namespace ruclip
