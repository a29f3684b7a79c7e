// ruclipindex without a model: buffers carrying results made by the test
// (ruclipmeta.h) and capture times (a reference timestamp meta of NTP time)
// go through the element in a GstHarness; the SQLite index it writes is read
// back with the store (ruclip/index/store.h).
#include <gst/check/gstharness.h>
#include <gst/gst.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <map>

#include "ruclip/index/store.h"
#include "ruclipmeta.h"

namespace {

namespace fs = std::filesystem;
constexpr int kDim = 4;
constexpr int kWidth = 64, kHeight = 48;
// 2020-01-01T00:00:00Z in NTP time (seconds since 1900).
constexpr guint64 kNtp2020 = 3786825600ULL;
constexpr int64_t kUnix2020Us = 1577836800LL * 1000000;

std::vector<float> embedding_of(int frame) {
  std::vector<float> e(kDim, 0.0f);
  e[frame % kDim] = 1.0f;  // unit, and each frame's differs from the last
  return e;
}

// A red RGB frame at `pts`, captured at 2020-01-01 + `capture_ms`.
GstBuffer* frame_buffer(GstHarness* h, GstClockTime pts, int64_t capture_ms) {
  GstBuffer* b = gst_harness_create_buffer(h, kWidth * kHeight * 3);
  GstMapInfo map;
  gst_buffer_map(b, &map, GST_MAP_WRITE);
  for (gsize i = 0; i < map.size; i += 3) map.data[i] = 220, map.data[i + 1] = 30, map.data[i + 2] = 30;
  gst_buffer_unmap(b, &map);
  GST_BUFFER_PTS(b) = pts;
  GST_BUFFER_DURATION(b) = 100 * GST_MSECOND;
  GstCaps* ntp = gst_caps_new_empty_simple("timestamp/x-ntp");
  gst_buffer_add_reference_timestamp_meta(b, ntp, kNtp2020 * GST_SECOND + capture_ms * GST_MSECOND,
                                          GST_CLOCK_TIME_NONE);
  gst_caps_unref(ntp);
  return b;
}

void add_result(GstBuffer* b, GstClockTime source_pts, guint64 frame, bool fresh) {
  GstStructure* r = ruclip_buffer_add_result(b);
  const gchar* labels[] = {"красный фон", "синий фон"};
  const gdouble scores[] = {0.9, 0.1}, cosines[] = {0.3, 0.1};
  ruclip_result_set_labels(r, 2, labels, scores, cosines);
  ruclip_result_set_frame(r, source_pts, frame, fresh, "/models/m");
  const std::vector<float> e = embedding_of(static_cast<int>(frame));
  ruclip_result_set_embedding(r, kDim, e.data());
}

// ruclipindex with `properties` in a harness, fed 64x48 RGB frames.
GstHarness* index_harness(const std::string& properties) {
  GstHarness* h = gst_harness_new_parse(("ruclipindex " + properties).c_str());
  gst_harness_set_src_caps_str(h, "video/x-raw,format=RGB,width=64,height=48,framerate=10/1");
  return h;
}

// One frame of `caps` (`bytes` long, no capture-time meta: the clock's
// time) with a fresh result, through `launch`, then EOS.
void index_one_frame(const std::string& launch, const char* caps, gsize bytes) {
  GstHarness* h = gst_harness_new_parse(launch.c_str());
  gst_harness_set_src_caps_str(h, caps);
  GstBuffer* b = gst_harness_create_buffer(h, bytes);
  GST_BUFFER_PTS(b) = 0;
  add_result(b, 0, 0, true);
  ASSERT_EQ(gst_harness_push(h, b), GST_FLOW_OK);
  ASSERT_TRUE(gst_harness_push_event(h, gst_event_new_eos()));  // waits for the queue to be stored
  gst_harness_teardown(h);
}

class IndexElement : public testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("ruclip-index-element-" + std::to_string(getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    db_ = (dir_ / "index.db").string();
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
  std::string db_;
};

TEST_F(IndexElement, StoresEachResultOnceAtItsCaptureTime) {
  GstHarness* h = index_harness("location=" + db_ + " camera=gate min-change=0");
  // Async mode's shape: a result rides on the two buffers after its frame,
  // marked with its frame's PTS; frames 0, 2, 4 were analysed.
  for (int i = 0; i < 6; ++i) {
    GstBuffer* b = frame_buffer(h, i * 100 * GST_MSECOND, i * 100);
    if (i >= 1) {
      const int analysed = (i - 1) / 2 * 2;
      add_result(b, analysed * 100 * GST_MSECOND, static_cast<guint64>(analysed / 2), false);
    }
    ASSERT_EQ(gst_harness_push(h, b), GST_FLOW_OK);
  }
  // It asked ruclipfilter upstream for the embeddings.
  bool asked = false;
  while (GstEvent* e = gst_harness_try_pull_upstream_event(h)) {
    asked = asked || ruclip_event_is_attach_embedding(e);
    gst_event_unref(e);
  }
  EXPECT_TRUE(asked);
  ASSERT_TRUE(gst_harness_push_event(h, gst_event_new_eos()));  // waits for the queue to be stored
  guint64 stored = 0, unchanged = 0, dropped = 0;
  g_object_get(gst_harness_find_element(h, "ruclipindex"), "rows-stored", &stored, "rows-unchanged", &unchanged,
               "rows-dropped", &dropped, NULL);
  gst_object_unref(gst_harness_find_element(h, "ruclipindex"));
  EXPECT_EQ(stored, 3u);
  EXPECT_EQ(dropped, 0u);
  gst_harness_teardown(h);

  auto store = ruclip::index::Store::open(db_, false);
  EXPECT_EQ(store->info("dim").value_or(""), std::to_string(kDim));
  EXPECT_EQ(store->info("model").value_or(""), "/models/m");
  std::vector<ruclip::index::SampleRow> rows;
  std::vector<std::vector<float>> embeddings;
  store->read_since(0, kDim, [&](const ruclip::index::SampleRow& r, const float* e) {
    rows.push_back(r);
    embeddings.emplace_back(e, e + kDim);
  });
  ASSERT_EQ(rows.size(), 3u);
  for (size_t k = 0; k < rows.size(); ++k) {
    // The analysed frame's capture time and PTS, though the result arrived a frame later.
    EXPECT_EQ(rows[k].wall_time, kUnix2020Us + static_cast<int64_t>(k) * 200000) << k;
    EXPECT_NEAR(rows[k].time, k * 0.2, 1e-9) << k;
    EXPECT_EQ(embeddings[k], embedding_of(static_cast<int>(k))) << k;
    EXPECT_EQ(store->labels(rows[k].id), "красный фон;синий фон");
    const std::vector<uint8_t> jpeg = store->thumbnail(rows[k].id);
    ASSERT_GT(jpeg.size(), 100u);
    EXPECT_EQ(jpeg[0], 0xFF);
    EXPECT_EQ(jpeg[1], 0xD8);  // a JPEG
    // No larger frame: the frames are narrower than the thumbnail's 192.
    EXPECT_TRUE(store->frame(rows[k].id).empty());
  }
  EXPECT_EQ(ruclip::index::iso8601(rows[1].wall_time), "2020-01-01T00:00:00.200Z");
  const auto sources = store->sources();
  ASSERT_EQ(sources.size(), 1u);
  EXPECT_EQ(sources[0].name, "gate");
  EXPECT_EQ(sources[0].samples, 3);
}

// The JPEG's size, from its SOF0 marker.
std::pair<int, int> jpeg_size(const std::vector<uint8_t>& j) {
  for (size_t i = 2; i + 9 < j.size();) {
    if (j[i] != 0xFF) return {0, 0};
    const int marker = j[i + 1], length = j[i + 2] << 8 | j[i + 3];
    if (marker >= 0xC0 && marker <= 0xC2) return {j[i + 7] << 8 | j[i + 8], j[i + 5] << 8 | j[i + 6]};
    i += 2 + length;
  }
  return {0, 0};
}

TEST_F(IndexElement, KeepsALargerFrameBesideTheThumbnail) {
  for (const guint frame_width : {640u, 0u}) {
    fs::remove(db_);
    index_one_frame("ruclipindex location=" + db_ + " camera=gate frame-width=" + std::to_string(frame_width),
                    "video/x-raw,format=I420,width=1280,height=720,framerate=10/1", 1280 * 720 * 3 / 2);
    auto store = ruclip::index::Store::open(db_, false);
    int64_t id = 0;
    store->read_since(0, kDim, [&](const ruclip::index::SampleRow& r, const float*) { id = r.id; });
    EXPECT_EQ(jpeg_size(store->thumbnail(id)), std::make_pair(192, 108));
    if (frame_width)
      EXPECT_EQ(jpeg_size(store->frame(id)), std::make_pair(640, 360));
    else
      EXPECT_TRUE(store->frame(id).empty());
  }
}

TEST_F(IndexElement, UnchangedFramesAreCountedNotStored) {
  GstHarness* h = index_harness("location=" + db_ + " camera=yard min-change=0.5");
  for (int i = 0; i < 4; ++i) {
    GstBuffer* b = frame_buffer(h, i * 100 * GST_MSECOND, i * 100);
    GstStructure* r = ruclip_buffer_add_result(b);
    ruclip_result_set_frame(r, i * 100 * GST_MSECOND, static_cast<guint64>(i), TRUE, "/models/m");
    const std::vector<float> same = embedding_of(0);  // a static scene
    ruclip_result_set_embedding(r, kDim, same.data());
    ASSERT_EQ(gst_harness_push(h, b), GST_FLOW_OK);
  }
  ASSERT_TRUE(gst_harness_push_event(h, gst_event_new_eos()));
  GstElement* e = gst_harness_find_element(h, "ruclipindex");
  guint64 stored = 0, unchanged = 0;
  g_object_get(e, "rows-stored", &stored, "rows-unchanged", &unchanged, NULL);
  gst_object_unref(e);
  gst_harness_teardown(h);
  EXPECT_EQ(stored, 1u);
  EXPECT_EQ(unchanged, 3u);
  EXPECT_EQ(ruclip::index::Store::open(db_, false)->sample_count(), 1);
}

TEST_F(IndexElement, MaxAgeRemovesTheCamerasOldRows) {
  {
    // An old row of this camera and one of another camera, before the element runs.
    auto store = ruclip::index::Store::open(db_, true);
    ruclip::index::Sample old;
    old.wall_time = kUnix2020Us;
    old.embedding = embedding_of(1);
    store->add_samples(store->camera("gate"), {old});
    store->add_samples(store->camera("other"), {old});
  }
  index_one_frame("ruclipindex location=" + db_ + " camera=gate min-change=0 max-age=86400000000000",
                  "video/x-raw,format=RGB,width=64,height=48,framerate=10/1", kWidth * kHeight * 3);
  auto store = ruclip::index::Store::open(db_, false);
  std::map<int64_t, std::string> camera_of;
  for (const auto& s : store->sources()) camera_of[s.id] = s.name;
  std::vector<std::pair<std::string, bool>> left;  // camera, taken now
  const int64_t now = ruclip::index::wall_clock_now();
  store->read_since(0, kDim, [&](const ruclip::index::SampleRow& r, const float*) {
    left.push_back({camera_of[r.source_id], std::llabs(r.wall_time - now) < 3600LL * 1000000});
  });
  EXPECT_EQ(left, (std::vector<std::pair<std::string, bool>>{{"other", false}, {"gate", true}}));
}

TEST_F(IndexElement, NoLocationIsAnErrorNamingTheProperty) {
  GstElement* pipeline = gst_parse_launch("videotestsrc num-buffers=1 ! ruclipindex ! fakesink", nullptr);
  ASSERT_NE(pipeline, nullptr);
  gst_element_set_state(pipeline, GST_STATE_PLAYING);
  GstBus* bus = gst_element_get_bus(pipeline);
  GstMessage* m = gst_bus_timed_pop_filtered(bus, 30 * GST_SECOND, GST_MESSAGE_ERROR);  // a hang guard
  ASSERT_NE(m, nullptr);
  GError* err = nullptr;
  gst_message_parse_error(m, &err, nullptr);
  EXPECT_NE(std::string(err->message).find("location"), std::string::npos) << err->message;
  g_error_free(err);
  gst_message_unref(m);
  gst_object_unref(bus);
  gst_element_set_state(pipeline, GST_STATE_NULL);
  gst_object_unref(pipeline);
}

}  // namespace

int main(int argc, char** argv) {
  gst_init(&argc, &argv);
  testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
