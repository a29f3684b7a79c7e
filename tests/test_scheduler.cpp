// The shared model registry and the scheduler that batches many streams'
// frames (ruclip/shared_model.h, ruclip/scheduler.h), without GStreamer.
// scripts/tsan.sh runs these under ThreadSanitizer too.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <condition_variable>
#include <functional>
#include <future>
#include <mutex>
#include <thread>

#include <unistd.h>

#include "ruclip/error.h"
#include "ruclip/shared_model.h"
#include "test_util.h"

using ruclip::FrameAnalysis;
using ruclip::FrameRequest;
using ruclip::InferenceScheduler;
using ruclip::StreamMode;
using ruclip::StreamOptions;
using Submitted = InferenceScheduler::Stream::Submitted;
using namespace std::chrono_literals;

namespace {

const std::vector<std::string> kLabels = {"кошка", "собака", "самолёт", "грузовик"};

ruclip::ModelOptions cpu2() {
  ruclip::ModelOptions o;
  o.device = ruclip::Device::parse("cpu");
  o.num_threads = 2;
  return o;
}

std::shared_ptr<ruclip::SharedModel> tiny() { return ruclip::acquire_shared_model(ruclip_test::tiny_model_dir(), cpu2()); }

// The five fixture images' pixels, and each one's normalized embedding alone.
struct Fixture {
  std::vector<std::vector<float>> pixels;
  std::vector<std::vector<float>> embedding;
};

const Fixture& fixture() {
  static const Fixture f = [] {
    Fixture f;
    auto shared = tiny();
    for (const auto& image : ruclip_test::expected()["images"]) {
      f.pixels.push_back(image["pixel_values"].get<std::vector<float>>());
      ruclip::Embeddings e = shared->model().encode_pixels(f.pixels.back().data(), 1);
      e.normalize_rows();
      f.embedding.push_back(e.data);
    }
    return f;
  }();
  return f;
}

FrameRequest request(int image, uint64_t frame) {
  FrameRequest r;
  r.frame = frame;
  r.pts = frame * 1000 + image;  // the tags come back: the stream and frame are both in them
  r.pixels = fixture().pixels[image];
  return r;
}

// Which fixture image an embedding is (the nearest).
int which_image(const std::vector<float>& embedding) {
  int best = -1;
  float best_cos = -2;
  for (size_t i = 0; i < fixture().embedding.size(); ++i) {
    const float c = ruclip_test::cosine(embedding, fixture().embedding[i]);
    if (c > best_cos) best_cos = c, best = static_cast<int>(i);
  }
  return best;
}

}  // namespace

TEST(SharedModel, SameFolderDeviceAndPrecisionShareOneLoad) {
  const uint64_t before = ruclip::shared_model_loads();
  auto a = tiny();
  auto b = ruclip::acquire_shared_model(ruclip_test::tiny_model_dir() + "/./", cpu2());  // spelled otherwise
  ruclip::ModelOptions any = cpu2();
  any.device = ruclip::Device::parse("auto");  // resolves to the CPU here (no GPU in CI)
  auto c = ruclip::acquire_shared_model(ruclip_test::tiny_model_dir(), any);
  EXPECT_EQ(a.get(), b.get());
  if (c->model().device() == "cpu") {
    EXPECT_EQ(a.get(), c.get());
  }
  EXPECT_EQ(a->instance(), b->instance());
  EXPECT_GE(a->holders(), 2);
  EXPECT_LE(ruclip::shared_model_loads() - before, 1u);

  // Another instance id, another precision: other models.
  auto own = ruclip::acquire_shared_model(ruclip_test::tiny_model_dir(), cpu2(), "camera-7");
  EXPECT_NE(own.get(), a.get());
  EXPECT_NE(own->instance(), a->instance());
  EXPECT_EQ(own.get(), ruclip::acquire_shared_model(ruclip_test::tiny_model_dir(), cpu2(), "camera-7").get());
  ruclip::ModelOptions int8 = cpu2();
  int8.precision = ruclip::Precision::kInt8;
  EXPECT_NE(ruclip::acquire_shared_model(ruclip_test::tiny_model_dir(), int8).get(), a.get());
}

