// ruclipfilter through GstHarness and real pipelines.
#include <gst/check/gstharness.h>
#include <gst/gst.h>
#include <gtest/gtest.h>
#include <opencv2/imgcodecs.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <map>
#include <set>
#include <thread>

#include "element_util.h"
#include "ruclipmeta.h"
#include "ruclip/checkpoint.h"
#include "ruclip/cpu.h"
#include "ruclip/tools/image_files.h"
#include "ruclip/tools/synthetic.h"
#include "test_util.h"

using element_test::LabelResult;
using element_test::make_buffer;
using element_test::read_meta;
namespace fs = std::filesystem;

namespace {

const std::vector<std::string> kLabels = {"кошка", "собака", "самолёт", "грузовик"};
const char* kLabelsProp = "кошка;собака;самолёт;грузовик";

std::string run_command(const std::string& cmd) {
  std::string out;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return out;
  char buf[4096];
  for (size_t n; (n = fread(buf, 1, sizeof buf, p)) > 0;) out.append(buf, n);
  pclose(p);
  return out;
}

// A property value inside a gst_parse_launch() description.
std::string gst_quote(const std::string& s) { return "\"" + s + "\""; }

std::string shell_quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

// `ruclip classify` of `files` with `model` and `labels`: label -> probability, per file.
std::vector<std::map<std::string, double>> classify_with(const std::string& model, const std::vector<std::string>& labels,
                                                         const std::vector<std::string>& files) {
  std::string cmd = shell_quote(std::getenv("RUCLIP_EXE")) + " classify --model " + shell_quote(model);
  for (const auto& l : labels) cmd += " --label " + shell_quote(l);
  for (const auto& f : files) cmd += " " + shell_quote(f);
  const auto json = nlohmann::json::parse(run_command(cmd));
  std::vector<std::map<std::string, double>> out;
  for (const auto& image : json["images"]) {
    std::map<std::string, double> m;
    for (const auto& l : image["labels"]) m[l["label"]] = l["probability"];
    out.push_back(m);
  }
  return out;
}

// The same with the test model and kLabels.
std::vector<std::map<std::string, double>> classify_cli(const std::vector<std::string>& files) {
  return classify_with(ruclip_test::tiny_model_dir(), kLabels, files);
}

GstElement* make_filter(const std::string& extra_props = "") {
  GError* error = nullptr;
  const std::string desc = "ruclipfilter model=" + gst_quote(ruclip_test::tiny_model_dir()) + " labels=\"" +
                           kLabelsProp + "\" num-threads=2 " + extra_props;
  GstElement* e = gst_parse_launch(desc.c_str(), &error);
  if (!e) {
    ADD_FAILURE() << desc << ": " << (error ? error->message : "?");
    g_clear_error(&error);
  }
  return e;
}

GstHarness* make_harness(const std::string& extra_props, const std::string& caps) {
  GstElement* e = make_filter(extra_props);
  GstHarness* h = gst_harness_new_with_element(e, "sink", "src");
  gst_object_unref(e);
  gst_harness_set_src_caps_str(h, caps.c_str());
  return h;
}

std::vector<element_test::Rgb> fixture_rgb() {
  std::vector<element_test::Rgb> out;
  for (const auto& image : ruclip_test::expected()["images"])
    out.push_back(element_test::to_rgb(
        ruclip::load_image(ruclip_test::tiny_model_dir() + "/" + image["file"].get<std::string>())));
  return out;
}

std::vector<std::string> fixture_files() {
  std::vector<std::string> out;
  for (const auto& image : ruclip_test::expected()["images"])
    out.push_back(ruclip_test::tiny_model_dir() + "/" + image["file"].get<std::string>());
  return out;
}

// Pushes one buffer, returns the meta the element attached to it.
LabelResult analyze_one(GstHarness* h, GstBuffer* buffer) {
  GstBuffer* out = gst_harness_push_and_pull(h, buffer);
  LabelResult r;
  EXPECT_TRUE(read_meta(out, &r));
  gst_buffer_unref(out);
  return r;
}

double max_prob_diff(const LabelResult& r, const std::map<std::string, double>& want) {
  double worst = 0;
  for (size_t i = 0; i < r.labels.size(); ++i) worst = std::max(worst, std::fabs(r.scores[i] - want.at(r.labels[i])));
  return worst;
}

}  // namespace

class Element : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { gst_init(nullptr, nullptr); }
};

TEST_F(Element, PackedFormatsAgreeWithClassify) {
  const auto images = fixture_rgb();
  const auto want = classify_cli(fixture_files());
  for (GstVideoFormat format : {GST_VIDEO_FORMAT_RGB, GST_VIDEO_FORMAT_BGR, GST_VIDEO_FORMAT_RGBA,
                                GST_VIDEO_FORMAT_BGRA, GST_VIDEO_FORMAT_RGBx, GST_VIDEO_FORMAT_BGRx,
                                GST_VIDEO_FORMAT_xRGB, GST_VIDEO_FORMAT_xBGR}) {
    for (size_t i = 0; i < images.size(); ++i) {
      std::string caps;
      GstBuffer* buffer = make_buffer(images[i], format, &caps);
      GstHarness* h = make_harness("", caps);
      const LabelResult r = analyze_one(h, buffer);
      ASSERT_EQ(r.labels.size(), 4u);
      EXPECT_TRUE(r.fresh);
      EXPECT_EQ(r.frame, 0u);
      EXPECT_EQ(r.model, ruclip_test::tiny_model_dir());
      const auto best = std::max_element(want[i].begin(), want[i].end(),
                                         [](auto& a, auto& b) { return a.second < b.second; });
      EXPECT_EQ(r.labels[0], best->first);
      EXPECT_LE(max_prob_diff(r, want[i]), 2e-3) << gst_video_format_to_string(format) << " image " << i;
      for (size_t k = 1; k < r.scores.size(); ++k) EXPECT_GE(r.scores[k - 1], r.scores[k]);
      gst_harness_teardown(h);
    }
  }
}

// The gray picture of each of `images` (as GRAY8 caps carry it), and the
// same as PNG files in a temp dir, for `ruclip classify` to see the same gray.
static std::vector<element_test::Rgb> gray_pictures(const std::vector<element_test::Rgb>& images,
                                                    std::vector<std::string>* files) {
  const std::string dir = ruclip_test::make_temp_dir();
  std::vector<element_test::Rgb> grays;
  for (size_t i = 0; i < images.size(); ++i) {
    grays.push_back(element_test::to_gray_rgb(images[i]));
    cv::Mat m(grays[i].height, grays[i].width, CV_8UC1);
    for (int y = 0; y < m.rows; ++y)
      for (int x = 0; x < m.cols; ++x) m.at<uint8_t>(y, x) = grays[i].at(x, y, 0);
    files->push_back(dir + "/gray" + std::to_string(i) + ".png");
    EXPECT_TRUE(cv::imwrite(files->back(), m));
  }
  return grays;
}

TEST_F(Element, Gray8AgreesWithClassifyOfTheGrayImage) {
  const auto images = fixture_rgb();
  std::vector<std::string> files;
  const std::vector<element_test::Rgb> grays = gray_pictures(images, &files);
  const auto want = classify_cli(files);
  for (size_t i = 0; i < grays.size(); ++i) {
    std::string caps;
    GstBuffer* buffer = make_buffer(grays[i], GST_VIDEO_FORMAT_GRAY8, &caps);
    GstHarness* h = make_harness("", caps);
    const LabelResult r = analyze_one(h, buffer);
    EXPECT_LE(max_prob_diff(r, want[i]), 2e-3) << "image " << i;
    gst_harness_teardown(h);
  }
}

// I420/NV12 carry chroma at half resolution, so they can't equal the RGB
// picture exactly. Measured on the fixture images (tiny random-weight model,
// whose probabilities are very sensitive): see kYuvTolerance.
TEST_F(Element, PlanarYuvAgreesWithClassifyWithinMeasuredTolerance) {
  constexpr double kYuvTolerance = 0.02;
  const auto images = fixture_rgb();
  const auto want = classify_cli(fixture_files());
  for (GstVideoFormat format : {GST_VIDEO_FORMAT_I420, GST_VIDEO_FORMAT_NV12}) {
    double worst = 0;
    for (size_t i = 0; i < images.size(); ++i) {
      std::string caps;
      GstBuffer* buffer = make_buffer(images[i], format, &caps);
      GstHarness* h = make_harness("", caps);
      const LabelResult r = analyze_one(h, buffer);
      worst = std::max(worst, max_prob_diff(r, want[i]));
      gst_harness_teardown(h);
    }
    std::printf("%s: max |probability - classify| = %.5f\n", gst_video_format_to_string(format), worst);
    EXPECT_LE(worst, kYuvTolerance) << gst_video_format_to_string(format);
  }
}

namespace {

// Pushes `n` frames of one picture with PTS i * duration; returns, per
// output buffer, whether it carried a fresh result and the meta's frame.
struct Pushed {
  std::vector<bool> fresh;
  std::vector<bool> has_meta;
  std::vector<LabelResult> metas;
};

Pushed push_frames(GstHarness* h, const element_test::Rgb& rgb, GstVideoFormat format, int n,
                   GstClockTime duration, GstClockTime first_pts = 0) {
  Pushed p;
  std::string caps;
  for (int i = 0; i < n; ++i) {
    GstBuffer* b = make_buffer(rgb, format, &caps);
    GST_BUFFER_PTS(b) = first_pts + i * duration;
    GST_BUFFER_DURATION(b) = duration;
    GstBuffer* out = gst_harness_push_and_pull(h, b);
    LabelResult r;
    const bool has = read_meta(out, &r);
    p.has_meta.push_back(has);
    p.fresh.push_back(has && r.fresh);
    p.metas.push_back(r);
    gst_buffer_unref(out);
  }
  return p;
}

guint64 get_u64(GstHarness* h, const char* prop) {
  guint64 v = 0;
  g_object_get(h->element, prop, &v, NULL);
  return v;
}

}  // namespace

TEST_F(Element, IntervalAnalyzesEveryNthFrame) {
  const auto rgb = fixture_rgb()[0];
  std::string caps;
  gst_buffer_unref(make_buffer(rgb, GST_VIDEO_FORMAT_RGB, &caps));
  GstHarness* h = make_harness("interval=7", caps);
  const Pushed p = push_frames(h, rgb, GST_VIDEO_FORMAT_RGB, 300, GST_SECOND / 30);
  for (int i = 0; i < 300; ++i) {
    EXPECT_EQ(p.fresh[i], i % 7 == 0) << "frame " << i;
    ASSERT_TRUE(p.has_meta[i]);  // later buffers carry the latest result
    EXPECT_EQ(p.metas[i].frame, guint64(i - i % 7));
    EXPECT_EQ(p.metas[i].source_pts, guint64(i - i % 7) * (GST_SECOND / 30));
  }
  EXPECT_EQ(get_u64(h, "frames-analyzed"), 43u);  // 0, 7, ..., 294
  gst_harness_teardown(h);
}

