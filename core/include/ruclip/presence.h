// Presence: "is «человек» in this picture?", a score per label that does not
// depend on the other labels asked for (softmax over the labels can't answer
// it: with one label its probability is always 1).
//
// The model it assumes. The label's text must beat a background set of other
// descriptions the model knows (the model's config.json "background", else
// default_background()): with s the model's logit scale, c the label's cosine
// and b the log-sum-exp of the background's logits in cosine units
// (LabelScore::background),
//     presence = sigmoid(s * (c - b) - bar),   bar = margin by default,
// i.e. the probability the model gives the label in a softmax over the label
// and the background alone, shifted by `margin` logits. Optionally the
// stream's own baseline raises the bar: robust statistics (median, MAD) of
// the label's logit s * (c - b) over the analyses where it was absent,
// bar = max(margin, median + deviations * spread), so a camera's constant
// scene that resembles a label stops counting as it. The first
// `baseline_warmup` analyses are all taken as the scene without the label
// (and score below 0.5: nothing holds during them); later ones are learned
// only when below the bar.
// Docs: docs/tagging-and-search.md, "Presence".
//
//   ruclip::PresenceCalibrator presence({.margin = 0.0, .baseline_warmup = 20});
//   std::vector<ruclip::LabelScore> scores = ruclip::score_image(*set, latent, dim, s);
//   presence.apply(&scores, s);   // adjusts .presence, ranks by it
//
// Threads: a PresenceCalibrator belongs to one stream, fed in stream order
// from one thread at a time.
#pragma once
#include <deque>
#include <map>
#include <string>
#include <vector>

#include "ruclip/zero_shot.h"

namespace ruclip {

// Neutral Russian descriptions («фото», «изображение», «пустая сцена», ...):
// the background of a model that names none of its own.
const std::vector<std::string>& default_background();

struct PresenceOptions {
  double margin = 0;        // logits the label must beat the background by
  int baseline_warmup = 0;  // analyses all learned as the scene without the label; 0: no baseline
  int baseline_window = 200;      // the latest absent analyses the baseline keeps, per label
  double baseline_deviations = 3;  // how far above the absent median (in robust standard deviations)
  double baseline_min_spread = 0.5;  // floor of that deviation, in logits
};

class PresenceCalibrator {
 public:
  // Throws ruclip::Error for a margin that is not a number, a window below 1
  // or negative deviations/spread.
  explicit PresenceCalibrator(PresenceOptions options = {});

  // Recomputes each score's presence with the margin and (once warm) the
  // baseline, updates the baseline with the labels judged absent, and ranks
  // the scores best first by presence.
  void apply(std::vector<LabelScore>* scores, float logit_scale);
  // The bar a label's logit must reach now (the margin until something is learned).
  double bar(const std::string& label) const;
  // A flush: forget the baselines.
  void reset();

  const PresenceOptions& options() const { return options_; }

 private:
  struct Baseline {
    std::deque<double> absent;  // the latest logits while absent
    int seen = 0;               // analyses fed, up to the warm-up
  };
  double baseline_bar(const Baseline& b) const;

  PresenceOptions options_;
  std::map<std::string, Baseline> labels_;
};

}  // namespace ruclip
