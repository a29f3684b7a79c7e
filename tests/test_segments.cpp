// Smoothing, hysteresis and segments over per-frame scores (ruclip/segments.h).
#include <gtest/gtest.h>

#include <cmath>

#include "ruclip/error.h"
#include "ruclip/segments.h"

using ruclip::LabelScore;
using ruclip::SegmentEvent;
using ruclip::SegmentOptions;
using ruclip::SegmentTracker;

namespace {

constexpr uint64_t kSecond = 1000000000ull;

// Two labels, "a" with probability p and "b" with 1 - p.
std::vector<LabelScore> scores(double p) { return {{"a", float(p), 0}, {"b", float(1 - p), 0}}; }

// Feeds p[i] at i * step seconds; returns the events, then those of finish() at the end.
std::vector<SegmentEvent> run(SegmentTracker& t, const std::vector<double>& p, double step = 0.5) {
  std::vector<SegmentEvent> events;
  for (size_t i = 0; i < p.size(); ++i) t.add(uint64_t(i * step * kSecond), uint64_t(i * step * kSecond), scores(p[i]), &events);
  t.finish(uint64_t(p.size() * step * kSecond), uint64_t(p.size() * step * kSecond), &events);
  return events;
}

std::vector<ruclip::Segment> ended(const std::vector<SegmentEvent>& events, const std::string& label) {
  std::vector<ruclip::Segment> out;
  for (const auto& e : events)
    if (e.kind == SegmentEvent::Kind::kEnd && e.segment.label == label) out.push_back(e.segment);
  return out;
}

}  // namespace

TEST(Segments, RawScoresMakeOneSegmentPerScene) {
  SegmentTracker t;
  // a: 0-1.5 s, b: 1.5-3 s, a again 3-4 s.
  const auto events = run(t, {0.9, 0.9, 0.8, 0.1, 0.2, 0.1, 0.95, 0.9});
  const auto a = ended(events, "a"), b = ended(events, "b");
  ASSERT_EQ(a.size(), 2u);
  ASSERT_EQ(b.size(), 1u);
  EXPECT_EQ(a[0].start, 0u);
  EXPECT_EQ(a[0].end, 3 * kSecond / 2);
  EXPECT_EQ(a[0].frames, 3u);
  EXPECT_NEAR(a[0].mean_score, (0.9 + 0.9 + 0.8) / 3, 1e-6);
  EXPECT_NEAR(a[0].peak_score, 0.9, 1e-6);
  EXPECT_EQ(b[0].start, 3 * kSecond / 2);
  EXPECT_EQ(b[0].end, 3 * kSecond);
  EXPECT_EQ(a[1].start, 3 * kSecond);
  EXPECT_EQ(a[1].end, 4 * kSecond);  // closed by finish() at the stream's end
  // Every end had its start, in order.
  int open = 0;
  for (const auto& e : events) {
    open += e.kind == SegmentEvent::Kind::kStart ? 1 : -1;
    EXPECT_GE(open, 0);
  }
  EXPECT_EQ(open, 0);
}

TEST(Segments, HysteresisKeepsASegmentThroughADip) {
  SegmentOptions o;
  o.thresholds = {0.6, 0.3};
  SegmentTracker t(o);
  // a dips to 0.45 (below start, above end): one segment, not two.
  const auto a = ended(run(t, {0.7, 0.45, 0.7, 0.1}), "a");
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0].frames, 3u);
  EXPECT_EQ(a[0].end, 3 * kSecond / 2);
  // Without hysteresis the dip splits it.
  SegmentOptions plain;
  plain.thresholds = {0.6, 0.6};
  SegmentTracker u(plain);
  EXPECT_EQ(ended(run(u, {0.7, 0.45, 0.7, 0.1}), "a").size(), 2u);
}

