// The shared scheduler (scheduler.h): one mutex guards every stream's queue
// and flags; the model runs outside it, on the frame thread, and label sets
// are built on the label thread or the caller's.
#include "ruclip/scheduler.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "ruclip/error.h"

namespace ruclip {
namespace {

using Clock = std::chrono::steady_clock;

// Where a sync submit() waits for its frame; shared with the worker, which
// may still hold it after a flush made submit() return.
struct SyncSlot {
  bool done = false;
  bool failed = false;
  FrameAnalysis analysis;
  std::string error;
};

struct Pending {
  FrameRequest request;
  Clock::time_point submitted;
  uint64_t generation = 0;
  std::shared_ptr<SyncSlot> slot;  // sync mode
};

std::string label_key(const std::vector<std::string>& labels, const std::vector<std::string>& templates,
                      const std::vector<std::string>& background) {
  std::string key;
  for (const auto& l : labels) key += l + '\x1f';
  key += '\x1e';
  for (const auto& t : templates) key += t + '\x1f';
  key += '\x1d';
  for (const auto& b : background) key += b + '\x1f';
  return key;
}

}  // namespace

struct InferenceScheduler::Stream::State {
  explicit State(StreamOptions o) : options(sanitized(std::move(o))) {}
  static StreamOptions sanitized(StreamOptions o) {
    o.queue_size = std::max(1, o.queue_size);
    o.batch_size = std::max(1, o.batch_size);
    return o;
  }
  const StreamOptions options;
  // All below: under Impl::mu.
  std::deque<Pending> queue;
  int in_flight = 0;        // frames in the worker's batch, until their results are delivered
  int delivering = 0;       // results being handed to on_result/on_error right now
  uint64_t generation = 0;  // bumped by flush_start/close: older frames' results are discarded
  bool flushing = false;
  bool closed = false;
  std::shared_ptr<const LabelSet> labels;
  // set_labels: the newest request not yet taken by the label thread.
  bool label_job = false;
  std::vector<std::string> job_labels, job_templates, job_background;
  bool label_busy = false;  // the label thread works for this stream (or runs its callback)
  std::condition_variable changed;  // a frame done, a flush, a close, a label callback over
  Stats stats;
  std::vector<double> latencies;  // ring of the last kLatencies
  size_t latency_next = 0;
  static constexpr size_t kLatencies = 1024;

  void record_latency(double ms) {
    if (latencies.size() < kLatencies) {
      latencies.push_back(ms);
    } else {
      latencies[latency_next] = ms;
      latency_next = (latency_next + 1) % kLatencies;
    }
  }
};

using StreamState = InferenceScheduler::Stream::State;

struct InferenceScheduler::Impl {
  explicit Impl(Model& m) : model(m) {
    worker = std::thread([this] { frame_loop(); });
    label_worker = std::thread([this] { label_loop(); });
  }
  ~Impl() {
    {
      std::lock_guard<std::mutex> guard(mu);
      stopping = true;
      for (auto& s : streams) {
        s->closed = true;
        s->changed.notify_all();
      }
    }
    wake.notify_all();
    label_wake.notify_all();
    worker.join();
    label_worker.join();
  }

  Model& model;
  mutable std::mutex mu;
  std::condition_variable wake;        // the frame thread: frames waiting, stop
  std::condition_variable label_wake;  // the label thread: jobs, stop
  std::vector<std::shared_ptr<StreamState>> streams;  // open ones
  size_t next = 0;                                    // round robin: who goes first in the next batch
  size_t waiting = 0;                                 // frames in all queues
  std::deque<std::shared_ptr<StreamState>> label_jobs;
  bool stopping = false;
  Totals totals;
  std::thread worker, label_worker;

