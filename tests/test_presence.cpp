// Presence scores (ruclip/presence.h, zero_shot.h): each label against the
// background alone, checked against the softmax over {label} + background
// computed here in double; the margin; the stream baseline on a scripted
// sequence of scores; segments following the presence.
#include <gtest/gtest.h>

#include <cmath>

#include "ruclip/error.h"
#include "ruclip/presence.h"
#include "ruclip/segments.h"
#include "ruclip/zero_shot.h"

using ruclip::LabelScore;
using ruclip::Scoring;

namespace {

constexpr float kScale = 20.0f;

// Unit rows e_0, e_1, ... of a 4-dimensional space, mixed as given.
ruclip::Embeddings rows(const std::vector<std::vector<float>>& v) {
  ruclip::Embeddings e{static_cast<int>(v.size()), 4, {}};
  for (const auto& r : v) {
    double n = 0;
    for (float x : r) n += double(x) * x;
    for (float x : r) e.data.push_back(static_cast<float>(x / std::sqrt(n)));
  }
  return e;
}

ruclip::LabelSet label_set(std::vector<std::string> labels, const std::vector<std::vector<float>>& text) {
  ruclip::LabelSet set;
  set.labels = std::move(labels);
  set.text = rows(text);
  auto background = std::make_shared<ruclip::Background>();
  background->texts = {"фото", "фон"};
  background->text = rows({{0, 0, 1, 0}, {0, 0, 0.3f, 1}});
  set.background = background;
  for (const auto& label : set.labels)
    set.own_background.push_back(label == "фото" ? 0 : label == "фон" ? 1 : -1);
  return set;
}

double cosine(const float* a, const std::vector<float>& b) {
  double d = 0, n = 0;
  for (int j = 0; j < 4; ++j) d += a[j] * b[j], n += double(b[j]) * b[j];
  return d / std::sqrt(n);
}

// The label's probability in a softmax over itself and the background: the model presence.h states.
double reference_presence(const ruclip::LabelSet& set, int label, const std::vector<float>& image) {
  const double own = std::exp(kScale * cosine(set.text.row(label), image));
  double rest = 0;
  for (int k = 0; k < set.background->text.rows; ++k)
    if (k != set.own_background[label]) rest += std::exp(kScale * cosine(set.background->text.row(k), image));
  return own / (own + rest);
}

TEST(Presence, IsTheLabelAgainstTheBackgroundAlone) {
  const auto set = label_set({"a", "b"}, {{1, 0, 0, 0}, {0.8f, 0.6f, 0, 0}});
  for (const std::vector<float>& image :
       {std::vector<float>{1, 0.1f, 0.2f, 0}, {0.1f, 0, 1, 0.2f}, {0.5f, 0.5f, 0.5f, 0.5f}, {0, 1, 0, 0}}) {
    const auto scores = ruclip::score_image(set, image.data(), 4, kScale);
    ASSERT_EQ(scores.size(), 2u);
    double softmax_sum = 0;
    for (const LabelScore& s : scores) {
      const int i = s.label == "a" ? 0 : 1;
      EXPECT_NEAR(s.presence, reference_presence(set, i, image), 1e-6) << s.label;
      EXPECT_NEAR(s.cosine, cosine(set.text.row(i), image), 1e-6);
      softmax_sum += s.probability;
    }
    EXPECT_NEAR(softmax_sum, 1.0, 1e-6);
  }
}

TEST(Presence, DoesNotDependOnTheOtherLabels) {
  const auto alone = label_set({"a"}, {{1, 0, 0, 0}});
  const auto with_other = label_set({"b", "a"}, {{0.9f, 0.1f, 0, 0}, {1, 0, 0, 0}});
  const std::vector<float> image = {0.9f, 0.2f, 0.3f, 0.1f};
  const auto one = ruclip::score_image(alone, image.data(), 4, kScale);
  const auto two = ruclip::score_image(with_other, image.data(), 4, kScale, 0, Scoring::kPresence);
  const auto& a = two[0].label == "a" ? two[0] : two[1];
  EXPECT_FLOAT_EQ(one[0].presence, a.presence);
  // A single label's softmax says 1.0 whatever the picture; its presence does not.
  EXPECT_FLOAT_EQ(one[0].probability, 1.0f);
  const std::vector<float> unrelated = {0, 0, 1, 0};
  EXPECT_LT(ruclip::score_image(alone, unrelated.data(), 4, kScale)[0].presence, 0.01f);
  EXPECT_GT(one[0].presence, 0.5f);
}

TEST(Presence, ALabelInTheBackgroundIsScoredAgainstTheRest) {
  // "фото" is also a background entry: it is left out of its own background only.
  const auto set = label_set({"a", "фото"}, {{1, 0, 0, 0}, {0, 0, 1, 0}});
  const std::vector<float> image = {0.72f, 0, 0.69f, 0};
  auto scores = ruclip::score_image(set, image.data(), 4, kScale, 0, Scoring::kSoftmax);
  for (const LabelScore& s : scores)
    EXPECT_NEAR(s.presence, reference_presence(set, s.label == "a" ? 0 : 1, image), 1e-6) << s.label;
  // The softmax prefers "a" (cosine 0.72 against 0.69); presence prefers "фото", whose rival is only «фон»,
  // while "a" must beat «фото» of the background too.
  EXPECT_EQ(scores[0].label, "a");
  ruclip::rank_scores(&scores, Scoring::kPresence);
  EXPECT_EQ(scores[0].label, "фото");
  EXPECT_GT(scores[0].presence, 0.99f);
  EXPECT_LT(scores[1].presence, 0.7f);
  ruclip::rank_scores(&scores, Scoring::kPresence, 1);
  EXPECT_EQ(scores.size(), 1u);
  EXPECT_EQ(ruclip::parse_scoring("presence"), Scoring::kPresence);
  EXPECT_STREQ(ruclip::scoring_name(Scoring::kSoftmax), "softmax");
  try {
    ruclip::parse_scoring("cosine", "scoring");
    FAIL() << "no error";
  } catch (const ruclip::Error& e) {
    EXPECT_NE(std::string(e.what()).find("scoring 'cosine'"), std::string::npos) << e.what();
  }
}

// A score whose presence logit (logit_scale * (cosine - background)) is `logit`.
LabelScore with_logit(double logit) {
  LabelScore s;
  s.label = "человек";
  s.background = 0.1f;
  s.cosine = static_cast<float>(0.1 + logit / kScale);
  return s;
}

double presence_of(ruclip::PresenceCalibrator& c, double logit) {
  std::vector<LabelScore> v = {with_logit(logit)};
  c.apply(&v, kScale);
  return v[0].presence;
}

double sigmoid(double x) { return 1 / (1 + std::exp(-x)); }

TEST(Presence, MarginShiftsTheLogit) {
  ruclip::PresenceCalibrator plain, strict({.margin = 2.0});
  EXPECT_NEAR(presence_of(plain, 1.0), sigmoid(1.0), 1e-5);
  EXPECT_NEAR(presence_of(strict, 1.0), sigmoid(-1.0), 1e-5);
  EXPECT_NEAR(strict.bar("человек"), 2.0, 1e-12);
}

TEST(Presence, BaselineLearnsALookalikeSceneAndStillSeesTheRealThing) {
  ruclip::PresenceOptions o;
  o.baseline_warmup = 10;
  ruclip::PresenceCalibrator c(o);
  // A camera whose constant scene resembles the label: logit 2 (+-0.05), presence 0.88 without a baseline.
  // The warm-up learns each analysis before scoring it: nothing holds.
  EXPECT_NEAR(presence_of(c, 1.95), sigmoid(1.95 - (1.95 + 3 * 0.5)), 1e-5);
  for (int i = 1; i < 10; ++i) EXPECT_LT(presence_of(c, 2.0 + (i % 2 ? 0.05 : -0.05)), 0.5) << i;
  // Then bar = median 2.0 + 3 x max(1.4826 x MAD 0.05, 0.5) = 3.5.
  EXPECT_NEAR(c.bar("человек"), 3.5, 1e-6);
  EXPECT_LT(presence_of(c, 2.0), 0.5);
  // The real thing stands out of the scene.
  EXPECT_NEAR(presence_of(c, 6.0), sigmoid(6.0 - 3.5), 1e-5);
  // Analyses judged present don't move the baseline, however many.
  for (int i = 0; i < 500; ++i) presence_of(c, 6.0);
  EXPECT_NEAR(c.bar("человек"), 3.5, 1e-6);
  // A scene that becomes plainer lowers it again, never under the margin.
  for (int i = 0; i < 400; ++i) presence_of(c, -5.0);
  EXPECT_NEAR(c.bar("человек"), 0.0, 1e-12);
  c.reset();
  EXPECT_NEAR(c.bar("человек"), 0.0, 1e-12);  // nothing learned
  EXPECT_NEAR(presence_of(c, 2.0), sigmoid(-1.5), 1e-5);  // warming up again
  // However the warm-up varies, nothing holds during it.
  for (double logit : {-3.0, 2.0, 2.0, 9.0, 2.0, 2.0, 2.0, 15.0, 2.0}) EXPECT_LT(presence_of(c, logit), 0.5) << logit;
  EXPECT_GT(presence_of(c, 9.0), 0.5);  // warm now
}

TEST(Presence, BaselineOffByDefaultAndOptionsChecked) {
  ruclip::PresenceCalibrator c;
  for (int i = 0; i < 100; ++i) EXPECT_NEAR(presence_of(c, 2.0), sigmoid(2.0), 1e-5);
  EXPECT_THROW(ruclip::PresenceCalibrator({.baseline_warmup = -1}), ruclip::Error);
  EXPECT_THROW(ruclip::PresenceCalibrator({.baseline_window = 0}), ruclip::Error);
  EXPECT_THROW(ruclip::PresenceCalibrator({.baseline_deviations = -1}), ruclip::Error);
  EXPECT_THROW(ruclip::PresenceCalibrator({.margin = std::nan("")}), ruclip::Error);
}

TEST(Presence, SegmentsFollowTheScoringGiven) {
  // One label: its softmax is always 1 (a segment over everything); its presence holds 1-2 s only.
  ruclip::SegmentTracker softmax, presence;
  std::vector<ruclip::SegmentEvent> by_softmax, by_presence;
  const std::vector<double> logits = {-6, -6, 5, 5, -6, -6};
  for (size_t i = 0; i < logits.size(); ++i) {
    std::vector<LabelScore> v = {with_logit(logits[i])};
    v[0].probability = 1.0f;
    v[0].presence = static_cast<float>(sigmoid(logits[i]));
    const uint64_t t = i * 500000000ull;
    softmax.add(t, t, v, &by_softmax);
    presence.add(t, t, v, &by_presence, Scoring::kPresence);
  }
  softmax.finish(3000000000ull, 3000000000ull, &by_softmax);
  presence.finish(3000000000ull, 3000000000ull, &by_presence);
  ASSERT_EQ(by_softmax.size(), 2u);
  EXPECT_EQ(by_softmax[1].segment.start, 0u);
  ASSERT_EQ(by_presence.size(), 2u);
  EXPECT_EQ(by_presence[1].segment.start, 1000000000ull);
  EXPECT_EQ(by_presence[1].segment.end, 2000000000ull);
  EXPECT_NEAR(by_presence[1].segment.mean_score, sigmoid(5), 1e-5);
}

}  // namespace
