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

Scoring parse_scoring(const std::string& text, const std::string& what) {
  if (text == "softmax") return Scoring::kSoftmax;
  if (text == "presence") return Scoring::kPresence;
  throw Error(what + " '" + text + "': expected softmax or presence");
}

const char* scoring_name(Scoring scoring) { return scoring == Scoring::kPresence ? "presence" : "softmax"; }

Scoring default_scoring(size_t labels) { return labels == 1 ? Scoring::kPresence : Scoring::kSoftmax; }

void rank_scores(std::vector<LabelScore>* scores, Scoring scoring, int top_k) {
  std::stable_sort(scores->begin(), scores->end(),
                   [scoring](const LabelScore& a, const LabelScore& b) { return a.score(scoring) > b.score(scoring); });
  if (top_k > 0 && static_cast<size_t>(top_k) < scores->size()) scores->resize(top_k);
}

double background_soft_max(const std::vector<double>& background_logits, int skip, float logit_scale) {
  double top = -INFINITY, sum = 0;
  for (size_t k = 0; k < background_logits.size(); ++k)
    if (static_cast<int>(k) != skip) top = std::max(top, background_logits[k]);
  if (top == -INFINITY) return top;
  for (size_t k = 0; k < background_logits.size(); ++k)
    if (static_cast<int>(k) != skip) sum += std::exp(background_logits[k] - top);
  return (top + std::log(sum)) / double(logit_scale);
}

namespace {

double dot(const float* a, const float* b, int dim) {
  double d = 0;
  for (int j = 0; j < dim; ++j) d += double(a[j]) * b[j];
  return d;
}

}  // namespace

std::vector<LabelScore> score_image(const LabelSet& set, const float* image_latent, int dim, float logit_scale,
                                    int top_k, Scoring scoring) {
  if (dim != set.text.dim)
    throw Error("image embedding has " + std::to_string(dim) + " values, labels have " + std::to_string(set.text.dim));
  double norm = 0;
  for (int j = 0; j < dim; ++j) norm += double(image_latent[j]) * image_latent[j];
  const double inv_norm = norm > 0 ? 1.0 / std::sqrt(norm) : 0.0;

  const int n = set.text.rows;
  std::vector<LabelScore> scores(n);
  std::vector<double> logits(n);
  double max_logit = -INFINITY;
  // The background's logits; each label is scored against them less its own entry.
  const Embeddings* bg = set.background ? &set.background->text : nullptr;
  std::vector<double> background_logits(bg ? bg->rows : 0);
  for (size_t k = 0; k < background_logits.size(); ++k)
    background_logits[k] = double(logit_scale) * dot(bg->row(static_cast<int>(k)), image_latent, dim) * inv_norm;
  const double shared = background_soft_max(background_logits, -1, logit_scale);
  for (int i = 0; i < n; ++i) {
    scores[i].label = set.labels[i];
    scores[i].cosine = static_cast<float>(dot(set.text.row(i), image_latent, dim) * inv_norm);
    const int own = i < static_cast<int>(set.own_background.size()) ? set.own_background[i] : -1;
    const double background = own < 0 ? shared : background_soft_max(background_logits, own, logit_scale);
    scores[i].background = static_cast<float>(background);
    scores[i].presence =
        static_cast<float>(1.0 / (1.0 + std::exp(-double(logit_scale) * (double(scores[i].cosine) - background))));
    logits[i] = double(logit_scale) * scores[i].cosine;
    max_logit = std::max(max_logit, logits[i]);
  }
  double sum = 0;
  for (int i = 0; i < n; ++i) sum += logits[i] = std::exp(logits[i] - max_logit);
  for (int i = 0; i < n; ++i) scores[i].probability = static_cast<float>(logits[i] / sum);

  rank_scores(&scores, scoring, top_k);
  return scores;
}

}  // namespace ruclip
