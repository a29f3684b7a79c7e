// Zero-shot classification as upstream's Predictor does it: each label put into
// every template, text latents averaged over templates and normalized; images
// scored by softmax(logit_scale * cosine) over the labels.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "ruclip/model.h"

namespace ruclip {

// The reference Predictor's six default templates; "{}" marks the label.
const std::vector<std::string>& default_templates();

// An immutable set of labels with their text embeddings. Built once, then
// shared: swapping a shared_ptr<const LabelSet> swaps the whole set at once.
struct LabelSet {
  std::vector<std::string> labels;
  std::vector<std::string> templates;
  Embeddings text;  // one normalized row per label
};

// Without templates: the model's own (config.json "templates"), else
// upstream's six defaults. Throws ruclip::Error when there are no labels or a
// template lacks "{}".
std::shared_ptr<const LabelSet> build_label_set(Model& model, const std::vector<std::string>& labels,
                                                const std::vector<std::string>& templates = {});

struct LabelScore {
  std::string label;
  float probability = 0;
  float cosine = 0;
};

// Scores one raw image latent against the set; best first, at most top_k (0: all).
std::vector<LabelScore> score_image(const LabelSet& set, const float* image_latent, int dim,
                                    float logit_scale, int top_k = 0);

}  // namespace ruclip
