#include "ruclip/zero_shot.h"

#include <algorithm>

#include "ruclip/error.h"
#include "ruclip/labels.h"
#include "ruclip/presence.h"
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

// Each text through every template, raw latents averaged, then normalized (upstream's Predictor).
Embeddings encode_prompts(Model& model, const std::vector<std::string>& prepared, const std::vector<std::string>& templates) {
  const int dim = model.config().embed_dim;
  Embeddings out{static_cast<int>(prepared.size()), dim, std::vector<float>(prepared.size() * dim, 0.0f)};
  for (const auto& t : templates) {
    std::vector<std::string> texts;
    for (const auto& text : prepared) texts.push_back(fill(t, text));
    const Embeddings e = model.encode_text(texts);
    for (size_t i = 0; i < e.data.size(); ++i) out.data[i] += e.data[i];
  }
  const float inv = 1.0f / static_cast<float>(templates.size());
  for (float& v : out.data) v *= inv;
  out.normalize_rows();
  return out;
}

}  // namespace

std::shared_ptr<const LabelSet> build_label_set(Model& model, const std::vector<std::string>& labels,
                                                const std::vector<std::string>& templates,
                                                const std::vector<std::string>& background) {
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

  set->text = encode_prompts(model, prepared, set->templates);

  // The background, less the entries that are one of the labels (compared as prepared).
  const std::vector<std::string>& given = !background.empty()                  ? background
                                          : !model.config().background.empty() ? model.config().background
                                                                               : default_background();
  std::vector<std::string> kept;
  for (const auto& entry : given) {
    std::string p = trim(to_lower(entry));
    if (p.empty() || std::find(prepared.begin(), prepared.end(), p) != prepared.end()) continue;
    if (std::find(kept.begin(), kept.end(), p) == kept.end()) kept.push_back(std::move(p));
  }
  if (kept.empty())
    throw Error("background: every entry is one of the labels; presence needs something else to compare with");
  set->background_texts = kept;
  set->background = encode_prompts(model, kept, set->templates);
  return set;
}

}  // namespace ruclip
