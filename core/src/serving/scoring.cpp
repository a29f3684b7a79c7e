// Scoring one image against a label set: pure arithmetic on embeddings, no
// LibTorch, so the element can score on its streaming thread cheaply.
#include <algorithm>
#include <cmath>

#include "ruclip/error.h"
#include "ruclip/zero_shot.h"

namespace ruclip {

const std::vector<std::string>& default_templates() {
  // upstream ruclip/predictor.py, Predictor.templates
  static const std::vector<std::string> templates = {
      "{}",         "фото, на котором изображено {}", "изображение с {}",
      "картинка с {}", "фото с {}",                     "на фото видно {}",
  };
  return templates;
}

std::vector<LabelScore> score_image(const LabelSet& set, const float* image_latent, int dim, float logit_scale,
                                    int top_k) {
  if (dim != set.text.dim)
    throw Error("image embedding has " + std::to_string(dim) + " values, labels have " + std::to_string(set.text.dim));
  double norm = 0;
  for (int j = 0; j < dim; ++j) norm += double(image_latent[j]) * image_latent[j];
  const double inv_norm = norm > 0 ? 1.0 / std::sqrt(norm) : 0.0;

  const int n = set.text.rows;
  std::vector<LabelScore> scores(n);
  std::vector<double> logits(n);
  double max_logit = -INFINITY;
  for (int i = 0; i < n; ++i) {
    const float* t = set.text.row(i);
    double dot = 0;
    for (int j = 0; j < dim; ++j) dot += double(t[j]) * image_latent[j];
    scores[i].label = set.labels[i];
    scores[i].cosine = static_cast<float>(dot * inv_norm);
    logits[i] = double(logit_scale) * scores[i].cosine;
    max_logit = std::max(max_logit, logits[i]);
  }
  double sum = 0;
  for (int i = 0; i < n; ++i) sum += logits[i] = std::exp(logits[i] - max_logit);
  for (int i = 0; i < n; ++i) scores[i].probability = static_cast<float>(logits[i] / sum);

  std::stable_sort(scores.begin(), scores.end(),
                   [](const LabelScore& a, const LabelScore& b) { return a.probability > b.probability; });
  if (top_k > 0 && top_k < n) scores.resize(top_k);
  return scores;
}

}  // namespace ruclip