TEST(SharedModel, FreedWithTheLastHolderAndLoadedOnceUnderConcurrentAsks) {
  const std::string dir = ruclip_test::copy_tiny_model();
  std::weak_ptr<ruclip::SharedModel> weak;
  {
    auto first = ruclip::acquire_shared_model(dir, cpu2());
    weak = first;
  }
  EXPECT_TRUE(weak.expired()) << "the registry must not keep a model nobody uses";
  const uint64_t before = ruclip::shared_model_loads();
  std::vector<std::future<std::shared_ptr<ruclip::SharedModel>>> asks;
  for (int i = 0; i < 6; ++i)
    asks.push_back(std::async(std::launch::async, [&] { return ruclip::acquire_shared_model(dir, cpu2()); }));
  std::vector<std::shared_ptr<ruclip::SharedModel>> got;
  for (auto& f : asks) got.push_back(f.get());
  for (const auto& g : got) EXPECT_EQ(g.get(), got[0].get());
  EXPECT_EQ(ruclip::shared_model_loads() - before, 1u);
  EXPECT_EQ(got[0]->holders(), 6);
}

TEST(SharedModel, ErrorsAndThreadWarnings) {
  EXPECT_THROW(ruclip::acquire_shared_model("/nonexistent/model", cpu2()), ruclip::Error);
  auto a = tiny();
  std::vector<std::string> warnings;
  ruclip::ModelOptions one = cpu2();
  one.num_threads = ruclip::process_cpu_threads() + 1;
  auto b = ruclip::acquire_shared_model(ruclip_test::tiny_model_dir(), one, "", &warnings);
  EXPECT_EQ(a.get(), b.get());
  ASSERT_FALSE(warnings.empty());
  EXPECT_NE(warnings.back().find("not applied: CPU threads are process-wide"), std::string::npos) << warnings.back();
  // A model loaded while another runs doesn't change the threads either.
  auto c = ruclip::acquire_shared_model(ruclip_test::tiny_model_dir(), one, "other", &warnings);
  EXPECT_EQ(ruclip::process_cpu_threads(), 2);
  bool told = false;
  for (const auto& w : warnings) told |= w.find("not applied") != std::string::npos;
  EXPECT_TRUE(told);
  EXPECT_FALSE(c->model().kernels().threads_warning.empty());
  // A user of that model asking for the threads that run gets no threads
  // warning (the loader's isn't its own).
  ruclip::ModelOptions current = cpu2();
  current.num_threads = ruclip::process_cpu_threads();
  auto d = ruclip::acquire_shared_model(ruclip_test::tiny_model_dir(), current, "other", &warnings);
  EXPECT_EQ(c.get(), d.get());
  for (const auto& w : warnings) EXPECT_EQ(w.find("not applied"), std::string::npos) << w;
}