TEST_F(Element, IntervalTimeAnalyzesAtMostOncePerPeriod) {
  const auto rgb = fixture_rgb()[0];
  std::string caps;
  gst_buffer_unref(make_buffer(rgb, GST_VIDEO_FORMAT_RGB, &caps));
  // 25 fps (40 ms) and at most one analysis per 200 ms: frames 0, 5, 10, ...
  GstHarness* h = make_harness("interval-time=200000000", caps);
  const Pushed p = push_frames(h, rgb, GST_VIDEO_FORMAT_RGB, 300, 40 * GST_MSECOND);
  for (int i = 0; i < 300; ++i) EXPECT_EQ(p.fresh[i], i % 5 == 0) << "frame " << i;
  EXPECT_EQ(get_u64(h, "frames-analyzed"), 60u);
  gst_harness_teardown(h);

  // Both rules together: every 2nd frame, and at most once per 150 ms at 40 ms
  // per frame: 0, 4, 8, ... (frame 2 is at 80 ms, too early; 4 at 160 ms).
  h = make_harness("interval=2 interval-time=150000000", caps);
  const Pushed q = push_frames(h, rgb, GST_VIDEO_FORMAT_RGB, 300, 40 * GST_MSECOND);
  for (int i = 0; i < 300; ++i) EXPECT_EQ(q.fresh[i], i % 4 == 0) << "frame " << i;
  gst_harness_teardown(h);
}

TEST_F(Element, TopKThresholdAndEmbedding) {
  const auto rgb = fixture_rgb()[1];
  std::string caps;
  GstBuffer* b = make_buffer(rgb, GST_VIDEO_FORMAT_RGB, &caps);
  GstHarness* h = make_harness("top-k=2 attach-embedding=true", caps);
  const LabelResult r = analyze_one(h, b);
  EXPECT_EQ(r.labels.size(), 2u);
  ASSERT_EQ(r.embedding.size(), 48u);  // embed_dim of the tiny model
  double norm = 0;
  for (double v : r.embedding) norm += v * v;
  EXPECT_NEAR(norm, 1.0, 1e-5);
  gst_harness_teardown(h);

  b = make_buffer(rgb, GST_VIDEO_FORMAT_RGB, &caps);
  h = make_harness("threshold=0.3", caps);
  const LabelResult t = analyze_one(h, b);
  for (double s : t.scores) EXPECT_GE(s, 0.3);
  EXPECT_LT(t.labels.size(), 4u);
  gst_harness_teardown(h);
}

// precision=bf16: the same labels in the same order as fp32, the embedding
// within bf16's rounding of fp32's (on a CPU without native bf16: fp32's).
TEST_F(Element, Bf16PrecisionFollowsFp32) {
  const auto rgb = fixture_rgb()[1];
  std::string caps;
  GstBuffer* b = make_buffer(rgb, GST_VIDEO_FORMAT_RGB, &caps);
  GstHarness* h = make_harness("attach-embedding=true", caps);
  const LabelResult fp32 = analyze_one(h, b);
  gst_harness_teardown(h);
  b = make_buffer(rgb, GST_VIDEO_FORMAT_RGB, &caps);
  h = make_harness("attach-embedding=true precision=bf16", caps);
  const LabelResult bf16 = analyze_one(h, b);
  gst_harness_teardown(h);
  EXPECT_EQ(bf16.labels, fp32.labels);
  ASSERT_EQ(bf16.embedding.size(), fp32.embedding.size());
  double dot = 0, diff = 0;
  for (size_t i = 0; i < fp32.embedding.size(); ++i) {
    dot += fp32.embedding[i] * bf16.embedding[i];
    diff = std::max(diff, std::abs(fp32.embedding[i] - bf16.embedding[i]));
  }
  EXPECT_GE(dot, 0.995);
  if (ruclip::cpu_features().native_bf16())
    EXPECT_GT(diff, 0.0) << "precision=bf16 gave fp32's exact embedding";
  else  // no native bf16: the element warns and runs fp32's kernels
    EXPECT_EQ(diff, 0.0) << "precision=bf16 ran bf16 on a CPU without native bf16";
}

// The 'stats' property counts what the element did and how long it took.
TEST_F(Element, StatsCountFramesAndTime) {
  const auto rgb = fixture_rgb()[0];
  std::string caps;
  gst_buffer_unref(make_buffer(rgb, GST_VIDEO_FORMAT_RGB, &caps));
  GstHarness* h = make_harness("interval=4", caps);
  push_frames(h, rgb, GST_VIDEO_FORMAT_RGB, 40, GST_SECOND / 30);
  GstStructure* stats = nullptr;
  g_object_get(h->element, "stats", &stats, NULL);
  ASSERT_NE(stats, nullptr);
  guint64 frames = 0, sampled = 0, calls = 0;
  double passthrough = -1, sampled_ms = -1, preprocess = -1, inference = -1;
  ASSERT_TRUE(gst_structure_get(stats, "frames", G_TYPE_UINT64, &frames, "frames-sampled", G_TYPE_UINT64, &sampled,
                                "inference-calls", G_TYPE_UINT64, &calls, "passthrough-ms", G_TYPE_DOUBLE,
                                &passthrough, "sampled-ms", G_TYPE_DOUBLE, &sampled_ms, "preprocess-ms",
                                G_TYPE_DOUBLE, &preprocess, "inference-ms", G_TYPE_DOUBLE, &inference, NULL));
  gst_structure_free(stats);
  EXPECT_EQ(frames, 40u);
  EXPECT_EQ(sampled, 10u);
  EXPECT_EQ(calls, 10u);  // sync mode: one model call per sampled frame
  EXPECT_GT(passthrough, 0.0);
  EXPECT_GT(preprocess, 0.0);
  EXPECT_GT(inference, 0.0);
  EXPECT_GE(sampled_ms, preprocess + inference);  // sync: both happen inside the sampled frame
  gst_harness_teardown(h);
}

TEST_F(Element, RuntimeLabelChangeSwapsWholeSets) {
  const auto rgb = fixture_rgb()[2];
  std::string caps;
  gst_buffer_unref(make_buffer(rgb, GST_VIDEO_FORMAT_RGB, &caps));
  GstHarness* h = make_harness("", caps);
  const std::set<std::string> a(kLabels.begin(), kLabels.end());
  const std::set<std::string> b = {"дерево", "море", "город"};
  // Change labels back and forth while frames stream; every result must be
  // scored against exactly one whole set.
  std::set<std::string> seen_sets;
  for (int round = 0; round < 6; ++round) {
    g_object_set(h->element, "labels", round % 2 ? kLabelsProp : "дерево;море;город", NULL);
    const Pushed p = push_frames(h, rgb, GST_VIDEO_FORMAT_RGB, 20, GST_SECOND / 30, round * GST_SECOND);
    for (const auto& m : p.metas) {
      const std::set<std::string> got(m.labels.begin(), m.labels.end());
      EXPECT_TRUE(got == a || got == b);
      seen_sets.insert(got == a ? "a" : "b");
    }
  }
  // Once the swap is done, results use the new set.
  g_object_set(h->element, "labels", "дерево;море;город", NULL);
  for (int i = 0; i < 200; ++i) {
    gchar* active = nullptr;
    g_object_get(h->element, "active-labels", &active, NULL);
    const bool done = std::string(active) == "дерево;море;город";
    g_free(active);
    if (done) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  const Pushed p = push_frames(h, rgb, GST_VIDEO_FORMAT_RGB, 3, GST_SECOND / 30, 10 * GST_SECOND);
  EXPECT_EQ(std::set<std::string>(p.metas[0].labels.begin(), p.metas[0].labels.end()), b);
  EXPECT_EQ(seen_sets.size(), 2u);
  gst_harness_teardown(h);
}

TEST_F(Element, BadRuntimeLabelsKeepTheOldOnes) {
  const auto rgb = fixture_rgb()[0];
  std::string caps;
  gst_buffer_unref(make_buffer(rgb, GST_VIDEO_FORMAT_RGB, &caps));
  GstHarness* h = make_harness("", caps);
  g_object_set(h->element, "templates", "без метки", NULL);  // no {}
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  gchar* active = nullptr;
  g_object_get(h->element, "active-labels", &active, NULL);
  EXPECT_STREQ(active, kLabelsProp);
  g_free(active);
  const Pushed p = push_frames(h, rgb, GST_VIDEO_FORMAT_RGB, 2, GST_SECOND / 30);
  EXPECT_EQ(p.metas[0].labels.size(), 4u);
  gst_harness_teardown(h);
}

namespace {

// An application thread: calls step(0), step(1), ... every `period` until stopped.
class AppThread {
 public:
  AppThread(std::chrono::microseconds period, std::function<void(guint)> step)
      : thread_([this, period, step] {
          for (guint i = 0; !stop_; ++i, ++steps_) {
            step(i);
            std::this_thread::sleep_for(period);
          }
        }) {}
  ~AppThread() { stop(); }
  // Stops and joins it; returns the number of steps it made.
  guint stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
    return steps_;
  }

 private:
  std::atomic<bool> stop_{false};
  std::atomic<guint> steps_{0};
  std::thread thread_;
};

std::string get_string(GstElement* e, const char* prop) {
  gchar* v = nullptr;
  g_object_get(e, prop, &v, NULL);
  std::string s = v ? v : "";
  g_free(v);
  return s;
}

// The labels an application thread sets after `changes` changes: the two sets
// in turn, but only once the last one is in use or the element is stopped
// (nullptr: not yet).
const char* next_labels(GstElement* e, int changes) {
  const char* last = changes % 2 ? "дерево;море;город" : kLabelsProp;
  const std::string active = get_string(e, "active-labels");
  if (changes > 0 && !active.empty() && active != last) return nullptr;
  return changes % 2 ? kLabelsProp : "дерево;море;город";
}

// Element messages named "ruclip" waiting on `bus`.
guint64 count_result_messages(GstBus* bus) {
  guint64 n = 0;
  while (GstMessage* m = gst_bus_pop_filtered(bus, GST_MESSAGE_ELEMENT)) {
    n += gst_structure_has_name(gst_message_get_structure(m), "ruclip");
    gst_message_unref(m);
  }
  return n;
}

}  // namespace