  // Label sets in use, by content; `building`: being computed right now.
  std::mutex cache_mu;
  std::condition_variable cache_cv;
  std::map<std::string, std::weak_ptr<const LabelSet>> cache;
  std::set<std::string> building;
  // Backgrounds in use, by templates and texts: encoded once for all the sets using one.
  std::map<std::string, std::weak_ptr<const Background>> backgrounds;
  std::atomic<uint64_t> label_sets_built{0};

  std::shared_ptr<const LabelSet> label_set(const std::vector<std::string>& labels,
                                            const std::vector<std::string>& templates,
                                            const std::vector<std::string>& background) {
    const std::string key = label_key(labels, templates, background);
    std::unique_lock<std::mutex> lk(cache_mu);
    for (;;) {
      auto it = cache.find(key);
      if (it != cache.end())
        if (auto set = it->second.lock()) return set;
      if (!building.count(key)) break;
      cache_cv.wait(lk);  // someone computes this very set: take theirs
    }
    building.insert(key);
    lk.unlock();
    std::shared_ptr<const LabelSet> set;
    try {
      set = build_label_set(model, labels, templates, background_for(templates, background));
    } catch (...) {
      lk.lock();
      building.erase(key);
      cache_cv.notify_all();
      throw;
    }
    lk.lock();
    building.erase(key);
    for (auto i = cache.begin(); i != cache.end();) i = i->second.expired() ? cache.erase(i) : std::next(i);
    cache[key] = set;
    ++label_sets_built;
    cache_cv.notify_all();
    return set;
  }

  std::shared_ptr<const Background> background_for(const std::vector<std::string>& templates,
                                                    const std::vector<std::string>& texts) {
    const std::string key = label_key({}, templates, texts);
    {
      std::lock_guard<std::mutex> guard(cache_mu);
      auto it = backgrounds.find(key);
      if (it != backgrounds.end())
        if (auto b = it->second.lock()) return b;
    }
    // Two sets asking for a new one at once may both encode it; the last is kept.
    auto b = build_background(model, templates, texts);
    std::lock_guard<std::mutex> guard(cache_mu);
    for (auto i = backgrounds.begin(); i != backgrounds.end();) i = i->second.expired() ? backgrounds.erase(i) : std::next(i);
    backgrounds[key] = b;
    return b;
  }

  // ---- the frame thread ----

  int batch_limit() const {
    int n = 1;
    for (const auto& s : streams) n = std::max(n, s->options.batch_size);
    return n;
  }
  Clock::duration batch_timeout() const {
    Clock::duration t = Clock::duration::max();
    for (const auto& s : streams) t = std::min<Clock::duration>(t, s->options.batch_timeout);
    return t == Clock::duration::max() ? Clock::duration::zero() : t;
  }
  // Every stream that could send a frame has one waiting: waiting longer only delays them.
  bool every_stream_waiting() const {
    for (const auto& s : streams)
      if (!s->flushing && s->queue.empty()) return false;
    return true;
  }
  Clock::time_point oldest_waiting() const {
    Clock::time_point t = Clock::time_point::max();
    for (const auto& s : streams)
      if (!s->queue.empty()) t = std::min(t, s->queue.front().submitted);
    return t;
  }

  struct Item {
    std::shared_ptr<StreamState> stream;
    Pending pending;
  };

  // One frame per stream in turn, starting after the stream that went first last time.
  std::vector<Item> take_batch(size_t limit) {
    std::vector<Item> batch;
    const size_t n = streams.size();
    bool took = true;
    size_t start = next % std::max<size_t>(1, n);
    while (batch.size() < limit && took) {
      took = false;
      for (size_t k = 0; k < n && batch.size() < limit; ++k) {
        auto& s = streams[(start + k) % n];
        if (s->queue.empty()) continue;
        batch.push_back({s, std::move(s->queue.front())});
        s->queue.pop_front();
        --waiting;
        ++s->in_flight;
        took = true;
        next = (start + k + 1) % n;
      }
    }
    return batch;
  }