// Four sync streams of different pictures submitting from their own threads
// at once: every result is its own stream's picture and frame, and frames of
// several streams share model calls.
TEST(Scheduler, SyncStreamsGetTheirOwnResultsInSharedBatches) {
  auto shared = tiny();
  constexpr int kStreams = 4, kFrames = 40;
  std::vector<std::unique_ptr<InferenceScheduler::Stream>> streams;
  for (int s = 0; s < kStreams; ++s) {
    StreamOptions o;
    o.batch_size = 4;
    o.batch_timeout = 20ms;
    streams.push_back(shared->scheduler().open_stream(o));
    streams.back()->set_labels_now(kLabels);
  }
  const auto before = shared->scheduler().totals();
  std::atomic<int> wrong{0}, shared_batches{0};
  std::vector<std::thread> threads;
  for (int s = 0; s < kStreams; ++s)
    threads.emplace_back([&, s] {
      for (uint64_t f = 0; f < kFrames; ++f) {
        FrameAnalysis a;
        std::string error;
        ASSERT_EQ(streams[s]->submit(request(s, f), &a, &error), Submitted::kAnalyzed) << error;
        if (a.frame != f || a.pts != f * 1000 + s || which_image(a.embedding) != s) ++wrong;
        if (ruclip_test::cosine(a.embedding, fixture().embedding[s]) < 0.9999f) ++wrong;
        if (a.batch_streams > 1) ++shared_batches;
        ASSERT_EQ(a.scores.size(), kLabels.size());
      }
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(wrong, 0);
  const auto after = shared->scheduler().totals();
  EXPECT_EQ(after.frames - before.frames, uint64_t(kStreams * kFrames));
  EXPECT_LT(after.batches - before.batches, uint64_t(kStreams * kFrames)) << "no two frames ever shared a model call";
  EXPECT_GT(shared_batches, 0);
  for (auto& s : streams) {
    const auto st = s->stats();
    EXPECT_EQ(st.analyzed, uint64_t(kFrames));
    EXPECT_GT(st.latency_p95_ms, 0.0);
    EXPECT_GE(st.latency_p95_ms, st.latency_p50_ms);
  }
}

// Frames the model prepared (Model::prepare_frame: on the CPU here, in device
// memory on a GPU) go through the scheduler in either mode and get the
// embedding of the same frame's preprocessed pixels, though the frame itself
// is gone by the time the model runs.
TEST(Scheduler, PreparedFramesGetTheEmbeddingOfTheirPixels) {
  auto shared = tiny();
  const ruclip::Model& model = shared->model();
  const auto make_frame = [](std::vector<uint8_t>* bytes) {
    bytes->resize(64 * 48 * 3);
    for (size_t i = 0; i < bytes->size(); ++i) (*bytes)[i] = static_cast<uint8_t>((i * 37 + 11) & 255);
    ruclip::FrameView v;
    v.format = ruclip::PixelFormat::RGB;
    v.width = 64;
    v.height = 48;
    v.planes[0] = bytes->data();
    v.strides[0] = 64 * 3;
    return v;
  };
  std::vector<uint8_t> bytes;
  const ruclip::Normalization norm = model.normalization();
  std::vector<float> pixels(3 * static_cast<size_t>(norm.resolution) * norm.resolution);
  ruclip::preprocess(make_frame(&bytes), norm, pixels.data());
  ruclip::Embeddings want = model.encode_pixels(pixels.data(), 1);
  want.normalize_rows();

  for (StreamMode mode : {StreamMode::kSync, StreamMode::kAsync}) {
    std::mutex m;
    std::vector<FrameAnalysis> delivered;
    StreamOptions o;
    o.mode = mode;
    o.on_result = [&](FrameAnalysis&& a) {
      std::lock_guard<std::mutex> lock(m);
      delivered.push_back(std::move(a));
    };
    auto stream = shared->scheduler().open_stream(o);
    stream->set_labels_now(kLabels);
    FrameRequest r;
    r.frame = 7;
    r.prepared = model.prepare_frame(make_frame(&bytes));
    std::fill(bytes.begin(), bytes.end(), 0);  // the frame is gone
    FrameAnalysis a;
    std::string error;
    if (mode == StreamMode::kSync) {
      ASSERT_EQ(stream->submit(std::move(r), &a, &error), Submitted::kAnalyzed) << error;
    } else {
      ASSERT_EQ(stream->submit(std::move(r)), Submitted::kQueued);
      ASSERT_TRUE(stream->drain());
      std::lock_guard<std::mutex> lock(m);
      ASSERT_EQ(delivered.size(), 1u);
      a = delivered[0];
    }
    EXPECT_EQ(a.frame, 7u);
    EXPECT_LE(ruclip_test::max_abs_diff(a.embedding, want.data), 1e-6) << (mode == StreamMode::kSync ? "sync" : "async");
  }
  // A PreparedFrame of another kind is refused with a message.
  struct Foreign : ruclip::PreparedFrame {};
  const std::string e = ruclip_test::error_of([&] { model.encode_prepared({std::make_shared<Foreign>()}); });
  EXPECT_NE(e.find("not made by Model::prepare_frame"), std::string::npos) << e;
}

// async: results arrive in submit order on the callback; past queue-size the
// oldest waiting frame is dropped and counted; after drain() every
// submitted frame was analyzed or dropped.
TEST(Scheduler, AsyncDropsTheOldestAndDrainDeliversTheRest) {
  auto shared = tiny();
  std::mutex m;
  std::vector<FrameAnalysis> got;
  StreamOptions o;
  o.mode = StreamMode::kAsync;
  o.queue_size = 2;
  o.on_result = [&](FrameAnalysis&& a) {
    std::lock_guard<std::mutex> guard(m);
    got.push_back(std::move(a));
  };
  auto stream = shared->scheduler().open_stream(o);
  stream->set_labels_now(kLabels);
  uint64_t dropped_total = 0;
  for (uint64_t f = 0; f < 200; ++f) {
    uint64_t dropped = 0;
    ASSERT_EQ(stream->submit(request(int(f % 5), f), nullptr, nullptr, &dropped), Submitted::kQueued);
    dropped_total += dropped;
  }
  ASSERT_TRUE(stream->drain());
  const auto st = stream->stats();
  std::lock_guard<std::mutex> guard(m);
  EXPECT_EQ(st.dropped, dropped_total);
  EXPECT_EQ(got.size() + st.dropped, 200u);
  EXPECT_GT(st.dropped, 0u) << "200 frames at once must overflow a queue of 2";
  for (size_t i = 0; i < got.size(); ++i) {
    if (i) {
      EXPECT_GT(got[i].frame, got[i - 1].frame);
    }
    EXPECT_EQ(which_image(got[i].embedding), int(got[i].frame % 5));
  }
  EXPECT_EQ(got.back().frame, 199u);  // the newest is never the one dropped
}

// A stream with a deep queue can't starve a sync stream: frames take turns.
// A stand-in for time: the flooding stream's results wait for permits the
// test hands out one at a time, so the worker (which delivers them) advances
// only when the test lets it, and what it did in between is counted exactly.
class Permits {
 public:
  void take() {  // on the worker thread, in the flood's on_result
    std::unique_lock<std::mutex> lk(mu_);
    blocked_ = available_ == 0 && !unlimited_;
    cv_.notify_all();
    cv_.wait(lk, [&] { return unlimited_ || available_ > 0; });
    blocked_ = false;
    if (!unlimited_) --available_;
  }
  // Waits until every permit given is taken and the worker waits for the next
  // one: nothing moves until give_one (the timeout is a hang guard only).
  void wait_until_worker_waits() {
    std::unique_lock<std::mutex> lk(mu_);
    ASSERT_TRUE(cv_.wait_for(lk, 60s, [&] { return available_ == 0 && blocked_; })) << "the worker hung";
  }
  void give_one() {
    std::lock_guard<std::mutex> guard(mu_);
    ++available_;
    cv_.notify_all();
  }
  void open_all() {
    std::lock_guard<std::mutex> guard(mu_);
    unlimited_ = true;
    cv_.notify_all();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  int available_ = 0;
  bool blocked_ = false, unlimited_ = false;
};

TEST(Scheduler, StreamsTakeTurns) {
  auto shared = tiny();
  Permits permits;
  StreamOptions flood_options;
  flood_options.mode = StreamMode::kAsync;
  flood_options.queue_size = 1000;
  flood_options.batch_size = 2;
  flood_options.on_result = [&](FrameAnalysis&&) { permits.take(); };
  auto flood = shared->scheduler().open_stream(flood_options);
  flood->set_labels_now(kLabels);
  StreamOptions sync_options;
  sync_options.batch_size = 2;
  auto sync = shared->scheduler().open_stream(sync_options);
  sync->set_labels_now(kLabels);
  for (uint64_t f = 0; f < 600; ++f) flood->submit(request(0, f));
  // The sync frame joins the queue behind 598 or more flood frames.
  FrameAnalysis a;
  auto waiting = std::async(std::launch::async, [&] { return sync->submit(request(1, 0), &a); });
  // Whatever fails below, the worker is let go before `waiting` and the streams are waited for.
  struct OpenAll {
    Permits& p;
    ~OpenAll() { p.open_all(); }
  } open_all_at_exit{permits};
  for (int guard = 0; sync->stats().submitted == 0; ++guard) {
    ASSERT_LT(guard, 60000) << "the sync frame was never queued";
    std::this_thread::sleep_for(1ms);
  }
  // One flood result at a time until the sync frame is analyzed (its stats
  // change under the scheduler's lock before that batch's callbacks run). Its
  // turn comes right after the batch in flight (at most 2 flood frames), in a
  // batch shared with the flood.
  int flood_before_sync = 0;
  for (;;) {
    ASSERT_NO_FATAL_FAILURE(permits.wait_until_worker_waits());
    ASSERT_EQ(flood->stats().failed + sync->stats().failed, 0u) << "the model failed";
    if (sync->stats().analyzed == 1) break;
    ASSERT_LT(flood_before_sync, 600) << "the sync frame never got its turn";
    permits.give_one();
    ++flood_before_sync;
  }
  permits.open_all();
  ASSERT_EQ(waiting.get(), Submitted::kAnalyzed);
  EXPECT_EQ(which_image(a.embedding), 1);
  EXPECT_LE(flood_before_sync, 2) << "the sync stream waited for the flooding stream's queue";
  EXPECT_EQ(a.batch_streams, 2) << "the sync frame did not share the next batch with the flood";
  flood->close();
}

// The defect of the element's old worker, here as its own test: a flush that
// comes while drain() waits must wake it (else EOS hangs the streaming thread).
TEST(Scheduler, FlushDuringDrainWakesIt) {
  auto shared = tiny();
  StreamOptions o;
  o.mode = StreamMode::kAsync;
  o.batch_size = 8;
  o.batch_timeout = 30s;  // the worker gathers: a second, idle stream keeps the batch open
  auto busy = shared->scheduler().open_stream(o);
  busy->set_labels_now(kLabels);
  StreamOptions idle_options = o;
  auto idle = shared->scheduler().open_stream(idle_options);
  idle->set_labels_now(kLabels);
  busy->submit(request(0, 0));
  auto drained = std::async(std::launch::async, [&] { return busy->drain(); });
  EXPECT_EQ(drained.wait_for(200ms), std::future_status::timeout) << "nothing to wait for: the test proves nothing";
  busy->flush_start();
  ASSERT_EQ(drained.wait_for(5s), std::future_status::ready) << "flush_start did not wake drain()";
  EXPECT_FALSE(drained.get());
  EXPECT_EQ(busy->submit(request(0, 1)), Submitted::kFlushing);
  busy->flush_stop();
  idle->close();  // now every open stream has a frame waiting: the batch goes at once
  busy->submit(request(0, 2));
  EXPECT_TRUE(busy->drain());
  EXPECT_EQ(busy->stats().analyzed, 1u);
}

// A flush wakes a sync submit() waiting for its frame too, and the late
// result is discarded, never given to a later frame.
TEST(Scheduler, FlushWakesAWaitingSyncSubmit) {
  auto shared = tiny();
  StreamOptions o;
  o.batch_timeout = 30s;
  auto s = shared->scheduler().open_stream(o);
  s->set_labels_now(kLabels);
  auto other = shared->scheduler().open_stream(o);  // idle: holds the batch open
  other->set_labels_now(kLabels);
  auto waiting = std::async(std::launch::async, [&] { return s->submit(request(0, 0)); });
  EXPECT_EQ(waiting.wait_for(200ms), std::future_status::timeout);
  s->flush_start();
  ASSERT_EQ(waiting.wait_for(5s), std::future_status::ready);
  EXPECT_EQ(waiting.get(), Submitted::kFlushing);
  s->flush_stop();
  other->close();
  FrameAnalysis a;
  ASSERT_EQ(s->submit(request(3, 1), &a), Submitted::kAnalyzed);
  EXPECT_EQ(a.frame, 1u);
  EXPECT_EQ(which_image(a.embedding), 3);
}

TEST(Scheduler, IdenticalLabelSetsAreComputedOnce) {
  auto shared = tiny();
  const std::vector<std::string> labels = {"красный круг", "синий квадрат", "редкий набор " + std::to_string(getpid())};
  const uint64_t before = shared->scheduler().totals().label_sets_built;
  std::vector<std::unique_ptr<InferenceScheduler::Stream>> streams;
  for (int i = 0; i < 4; ++i) streams.push_back(shared->scheduler().open_stream({}));
  std::vector<std::thread> threads;
  for (auto& s : streams) threads.emplace_back([&] { s->set_labels_now(labels); });
  for (auto& t : threads) t.join();
  EXPECT_EQ(shared->scheduler().totals().label_sets_built - before, 1u);
  for (auto& s : streams) EXPECT_EQ(s->labels().get(), streams[0]->labels().get());
}

// set_labels builds off the caller's thread, swaps the set in whole and says
// so; bad labels keep the old set and say why; a newer request wins.
TEST(Scheduler, RuntimeLabelChanges) {
  auto shared = tiny();
  std::mutex m;
  std::condition_variable cv;
  std::vector<std::string> applied, errors;
  StreamOptions o;
  o.on_labels = [&](const std::shared_ptr<const ruclip::LabelSet>& set) {
    std::lock_guard<std::mutex> guard(m);
    applied.push_back(set->labels[0]);
    cv.notify_all();
  };
  o.on_labels_error = [&](const std::string& e) {
    std::lock_guard<std::mutex> guard(m);
    errors.push_back(e);
    cv.notify_all();
  };
  auto s = shared->scheduler().open_stream(o);
  EXPECT_THROW(s->submit(request(0, 0)), ruclip::Error);  // no labels yet
  s->set_labels_now(kLabels);
  s->set_labels({"дом"}, {"фото без метки"});  // no {}: refused
  {
    std::unique_lock<std::mutex> lk(m);
    ASSERT_TRUE(cv.wait_for(lk, 20s, [&] { return !errors.empty(); }));
  }
  EXPECT_NE(errors[0].find("has no {}"), std::string::npos) << errors[0];
  EXPECT_EQ(s->labels()->labels, kLabels);
  for (int i = 0; i < 20; ++i) s->set_labels({"метка " + std::to_string(i)});
  {
    std::unique_lock<std::mutex> lk(m);
    ASSERT_TRUE(cv.wait_for(lk, 20s, [&] { return !applied.empty() && applied.back() == "метка 19"; }));
    EXPECT_LT(applied.size(), 20u) << "requests made before the label thread got to them are replaced, not queued";
  }
  FrameAnalysis a;
  ASSERT_EQ(s->submit(request(0, 1), &a), Submitted::kAnalyzed);
  EXPECT_EQ(a.labels->labels, std::vector<std::string>{"метка 19"});
}

TEST(Scheduler, FailuresReachTheirStreamOnly) {
  auto shared = tiny();
  auto sync = shared->scheduler().open_stream({});
  sync->set_labels_now(kLabels);
  FrameRequest bad = request(0, 0);
  bad.pixels.resize(10);
  std::string error;
  EXPECT_EQ(sync->submit(bad, nullptr, &error), Submitted::kFailed);
  EXPECT_NE(error.find("expected 3 x"), std::string::npos) << error;
  // async: on_error; the next good frame is analyzed.
  std::atomic<int> errors{0}, results{0};
  StreamOptions o;
  o.mode = StreamMode::kAsync;
  o.on_error = [&](const std::string&) { ++errors; };
  o.on_result = [&](FrameAnalysis&&) { ++results; };
  auto async = shared->scheduler().open_stream(o);
  async->set_labels_now(kLabels);
  async->submit(bad);
  ASSERT_TRUE(async->drain());
  async->submit(request(1, 1));
  ASSERT_TRUE(async->drain());
  EXPECT_EQ(errors, 1);
  EXPECT_EQ(results, 1);
  FrameAnalysis a;
  EXPECT_EQ(sync->submit(request(2, 2), &a), Submitted::kAnalyzed);
}

// close() returns only once no callback of the stream runs, and none comes after.
TEST(Scheduler, NoCallbackAfterClose) {
  auto shared = tiny();
  for (int round = 0; round < 20; ++round) {
    std::atomic<bool> closed{false};
    std::atomic<int> late{0};
    StreamOptions o;
    o.mode = StreamMode::kAsync;
    o.queue_size = 4;
    o.on_result = [&](FrameAnalysis&&) {
      std::this_thread::sleep_for(1ms);
      if (closed) ++late;
    };
    auto s = shared->scheduler().open_stream(o);
    s->set_labels_now(kLabels);
    for (uint64_t f = 0; f < 8; ++f) s->submit(request(int(f % 5), f));
    s->close();
    closed = true;
    std::this_thread::sleep_for(2ms);
    EXPECT_EQ(late, 0) << "round " << round;
  }
}

// The regions of one frame go in together: one model call, results in order.
TEST(Scheduler, SubmitAllSharesOneCallAndKeepsTheOrder) {
  auto shared = tiny();
  StreamOptions o;
  o.batch_size = 8;
  auto s = shared->scheduler().open_stream(o);
  s->set_labels_now(kLabels);
  std::vector<FrameRequest> regions;
  for (int i : {3, 0, 4, 1, 2}) regions.push_back(request(i, uint64_t(i)));
  std::vector<FrameAnalysis> out;
  const auto before = shared->scheduler().totals();
  ASSERT_EQ(s->submit_all(std::move(regions), &out), Submitted::kAnalyzed);
  ASSERT_EQ(out.size(), 5u);
  const int order[] = {3, 0, 4, 1, 2};
  for (size_t i = 0; i < out.size(); ++i) {
    EXPECT_EQ(which_image(out[i].embedding), order[i]);
    EXPECT_EQ(out[i].frame, uint64_t(order[i]));
    EXPECT_EQ(out[i].batch_frames, 5);
  }
  EXPECT_EQ(shared->scheduler().totals().batches - before.batches, 1u);
  EXPECT_EQ(s->submit_all({}, &out), Submitted::kAnalyzed);  // nothing to do: no call
  EXPECT_TRUE(out.empty());
}
