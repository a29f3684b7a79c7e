#include "ruclip/zero_shot.h"

#include "ruclip/error.h"
#include "ruclip/labels.h"
#include "ruclip/tokenizer.h"

namespace ruclip {
namespace {

// template.format(label): every "{}" becomes the label.
std::string fill(const std::string& templ, const std::string& label) {
  std::string out;
  size_t pos = 0;
  for (size_t hit; (hit = templ.find("{}", pos)) != std::string::npos; pos = hit + 2)
    out += templ.substr(pos, hit - pos) + label;
  return out + templ.substr(pos);
}

}  // namespace

std::shared_ptr<const LabelSet> build_label_set(Model& model, const std::vector<std::string>& labels,
                                                const std::vector<std::string>& templates) {
  if (labels.empty()) throw Error("labels: no labels given");
  auto set = std::make_shared<LabelSet>();
  set->labels = labels;
  // Given templates, else the model's own (config.json "templates"), else upstream's six.
  set->templates = !templates.empty()                   ? templates
                   : !model.config().templates.empty() ? model.config().templates
                                                        : default_templates();
  for (const auto& t : set->templates)
    if (t.find("{}") == std::string::npos)
      throw Error("templates: '" + t + "' has no {} where the label goes");
  std::vector<std::string> prepared;
  for (const auto& label : labels) {
    std::string p = trim(to_lower(label));  // Predictor: class_label.lower().strip()
    if (p.empty()) throw Error("labels: empty label");
    prepared.push_back(std::move(p));
  }

  // Upstream averages the raw latents over templates, then normalizes.
  const int dim = model.config().embed_dim;
  set->text = Embeddings{static_cast<int>(labels.size()), dim, std::vector<float>(labels.size() * dim, 0.0f)};
  for (const auto& t : set->templates) {
    std::vector<std::string> texts;
    for (const auto& label : prepared) texts.push_back(fill(t, label));
    const Embeddings e = model.encode_text(texts);
    for (size_t i = 0; i < e.data.size(); ++i) set->text.data[i] += e.data[i];
  }
  const float inv = 1.0f / static_cast<float>(set->templates.size());
  for (float& v : set->text.data) v *= inv;
  set->text.normalize_rows();
  return set;
}

}  // namespace ruclip