  void frame_loop() {
    std::unique_lock<std::mutex> lk(mu);
    for (;;) {
      wake.wait(lk, [&] { return stopping || waiting > 0; });
      if (stopping) return;
      // Gather: until the batch is full, every stream has sent, or the oldest frame waited long enough.
      while (!stopping && waiting > 0 && waiting < static_cast<size_t>(batch_limit()) && !every_stream_waiting()) {
        const Clock::time_point deadline = oldest_waiting() + batch_timeout();
        if (Clock::now() >= deadline) break;
        wake.wait_until(lk, deadline);
      }
      if (stopping) return;
      std::vector<Item> batch = take_batch(static_cast<size_t>(batch_limit()));
      if (batch.empty()) continue;
      lk.unlock();
      run_batch(batch);
      lk.lock();
    }
  }

  void run_batch(std::vector<Item>& batch) {
    // The model call, outside the lock.
    std::string error;
    Embeddings latents;
    std::vector<int> row(batch.size(), -1);
    const auto model_start = Clock::now();
    try {
      std::vector<float> pixels;
      std::vector<FrameView> views;
      std::vector<std::shared_ptr<const PreparedFrame>> prepared;
      std::vector<size_t> pixel_items, view_items, prepared_items;
      for (size_t i = 0; i < batch.size(); ++i) {
        const FrameRequest& r = batch[i].pending.request;
        (r.prepared ? prepared_items : r.view ? view_items : pixel_items).push_back(i);
      }
      const Normalization norm = model.normalization();
      const size_t per_image = 3 * static_cast<size_t>(norm.resolution) * norm.resolution;
      pixels.reserve(per_image * pixel_items.size());
      for (size_t i : pixel_items) {
        const auto& p = batch[i].pending.request.pixels;
        if (p.size() != per_image)
          throw Error("a frame of " + std::to_string(p.size()) + " floats, expected 3 x " +
                      std::to_string(norm.resolution) + " x " + std::to_string(norm.resolution));
        pixels.insert(pixels.end(), p.begin(), p.end());
      }
      for (size_t i : view_items) views.push_back(*batch[i].pending.request.view);
      for (size_t i : prepared_items) prepared.push_back(batch[i].pending.request.prepared);
      // One model call per kind of request in the batch; rows in that order.
      int r = 0;
      const auto append = [&](Embeddings e, const std::vector<size_t>& items) {
        if (items.empty()) return;
        latents.dim = e.dim;
        latents.rows += e.rows;
        latents.data.insert(latents.data.end(), e.data.begin(), e.data.end());
        for (size_t i : items) row[i] = r++;
      };
      if (!pixel_items.empty())
        append(model.encode_pixels(pixels.data(), static_cast<int>(pixel_items.size())), pixel_items);
      if (!views.empty()) append(model.encode_frames(views), view_items);
      if (!prepared.empty()) append(model.encode_prepared(prepared), prepared_items);
    } catch (const std::exception& e) {
      error = e.what();
    }

    std::vector<std::shared_ptr<const LabelSet>> sets(batch.size());
    std::set<const StreamState*> distinct;
    {
      std::lock_guard<std::mutex> guard(mu);
      for (size_t i = 0; i < batch.size(); ++i) {
        sets[i] = batch[i].stream->labels;
        distinct.insert(batch[i].stream.get());
      }
      ++totals.batches;
      totals.frames += batch.size();
    }
    // Scores, outside the lock (each its stream's current set).
    std::vector<FrameAnalysis> analyses(batch.size());
    const auto now = Clock::now();
    const double inference_ms = std::chrono::duration<double, std::milli>(now - model_start).count();
    for (size_t i = 0; i < batch.size() && error.empty(); ++i) {
      FrameAnalysis& a = analyses[i];
      const FrameRequest& req = batch[i].pending.request;
      a.frame = req.frame;
      a.pts = req.pts;
      a.running_time = req.running_time;
      a.labels = sets[i];
      const float* latent = latents.row(row[i]);
      a.scores = score_image(*sets[i], latent, latents.dim, model.logit_scale());
      Embeddings e{1, latents.dim, std::vector<float>(latent, latent + latents.dim)};
      e.normalize_rows();
      a.embedding = std::move(e.data);
      a.batch_frames = static_cast<int>(batch.size());
      a.batch_streams = static_cast<int>(distinct.size());
      a.latency_ms = std::chrono::duration<double, std::milli>(now - batch[i].pending.submitted).count();
      a.inference_ms = inference_ms;
    }

    // Delivery: sync frames to their waiting submit(), async ones to the callbacks (outside the lock).
    std::vector<size_t> callbacks;
    {
      std::lock_guard<std::mutex> guard(mu);
      for (size_t i = 0; i < batch.size(); ++i) {
        StreamState& s = *batch[i].stream;
        if (s.closed || batch[i].pending.generation != s.generation) {
          ++s.stats.discarded;
          continue;
        }
        if (error.empty()) {
          ++s.stats.analyzed;
          s.record_latency(analyses[i].latency_ms);
        } else {
          ++s.stats.failed;
        }
        if (auto& slot = batch[i].pending.slot) {
          slot->done = true;
          slot->failed = !error.empty();
          slot->error = error;
          slot->analysis = std::move(analyses[i]);
          s.changed.notify_all();
        } else {
          callbacks.push_back(i);
          ++s.delivering;
        }
      }
    }
    std::set<const StreamState*> failed_told;
    for (size_t i : callbacks) {
      const StreamOptions& o = batch[i].stream->options;
      if (error.empty()) {
        if (o.on_result) o.on_result(std::move(analyses[i]));
      } else if (o.on_error && failed_told.insert(batch[i].stream.get()).second) {
        o.on_error(error);
      }
    }
    std::lock_guard<std::mutex> guard(mu);
    for (size_t i : callbacks) --batch[i].stream->delivering;
    for (auto& item : batch) {
      --item.stream->in_flight;
      item.stream->changed.notify_all();
    }
  }

