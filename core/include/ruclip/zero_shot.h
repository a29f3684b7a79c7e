// Zero-shot classification as upstream's Predictor does it: each label put into
// every template, text latents averaged over templates and normalized; images
// scored by softmax(logit_scale * cosine) over the labels. Beside it, each
// label's presence: the label against a background set alone, independent of
// the other labels (presence.h has the model and the per-stream calibration).
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "ruclip/model.h"

namespace ruclip {

// The reference Predictor's six default templates; "{}" marks the label.
const std::vector<std::string>& default_templates();

// Which score thresholds, top-k and segments use.
enum class Scoring {
  kSoftmax,   // softmax over the labels given: "which of these is it most like"
  kPresence,  // each label against the background alone: "is it there"
};
// "softmax" / "presence"; throws ruclip::Error naming `what` for anything else.
Scoring parse_scoring(const std::string& text, const std::string& what = "scoring");
const char* scoring_name(Scoring scoring);
// What "auto" means: presence for one label (a softmax over it would always
// say 1.0), softmax for several.
Scoring default_scoring(size_t labels);

// The descriptions labels are scored against for presence (presence.h),
// through the labels' templates. Shared by the label sets of one model and
// templates.
struct Background {
  std::vector<std::string> texts;  // as prepared (lower-cased, trimmed, no repeats)
  std::vector<std::string> templates;
  Embeddings text;                 // one normalized row per text
};

// `texts` empty: the model's own (config.json "background"), else
// default_background(); `templates` empty: as build_label_set. Throws
// ruclip::Error naming `origin` when no entry is left.
std::shared_ptr<const Background> build_background(Model& model, const std::vector<std::string>& templates = {},
                                                   const std::vector<std::string>& texts = {},
                                                   const std::string& origin = "background");

// An immutable set of labels with their text embeddings. Built once, then
// shared: swapping a shared_ptr<const LabelSet> swaps the whole set at once.
struct LabelSet {
  std::vector<std::string> labels;
  std::vector<std::string> templates;
  Embeddings text;  // one normalized row per label
  std::shared_ptr<const Background> background;
  // Per label: its own entry in the background (the same text), left out of
  // what it is scored against; -1 when it has none. Only its own: a label's
  // presence is the same whichever other labels are asked for.
  std::vector<int> own_background;
};

// Without templates: the model's own (config.json "templates"), else
// upstream's six defaults. Without a background: build_background(model,
// templates). Throws ruclip::Error when there are no labels, a template lacks
// "{}", the background's templates differ, or a label's background would be
// only itself.
std::shared_ptr<const LabelSet> build_label_set(Model& model, const std::vector<std::string>& labels,
                                                const std::vector<std::string>& templates = {},
                                                std::shared_ptr<const Background> background = nullptr);

struct LabelScore {
  std::string label;
  float probability = 0;  // softmax(logit_scale * cosine) over the set's labels
  float presence = 0;     // sigmoid(logit_scale * (cosine - background)), presence.h
  float cosine = 0;
  float background = 0;   // the background's soft maximum cosine on this image
  float score(Scoring scoring) const { return scoring == Scoring::kPresence ? presence : probability; }
};

// Scores one raw image latent against the set; best first by `scoring`, at
// most top_k (0: all). Both scores are filled in either way.
std::vector<LabelScore> score_image(const LabelSet& set, const float* image_latent, int dim,
                                    float logit_scale, int top_k = 0, Scoring scoring = Scoring::kSoftmax);
// Best first by `scoring` (stable), at most top_k (0: all).
void rank_scores(std::vector<LabelScore>* scores, Scoring scoring, int top_k = 0);
// The soft maximum (log-sum-exp) of a background's logits (logit_scale x
// cosine each) but entry `skip` (-1: none), in cosine units: the `background`
// a label is scored against. -infinity when nothing is left.
double background_soft_max(const std::vector<double>& background_logits, int skip, float logit_scale);

}  // namespace ruclip
