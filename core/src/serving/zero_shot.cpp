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

// Given templates, else the model's own (config.json "templates"), else upstream's six.
std::vector<std::string> templates_for(const Model& model, const std::vector<std::string>& templates) {
  const std::vector<std::string>& t = !templates.empty()                   ? templates
                                      : !model.config().templates.empty() ? model.config().templates
                                                                           : default_templates();
  for (const auto& one : t)
    if (one.find("{}") == std::string::npos) throw Error("templates: '" + one + "' has no {} where the label goes");
  return t;
}

}  // namespace

std::shared_ptr<const Background> build_background(Model& model, const std::vector<std::string>& templates,
                                                   const std::vector<std::string>& texts, const std::string& origin) {
  auto b = std::make_shared<Background>();
  b->templates = templates_for(model, templates);
  const std::vector<std::string>& given = !texts.empty()                      ? texts
                                          : !model.config().background.empty() ? model.config().background
                                                                               : default_background();
  for (const auto& entry : given) {
    std::string p = trim(to_lower(entry));
    if (!p.empty() && std::find(b->texts.begin(), b->texts.end(), p) == b->texts.end()) b->texts.push_back(std::move(p));
  }
  if (b->texts.empty()) throw Error(origin + ": no entries");
  b->text = encode_prompts(model, b->texts, b->templates);
  return b;
}

std::shared_ptr<const LabelSet> build_label_set(Model& model, const std::vector<std::string>& labels,
                                                const std::vector<std::string>& templates,
                                                std::shared_ptr<const Background> background) {
  if (labels.empty()) throw Error("labels: no labels given");
  auto set = std::make_shared<LabelSet>();
  set->labels = labels;
  set->templates = templates_for(model, templates);
  std::vector<std::string> prepared;
  for (const auto& label : labels) {
    std::string p = trim(to_lower(label));  // Predictor: class_label.lower().strip()
    if (p.empty()) throw Error("labels: empty label");
    prepared.push_back(std::move(p));
  }
  set->text = encode_prompts(model, prepared, set->templates);

  set->background = background ? std::move(background) : build_background(model, set->templates);
  if (set->background->templates != set->templates)
    throw Error("background: built through other templates than the labels'");
  const std::vector<std::string>& texts = set->background->texts;
  for (size_t i = 0; i < prepared.size(); ++i) {
    const auto own = std::find(texts.begin(), texts.end(), prepared[i]);
    set->own_background.push_back(own == texts.end() ? -1 : static_cast<int>(own - texts.begin()));
    if (own != texts.end() && texts.size() == 1)
      throw Error("background: its only entry is the label '" + labels[i] + "'; presence needs something else to "
                  "compare with");
  }
  return set;
}

}  // namespace ruclip
