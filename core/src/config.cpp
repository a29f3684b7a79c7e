#include "ruclip/config.h"

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "ruclip/error.h"

namespace ruclip {
namespace {

// Upper bounds far above any published geometry (large-patch14-336: width
// 1024, 24 layers, 49408 tokens); they keep a hostile config from asking for
// terabytes before a single weight is read.
constexpr int kMaxWidth = 16384;
constexpr int kMaxLayers = 256;
constexpr int kMaxResolution = 4096;
constexpr int kMaxContext = 4096;
constexpr int kMaxVocab = 1 << 22;

int positive_int(const nlohmann::json& json, const char* field, int max, const std::string& origin) {
  if (!json.contains(field)) throw Error(origin + ": missing field \"" + field + "\"");
  const auto& value = json.at(field);
  if (!value.is_number_integer())
    throw Error(origin + ": field \"" + field + "\" must be an integer, got " + value.dump());
  const auto n = value.get<int64_t>();
  if (n <= 0 || n > max)
    throw Error(origin + ": field \"" + field + "\" = " + std::to_string(n) + " is out of range (1.." +
                std::to_string(max) + ")");
  return static_cast<int>(n);
}

std::array<float, 3> triple(const nlohmann::json& json, const char* field, std::array<float, 3> fallback,
                            bool must_be_positive, const std::string& origin) {
  if (!json.contains(field) || json.at(field).is_null()) return fallback;
  const auto& value = json.at(field);
  if (!value.is_array() || value.size() != 3)
    throw Error(origin + ": field \"" + field + "\" must be an array of 3 numbers, got " + value.dump());
  std::array<float, 3> out{};
  for (size_t i = 0; i < 3; ++i) {
    if (!value[i].is_number())
      throw Error(origin + ": field \"" + field + "\" must be an array of 3 numbers, got " + value.dump());
    out[i] = value[i].get<float>();
    if (must_be_positive && !(out[i] > 0))
      throw Error(origin + ": field \"" + field + "\" must be positive, got " + value.dump());
  }
  return out;
}

}  // namespace

ModelConfig parse_config(const std::string& json_text, const std::string& origin) {
  nlohmann::json json;
  try {
    json = nlohmann::json::parse(json_text);
  } catch (const nlohmann::json::exception& e) {
    throw Error(origin + ": not valid JSON (" + e.what() + ")");
  }
  if (!json.is_object()) throw Error(origin + ": expected a JSON object");

  ModelConfig c;
  c.embed_dim = positive_int(json, "embed_dim", kMaxWidth, origin);
  c.image_resolution = positive_int(json, "image_resolution", kMaxResolution, origin);
  c.vision_layers = positive_int(json, "vision_layers", kMaxLayers, origin);
  c.vision_width = positive_int(json, "vision_width", kMaxWidth, origin);
  c.vision_patch_size = positive_int(json, "vision_patch_size", kMaxResolution, origin);
  c.context_length = positive_int(json, "context_length", kMaxContext, origin);
  c.vocab_size = positive_int(json, "vocab_size", kMaxVocab, origin);
  c.transformer_width = positive_int(json, "transformer_width", kMaxWidth, origin);
  c.transformer_heads = positive_int(json, "transformer_heads", kMaxWidth, origin);
  c.transformer_layers = positive_int(json, "transformer_layers", kMaxLayers, origin);
  c.mean = triple(json, "mean", c.mean, false, origin);
  c.std = triple(json, "std", c.std, true, origin);

  // Upstream: vision_heads = vision_width // 64 (heads of width ~64).
  c.vision_heads = c.vision_width / 64;
  if (c.vision_heads == 0)
    throw Error(origin + ": vision_width = " + std::to_string(c.vision_width) +
                " must be at least 64 (the vision tower has vision_width // 64 heads)");
  if (c.vision_width % c.vision_heads != 0)
    throw Error(origin + ": vision_width = " + std::to_string(c.vision_width) + " is not divisible by its " +
                std::to_string(c.vision_heads) + " heads (vision_width // 64)");
  if (c.transformer_width % c.transformer_heads != 0)
    throw Error(origin + ": transformer_width = " + std::to_string(c.transformer_width) +
                " is not divisible by transformer_heads = " + std::to_string(c.transformer_heads));
  if (c.image_resolution < c.vision_patch_size)
    throw Error(origin + ": image_resolution = " + std::to_string(c.image_resolution) +
                " is smaller than vision_patch_size = " + std::to_string(c.vision_patch_size));
  if (c.context_length < 2)
    throw Error(origin + ": context_length must be at least 2 (bos and eos)");

  if (json.contains("tokenizer")) {
    const auto& t = json.at("tokenizer");
    if (!t.is_string() || (t != "yttm" && t != "sentencepiece"))
      throw Error(origin + ": field \"tokenizer\" must be \"yttm\" or \"sentencepiece\", got " + t.dump());
    c.tokenizer = t.get<std::string>();
  }
  if (json.contains("templates")) {
    const auto& t = json.at("templates");
    if (!t.is_array() || t.empty())
      throw Error(origin + ": field \"templates\" must be a non-empty array of strings with {}, got " + t.dump());
    for (const auto& item : t) {
      if (!item.is_string() || item.get<std::string>().find("{}") == std::string::npos)
        throw Error(origin + ": field \"templates\": each must be a string with {} where the label goes, got " +
                    item.dump());
      c.templates.push_back(item.get<std::string>());
    }
  }
  for (auto [field, target] : {std::pair<const char*, int*>{"pad_id", &c.pad_id}, {"unk_id", &c.unk_id},
                               {"bos_id", &c.bos_id}, {"eos_id", &c.eos_id}}) {
    if (json.contains(field)) {
      const auto& v = json.at(field);
      if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() >= c.vocab_size)
        throw Error(origin + ": field \"" + field + "\" must be a token id below vocab_size, got " + v.dump());
      *target = v.get<int>();
    }
  }
  for (int id : {c.pad_id, c.unk_id, c.bos_id, c.eos_id})
    if (id >= c.vocab_size)
      throw Error(origin + ": vocab_size = " + std::to_string(c.vocab_size) + " leaves no room for special token " +
                  std::to_string(id));
  return c;
}

