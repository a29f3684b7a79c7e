#include "ruclip/config.h"

#include <algorithm>
#include <cmath>
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

// `value` as an integer in 1..max; `name` is the field's path in messages.
int checked_positive_int(const nlohmann::json& value, const std::string& name, int max, const std::string& origin) {
  if (!value.is_number_integer())
    throw Error(origin + ": field \"" + name + "\" must be an integer, got " + value.dump());
  const auto n = value.get<int64_t>();
  if (n <= 0 || n > max)
    throw Error(origin + ": field \"" + name + "\" = " + std::to_string(n) + " is out of range (1.." +
                std::to_string(max) + ")");
  return static_cast<int>(n);
}

int positive_int(const nlohmann::json& json, const char* field, int max, const std::string& origin) {
  if (!json.contains(field)) throw Error(origin + ": missing field \"" + field + "\"");
  return checked_positive_int(json.at(field), field, max, origin);
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

std::vector<std::string> parse_templates(const nlohmann::json& json, const std::string& origin) {
  std::vector<std::string> templates;
  if (!json.contains("templates")) return templates;
  const auto& t = json.at("templates");
  if (!t.is_array() || t.empty())
    throw Error(origin + ": field \"templates\" must be a non-empty array of strings with {}, got " + t.dump());
  for (const auto& item : t) {
    if (!item.is_string() || item.get<std::string>().find("{}") == std::string::npos)
      throw Error(origin + ": field \"templates\": each must be a string with {} where the label goes, got " +
                  item.dump());
    templates.push_back(item.get<std::string>());
  }
  return templates;
}

ModelConfig parse_v1_config(const nlohmann::json& json, const std::string& origin);

}  // namespace