TEST(Segments, SmoothingRemovesAOneFrameBlip) {
  SegmentOptions o;
  o.smoothing = kSecond;  // tau 1 s at 0.5 s steps
  SegmentTracker t(o);
  std::vector<SegmentEvent> events;
  std::vector<double> smoothed;
  const std::vector<double> p = {0.1, 0.1, 0.95, 0.1, 0.1, 0.1};
  for (size_t i = 0; i < p.size(); ++i) {
    const auto s = t.add(i * kSecond / 2, i * kSecond / 2, scores(p[i]), &events);
    smoothed.push_back(s[0]);
  }
  EXPECT_TRUE(ended(events, "a").empty());
  for (const auto& e : events) EXPECT_NE(e.segment.label, "a");
  // Exponential with alpha = 1 - exp(-0.5): the blip shows, damped.
  const double alpha = 1 - std::exp(-0.5);
  EXPECT_NEAR(smoothed[2], 0.1 + alpha * 0.85, 1e-6);
  EXPECT_LT(smoothed[2], 0.5);
  // Unsmoothed, the blip is a segment.
  SegmentTracker raw;
  EXPECT_EQ(ended(run(raw, p), "a").size(), 1u);
}

TEST(Segments, MinimumDurationDropsShortOnesAndDatesTheStartBack) {
  SegmentOptions o;
  o.min_duration = 1 * kSecond;
  SegmentTracker t(o);
  std::vector<SegmentEvent> events;
  // a holds 0.5 s (dropped), then 1.5 s (reported, starting at 1.5 s).
  const std::vector<double> p = {0.1, 0.9, 0.1, 0.9, 0.9, 0.9, 0.9, 0.1};
  for (size_t i = 0; i < p.size(); ++i) t.add(i * kSecond / 2, i * kSecond / 2, scores(p[i]), &events);
  std::vector<SegmentEvent> a;
  for (const auto& e : events)
    if (e.segment.label == "a") a.push_back(e);
  ASSERT_EQ(a.size(), 2u);
  EXPECT_EQ(a[0].kind, SegmentEvent::Kind::kStart);
  EXPECT_EQ(a[0].segment.start, 3 * kSecond / 2);
  EXPECT_EQ(a[1].kind, SegmentEvent::Kind::kEnd);
  EXPECT_EQ(a[1].segment.end, 7 * kSecond / 2);
  EXPECT_EQ(a[1].segment.frames, 4u);
}

TEST(Segments, PerLabelThresholdsAndLabelChanges) {
  SegmentOptions o;
  o.per_label = ruclip::parse_label_thresholds("a:0.95");
  SegmentTracker t(o);
  // a at 0.9 never reaches its own 0.95; b (1 - p) is below the default 0.5.
  EXPECT_TRUE(ended(run(t, {0.9, 0.9, 0.9}), "a").empty());

  // A label that disappears (the label set changed) ends its segment there.
  SegmentTracker u;
  std::vector<SegmentEvent> events;
  u.add(0, 0, scores(0.9), &events);
  u.add(kSecond, kSecond, {{"c", 0.8f, 0}, {"d", 0.2f, 0}}, &events);
  const auto a = ended(events, "a");
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0].end, kSecond);
  u.reset();  // a flush: no events for what was open
  std::vector<SegmentEvent> after;
  u.finish(2 * kSecond, 2 * kSecond, &after);
  EXPECT_TRUE(after.empty());
}

TEST(Segments, ParseLabelThresholds) {
  auto m = ruclip::parse_label_thresholds("человек:0.6:0.3; собака:0.7 ;время: утро:0.8");
  ASSERT_EQ(m.size(), 3u);
  EXPECT_DOUBLE_EQ(m["человек"].start, 0.6);
  EXPECT_DOUBLE_EQ(m["человек"].end, 0.3);
  EXPECT_DOUBLE_EQ(m["собака"].start, 0.7);
  EXPECT_NEAR(m["собака"].end, 0.6, 1e-9);  // start - (0.5 - 0.4)
  EXPECT_DOUBLE_EQ(m["время: утро"].start, 0.8);  // a label may hold ':': the numbers are the last fields
  auto error_of = [](const char* text) {
    try {
      ruclip::parse_label_thresholds(text);
    } catch (const ruclip::Error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_NE(error_of("кошка").find("expected label:start"), std::string::npos);
  EXPECT_NE(error_of("кошка:высоко").find("'высоко' is not a score"), std::string::npos);
  EXPECT_NE(error_of("кошка:1.5").find("not a score between 0 and 1"), std::string::npos);
  EXPECT_NE(error_of("кошка:0.3:0.6").find("end score is above the start"), std::string::npos);
  EXPECT_NE(error_of(":0.5").find("no label"), std::string::npos);
  SegmentOptions bad;
  bad.thresholds = {0.3, 0.6};
  EXPECT_THROW(SegmentTracker{bad}, ruclip::Error);
}