  // ---- the label thread ----

  void label_loop() {
    std::unique_lock<std::mutex> lk(mu);
    for (;;) {
      label_wake.wait(lk, [&] { return stopping || !label_jobs.empty(); });
      if (stopping) return;
      std::shared_ptr<StreamState> s = std::move(label_jobs.front());
      label_jobs.pop_front();
      if (s->closed || !s->label_job) continue;
      const std::vector<std::string> labels = std::move(s->job_labels), templates = std::move(s->job_templates),
                                     background = std::move(s->job_background);
      s->label_job = false;
      s->label_busy = true;
      lk.unlock();
      std::shared_ptr<const LabelSet> set;
      std::string error;
      try {
        set = label_set(labels, templates, background);
      } catch (const std::exception& e) {
        error = e.what();
      }
      lk.lock();
      // A set_labels_now (or a newer set_labels) after this request wins.
      const bool apply = !s->closed && !s->label_job;
      if (apply && set) s->labels = set;
      lk.unlock();
      if (apply) {
        if (set && s->options.on_labels) s->options.on_labels(set);
        if (!set && s->options.on_labels_error) s->options.on_labels_error(error);
      }
      lk.lock();
      s->label_busy = false;
      s->changed.notify_all();
    }
  }

  bool on_scheduler_thread() const {
    const auto me = std::this_thread::get_id();
    return me == worker.get_id() || me == label_worker.get_id();
  }
};

// ---- InferenceScheduler ----

InferenceScheduler::InferenceScheduler(Model& model) : impl_(std::make_unique<Impl>(model)) {}
InferenceScheduler::~InferenceScheduler() = default;

std::unique_ptr<InferenceScheduler::Stream> InferenceScheduler::open_stream(StreamOptions options) {
  auto state = std::make_shared<Stream::State>(std::move(options));
  {
    std::lock_guard<std::mutex> guard(impl_->mu);
    impl_->streams.push_back(state);
  }
  return std::unique_ptr<Stream>(new Stream(impl_.get(), std::move(state)));
}

std::shared_ptr<const LabelSet> InferenceScheduler::label_set(const std::vector<std::string>& labels,
                                                              const std::vector<std::string>& templates,
                                                              const std::vector<std::string>& background) {
  return impl_->label_set(labels, templates, background);
}

InferenceScheduler::Totals InferenceScheduler::totals() const {
  std::lock_guard<std::mutex> guard(impl_->mu);
  Totals t = impl_->totals;
  t.label_sets_built = impl_->label_sets_built;
  t.streams = static_cast<int>(impl_->streams.size());
  return t;
}

// ---- Stream ----

InferenceScheduler::Stream::Stream(InferenceScheduler::Impl* scheduler, std::shared_ptr<State> state)
    : scheduler_(scheduler), state_(std::move(state)) {}

InferenceScheduler::Stream::~Stream() { close(); }

void InferenceScheduler::Stream::set_labels_now(const std::vector<std::string>& labels,
                                                const std::vector<std::string>& templates,
                                                const std::vector<std::string>& background) {
  auto set = scheduler_->label_set(labels, templates, background);
  std::lock_guard<std::mutex> guard(scheduler_->mu);
  state_->labels = std::move(set);
  state_->label_job = false;  // an older set_labels must not replace it later
}

void InferenceScheduler::Stream::set_labels(const std::vector<std::string>& labels,
                                            const std::vector<std::string>& templates,
                                            const std::vector<std::string>& background) {
  std::lock_guard<std::mutex> guard(scheduler_->mu);
  State& s = *state_;
  if (s.closed) return;
  s.job_labels = labels;
  s.job_templates = templates;
  s.job_background = background;
  if (!s.label_job) {
    s.label_job = true;
    scheduler_->label_jobs.push_back(state_);
    scheduler_->label_wake.notify_one();
  }
}

std::shared_ptr<const LabelSet> InferenceScheduler::Stream::labels() const {
  std::lock_guard<std::mutex> guard(scheduler_->mu);
  return state_->labels;
}

InferenceScheduler::Stream::Submitted InferenceScheduler::Stream::submit(FrameRequest request, FrameAnalysis* out,
                                                                         std::string* error, uint64_t* dropped) {
  if (state_->options.mode == StreamMode::kSync) {
    std::vector<FrameRequest> one;
    one.push_back(std::move(request));
    std::vector<FrameAnalysis> analyses;
    const Submitted s = submit_all(std::move(one), &analyses, error);
    if (s == Submitted::kAnalyzed && out) *out = std::move(analyses[0]);
    return s;
  }
  Impl& impl = *scheduler_;
  State& s = *state_;
  if (request.view) throw Error("an async frame must carry its pixels (a view is only valid during submit)");
  std::lock_guard<std::mutex> guard(impl.mu);
  if (!s.labels) throw Error("no labels: set_labels_now() before the first frame");
  if (dropped) *dropped = 0;
  if (s.flushing || s.closed) return Submitted::kFlushing;
  s.queue.push_back(Pending{std::move(request), Clock::now(), s.generation, nullptr});
  ++impl.waiting;
  ++s.stats.submitted;
  // The newest frames win; the oldest waiting ones make room.
  while (s.queue.size() > static_cast<size_t>(s.options.queue_size)) {
    s.queue.pop_front();
    --impl.waiting;
    ++s.stats.dropped;
    if (dropped) ++*dropped;
  }
  impl.wake.notify_one();
  return Submitted::kQueued;
}

InferenceScheduler::Stream::Submitted InferenceScheduler::Stream::submit_all(std::vector<FrameRequest> requests,
                                                                             std::vector<FrameAnalysis>* out,
                                                                             std::string* error) {
  Impl& impl = *scheduler_;
  State& s = *state_;
  if (s.options.mode != StreamMode::kSync) throw Error("submit_all: sync streams only");
  std::unique_lock<std::mutex> lk(impl.mu);
  if (!s.labels) throw Error("no labels: set_labels_now() before the first frame");
  if (s.flushing || s.closed) return Submitted::kFlushing;
  if (out) out->clear();
  if (requests.empty()) return Submitted::kAnalyzed;
  const auto now = Clock::now();
  std::vector<std::shared_ptr<SyncSlot>> slots;
  for (auto& r : requests) {
    slots.push_back(std::make_shared<SyncSlot>());
    s.queue.push_back(Pending{std::move(r), now, s.generation, slots.back()});
    ++impl.waiting;
    ++s.stats.submitted;
  }
  impl.wake.notify_one();
  const uint64_t generation = s.generation;
  auto all_done = [&] {
    for (const auto& slot : slots)
      if (!slot->done) return false;
    return true;
  };
  s.changed.wait(lk, [&] { return all_done() || s.generation != generation || s.closed; });
  if (!all_done()) return Submitted::kFlushing;
  for (const auto& slot : slots)
    if (slot->failed) {
      if (error) *error = slot->error;
      return Submitted::kFailed;
    }
  if (out)
    for (auto& slot : slots) out->push_back(std::move(slot->analysis));
  return Submitted::kAnalyzed;
}

bool InferenceScheduler::Stream::drain() {
  std::unique_lock<std::mutex> lk(scheduler_->mu);
  State& s = *state_;
  const uint64_t generation = s.generation;
  s.changed.wait(lk, [&] {
    return (s.queue.empty() && s.in_flight == 0) || s.flushing || s.closed || s.generation != generation;
  });
  return s.queue.empty() && s.in_flight == 0 && !s.flushing && !s.closed && s.generation == generation;
}

void InferenceScheduler::Stream::flush_start() {
  std::unique_lock<std::mutex> lk(scheduler_->mu);
  State& s = *state_;
  scheduler_->waiting -= s.queue.size();
  s.queue.clear();
  s.flushing = true;
  ++s.generation;
  s.changed.notify_all();
  scheduler_->wake.notify_one();  // its gathering may stop waiting for this stream
  // Results already past the generation check are being delivered: let them finish.
  if (!scheduler_->on_scheduler_thread()) s.changed.wait(lk, [&] { return s.delivering == 0; });
}

void InferenceScheduler::Stream::flush_stop() {
  std::lock_guard<std::mutex> guard(scheduler_->mu);
  state_->flushing = false;
}

void InferenceScheduler::Stream::close() {
  Impl& impl = *scheduler_;
  std::unique_lock<std::mutex> lk(impl.mu);
  State& s = *state_;
  if (!s.closed) {
    s.closed = true;
    ++s.generation;
    impl.waiting -= s.queue.size();
    s.queue.clear();
    s.label_job = false;
    auto& v = impl.streams;
    v.erase(std::remove(v.begin(), v.end(), state_), v.end());
    s.changed.notify_all();
    impl.wake.notify_one();
  }
  // A callback closing its own stream can't wait for itself.
  if (impl.on_scheduler_thread()) return;
  s.changed.wait(lk, [&] { return s.in_flight == 0 && !s.label_busy; });
}

InferenceScheduler::Stream::Stats InferenceScheduler::Stream::stats() const {
  std::lock_guard<std::mutex> guard(scheduler_->mu);
  Stats st = state_->stats;
  std::vector<double> l = state_->latencies;
  if (!l.empty()) {
    auto at = [&](double q) {
      const size_t k = std::min(l.size() - 1, static_cast<size_t>(q * (l.size() - 1) + 0.5));
      std::nth_element(l.begin(), l.begin() + k, l.end());
      return l[k];
    };
    st.latency_p50_ms = at(0.50);
    st.latency_p95_ms = at(0.95);
  }
  return st;
}

}  // namespace ruclip