ModelConfig parse_config(const std::string& json_text, const std::string& origin) {
  nlohmann::json json;
  try {
    json = nlohmann::json::parse(json_text);
  } catch (const nlohmann::json::exception& e) {
    throw Error(origin + ": not valid JSON (" + e.what() + ")");
  }
  if (!json.is_object()) throw Error(origin + ": expected a JSON object");
  if (json.contains("architecture")) {
    const auto& a = json.at("architecture");
    if (a != "ruclip-v1")
      throw Error(origin + ": field \"architecture\" = " + a.dump() +
                  " is not one this implementation knows (\"ruclip-v1\"; ruclip-vit-* configs have none)");
    return parse_v1_config(json, origin);
  }

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
  c.templates = parse_templates(json, origin);
  if (json.contains("background")) {
    const auto& b = json.at("background");
    if (!b.is_array() || b.empty())
      throw Error(origin + ": field \"background\" must be a non-empty array of strings, got " + b.dump());
    for (const auto& item : b) {
      if (!item.is_string() || item.get<std::string>().find_first_not_of(" \t") == std::string::npos)
        throw Error(origin + ": field \"background\": each must be a non-empty string, got " + item.dump());
      c.background.push_back(item.get<std::string>());
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

namespace {
std::string v1_config_to_json(const ModelConfig& c);
}  // namespace

std::string config_to_json(const ModelConfig& c) {
  if (c.family == ModelFamily::kV1) return v1_config_to_json(c);
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
  if (!c.background.empty()) json["background"] = c.background;
  const ModelConfig defaults;
  if (c.pad_id != defaults.pad_id) json["pad_id"] = c.pad_id;
  if (c.unk_id != defaults.unk_id) json["unk_id"] = c.unk_id;
  if (c.bos_id != defaults.bos_id) json["bos_id"] = c.bos_id;
  if (c.eos_id != defaults.eos_id) json["eos_id"] = c.eos_id;
  return json.dump(2) + "\n";
}

// ---------------------------------------------------------------------------
// ruCLIP v1.

namespace {

// What this implementation computes (and upstream: OpenAI's LayerNorm and
// QuickGELU, transformers 3.x GPT-2's gelu_new and -10000 masks).
constexpr double kV1LayerNormEps = 1e-5;
constexpr double kV1MaskValue = -10000.0;

const char* const kV1Visual = "visual_encoder.model.";
const char* const kV1Text = "text_encoder.model.";

// An optional positive integer of `obj` (0 when absent); `name` is its path in messages.
int optional_int(const nlohmann::json& obj, const char* key, const std::string& name, int max,
                 const std::string& origin) {
  if (!obj.contains(key) || obj.at(key).is_null()) return 0;
  return checked_positive_int(obj.at(key), name, max, origin);
}

// A token id (0 allowed), or `fallback` when absent.
int optional_id(const nlohmann::json& obj, const char* key, int fallback, const std::string& origin) {
  if (!obj.contains(key) || obj.at(key).is_null()) return fallback;
  const auto& v = obj.at(key);
  if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() >= kMaxVocab)
    throw Error(origin + ": field \"" + key + "\" must be a token id, got " + v.dump());
  return v.get<int>();
}

const nlohmann::json& optional_object(const nlohmann::json& json, const char* key, const std::string& origin) {
  static const nlohmann::json empty = nlohmann::json::object();
  if (!json.contains(key) || json.at(key).is_null()) return empty;
  if (!json.at(key).is_object())
    throw Error(origin + ": field \"" + key + "\" must be an object, got " + json.at(key).dump());
  return json.at(key);
}

// A statement about the arithmetic: when present it must be what we compute.
void expect_string(const nlohmann::json& obj, const char* key, const std::string& name, const std::string& want,
                   const std::string& origin) {
  if (!obj.contains(key)) return;
  const auto& v = obj.at(key);
  if (!v.is_string() || v.get<std::string>().rfind(want, 0) != 0)
    throw Error(origin + ": field \"" + name + "\" = " + v.dump() + ": ruCLIP v1 computes \"" + want +
                "\" there (upstream's), and nothing else is implemented");
}

void expect_number(const nlohmann::json& obj, const char* key, const std::string& name, double want,
                   const std::string& origin) {
  if (!obj.contains(key)) return;
  const auto& v = obj.at(key);
  if (!v.is_number() || std::fabs(v.get<double>() - want) > 1e-9 * std::fabs(want)) {
    std::ostringstream w;
    w << want;
    throw Error(origin + ": field \"" + name + "\" = " + v.dump() + ": ruCLIP v1 computes with " + w.str() +
                " (upstream's), and nothing else is implemented");
  }
}

// `target` takes `value` (0: not given); two statements of one quantity must agree.
void agree(int& target, int value, const std::string& target_name, const std::string& value_name,
           const std::string& origin) {
  if (value == 0) return;
  if (target != 0 && target != value)
    throw Error(origin + ": field \"" + value_name + "\" = " + std::to_string(value) + " disagrees with \"" +
                target_name + "\" = " + std::to_string(target));
  target = value;
}

ModelConfig v1_defaults() {
  ModelConfig c;
  c.family = ModelFamily::kV1;
  c.tokenizer = "gpt2";
  // ruGPT3-small's <pad>, <s>, </s> (upstream get_tokenizer, MODELS eos_token_id);
  // no unknown token: byte-level BPE has every byte.
  c.pad_id = 0, c.unk_id = -1, c.bos_id = 1, c.eos_id = 2;
  return c;
}

// The checks of a v1 geometry, on the fields known (0: not yet).
void check_v1(const ModelConfig& c, const std::string& origin) {
  if (c.vision_width && c.vision_heads && c.vision_width % c.vision_heads != 0)
    throw Error(origin + ": vision width " + std::to_string(c.vision_width) + " is not divisible by its " +
                std::to_string(c.vision_heads) + " heads");
  if (c.transformer_width && c.transformer_heads && c.transformer_width % c.transformer_heads != 0)
    throw Error(origin + ": text n_embd " + std::to_string(c.transformer_width) + " is not divisible by its " +
                std::to_string(c.transformer_heads) + " heads");
  if (c.image_resolution && c.vision_patch_size && c.image_resolution < c.vision_patch_size)
    throw Error(origin + ": image resolution " + std::to_string(c.image_resolution) +
                " is smaller than the patch size " + std::to_string(c.vision_patch_size));
  if (c.context_length && c.context_length < 2)
    throw Error(origin + ": seq_length must be at least 2 (bos and eos)");
  if (c.context_length && c.text_positions && c.context_length > c.text_positions)
    throw Error(origin + ": seq_length " + std::to_string(c.context_length) + " is more than the text tower's " +
                std::to_string(c.text_positions) + " positions (n_positions)");
  for (auto [name, id] : {std::pair<const char*, int>{"pad_token_id", c.pad_id}, {"bos_token_id", c.bos_id},
                          {"eos_token_id", c.eos_id}})
    if (c.vocab_size && id >= c.vocab_size)
      throw Error(origin + ": " + name + " = " + std::to_string(id) + " is outside the vocabulary (" +
                  std::to_string(c.vocab_size) + " tokens)");
}

// The geometry fields of v1's config.json: where each is ("" = top level),
// its key, the ModelConfig member, its bound. Read and written by the same list.
struct V1Field {
  const char* section;
  const char* key;
  int ModelConfig::*member;
  int max;
};
const V1Field kV1Fields[] = {
    {"vision", "input_resolution", &ModelConfig::image_resolution, kMaxResolution},
    {"vision", "patch_size", &ModelConfig::vision_patch_size, kMaxResolution},
    {"vision", "width", &ModelConfig::vision_width, kMaxWidth},
    {"vision", "layers", &ModelConfig::vision_layers, kMaxLayers},
    {"vision", "heads", &ModelConfig::vision_heads, kMaxWidth},
    {"vision", "output_dim", &ModelConfig::vision_output_dim, kMaxWidth},
    {"text", "vocab_size", &ModelConfig::vocab_size, kMaxVocab},
    {"text", "n_positions", &ModelConfig::text_positions, kMaxContext},
    {"text", "n_embd", &ModelConfig::transformer_width, kMaxWidth},
    {"text", "n_layer", &ModelConfig::transformer_layers, kMaxLayers},
    {"text", "n_head", &ModelConfig::transformer_heads, kMaxWidth},
    {"text", "n_inner", &ModelConfig::transformer_inner, 4 * kMaxWidth},
    {"", "projection_dim", &ModelConfig::embed_dim, kMaxWidth},
    {"", "seq_length", &ModelConfig::context_length, kMaxContext},
};

ModelConfig parse_v1_config(const nlohmann::json& json, const std::string& origin) {
  ModelConfig c = v1_defaults();
  const auto& vision = optional_object(json, "vision", origin);
  const auto& text = optional_object(json, "text", origin);
  const auto& projection = optional_object(json, "projection", origin);
  for (const V1Field& f : kV1Fields) {
    const std::string section = f.section;
    const auto& obj = section == "vision" ? vision : section == "text" ? text : json;
    c.*f.member = optional_int(obj, f.key, section.empty() ? f.key : section + "." + f.key, f.max, origin);
  }

  agree(c.image_resolution, optional_int(json, "image_size", "image_size", kMaxResolution, origin),
        "vision.input_resolution", "image_size", origin);
  agree(c.vision_output_dim, optional_int(projection, "vision_d_in", "projection.vision_d_in", kMaxWidth, origin),
        "vision.output_dim", "projection.vision_d_in", origin);
  if (const int grid = optional_int(vision, "grid", "vision.grid", kMaxResolution, origin);
      grid && c.image_resolution && c.vision_patch_size && grid != c.image_resolution / c.vision_patch_size)
    throw Error(origin + ": field \"vision.grid\" = " + std::to_string(grid) + " is not input_resolution / patch_size = " +
                std::to_string(c.image_resolution / c.vision_patch_size));
  expect_number(vision, "mlp_ratio", "vision.mlp_ratio", 4, origin);
  expect_string(vision, "activation", "vision.activation", "quick_gelu", origin);
  expect_number(vision, "layer_norm_eps", "vision.layer_norm_eps", kV1LayerNormEps, origin);

  const int n_ctx = optional_int(text, "n_ctx", "text.n_ctx", kMaxContext, origin);
  agree(c.transformer_width, optional_int(projection, "text_d_in", "projection.text_d_in", kMaxWidth, origin),
        "text.n_embd", "projection.text_d_in", origin);
  expect_string(text, "activation_function", "text.activation_function", "gelu_new", origin);
  expect_number(text, "layer_norm_epsilon", "text.layer_norm_epsilon", kV1LayerNormEps, origin);
  expect_number(text, "attention_mask_value", "text.attention_mask_value", kV1MaskValue, origin);
  expect_number(text, "causal_mask_value", "text.causal_mask_value", kV1MaskValue, origin);

  expect_string(projection, "activation", "projection.activation", "quick_gelu", origin);
  expect_number(projection, "layer_norm_eps", "projection.layer_norm_eps", kV1LayerNormEps, origin);
  if (projection.contains("bias") && projection.at("bias") != false)
    throw Error(origin + ": field \"projection.bias\" = " + projection.at("bias").dump() +
                ": upstream's Projection linears have no bias");
  expect_string(json, "interpolation", "interpolation", "bicubic", origin);

  if (n_ctx && c.context_length && n_ctx < c.context_length)
    throw Error(origin + ": field \"text.n_ctx\" = " + std::to_string(n_ctx) + " is less than seq_length = " +
                std::to_string(c.context_length) + " (GPT-2's causal mask has n_ctx rows)");
  c.pad_id = optional_id(json, "pad_token_id", c.pad_id, origin);
  c.bos_id = optional_id(json, "bos_token_id", c.bos_id, origin);
  c.eos_id = optional_id(json, "eos_token_id", c.eos_id, origin);
  c.mean = triple(json, "mean", c.mean, false, origin);
  c.std = triple(json, "std", c.std, true, origin);
  c.templates = parse_templates(json, origin);
  if (json.contains("tokenizer") && json.at("tokenizer") != "gpt2")
    throw Error(origin + ": field \"tokenizer\" = " + json.at("tokenizer").dump() +
                ": ruCLIP v1's tokenizer is \"gpt2\" (vocab.json + merges.txt)");
  if (json.contains("checkpoint")) {
    const auto& f = json.at("checkpoint");
    const std::string name = f.is_string() ? f.get<std::string>() : "";
    if (name.empty() || name.find('/') != std::string::npos || name == "." || name == "..")
      throw Error(origin + ": field \"checkpoint\" must be a file name in the model folder, got " + f.dump());
    c.weights_file = name;
  }
  check_v1(c, origin);
  return c;
}

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string out = "[";
  for (size_t i = 0; i < shape.size(); ++i) out += (i ? "," : "") + std::to_string(shape[i]);
  return out + "]";
}

// 1 + the largest N of the keys `prefix`N.* (0: none).
int count_blocks(const std::map<std::string, std::vector<int64_t>>& shapes, const std::string& prefix) {
  int64_t count = 0;
  for (auto it = shapes.lower_bound(prefix); it != shapes.end() && it->first.rfind(prefix, 0) == 0; ++it) {
    const std::string rest = it->first.substr(prefix.size());
    const size_t dot = rest.find('.');
    if (dot == 0 || dot == std::string::npos || dot > 6 ||
        rest.find_first_not_of("0123456789") != dot)
      continue;
    count = std::max<int64_t>(count, std::stoll(rest.substr(0, dot)) + 1);
  }
  return static_cast<int>(std::min<int64_t>(count, kMaxLayers + 1));
}

std::string v1_config_to_json(const ModelConfig& c) {
  nlohmann::ordered_json json = {{"architecture", "ruclip-v1"}};
  if (!c.weights_file.empty()) json["checkpoint"] = c.weights_file;
  nlohmann::ordered_json vision = nlohmann::ordered_json::object(), text = nlohmann::ordered_json::object();
  for (const V1Field& f : kV1Fields) {
    const std::string section = f.section;
    auto& obj = section == "vision" ? vision : section == "text" ? text : json;
    if (c.*f.member) obj[f.key] = c.*f.member;
  }
  json["vision"] = vision;
  json["text"] = text;
  json["eos_token_id"] = c.eos_id;
  json["bos_token_id"] = c.bos_id;
  json["pad_token_id"] = c.pad_id;
  json["mean"] = c.mean;
  json["std"] = c.std;
  if (!c.templates.empty()) json["templates"] = c.templates;
  return json.dump(2) + "\n";
}

}  // namespace

ModelConfig v1_config_from_shapes(const std::map<std::string, std::vector<int64_t>>& shapes,
                                  const ModelConfig* stated, const std::string& origin) {
  if (stated && stated->family != ModelFamily::kV1)
    throw Error(origin + ": holds a ruCLIP v1 state dict (visual_encoder.*, text_encoder.*), but the folder's "
                "config.json describes a ruclip-vit-* (v2) model");
  ModelConfig c = stated ? *stated : v1_defaults();
  const std::string v = kV1Visual, t = kV1Text;
  std::vector<std::string> problems;
  // Axis `axis` of tensor `name`, which must have `rank` axes (0 and a problem when not).
  auto dim = [&](const std::string& name, size_t rank, size_t axis, int max, const char* gives) -> int {
    auto it = shapes.find(name);
    if (it == shapes.end()) {
      problems.push_back(name + " is missing (it gives the " + gives + ")");
      return 0;
    }
    if (it->second.size() != rank) {
      problems.push_back(name + " is " + shape_text(it->second) + ", expected " + std::to_string(rank) + " axes");
      return 0;
    }
    const int64_t n = it->second[axis];
    if (n <= 0 || n > max) {
      problems.push_back(name + " is " + shape_text(it->second) + ": the " + gives + " " + std::to_string(n) +
                         " is out of range (1.." + std::to_string(max) + ")");
      return 0;
    }
    return static_cast<int>(n);
  };

  if (!c.vision_width) c.vision_width = dim(v + "conv1.weight", 4, 0, kMaxWidth, "vision width");
  if (!c.vision_patch_size) c.vision_patch_size = dim(v + "conv1.weight", 4, 2, kMaxResolution, "patch size");
  if (!c.image_resolution && c.vision_patch_size) {
    // OpenAI's build_model: grid = round(sqrt(positions - 1)), resolution = grid * patch.
    const int positions = dim(v + "positional_embedding", 2, 0, kMaxResolution * kMaxResolution, "image resolution");
    const int grid = static_cast<int>(std::lround(std::sqrt(std::max(positions - 1, 0))));
    if (positions && (grid == 0 || grid * grid != positions - 1 || grid > kMaxResolution / c.vision_patch_size))
      problems.push_back(v + "positional_embedding has " + std::to_string(positions) +
                         " rows: not 1 + a square grid of patches");
    else
      c.image_resolution = grid * c.vision_patch_size;
  }
  if (!c.vision_layers) {
    c.vision_layers = count_blocks(shapes, v + "transformer.resblocks.");
    if (c.vision_layers == 0) problems.push_back("no " + v + "transformer.resblocks.N.* (the vision layers)");
    if (c.vision_layers > kMaxLayers) problems.push_back("more than " + std::to_string(kMaxLayers) + " vision layers");
  }
  if (!c.vision_output_dim) c.vision_output_dim = dim(v + "proj", 2, 1, kMaxWidth, "vision output_dim");
  if (!c.vocab_size) c.vocab_size = dim(t + "wte.weight", 2, 0, kMaxVocab, "vocabulary size");
  if (!c.transformer_width) c.transformer_width = dim(t + "wte.weight", 2, 1, kMaxWidth, "text width n_embd");
  if (!c.text_positions) c.text_positions = dim(t + "wpe.weight", 2, 0, kMaxContext, "text positions n_positions");
  if (!c.transformer_layers) {
    c.transformer_layers = count_blocks(shapes, t + "h.");
    if (c.transformer_layers == 0) problems.push_back("no " + t + "h.N.* (the text layers)");
    if (c.transformer_layers > kMaxLayers) problems.push_back("more than " + std::to_string(kMaxLayers) + " text layers");
  }
  if (!c.transformer_inner) {
    // GPT-2's Conv1D c_fc is [n_embd, n_inner]; without it (the load names it
    // missing) GPT2Config's default, 4 x n_embd.
    if (shapes.count(t + "h.0.mlp.c_fc.weight"))
      c.transformer_inner = dim(t + "h.0.mlp.c_fc.weight", 2, 1, 4 * kMaxWidth, "text MLP width n_inner");
    else
      c.transformer_inner = 4 * c.transformer_width;
  }
  if (!c.embed_dim) {
    // Either Projection gives it (one may be missing: the load names it then).
    const std::string image_head = "visual_encoder.projection.linear1.weight";
    c.embed_dim = dim(shapes.count(image_head) ? image_head : "text_encoder.projection.linear1.weight", 2, 0,
                      kMaxWidth, "projection width");
  }
  if (!problems.empty()) {
    std::string msg = origin + ": the ruCLIP v1 geometry can't be read from the state dict";
    for (size_t i = 0; i < problems.size(); ++i) msg += (i ? "; " : ": ") + problems[i];
    throw Error(msg);
  }
  // OpenAI's build_model: vision heads = width / 64; GPT-2 of this family: n_embd / 64.
  if (!c.vision_heads) {
    c.vision_heads = c.vision_width / 64;
    if (!c.vision_heads)
      throw Error(origin + ": vision width " + std::to_string(c.vision_width) +
                  " is under 64, so width / 64 gives no heads: a config.json must state vision.heads");
  }
  if (!c.transformer_heads) {
    c.transformer_heads = c.transformer_width / 64;
    if (!c.transformer_heads)
      throw Error(origin + ": text n_embd " + std::to_string(c.transformer_width) +
                  " is under 64, so n_embd / 64 gives no heads: a config.json must state text.n_head");
  }
  if (!c.context_length) c.context_length = std::min(kV1DefaultSeqLength, c.text_positions);
  check_v1(c, origin);
  return c;
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

// The article's ruCLIP, ai-forever/ru-clip's deprecated/clip: MODELS["ViT-B/32-small"]
// in deprecated/clip/evaluate/utils.py (visual_encoder_dim 512,
// clip_projection_dim 1024, hidden_size 768, eos_token_id 2; seq_length 128
// from load_weights_only), OpenAI's ViT-B/32 (224 px, patch 32, width 768,
// 12 layers, 12 heads) and sberbank-ai/rugpt3small_based_on_gpt2's GPT2Config
// (vocab 50264, n_positions 2048, n_embd 768, 12 layers, 12 heads, n_inner 4 x 768).
ModelConfig v1_published_geometry() {
  ModelConfig c = v1_defaults();
  c.embed_dim = 1024;
  c.image_resolution = 224;
  c.vision_layers = 12;
  c.vision_width = 768;
  c.vision_patch_size = 32;
  c.vision_heads = 12;
  c.vision_output_dim = 512;
  c.context_length = kV1DefaultSeqLength;
  c.vocab_size = 50264;
  c.text_positions = 2048;
  c.transformer_width = 768;
  c.transformer_heads = 12;
  c.transformer_layers = 12;
  c.transformer_inner = 3072;
  return c;
}
}  // namespace

std::vector<std::string> published_geometry_names() {
  std::vector<std::string> names;
  for (const auto& g : kGeometries) names.push_back(g.name);
  return names;
}

ModelConfig published_geometry(const std::string& name) {
  if (name == "v1") return v1_published_geometry();
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
  known += ", v1";
  throw Error("unknown geometry '" + name + "' (known: " + known + ")");
}

}  // namespace ruclip