// An application thread changes labels and the sampling and reporting
// properties in a loop while the streaming thread pushes frames in async mode
// (the worker runs too): what ThreadSanitizer checks (scripts/tsan.sh). Every
// result must still be scored against one whole label set.
TEST_F(Element, PropertiesChangeFromAnotherThreadWhileStreaming) {
  const auto rgb = fixture_rgb()[0];
  std::string caps;
  gst_buffer_unref(make_buffer(rgb, GST_VIDEO_FORMAT_RGB, &caps));
  GstHarness* h = make_harness("mode=async post-messages=true", caps);
  GstBus* bus = gst_bus_new();
  gst_element_set_bus(h->element, bus);
  const std::set<std::string> a(kLabels.begin(), kLabels.end()), b = {"дерево", "море", "город"};
  int label_changes = 0;
  AppThread app(std::chrono::milliseconds(1), [&](guint i) {
    // New labels once the last ones are in use (see next_labels), the rest every step.
    if (const char* next = next_labels(h->element, label_changes)) {
      g_object_set(h->element, "labels", next, NULL);
      ++label_changes;
    }
    g_object_set(h->element, "threshold", (i % 3) * 0.1, "top-k", i % 4, "interval", 1 + i % 3, "interval-time",
                 guint64(i % 2 ? 0 : GST_SECOND / 20), NULL);
    get_u64(h, "frames-analyzed");
  });
  Pushed p;
  for (int i = 0; i < 300; ++i) {
    const Pushed one = push_frames(h, rgb, GST_VIDEO_FORMAT_RGB, 1, GST_SECOND / 30, i * (GST_SECOND / 30));
    p.metas.push_back(one.metas[0]);
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  EXPECT_GT(app.stop(), 20u);
  EXPECT_GT(label_changes, 2);
  int with_labels = 0;
  for (const auto& m : p.metas) {
    const std::set<std::string> got(m.labels.begin(), m.labels.end());
    EXPECT_TRUE(std::includes(a.begin(), a.end(), got.begin(), got.end()) ||
                std::includes(b.begin(), b.end(), got.begin(), got.end()));
    for (size_t k = 1; k < m.scores.size(); ++k) EXPECT_GE(m.scores[k - 1], m.scores[k]);
    with_labels += !m.labels.empty();
  }
  EXPECT_GT(with_labels, 0);
  gst_harness_push_event(h, gst_event_new_eos());
  EXPECT_EQ(count_result_messages(bus), get_u64(h, "frames-analyzed"));
  gst_harness_teardown(h);
  gst_object_unref(bus);
}

// Labels set from an application thread while the pipeline keeps going
// PLAYING <-> NULL (the element's worker starting and stopping): none may be
// lost, the last one set is the one in use. (Found by scripts/tsan.sh: a change
// made while start() ran used to be dropped.)
TEST_F(Element, LabelsSetDuringStateChangesAreApplied) {
  const std::string desc = "videotestsrc num-buffers=3 ! video/x-raw,format=RGB,width=64,height=48 ! ruclipfilter "
                           "name=rc mode=async model=" + gst_quote(ruclip_test::tiny_model_dir()) + " labels=\"" +
                           kLabelsProp + "\" ! fakesink";
  GstElement* pipeline = gst_parse_launch(desc.c_str(), nullptr);
  ASSERT_NE(pipeline, nullptr);
  GstElement* rc = gst_bin_get_by_name(GST_BIN(pipeline), "rc");
  GstBus* bus = gst_element_get_bus(pipeline);
  int label_changes = 0;
  AppThread app(std::chrono::milliseconds(1), [&](guint) {
    if (const char* next = next_labels(rc, label_changes)) {
      g_object_set(rc, "labels", next, NULL);
      ++label_changes;
    }
  });
  for (int cycle = 0; cycle < 20; ++cycle) {
    ASSERT_NE(gst_element_set_state(pipeline, GST_STATE_PLAYING), GST_STATE_CHANGE_FAILURE);
    GstMessage* m = gst_bus_timed_pop_filtered(bus, 20 * GST_SECOND, (GstMessageType)(GST_MESSAGE_EOS | GST_MESSAGE_ERROR));
    ASSERT_NE(m, nullptr);
    EXPECT_EQ(GST_MESSAGE_TYPE(m), GST_MESSAGE_EOS) << "cycle " << cycle;
    gst_message_unref(m);
    if (cycle < 19) ASSERT_EQ(gst_element_set_state(pipeline, GST_STATE_NULL), GST_STATE_CHANGE_SUCCESS);
  }
  app.stop();
  EXPECT_GT(label_changes, 20);
  // Still PLAYING: the last labels set must become the active ones.
  const std::string want = get_string(rc, "labels");
  std::string active;
  for (int i = 0; i < 500 && (active = get_string(rc, "active-labels")) != want; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_EQ(active, want);
  gst_element_set_state(pipeline, GST_STATE_NULL);
  gst_object_unref(bus);
  gst_object_unref(rc);
  gst_object_unref(pipeline);
}

// Each label change is a rebuild of the text embeddings on the worker; changes
// coming faster than that must neither starve the frame analysis nor hold EOS.
TEST_F(Element, FrequentLabelChangesDoNotStarveAnalysisOrEos) {
  const auto rgb = fixture_rgb()[0];
  std::string caps;
  gst_buffer_unref(make_buffer(rgb, GST_VIDEO_FORMAT_RGB, &caps));
  GstHarness* h = make_harness("mode=async", caps);
  // 100 labels x 6 templates: a rebuild takes far longer than the 1 ms between changes.
  std::string many[2];
  for (int i = 0; i < 100; ++i)
    for (int k = 0; k < 2; ++k) many[k] += (i ? ";" : "") + std::string(k ? "дом " : "кот ") + std::to_string(i);
  AppThread app(std::chrono::milliseconds(1), [&](guint i) {
    g_object_set(h->element, "labels", many[i % 2].c_str(), NULL);
  });
  // Frames keep coming while the changes go on, until one is analyzed (a
  // starving worker never gets there; 30 s leave room for sanitizer builds).
  guint64 analyzed = 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  for (int i = 0; (i < 200 || analyzed == 0) && std::chrono::steady_clock::now() < deadline; ++i) {
    push_frames(h, rgb, GST_VIDEO_FORMAT_RGB, 1, GST_SECOND / 30, i * (GST_SECOND / 30));
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
    analyzed = get_u64(h, "frames-analyzed");
  }
  // EOS waits for the last request, not for the changes to stop: they go on
  // until EOS is through (120 s: a hang guard; a held EOS never gets through).
  std::atomic<bool> drained{false};
  std::thread eos([&] {
    gst_harness_push_event(h, gst_event_new_eos());
    drained = true;
  });
  for (int i = 0; i < 12000 && !drained; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  const bool drained_while_changing = drained;
  app.stop();
  eos.join();
  EXPECT_GT(analyzed, 0u) << "no frame analyzed while labels kept changing";
  EXPECT_TRUE(drained_while_changing) << "EOS held while labels kept changing";
  gst_harness_teardown(h);
}

// top-k, threshold and post-messages are documented as changeable while
// PLAYING; in async mode the worker must use the values set now, not the ones
// the stream started with.
TEST_F(Element, AsyncAppliesRuntimeReportingProperties) {
  const auto rgb = fixture_rgb()[0];
  std::string caps;
  gst_buffer_unref(make_buffer(rgb, GST_VIDEO_FORMAT_RGB, &caps));
  GstHarness* h = make_harness("mode=async", caps);
  GstBus* bus = gst_bus_new();
  gst_element_set_bus(h->element, bus);
  push_frames(h, rgb, GST_VIDEO_FORMAT_RGB, 5, GST_SECOND / 30);
  g_object_set(h->element, "top-k", 2u, "post-messages", TRUE, NULL);
  // Pushes until a result of a frame sampled after the change rides on a buffer.
  LabelResult last;
  for (int i = 5; i < 2000 && !(last.frame >= 5 && !last.labels.empty()); ++i) {
    const Pushed p = push_frames(h, rgb, GST_VIDEO_FORMAT_RGB, 1, GST_SECOND / 30, i * (GST_SECOND / 30));
    last = p.metas[0];
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  ASSERT_GE(last.frame, 5u);
  EXPECT_EQ(last.labels.size(), 2u);
  EXPECT_GT(count_result_messages(bus), 0u);
  gst_harness_teardown(h);
  gst_object_unref(bus);
}

TEST_F(Element, CapsRenegotiationMidStream) {
  const auto images = fixture_rgb();
  GstHarness* h = make_harness("", "video/x-raw,format=RGB,width=32,height=32,framerate=30/1");
  const auto want = classify_cli(fixture_files());
  int index = 0;
  for (auto [image, format] : {std::pair<int, GstVideoFormat>{0, GST_VIDEO_FORMAT_RGB}, {1, GST_VIDEO_FORMAT_BGRx},
                               {2, GST_VIDEO_FORMAT_RGBA}, {1, GST_VIDEO_FORMAT_RGB}, {4, GST_VIDEO_FORMAT_xBGR}}) {
    std::string caps;
    GstBuffer* b = make_buffer(images[image], format, &caps);
    gst_harness_set_src_caps_str(h, caps.c_str());
    GST_BUFFER_PTS(b) = index++ * GST_SECOND;
    const LabelResult r = analyze_one(h, b);
    EXPECT_TRUE(r.fresh);
    EXPECT_LE(max_prob_diff(r, want[image]), 2e-3) << caps;
  }
  gst_harness_teardown(h);
}

bool has_cuda_memory(GstCaps* caps) {
  bool found = false;
  for (guint i = 0; i < gst_caps_get_size(caps); ++i) {
    GstCapsFeatures* f = gst_caps_get_features(caps, i);
    if (f && !gst_caps_features_is_any(f) && gst_caps_features_contains(f, "memory:CUDAMemory")) found = true;
  }
  gst_caps_unref(caps);
  return found;
}

// Frames in CUDA memory (GStreamer's memory:CUDAMemory) are offered only
// where the model reads them: before start unless device=cpu; once started,
// only with a model on a GPU, so here never.
TEST_F(Element, CudaMemoryOnlyWhereTheModelReadsIt) {
  GstElement* e = make_filter("device=auto mode=sync");
  GstPad* sink = gst_element_get_static_pad(e, "sink");
  EXPECT_TRUE(has_cuda_memory(gst_pad_get_pad_template_caps(sink)));
  EXPECT_TRUE(has_cuda_memory(gst_pad_query_caps(sink, nullptr))) << "device=auto could be a GPU";
  g_object_set(e, "device", "cpu", NULL);
  EXPECT_FALSE(has_cuda_memory(gst_pad_query_caps(sink, nullptr))) << "device=cpu";
  g_object_set(e, "device", "auto", NULL);
  gst_object_unref(sink);

  // Started: the model is on this machine's device (no GPU here: the CPU).
  GstHarness* h = gst_harness_new_with_element(e, "sink", "src");
  gst_object_unref(e);
  const auto rgb = fixture_rgb()[0];
  std::string caps;
  GstBuffer* b = make_buffer(rgb, GST_VIDEO_FORMAT_NV12, &caps);
  gst_harness_set_src_caps_str(h, caps.c_str());
  EXPECT_TRUE(analyze_one(h, b).fresh);
  sink = gst_element_get_static_pad(h->element, "sink");
  EXPECT_FALSE(has_cuda_memory(gst_pad_query_caps(sink, nullptr)));
  GstCaps* system = gst_caps_from_string(caps.c_str());
  GstCaps* cuda = gst_caps_copy(system);
  gst_caps_set_features(cuda, 0, gst_caps_features_new("memory:CUDAMemory", NULL));
  EXPECT_TRUE(gst_pad_query_accept_caps(sink, system));
  EXPECT_FALSE(gst_pad_query_accept_caps(sink, cuda)) << "CUDA memory accepted by a model on the CPU";
  gst_caps_unref(system);
  gst_caps_unref(cuda);
  gst_object_unref(sink);
  gst_harness_teardown(h);
}

TEST_F(Element, AsyncResultsRideOnLaterBuffersAndEosDrains) {
  const auto rgb = fixture_rgb()[0];
  std::string caps;
  gst_buffer_unref(make_buffer(rgb, GST_VIDEO_FORMAT_RGB, &caps));
  GstHarness* h = make_harness("mode=async post-messages=true batch-size=4", caps);
  GstBus* bus = gst_bus_new();  // the harness gives the element none
  gst_element_set_bus(h->element, bus);
  const Pushed p = push_frames(h, rgb, GST_VIDEO_FORMAT_RGB, 40, GST_SECOND / 30);
  for (int i = 0; i < 40; ++i) {
    EXPECT_FALSE(p.fresh[i]);  // async never puts a result on its own frame
    if (p.has_meta[i]) {
      EXPECT_LT(p.metas[i].source_pts, guint64(i) * (GST_SECOND / 30));
    }
  }
  gst_harness_push_event(h, gst_event_new_eos());
  // After EOS went through, nothing is pending: analyzed + dropped = sampled.
  const guint64 analyzed = get_u64(h, "frames-analyzed"), dropped = get_u64(h, "requests-dropped");
  EXPECT_EQ(analyzed + dropped, 40u);
  EXPECT_GE(analyzed, 1u);
  // One bus message per analysis.
  guint64 messages = 0;
  while (GstMessage* m = gst_bus_pop_filtered(bus, GST_MESSAGE_ELEMENT)) {
    const GstStructure* s = gst_message_get_structure(m);
    if (gst_structure_has_name(s, "ruclip")) {
      ++messages;
      EXPECT_EQ(element_test::read_structure(s).labels.size(), 4u);
      EXPECT_TRUE(gst_structure_has_field(s, "running-time"));
      EXPECT_TRUE(gst_structure_has_field(s, "timestamp"));
    }
    gst_message_unref(m);
  }
  EXPECT_EQ(messages, analyzed);
  gst_harness_teardown(h);
  gst_object_unref(bus);
}

TEST_F(Element, FlushDropsPendingAndStaleResults) {
  const auto rgb = fixture_rgb()[0];
  std::string caps;
  gst_buffer_unref(make_buffer(rgb, GST_VIDEO_FORMAT_RGB, &caps));
  GstHarness* h = make_harness("mode=async", caps);
  push_frames(h, rgb, GST_VIDEO_FORMAT_RGB, 10, GST_SECOND / 30);
  gst_harness_push_event(h, gst_event_new_eos());  // settle: the worker is idle
  ASSERT_GE(get_u64(h, "frames-analyzed"), 1u);
  gst_harness_push_event(h, gst_event_new_flush_start());
  gst_harness_push_event(h, gst_event_new_flush_stop(TRUE));
  GstSegment segment;
  gst_segment_init(&segment, GST_FORMAT_TIME);
  gst_harness_push_event(h, gst_event_new_segment(&segment));
  // The first buffer after the flush must not carry a result from before it.
  const Pushed p = push_frames(h, rgb, GST_VIDEO_FORMAT_RGB, 1, GST_SECOND / 30, 5 * GST_SECOND);
  EXPECT_FALSE(p.has_meta[0]);
  gst_harness_teardown(h);
}

namespace {

// Runs `desc` to PAUSED expecting the element to refuse; returns the error text.
std::string start_error(const std::string& desc) {
  GError* error = nullptr;
  GstElement* pipeline = gst_parse_launch(desc.c_str(), &error);
  if (!pipeline) {
    std::string msg = error ? error->message : "?";
    g_clear_error(&error);
    return "parse failed: " + msg;
  }
  const GstStateChangeReturn ret = gst_element_set_state(pipeline, GST_STATE_PAUSED);
  std::string text;
  if (ret == GST_STATE_CHANGE_FAILURE || gst_element_get_state(pipeline, nullptr, nullptr, 10 * GST_SECOND) ==
                                             GST_STATE_CHANGE_FAILURE) {
    GstBus* bus = gst_element_get_bus(pipeline);
    if (GstMessage* m = gst_bus_pop_filtered(bus, GST_MESSAGE_ERROR)) {
      GError* err = nullptr;
      gchar* debug = nullptr;
      gst_message_parse_error(m, &err, &debug);
      text = std::string(GST_OBJECT_NAME(GST_MESSAGE_SRC(m))) + ": " + err->message;
      g_clear_error(&err);
      g_free(debug);
      gst_message_unref(m);
    }
    gst_object_unref(bus);
  } else {
    text = "(started)";
  }
  gst_element_set_state(pipeline, GST_STATE_NULL);
  gst_object_unref(pipeline);
  return text;
}

std::string source_to_filter(const std::string& props) {
  return "videotestsrc num-buffers=1 ! video/x-raw,format=RGB,width=64,height=48 ! ruclipfilter name=rc " + props +
         " ! fakesink";
}

}  // namespace

TEST_F(Element, ErrorsAtStartNameTheProblem) {
  const std::string model = "model=" + gst_quote(ruclip_test::tiny_model_dir());
  std::string e = start_error(source_to_filter("labels=кошка"));
  EXPECT_NE(e.find("rc: No model: set the 'model' property"), std::string::npos) << e;
  e = start_error(source_to_filter("model=/nonexistent/folder labels=кошка"));
  EXPECT_NE(e.find("Cannot load model '/nonexistent/folder'"), std::string::npos) << e;
  EXPECT_NE(e.find("not a folder"), std::string::npos) << e;

  const std::string broken = ruclip_test::copy_tiny_model();
  ruclip_test::write_file(broken + "/pytorch_model.bin", "PK\x03\x04 not really a zip");
  e = start_error(source_to_filter("model=" + broken + " labels=кошка"));
  EXPECT_NE(e.find(broken + "/pytorch_model.bin"), std::string::npos) << e;

  e = start_error(source_to_filter(model));
  EXPECT_NE(e.find("no labels: set the 'labels' property"), std::string::npos) << e;
  e = start_error(source_to_filter(model + " labels=кошка templates=\"фото кошки\""));
  EXPECT_NE(e.find("'фото кошки' has no {}"), std::string::npos) << e;
  e = start_error(source_to_filter(model + " labels=кошка labels-file=/nonexistent/labels.txt"));
  EXPECT_NE(e.find("labels-file '/nonexistent/labels.txt': cannot open"), std::string::npos) << e;
  e = start_error(source_to_filter(model + " labels=кошка device=tpu"));
  EXPECT_NE(e.find("device 'tpu'"), std::string::npos) << e;
  e = start_error(source_to_filter(model + " labels=кошка device=cuda:7"));
  EXPECT_NE(e.find("device 'cuda:7'"), std::string::npos) << e;
  e = start_error(source_to_filter(model + " labels=кошка device=cpu precision=fp16"));
  EXPECT_NE(e.find("precision 'fp16' needs a CUDA device"), std::string::npos) << e;
}

TEST_F(Element, LabelsFileWithComments) {
  const std::string dir = ruclip_test::make_temp_dir();
  ruclip_test::write_file(dir + "/labels.txt", "# животные\nкошка\n\n  собака  \n# транспорт\nгрузовик\n");
  GstElement* e = make_filter("labels-file=" + dir + "/labels.txt labels=самолёт");
  GstHarness* h = gst_harness_new_with_element(e, "sink", "src");
  gst_object_unref(e);
  gchar* active = nullptr;
  g_object_get(h->element, "active-labels", &active, NULL);
  EXPECT_STREQ(active, "самолёт;кошка;собака;грузовик");
  g_free(active);
  gst_harness_teardown(h);
}

// The meta is frame-level: it must survive queue, tee, videoconvert, videoscale.
TEST_F(Element, MetaSurvivesQueueTeeConvertScale) {
  const std::string desc =
      "videotestsrc num-buffers=5 pattern=ball ! video/x-raw,format=I420,width=160,height=120 ! ruclipfilter model=" +
      gst_quote(ruclip_test::tiny_model_dir()) + " labels=\"" + kLabelsProp +
      "\" ! tee name=t ! queue ! videoconvert ! videoscale ! video/x-raw,format=RGBA,width=64,height=64 ! "
      "appsink name=a sync=false t. ! queue ! fakesink sync=false";
  GstElement* pipeline = gst_parse_launch(desc.c_str(), nullptr);
  ASSERT_NE(pipeline, nullptr);
  GstElement* sink = gst_bin_get_by_name(GST_BIN(pipeline), "a");
  gst_element_set_state(pipeline, GST_STATE_PLAYING);
  int with_meta = 0, total = 0;
  for (;;) {
    GstSample* sample = nullptr;
    g_signal_emit_by_name(sink, "pull-sample", &sample);
    if (!sample) break;
    ++total;
    LabelResult r;
    if (read_meta(gst_sample_get_buffer(sample), &r)) {
      ++with_meta;
      EXPECT_EQ(r.labels.size(), 4u);
      EXPECT_TRUE(r.fresh);
    }
    gst_sample_unref(sample);
  }
  EXPECT_EQ(total, 5);
  EXPECT_EQ(with_meta, 5);
  gst_element_set_state(pipeline, GST_STATE_NULL);
  gst_object_unref(sink);
  gst_object_unref(pipeline);
}

// In async mode the streaming thread never waits for the model. The model
// call is held by a stand-in for a slow model: async results are posted from
// the scheduler's thread, and a bus sync handler keeps that thread inside the
// first result's message until the test releases it; the first frame waits
// at the sink until then. Meanwhile the other 89 frames must reach the sink
// (the stream would stall if it waited for the model).
TEST_F(Element, AsyncNeverWaitsForTheModel) {
  const std::string desc =
      "videotestsrc num-buffers=90 ! video/x-raw,format=I420,width=320,height=240,framerate=30/1 ! "
      "ruclipfilter name=rc mode=async num-threads=1 post-messages=true labels=\"" + std::string(kLabelsProp) +
      "\" model=" + gst_quote(ruclip_test::tiny_model_dir()) + " ! fakesink name=sink sync=false";
  GstElement* pipeline = gst_parse_launch(desc.c_str(), nullptr);
  ASSERT_NE(pipeline, nullptr);
  GstElement* rc = gst_bin_get_by_name(GST_BIN(pipeline), "rc");
  GstElement* sink = gst_bin_get_by_name(GST_BIN(pipeline), "sink");
  struct Held {
    std::mutex mu;
    std::condition_variable cv;
    bool worker_held = false, released = false;
    int buffers = 0, with_meta = 0;
  } held;
  g_object_set(sink, "signal-handoffs", TRUE, NULL);
  g_signal_connect(sink, "handoff", G_CALLBACK(+[](GstElement*, GstBuffer* b, GstPad*, gpointer data) {
                     auto* h = static_cast<Held*>(data);
                     LabelResult r;
                     const bool meta = read_meta(b, &r);
                     std::unique_lock<std::mutex> lk(h->mu);
                     ++h->buffers;
                     h->with_meta += meta;
                     h->cv.notify_all();
                     // The first frame waits until the worker is held (hang guard only): the other
                     // 89 then pass while it is.
                     if (h->buffers == 1) h->cv.wait_for(lk, std::chrono::seconds(120), [&] { return h->worker_held; });
                   }),
                   &held);
  GstBus* bus = gst_element_get_bus(pipeline);
  gst_bus_set_sync_handler(bus, +[](GstBus*, GstMessage* m, gpointer data) -> GstBusSyncReply {
    const GstStructure* st = gst_message_get_structure(m);
    if (GST_MESSAGE_TYPE(m) == GST_MESSAGE_ELEMENT && st && gst_structure_has_name(st, "ruclip")) {
      auto* h = static_cast<Held*>(data);
      std::unique_lock<std::mutex> lk(h->mu);
      h->worker_held = true;
      h->cv.notify_all();
      h->cv.wait(lk, [&] { return h->released; });  // the scheduler's thread, held
    }
    return GST_BUS_PASS;
  }, &held, nullptr);
  gst_element_set_state(pipeline, GST_STATE_PLAYING);
  {
    std::unique_lock<std::mutex> lk(held.mu);
    // Hang guard only: with the worker held, the frames flow or never will.
    const bool flowed = held.cv.wait_for(lk, std::chrono::seconds(120), [&] { return held.buffers == 90; });
    EXPECT_TRUE(held.worker_held) << "no analysis was started";
    EXPECT_TRUE(flowed) << held.buffers << " of 90 frames passed while the model was held";
    held.released = true;
    held.cv.notify_all();
  }
  GstMessage* m = gst_bus_timed_pop_filtered(bus, 120 * GST_SECOND, (GstMessageType)(GST_MESSAGE_EOS | GST_MESSAGE_ERROR));
  ASSERT_NE(m, nullptr);
  EXPECT_EQ(GST_MESSAGE_TYPE(m), GST_MESSAGE_EOS);
  gst_message_unref(m);
  guint64 analyzed = 0, dropped = 0;
  g_object_get(rc, "frames-analyzed", &analyzed, "requests-dropped", &dropped, NULL);
  std::printf("async, model held: %d buffers passed, %d with meta, %lu analyzed, %lu dropped\n", held.buffers,
              held.with_meta, (unsigned long)analyzed, (unsigned long)dropped);
  EXPECT_GT(dropped, 0u);  // the worker could not keep up, and said so
  EXPECT_GE(analyzed, 1u);
  EXPECT_EQ(analyzed + dropped, 90u);
  gst_element_set_state(pipeline, GST_STATE_NULL);
  gst_object_unref(bus);
  gst_object_unref(sink);
  gst_object_unref(rc);
  gst_object_unref(pipeline);
}

TEST_F(Element, HundredPlayingNullCycles) {
  const std::string desc = "videotestsrc num-buffers=3 ! video/x-raw,format=NV12,width=64,height=48 ! ruclipfilter model=" +
                           gst_quote(ruclip_test::tiny_model_dir()) + " labels=\"" + kLabelsProp +
                           "\" mode=async ! fakesink";
  GstElement* pipeline = gst_parse_launch(desc.c_str(), nullptr);
  ASSERT_NE(pipeline, nullptr);
  GstBus* bus = gst_element_get_bus(pipeline);
  for (int i = 0; i < 100; ++i) {
    ASSERT_NE(gst_element_set_state(pipeline, GST_STATE_PLAYING), GST_STATE_CHANGE_FAILURE) << "cycle " << i;
    GstMessage* m = gst_bus_timed_pop_filtered(bus, 20 * GST_SECOND, (GstMessageType)(GST_MESSAGE_EOS | GST_MESSAGE_ERROR));
    ASSERT_NE(m, nullptr) << "cycle " << i;
    EXPECT_EQ(GST_MESSAGE_TYPE(m), GST_MESSAGE_EOS) << "cycle " << i;
    gst_message_unref(m);
    ASSERT_EQ(gst_element_set_state(pipeline, GST_STATE_NULL), GST_STATE_CHANGE_SUCCESS);
  }
  gst_object_unref(bus);
  gst_object_unref(pipeline);
}

TEST_F(Element, InspectDocumentsEveryProperty) {
#if defined(__SANITIZE_ADDRESS__)
  GTEST_SKIP() << "gst-inspect-1.0 can't load a plugin built with AddressSanitizer";
#endif
  const std::string out = run_command("gst-inspect-1.0 ruclipfilter 2>&1");
  for (const char* prop : {"model", "labels", "labels-file", "templates", "interval", "interval-time", "top-k",
                           "threshold", "device", "num-threads", "batch-size", "batch-timeout", "queue-size",
                           "model-instance-id", "mode", "post-messages", "attach-embedding", "active-labels",
                           "frames-analyzed", "requests-dropped", "stats", "segments", "smoothing", "segment-start",
                           "segment-end", "segment-min-duration", "label-thresholds"})
    // "  name   : blurb" (a long name gets a single space before the colon)
    EXPECT_TRUE(out.find(std::string("\n  ") + prop + " ") != std::string::npos ||
                out.find(std::string("\n  ") + prop + ":") != std::string::npos)
        << prop << " missing:\n" << out;
  EXPECT_NE(out.find("changeable in NULL, READY, PAUSED or PLAYING state"), std::string::npos);
  EXPECT_NE(out.find("changeable only in NULL or READY state"), std::string::npos);
  EXPECT_NE(out.find("RuClipMeta"), std::string::npos);
  EXPECT_NE(out.find("(0): sync"), std::string::npos);
  EXPECT_NE(out.find("(1): async"), std::string::npos);
}

// End to end with the shipped model: the element, on frames of a renderer it
// was not trained on (ruclip synth's eval style, 160x120, all 32 colour x
// shape pairs including the held-out ones), in every raw format, scored
// against all 32 "colour shape" labels. A swapped channel, a broken
// conversion or a wrong crop fails here: the colour must be right on all
// pairs, colour and shape on the pairs the model was trained on (the held-out
// pairs are printed: models/ruclip-shapes-ru/README.md reports them).
// GRAY8 carries no colour: there only white and black shapes are used.
TEST_F(Element, ShippedModelNamesColourAndShapeInEveryFormat) {
#if defined(__SANITIZE_ADDRESS__)
  // Its SentencePiece tokenizer needs RTLD_DEEPBIND next to LibTorch's
  // protobuf (core/src/text/sentencepiece_module.cpp), which AddressSanitizer refuses.
  GTEST_SKIP() << "the shipped model's SentencePiece tokenizer can't load beside LibTorch under AddressSanitizer";
#endif
  const std::string model = std::string(RUCLIP_SOURCE_ROOT) + "/models/ruclip-shapes-ru";
  std::string all_labels;
  for (const auto& l : ruclip::synth::all_labels()) all_labels += (all_labels.empty() ? "" : ";") + l;
  auto colour_of = [](const std::string& label) { return label.substr(0, label.find(' ') - 4); };
  const auto holdout = ruclip::synth::default_holdout();
  constexpr int kFrames = 64;
  for (GstVideoFormat format :
       {GST_VIDEO_FORMAT_RGB, GST_VIDEO_FORMAT_BGR, GST_VIDEO_FORMAT_RGBA, GST_VIDEO_FORMAT_BGRA,
        GST_VIDEO_FORMAT_RGBx, GST_VIDEO_FORMAT_BGRx, GST_VIDEO_FORMAT_xRGB, GST_VIDEO_FORMAT_xBGR,
        GST_VIDEO_FORMAT_GRAY8, GST_VIDEO_FORMAT_I420, GST_VIDEO_FORMAT_NV12}) {
    const bool gray = format == GST_VIDEO_FORMAT_GRAY8;
    ruclip::synth::Options options;
    options.width = 160;
    options.height = 120;
    options.style = ruclip::synth::Style::Eval;
    options.pairs = ruclip::synth::Pairs::All;
    options.include_solid = false;
    ruclip::synth::Generator generator(options, 4242);
    std::string caps;
    gst_buffer_unref(make_buffer(element_test::to_rgb(generator.next().image), format, &caps));
    GstElement* e = gst_element_factory_make("ruclipfilter", nullptr);
    g_object_set(e, "model", model.c_str(), "labels", all_labels.c_str(), "num-threads", 2, NULL);
    GstHarness* h = gst_harness_new_with_element(e, "sink", "src");
    gst_object_unref(e);
    gst_harness_set_src_caps_str(h, caps.c_str());
    int colour_right = 0, frames = 0, seen = 0, seen_right = 0, held = 0, held_right = 0;
    while (frames < kFrames) {
      const auto sample = generator.next();
      const bool achromatic = sample.color == ruclip::synth::Color::White || sample.color == ruclip::synth::Color::Black;
      if (gray && !achromatic) continue;
      element_test::Rgb rgb = element_test::to_rgb(sample.image);
      if (gray) rgb = element_test::to_gray_rgb(rgb);
      GstBuffer* b = make_buffer(rgb, format, &caps);
      GST_BUFFER_PTS(b) = frames * GST_SECOND / 30;
      const LabelResult r = analyze_one(h, b);
      ++frames;
      const bool is_held = holdout.count({sample.color, sample.shape}) > 0;
      (is_held ? held : seen) += 1;
      if (r.labels.empty()) continue;
      colour_right += colour_of(r.labels[0]) == colour_of(sample.label);
      (is_held ? held_right : seen_right) += r.labels[0] == sample.label;
    }
    gst_harness_teardown(h);
    std::printf("%-5s colour right on %d/%d frames; colour and shape on %d/%d seen-pair frames, %d/%d held-out\n",
                gst_video_format_to_string(format), colour_right, kFrames, seen_right, seen, held_right, held);
    EXPECT_GE(colour_right, (kFrames * 95 + 99) / 100) << gst_video_format_to_string(format);
    ASSERT_GT(seen, kFrames / 2) << gst_video_format_to_string(format);
    EXPECT_GE(seen_right, (seen * 95 + 99) / 100) << gst_video_format_to_string(format);
  }
}

namespace {

// One live camera of the many-streams test: a solid colour through its own
// ruclipfilter, every buffer's meta checked at the sink.
struct Camera {
  size_t index = 0;
  std::string colour_label;  // what the shipped model must say for this stream ("": don't check labels)
  const std::vector<std::vector<double>>* references = nullptr;  // each colour's embedding, alone
  GstElement* pipeline = nullptr;
  GstElement* filter = nullptr;
  std::atomic<int> with_meta{0}, right{0}, wrong{0}, new_labels{0};
  std::string first_wrong;
  std::mutex wrong_lock;
};

double dot(const std::vector<double>& a, const std::vector<double>& b) {
  double d = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) d += a[i] * b[i];
  return d;
}

// Right: the result's embedding is nearest to this camera's own colour (a
// result of another stream would be nearest to that stream's), and with the
// shipped model the best label is this camera's colour.
void on_camera_buffer(GstElement*, GstBuffer* buffer, GstPad*, gpointer data) {
  auto* cam = static_cast<Camera*>(data);
  LabelResult r;
  if (!read_meta(buffer, &r) || r.labels.empty()) return;
  ++cam->with_meta;
  if (r.labels.size() == 3) ++cam->new_labels;
  size_t nearest = 0;
  for (size_t i = 1; i < cam->references->size(); ++i)
    if (dot(r.embedding, (*cam->references)[i]) > dot(r.embedding, (*cam->references)[nearest])) nearest = i;
  const bool label_ok = cam->colour_label.empty() || r.labels[0] == cam->colour_label;
  if (nearest == cam->index && label_ok) {
    ++cam->right;
  } else if (++cam->wrong == 1) {
    std::lock_guard<std::mutex> guard(cam->wrong_lock);
    cam->first_wrong = r.labels[0] + " (nearest to colour " + std::to_string(nearest) + ")";
  }
}

std::string camera_source(const char* colour) {
  return std::string("videotestsrc is-live=true pattern=solid-color foreground-color=") + colour +
         " ! video/x-raw,format=I420,width=160,height=120,framerate=30/1";
}

// The embedding one frame of `colour` gets alone.
std::vector<double> reference_embedding(const std::string& model, const char* labels, const char* colour) {
  const std::string desc = camera_source(colour) + " ! ruclipfilter attach-embedding=true labels=\"" + labels +
                           "\" model=" + gst_quote(model) + " ! fakesink name=sink signal-handoffs=true";
  std::unique_ptr<GstElement, void (*)(GstElement*)> pipeline(gst_parse_launch(desc.c_str(), nullptr),
                                                              [](GstElement* p) {
                                                                gst_element_set_state(p, GST_STATE_NULL);
                                                                gst_object_unref(p);
                                                              });
  EXPECT_NE(pipeline.get(), nullptr);
  struct Got {
    std::mutex m;
    std::vector<double> embedding;
  } got;
  GstElement* sink = gst_bin_get_by_name(GST_BIN(pipeline.get()), "sink");
  g_signal_connect(sink, "handoff", G_CALLBACK(+[](GstElement*, GstBuffer* b, GstPad*, gpointer data) {
                     auto* g = static_cast<Got*>(data);
                     LabelResult r;
                     std::lock_guard<std::mutex> guard(g->m);
                     if (g->embedding.empty() && read_meta(b, &r)) g->embedding = r.embedding;
                   }),
                   &got);
  gst_object_unref(sink);
  gst_element_set_state(pipeline.get(), GST_STATE_PLAYING);
  for (int i = 0; i < 3000; ++i) {
    {
      std::lock_guard<std::mutex> guard(got.m);
      if (!got.embedding.empty()) return got.embedding;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ADD_FAILURE() << "no result for colour " << colour;
  return {};
}

guint64 model_instance(GstElement* filter) {
  GstStructure* stats = nullptr;
  g_object_get(filter, "stats", &stats, NULL);
  guint64 instance = 0;
  if (stats) gst_structure_get_uint64(stats, "model-instance", &instance);
  if (stats) gst_structure_free(stats);
  return instance;
}

int model_users(GstElement* filter) {
  GstStructure* stats = nullptr;
  g_object_get(filter, "stats", &stats, NULL);
  gint users = 0;
  if (stats) gst_structure_get_int(stats, "model-users", &users);
  if (stats) gst_structure_free(stats);
  return users;
}

bool has_error(GstElement* pipeline, std::string* text) {
  GstBus* bus = gst_element_get_bus(pipeline);
  GstMessage* m = gst_bus_pop_filtered(bus, GST_MESSAGE_ERROR);
  gst_object_unref(bus);
  if (!m) return false;
  GError* err = nullptr;
  gst_message_parse_error(m, &err, nullptr);
  *text = err ? err->message : "?";
  g_clear_error(&err);
  gst_message_unref(m);
  return true;
}

}  // namespace

// Five live cameras of different colours in one process, sharing the shipped
// model, in sync mode, async mode and both at once: while one camera's
// labels change and another stops and starts again, every result on every
// camera is that camera's own colour (a result of one stream landing on
// another would be another colour), nothing hangs, one model serves all.
TEST_F(Element, ManyLiveStreamsShareOneModelAndKeepTheirOwnResults) {
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
  // The shipped model's SentencePiece module needs RTLD_DEEPBIND, which the
  // sanitizers refuse: there the test model runs, and only the embeddings
  // (not the colour names, which it doesn't know) tell the streams apart.
  const std::string model = ruclip_test::tiny_model_dir();
  const char* labels = kLabelsProp;
  const bool named = false;
#else
  const std::string model = std::string(RUCLIP_SOURCE_ROOT) + "/models/ruclip-shapes-ru";
  const char* labels = "красный фон;синий фон;зелёный фон;жёлтый фон;белый фон;чёрный фон";
  const bool named = true;
#endif
  const std::vector<std::pair<const char*, const char*>> colours = {
      {"0xffff0000", "красный фон"}, {"0xff0000ff", "синий фон"}, {"0xff00ff00", "зелёный фон"},
      {"0xffffff00", "жёлтый фон"}, {"0xff000000", "чёрный фон"}};
  std::vector<std::vector<double>> references;
  for (const auto& c : colours) references.push_back(reference_embedding(model, labels, c.first));
  for (size_t i = 0; i < references.size(); ++i)
    for (size_t j = 0; j < i; ++j)
      ASSERT_LT(dot(references[i], references[j]), 0.99999) << "colours " << i << " and " << j << " look alike";
  for (const char* modes : {"sync", "async", "mixed"}) {
    SCOPED_TRACE(modes);
    std::vector<std::unique_ptr<Camera>> cams;
    for (size_t i = 0; i < colours.size(); ++i) {
      auto cam = std::make_unique<Camera>();
      cam->index = i;
      cam->colour_label = named ? colours[i].second : "";
      cam->references = &references;
      const bool async = std::string(modes) == "async" || (std::string(modes) == "mixed" && i % 2);
      const std::string desc = camera_source(colours[i].first) + " ! ruclipfilter name=rc batch-size=4 "
                               "attach-embedding=true mode=" + (async ? "async" : "sync") +
                               " labels=\"" + labels + "\" model=" + gst_quote(model) +
                               " ! fakesink name=sink sync=false signal-handoffs=true";
      cam->pipeline = gst_parse_launch(desc.c_str(), nullptr);
      ASSERT_NE(cam->pipeline, nullptr);
      cam->filter = gst_bin_get_by_name(GST_BIN(cam->pipeline), "rc");
      GstElement* sink = gst_bin_get_by_name(GST_BIN(cam->pipeline), "sink");
      g_signal_connect(sink, "handoff", G_CALLBACK(on_camera_buffer), cam.get());
      gst_object_unref(sink);
      cams.push_back(std::move(cam));
    }
    for (auto& cam : cams) ASSERT_NE(gst_element_set_state(cam->pipeline, GST_STATE_PLAYING), GST_STATE_CHANGE_FAILURE);
    auto wait_for = [&](auto done, int seconds) {
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
      while (!done() && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      return done();
    };
    ASSERT_TRUE(wait_for([&] {
      for (auto& cam : cams)
        if (cam->with_meta < 10) return false;
      return true;
    }, 60)) << "not every stream got results";
    const guint64 instance = model_instance(cams[0]->filter);
    EXPECT_NE(instance, 0u);
    for (auto& cam : cams) EXPECT_EQ(model_instance(cam->filter), instance) << "a second copy of the model was loaded";
    EXPECT_EQ(model_users(cams[0]->filter), int(cams.size()));

    // Camera 1 changes its labels (its colour stays the best one); camera 2
    // stops and comes back while the others go on.
    const char* new_labels = named ? "синий фон;красный круг;жёлтая звезда" : "кошка;собака;самолёт";
    g_object_set(cams[1]->filter, "labels", new_labels, NULL);
    ASSERT_EQ(gst_element_set_state(cams[2]->pipeline, GST_STATE_NULL), GST_STATE_CHANGE_SUCCESS);
    const int before_restart = cams[2]->with_meta;
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    EXPECT_EQ(model_users(cams[0]->filter), int(cams.size()) - 1);
    ASSERT_NE(gst_element_set_state(cams[2]->pipeline, GST_STATE_PLAYING), GST_STATE_CHANGE_FAILURE);
    EXPECT_TRUE(wait_for([&] { return cams[1]->new_labels >= 10 && cams[2]->with_meta >= before_restart + 10; }, 60))
        << "the label change or the restart did not take";
    EXPECT_EQ(model_instance(cams[2]->filter), instance) << "the restarted stream loaded the model again";
    gchar* active = nullptr;
    g_object_get(cams[1]->filter, "active-labels", &active, NULL);
    EXPECT_STREQ(active, new_labels);
    g_free(active);
    gchar* others = nullptr;
    g_object_get(cams[3]->filter, "active-labels", &others, NULL);
    EXPECT_STREQ(others, labels) << "one element's label change reached another";
    g_free(others);

    for (auto& cam : cams) {
      std::string error;
      EXPECT_FALSE(has_error(cam->pipeline, &error)) << colours[cam->index].first << ": " << error;
      ASSERT_EQ(gst_element_set_state(cam->pipeline, GST_STATE_NULL), GST_STATE_CHANGE_SUCCESS);
      const int total = cam->right + cam->wrong;
      std::printf("%s %s: %d results, %d right\n", modes, colours[cam->index].first, total, cam->right.load());
      EXPECT_GE(cam->right, 0.99 * total) << colours[cam->index].first << " got " << cam->first_wrong;
      gst_object_unref(cam->filter);
      gst_object_unref(cam->pipeline);
    }
  }
}

// A FLUSH_START while EOS waits for a drain ends the wait (the streaming
// thread would otherwise hang). The drain is made to wait: a second element
// shares the model but sends nothing, so A's frame waits for it up to
// batch-timeout (10 s).
TEST_F(Element, FlushDuringEosDrainWakesIt) {
  const auto rgb = fixture_rgb()[0];
  std::string caps;
  gst_buffer_unref(make_buffer(rgb, GST_VIDEO_FORMAT_RGB, &caps));
  GstHarness* a = make_harness("mode=async batch-timeout=10000000000", caps);
  GstHarness* idle = make_harness("mode=async batch-timeout=10000000000", caps);
  EXPECT_EQ(model_instance(a->element), model_instance(idle->element));
  push_frames(a, rgb, GST_VIDEO_FORMAT_RGB, 1, GST_SECOND / 30);
  std::atomic<bool> eos_done{false};
  std::thread eos([&] {
    gst_harness_push_event(a, gst_event_new_eos());
    eos_done = true;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_FALSE(eos_done) << "EOS did not wait for the frame: this test proves nothing";
  gst_harness_push_event(a, gst_event_new_flush_start());
  for (int i = 0; i < 200 && !eos_done; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_TRUE(eos_done) << "FLUSH_START did not wake the EOS drain";
  gst_harness_push_event(idle, gst_event_new_eos());  // lets the batch go if the drain was not woken
  eos.join();
  gst_harness_push_event(a, gst_event_new_flush_stop(TRUE));
  EXPECT_EQ(get_u64(a, "frames-analyzed"), 0u);  // the flushed frame's result is discarded
  gst_harness_teardown(idle);
  gst_harness_teardown(a);
}

// model-instance-id keeps a separate instance; num-threads different from
// what the process runs posts a warning instead of changing the others.
TEST_F(Element, InstanceIdAndProcessWideThreads) {
  const auto rgb = fixture_rgb()[0];
  std::string caps;
  gst_buffer_unref(make_buffer(rgb, GST_VIDEO_FORMAT_RGB, &caps));
  GstHarness* shared = make_harness("", caps);
  GstHarness* own = make_harness("model-instance-id=door-camera", caps);
  EXPECT_NE(model_instance(shared->element), model_instance(own->element));
  EXPECT_EQ(model_users(own->element), 1);
  GstElement* e = make_filter("");
  g_object_set(e, "num-threads", 1, NULL);  // make_filter says 2: the models here run with 2
  GstBus* bus = gst_bus_new();
  gst_element_set_bus(e, bus);
  GstHarness* third = gst_harness_new_with_element(e, "sink", "src");
  gst_object_unref(e);
  gst_harness_set_src_caps_str(third, caps.c_str());
  EXPECT_EQ(model_instance(third->element), model_instance(shared->element));
  bool warned = false;
  while (GstMessage* m = gst_bus_pop_filtered(bus, GST_MESSAGE_WARNING)) {
    GError* err = nullptr;
    gst_message_parse_warning(m, &err, nullptr);
    warned |= std::string(err->message).find("num-threads=1 not applied") != std::string::npos;
    g_clear_error(&err);
    gst_message_unref(m);
  }
  EXPECT_TRUE(warned) << "a num-threads that can't apply must say so";
  // Both still analyze.
  EXPECT_FALSE(analyze_one(third, make_buffer(rgb, GST_VIDEO_FORMAT_RGB, &caps)).labels.empty());
  EXPECT_FALSE(analyze_one(own, make_buffer(rgb, GST_VIDEO_FORMAT_RGB, &caps)).labels.empty());
  gst_harness_teardown(third);
  gst_harness_teardown(own);
  gst_harness_teardown(shared);
  gst_object_unref(bus);
}

// segments=true: a scene change becomes a "ruclip-segment" end and start,
// both as bus messages and as custom events downstream (in stream order);
// EOS ends what is open; the meta carries the smoothed scores.
TEST_F(Element, SegmentsAsMessagesAndDownstreamEvents) {
#if defined(__SANITIZE_ADDRESS__)
  GTEST_SKIP() << "the shipped model's SentencePiece tokenizer can't load beside LibTorch under AddressSanitizer";
#endif
  const std::string model = std::string(RUCLIP_SOURCE_ROOT) + "/models/ruclip-shapes-ru";
  auto solid = [](uint8_t r, uint8_t g, uint8_t b) {
    element_test::Rgb rgb{64, 48, {}};
    for (int i = 0; i < 64 * 48; ++i) rgb.pixels.insert(rgb.pixels.end(), {r, g, b});
    return rgb;
  };
  const auto red = solid(255, 0, 0), blue = solid(0, 0, 255);
  std::string caps;
  gst_buffer_unref(make_buffer(red, GST_VIDEO_FORMAT_RGB, &caps));
  GError* error = nullptr;
  GstElement* e = gst_parse_launch(("ruclipfilter segments=true smoothing=100000000 segment-min-duration=200000000 "
                                    "labels=\"красный фон;синий фон;зелёный фон\" model=" + gst_quote(model)).c_str(),
                                   &error);
  ASSERT_NE(e, nullptr) << (error ? error->message : "");
  GstBus* bus = gst_bus_new();
  gst_element_set_bus(e, bus);
  GstHarness* h = gst_harness_new_with_element(e, "sink", "src");
  gst_object_unref(e);
  gst_harness_set_src_caps_str(h, caps.c_str());
  const Pushed a = push_frames(h, red, GST_VIDEO_FORMAT_RGB, 10, GST_SECOND / 10);
  const Pushed b = push_frames(h, blue, GST_VIDEO_FORMAT_RGB, 10, GST_SECOND / 10, GST_SECOND);
  gst_harness_push_event(h, gst_event_new_eos());
  ASSERT_EQ(a.metas[0].smoothed.size(), a.metas[0].labels.size());
  EXPECT_NEAR(a.metas[0].smoothed[0], a.metas[0].scores[0], 1e-6);  // the first analysis is its own average
  EXPECT_LT(b.metas[0].smoothed[0], b.metas[0].scores[0]);          // blue just began: smoothed lags behind

  struct Seg {
    std::string event, label;
    guint64 start, end;
  };
  auto read = [](const GstStructure* s) {
    Seg g{gst_structure_get_string(s, "event"), gst_structure_get_string(s, "label"), 0, 0};
    gst_structure_get_uint64(s, "start-pts", &g.start);
    gst_structure_get_uint64(s, "end-pts", &g.end);
    return g;
  };
  std::vector<Seg> messages, events;
  while (GstMessage* m = gst_bus_pop_filtered(bus, GST_MESSAGE_ELEMENT)) {
    if (gst_structure_has_name(gst_message_get_structure(m), "ruclip-segment"))
      messages.push_back(read(gst_message_get_structure(m)));
    gst_message_unref(m);
  }
  while (GstEvent* ev = gst_harness_try_pull_event(h)) {
    if (GST_EVENT_TYPE(ev) == GST_EVENT_CUSTOM_DOWNSTREAM && gst_event_has_name(ev, "ruclip-segment"))
      events.push_back(read(gst_event_get_structure(ev)));
    gst_event_unref(ev);
  }
  ASSERT_EQ(messages.size(), 4u);
  EXPECT_EQ(messages[0].event, "start");
  EXPECT_EQ(messages[0].label, "красный фон");
  EXPECT_EQ(messages[0].start, 0u);  // reported after 0.2 s, dated back to its start
  EXPECT_EQ(messages[0].end, GST_CLOCK_TIME_NONE);
  EXPECT_EQ(messages[1].event, "end");
  EXPECT_EQ(messages[1].label, "красный фон");
  EXPECT_GE(messages[1].end, GST_SECOND);  // smoothing (tau 0.1 s) delays the switch a little
  EXPECT_LE(messages[1].end, GST_SECOND + 3 * GST_SECOND / 10);
  EXPECT_EQ(messages[3].event, "end");
  EXPECT_EQ(messages[3].label, "синий фон");
  EXPECT_EQ(messages[3].end, 2 * GST_SECOND);  // EOS closes it at the end of the last frame
  ASSERT_EQ(events.size(), messages.size());
  for (size_t i = 0; i < events.size(); ++i) {
    EXPECT_EQ(events[i].event, messages[i].event);
    EXPECT_EQ(events[i].label, messages[i].label);
    EXPECT_EQ(events[i].start, messages[i].start);
  }
  gst_harness_teardown(h);
  gst_object_unref(bus);
}

namespace {

// A region's "ruclip" param: label -> probability, and the best label.
bool region_param(GstVideoRegionOfInterestMeta* roi, std::map<std::string, double>* scores, std::string* best) {
  GstStructure* s = gst_video_region_of_interest_meta_get_param(roi, "ruclip");
  if (!s) return false;
  const LabelResult r = element_test::read_structure(s);
  for (size_t i = 0; i < r.labels.size(); ++i) (*scores)[r.labels[i]] = r.scores[i];
  *best = r.labels.empty() ? "" : r.labels[0];
  return true;
}

}  // namespace

// inference-region=roi-list: pictures of coloured shapes pasted at known
// places of one frame, one region meta each. Each region gets its own
// picture's label, equal to `ruclip classify` of the same crop; a region of
// another type is skipped, one half outside the frame is clipped, ones
// outside or tiny are skipped; a frame without regions is documented.
TEST_F(Element, RegionsEachGetTheirOwnLabel) {
#if defined(__SANITIZE_ADDRESS__)
  GTEST_SKIP() << "the shipped model's SentencePiece tokenizer can't load beside LibTorch under AddressSanitizer";
#endif
  const std::string model = std::string(RUCLIP_SOURCE_ROOT) + "/models/ruclip-shapes-ru";
  const std::vector<std::string> labels = ruclip::synth::all_labels();
  std::string all_labels;
  for (const auto& l : labels) all_labels += (all_labels.empty() ? "" : ";") + l;
  const std::string dir = ruclip_test::make_temp_dir();
  auto save = [&](const element_test::Rgb& rgb, const std::string& name) {
    cv::Mat m(rgb.height, rgb.width, CV_8UC3);
    for (int y = 0; y < rgb.height; ++y)
      for (int x = 0; x < rgb.width; ++x)
        m.at<cv::Vec3b>(y, x) = cv::Vec3b(rgb.at(x, y, 2), rgb.at(x, y, 1), rgb.at(x, y, 0));
    const std::string path = dir + "/" + name + ".png";
    EXPECT_TRUE(cv::imwrite(path, m));
    return path;
  };
  // Pictures the model names right on their own, of distinct colours (a mix-up would show).
  ruclip::synth::Options options;
  options.style = ruclip::synth::Style::Eval;
  options.include_solid = false;
  ruclip::synth::Generator generator(options, 77);
  std::vector<element_test::Rgb> pictures;
  std::vector<std::string> names;
  std::set<std::string> colours;
  for (int tries = 0; pictures.size() < 4 && tries < 200; ++tries) {
    const auto sample = generator.next();
    const std::string colour = sample.label.substr(0, sample.label.find(' '));
    if (colours.count(colour)) continue;
    const auto rgb = element_test::to_rgb(sample.image);
    const auto alone = classify_with(model, labels, {save(rgb, "alone")})[0];
    auto best = std::max_element(alone.begin(), alone.end(), [](auto& a, auto& b) { return a.second < b.second; });
    if (best->first != sample.label) continue;
    colours.insert(colour);
    pictures.push_back(rgb);
    names.push_back(sample.label);
  }
  ASSERT_EQ(pictures.size(), 4u);
  const int pw = pictures[0].width, ph = pictures[0].height;  // 96 x 72
  // The frame: gray, pictures at (0,0), (110,0), (220,0) and (300,100), the
  // last half outside (the frame is 350 x 150).
  element_test::Rgb frame{350, 150, std::vector<uint8_t>(350 * 150 * 3, 128)};
  const int xs[] = {0, 110, 220, 300}, ys[] = {0, 0, 0, 100};
  for (int i = 0; i < 4; ++i)
    for (int y = 0; y < ph; ++y)
      for (int x = 0; x < pw; ++x)
        if (xs[i] + x < frame.width && ys[i] + y < frame.height)
          for (int c = 0; c < 3; ++c)
            frame.pixels[(size_t(ys[i] + y) * frame.width + xs[i] + x) * 3 + c] = pictures[i].at(x, y, c);
  // The crops as the element must see them, for `ruclip classify`.
  auto cut = [&](int x, int y, int w, int h) {
    element_test::Rgb c{w, h, {}};
    for (int r = y; r < y + h; ++r)
      c.pixels.insert(c.pixels.end(), frame.pixels.begin() + (size_t(r) * frame.width + x) * 3,
                      frame.pixels.begin() + (size_t(r) * frame.width + x + w) * 3);
    return c;
  };
  const auto want = classify_with(model, labels,
                                  {save(cut(0, 0, pw, ph), "r0"), save(cut(110, 0, pw, ph), "r1"),
                                   save(cut(300, 100, 50, 50), "r3")});

  std::string caps;
  gst_buffer_unref(make_buffer(frame, GST_VIDEO_FORMAT_RGB, &caps));
  GstElement* e = gst_element_factory_make("ruclipfilter", nullptr);
  g_object_set(e, "model", model.c_str(), "labels", all_labels.c_str(), "num-threads", 2, "object-class", "shape",
               NULL);
  gst_util_set_object_arg(G_OBJECT(e), "inference-region", "roi-list");
  GstHarness* h = gst_harness_new_with_element(e, "sink", "src");
  gst_object_unref(e);
  gst_harness_set_src_caps_str(h, caps.c_str());
  GstBuffer* b = make_buffer(frame, GST_VIDEO_FORMAT_RGB, &caps);
  GST_BUFFER_PTS(b) = 0;
  int next_id = 1;  // region ids are the detector's to set; GStreamer leaves them 0
  auto add = [&](const char* type, int x, int y, int w, int hgt) {
    GstVideoRegionOfInterestMeta* roi = gst_buffer_add_video_region_of_interest_meta(b, type, x, y, w, hgt);
    return roi->id = next_id++;
  };
  const int r0 = add("shape", 0, 0, pw, ph), r1 = add("shape", 110, 0, pw, ph), face = add("face", 220, 0, pw, ph),
            half = add("shape", 300, 100, pw, ph), outside = add("shape", 1000, 10, 50, 50), tiny = add("shape", 5, 100, 3, 3);
  GstBuffer* out = gst_harness_push_and_pull(h, b);
  std::map<int, std::pair<std::map<std::string, double>, std::string>> got;
  gpointer state = nullptr;
  while (GstMeta* m = gst_buffer_iterate_meta_filtered(out, &state, GST_VIDEO_REGION_OF_INTEREST_META_API_TYPE)) {
    auto* roi = reinterpret_cast<GstVideoRegionOfInterestMeta*>(m);
    std::map<std::string, double> scores;
    std::string best;
    if (region_param(roi, &scores, &best)) got[roi->id] = {scores, best};
  }
  EXPECT_EQ(got.count(face), 0u) << "a region of another type was classified";
  EXPECT_EQ(got.count(outside), 0u);
  EXPECT_EQ(got.count(tiny), 0u);
  ASSERT_EQ(got.count(r0), 1u);
  ASSERT_EQ(got.count(r1), 1u);
  ASSERT_EQ(got.count(half), 1u);
  EXPECT_EQ(got[r0].second, names[0]);
  EXPECT_EQ(got[r1].second, names[1]);
  for (auto [id, index] : {std::pair{r0, 0}, {r1, 1}, {half, 2}})
    for (const auto& [label, p] : want[index])
      EXPECT_NEAR(got[id].first.at(label), p, 2e-3) << "region " << id << " " << label;
  // RuClipMeta lists the three, with their boxes.
  const GstStructure* meta = ruclip_buffer_get_result(out);
  ASSERT_NE(meta, nullptr);
  const GValue* regions = gst_structure_get_value(meta, "regions");
  ASSERT_NE(regions, nullptr);
  ASSERT_EQ(gst_value_array_get_size(regions), 3u);
  const GstStructure* first = gst_value_get_structure(gst_value_array_get_value(regions, 0));
  gint id = -1;
  guint w = 0;
  gst_structure_get_int(first, "id", &id);
  gst_structure_get_uint(first, "w", &w);
  EXPECT_EQ(id, r0);
  EXPECT_EQ(w, guint(pw));
  EXPECT_STREQ(gst_structure_get_string(first, "roi-type"), "shape");
  gst_buffer_unref(out);

  // A sampled frame without regions: a fresh RuClipMeta with an empty "regions".
  GstBuffer* none = make_buffer(frame, GST_VIDEO_FORMAT_RGB, &caps);
  GST_BUFFER_PTS(none) = GST_SECOND;
  out = gst_harness_push_and_pull(h, none);
  meta = ruclip_buffer_get_result(out);
  ASSERT_NE(meta, nullptr);
  gboolean fresh = FALSE;
  gst_structure_get_boolean(meta, "fresh", &fresh);
  EXPECT_TRUE(fresh);
  EXPECT_EQ(gst_value_array_get_size(gst_structure_get_value(meta, "regions")), 0u);
  gst_buffer_unref(out);
  gst_harness_teardown(h);

  // roi-list is sync only, and refuses async at start with a reason.
  EXPECT_NE(start_error(source_to_filter("model=" + gst_quote(model) +
                                         " labels=кошка inference-region=roi-list mode=async"))
                .find("inference-region=roi-list needs mode=sync"),
            std::string::npos);
}

// ruCLIP v1 (the article's model: OpenAI ViT + GPT-2, bicubic resize of the
// shorter side then centre crop) through the element, in every raw format,
// against `ruclip classify` of the same pictures (tolerances as for v2).
TEST_F(Element, V1ModelInEveryFormatAgreesWithClassify) {
  const std::string model = ruclip_test::v1_model_dir();
  const std::vector<std::string> labels = {"кот", "чашка кофе на блюдце", "Красный мотоцикл в гараже", "ЁЛКА, Пётр?!"};
  std::string labels_prop;
  for (const auto& l : labels) labels_prop += (labels_prop.empty() ? "" : ";") + l;
  std::vector<std::string> files;
  std::vector<element_test::Rgb> images;
  for (const auto& e : fs::directory_iterator(model + "/images")) files.push_back(e.path().string());
  std::sort(files.begin(), files.end());
  ASSERT_EQ(files.size(), 5u);
  for (const auto& f : files) images.push_back(element_test::to_rgb(ruclip::load_image(f)));
  const auto want = classify_with(model, labels, files);
  ASSERT_EQ(want.size(), files.size());
  std::vector<std::string> gray_files;
  const std::vector<element_test::Rgb> grays = gray_pictures(images, &gray_files);
  const auto want_gray = classify_with(model, labels, gray_files);

  auto analyze = [&](const element_test::Rgb& rgb, GstVideoFormat format) {
    std::string caps;
    GstBuffer* buffer = make_buffer(rgb, format, &caps);
    GError* error = nullptr;
    const std::string desc =
        "ruclipfilter model=" + gst_quote(model) + " labels=" + gst_quote(labels_prop) + " num-threads=2";
    GstElement* e = gst_parse_launch(desc.c_str(), &error);
    EXPECT_TRUE(e) << desc << ": " << (error ? error->message : "?");
    g_clear_error(&error);
    GstHarness* h = gst_harness_new_with_element(e, "sink", "src");
    gst_object_unref(e);
    gst_harness_set_src_caps_str(h, caps.c_str());
    const LabelResult r = analyze_one(h, buffer);
    gst_harness_teardown(h);
    return r;
  };
  for (GstVideoFormat format : {GST_VIDEO_FORMAT_RGB, GST_VIDEO_FORMAT_BGR, GST_VIDEO_FORMAT_RGBA, GST_VIDEO_FORMAT_BGRA,
                                GST_VIDEO_FORMAT_RGBx, GST_VIDEO_FORMAT_BGRx, GST_VIDEO_FORMAT_xRGB,
                                GST_VIDEO_FORMAT_xBGR}) {
    for (size_t i = 0; i < images.size(); ++i) {
      const LabelResult r = analyze(images[i], format);
      ASSERT_EQ(r.labels.size(), labels.size());
      EXPECT_EQ(r.model, model);
      EXPECT_LE(max_prob_diff(r, want[i]), 2e-3) << gst_video_format_to_string(format) << " " << files[i];
    }
  }
  for (size_t i = 0; i < grays.size(); ++i)
    EXPECT_LE(max_prob_diff(analyze(grays[i], GST_VIDEO_FORMAT_GRAY8), want_gray[i]), 2e-3) << "GRAY8 " << files[i];
  // Planar YUV: chroma at half resolution. Bicubic's negative lobes carry the
  // 4:2:0 error further than v2's bilinear, and the tiny random model's
  // probabilities swing on it: measured 0.036 here (v2's test: under 0.02).
  constexpr double kV1YuvTolerance = 0.05;
  for (GstVideoFormat format : {GST_VIDEO_FORMAT_I420, GST_VIDEO_FORMAT_NV12}) {
    double worst = 0;
    for (size_t i = 0; i < images.size(); ++i) worst = std::max(worst, max_prob_diff(analyze(images[i], format), want[i]));
    std::printf("v1 %s: max |probability - classify| = %.5f\n", gst_video_format_to_string(format), worst);
    EXPECT_LE(worst, kV1YuvTolerance) << gst_video_format_to_string(format);
  }
}