ModelConfig load_config(const std::string& model_dir) {
  const std::string path = model_dir + "/config.json";
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path + ": cannot open (is " + model_dir + " a ruCLIP model folder?)");
  std::ostringstream text;
  text << in.rdbuf();
  return parse_config(text.str(), path);
}

std::string config_to_json(const ModelConfig& c) {
  nlohmann::ordered_json json = {
      {"embed_dim", c.embed_dim},
      {"image_resolution", c.image_resolution},
      {"vision_layers", c.vision_layers},
      {"vision_width", c.vision_width},
      {"vision_patch_size", c.vision_patch_size},
      {"context_length", c.context_length},
      {"vocab_size", c.vocab_size},
      {"transformer_width", c.transformer_width},
      {"transformer_heads", c.transformer_heads},
      {"transformer_layers", c.transformer_layers},
      {"mean", c.mean},
      {"std", c.std},
  };
  if (!c.tokenizer.empty()) json["tokenizer"] = c.tokenizer;
  if (!c.templates.empty()) json["templates"] = c.templates;
  const ModelConfig defaults;
  if (c.pad_id != defaults.pad_id) json["pad_id"] = c.pad_id;
  if (c.unk_id != defaults.unk_id) json["unk_id"] = c.unk_id;
  if (c.bos_id != defaults.bos_id) json["bos_id"] = c.bos_id;
  if (c.eos_id != defaults.eos_id) json["eos_id"] = c.eos_id;
  return json.dump(2) + "\n";
}

namespace {
struct Geometry {
  const char* name;
  int embed_dim, resolution, vision_layers, vision_width, patch, text_width, text_heads;
};
// From the published config.json files; every one has the 77-token context,
// the 49408-token vocabulary and 12 text layers.
constexpr Geometry kGeometries[] = {
    {"vit-b32-224", 512, 224, 12, 768, 32, 512, 8},  {"vit-b32-384", 512, 384, 12, 768, 32, 512, 8},
    {"vit-b16-224", 512, 224, 12, 768, 16, 512, 8},  {"vit-b16-384", 512, 384, 12, 768, 16, 512, 8},
    {"vit-l14-224", 768, 224, 24, 1024, 14, 768, 12}, {"vit-l14-336", 768, 336, 24, 1024, 14, 768, 12},
};
}  // namespace

std::vector<std::string> published_geometry_names() {
  std::vector<std::string> names;
  for (const auto& g : kGeometries) names.push_back(g.name);
  return names;
}

ModelConfig published_geometry(const std::string& name) {
  for (const auto& g : kGeometries) {
    if (name != g.name) continue;
    ModelConfig c;
    c.embed_dim = g.embed_dim;
    c.image_resolution = g.resolution;
    c.vision_layers = g.vision_layers;
    c.vision_width = g.vision_width;
    c.vision_patch_size = g.patch;
    c.vision_heads = g.vision_width / 64;
    c.context_length = 77;
    c.vocab_size = 49408;
    c.transformer_width = g.text_width;
    c.transformer_heads = g.text_heads;
    c.transformer_layers = 12;
    return c;
  }
  std::string known;
  for (const auto& g : kGeometries) known += std::string(known.empty() ? "" : ", ") + g.name;
  throw Error("unknown geometry '" + name + "' (known: " + known + ")");
}

}  // namespace ruclip
