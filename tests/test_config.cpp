#include <gtest/gtest.h>

#include <algorithm>
#include <map>

#include "ruclip/config.h"
#include "ruclip/error.h"
#include "test_util.h"

using ruclip::Error;
using ruclip::parse_config;

namespace {

std::string tiny_config_text() { return ruclip_test::read_file(ruclip_test::tiny_model_dir() + "/config.json"); }

// Parses `json` expecting an error whose message contains every fragment.
void expect_error(const std::string& json, std::initializer_list<const char*> fragments) {
  try {
    parse_config(json, "/models/x/config.json");
    FAIL() << "accepted: " << json;
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("/models/x/config.json"), std::string::npos) << msg;
    for (const char* f : fragments) EXPECT_NE(msg.find(f), std::string::npos) << "'" << f << "' not in: " << msg;
  }
}

nlohmann::json tiny_json() { return nlohmann::json::parse(tiny_config_text()); }

}  // namespace

TEST(Config, ReadsThePublishedFields) {
  const auto c = ruclip::load_config(ruclip_test::tiny_model_dir());
  EXPECT_EQ(c.embed_dim, 48);
  EXPECT_EQ(c.image_resolution, 32);
  EXPECT_EQ(c.vision_layers, 2);
  EXPECT_EQ(c.vision_width, 128);
  EXPECT_EQ(c.vision_heads, 2);  // vision_width / 64, as upstream
  EXPECT_EQ(c.vision_patch_size, 8);
  EXPECT_EQ(c.context_length, 16);
  EXPECT_EQ(c.vocab_size, 3000);
  EXPECT_EQ(c.transformer_width, 64);
  EXPECT_EQ(c.transformer_heads, 4);
  EXPECT_EQ(c.transformer_layers, 2);
  EXPECT_FLOAT_EQ(c.mean[0], 0.48145466f);
  EXPECT_FLOAT_EQ(c.std[2], 0.27577711f);
  EXPECT_EQ(c.eos_id, 3);
  EXPECT_EQ(c.bos_id, 2);
  EXPECT_EQ(c.tokenizer, "");
}

TEST(Config, PublishedGeometryLargePatch14) {
  // ai-forever/ruclip-vit-large-patch14-336's config.json fields.
  const auto c = parse_config(R"({"embed_dim": 768, "image_resolution": 336, "vision_layers": 24,
    "vision_width": 1024, "vision_patch_size": 14, "context_length": 77, "vocab_size": 49408,
    "transformer_width": 768, "transformer_heads": 12, "transformer_layers": 12,
    "mean": [0.48145466, 0.4578275, 0.40821073], "std": [0.26862954, 0.26130258, 0.27577711]})",
                              "config.json");
  EXPECT_EQ(c.vision_heads, 16);
  EXPECT_EQ(c.image_resolution / c.vision_patch_size, 24);
}

TEST(Config, MissingFileNamesThePath) {
  try {
    ruclip::load_config("/nonexistent/model");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/model/config.json: cannot open"), std::string::npos) << e.what();
  }
}

TEST(Config, MissingField) {
  auto j = tiny_json();
  j.erase("vision_layers");
  expect_error(j.dump(), {"missing field \"vision_layers\""});
}

TEST(Config, WrongTypes) {
  auto j = tiny_json();
  j["embed_dim"] = "48";
  expect_error(j.dump(), {"\"embed_dim\" must be an integer"});
  j = tiny_json();
  j["mean"] = {0.5, 0.5};
  expect_error(j.dump(), {"\"mean\" must be an array of 3 numbers"});
  j = tiny_json();
  j["templates"] = {"{}", "без метки"};
  expect_error(j.dump(), {"\"templates\": each must be a string with {}"});
  j.erase("templates");
  j["background"] = "фото";
  expect_error(j.dump(), {"\"background\" must be a non-empty array of strings"});
  j["background"] = {"фото", " "};
  expect_error(j.dump(), {"\"background\": each must be a non-empty string"});
  j.erase("background");
  j = tiny_json();
  j["tokenizer"] = "wordpiece";
  expect_error(j.dump(), {"\"tokenizer\" must be"});
}

TEST(Config, NegativeAndHugeSizes) {
  auto j = tiny_json();
  j["vision_width"] = -128;
  expect_error(j.dump(), {"\"vision_width\" = -128 is out of range"});
  j = tiny_json();
  j["transformer_layers"] = 1000000000;
  expect_error(j.dump(), {"\"transformer_layers\" = 1000000000 is out of range"});
  j = tiny_json();
  j["vocab_size"] = 0;
  expect_error(j.dump(), {"\"vocab_size\" = 0 is out of range"});
  j = tiny_json();
  j["std"] = {0.2, 0.0, 0.2};
  expect_error(j.dump(), {"\"std\" must be positive"});
}

TEST(Config, InconsistentGeometry) {
  auto j = tiny_json();
  j["vision_width"] = 32;
  expect_error(j.dump(), {"must be at least 64"});
  j = tiny_json();
  j["vision_width"] = 129;  // 2 heads of 64.5: nn.MultiheadAttention refuses it too
  expect_error(j.dump(), {"not divisible by its 2 heads"});
  j = tiny_json();
  j["vision_width"] = 100;  // 1 head of 100 is what upstream builds
  EXPECT_EQ(parse_config(j.dump(), "config.json").vision_heads, 1);
  j = tiny_json();
  j["transformer_heads"] = 3;
  expect_error(j.dump(), {"not divisible by transformer_heads"});
  j = tiny_json();
  j["image_resolution"] = 4;
  expect_error(j.dump(), {"smaller than vision_patch_size"});
}

TEST(Config, NotJson) {
  expect_error("", {"not valid JSON"});
  expect_error("{\"embed_dim\": ", {"not valid JSON"});
  expect_error("[1, 2]", {"expected a JSON object"});
  expect_error(std::string("\xff\xfe{}", 4), {"not valid JSON"});
}

TEST(Config, RoundTripsThroughJson) {
  auto c = ruclip::load_config(ruclip_test::tiny_model_dir());
  c.tokenizer = "sentencepiece";
  c.eos_id = 7;
  c.templates = {"{}", "это {}"};
  c.background = {"фото", "пустая улица"};
  const auto back = parse_config(ruclip::config_to_json(c), "config.json");
  EXPECT_EQ(back.embed_dim, c.embed_dim);
  EXPECT_EQ(back.vision_heads, c.vision_heads);
  EXPECT_EQ(back.context_length, c.context_length);
  EXPECT_EQ(back.transformer_layers, c.transformer_layers);
  EXPECT_EQ(back.mean, c.mean);
  EXPECT_EQ(back.std, c.std);
  EXPECT_EQ(back.tokenizer, "sentencepiece");
  EXPECT_EQ(back.eos_id, 7);
  EXPECT_EQ(back.templates, c.templates);
  EXPECT_EQ(back.background, c.background);
  EXPECT_EQ(back.bos_id, 2);
}

// --- ruCLIP v1 ----------------------------------------------------------------

namespace {

using ruclip_test::v1_model_dir;
nlohmann::json v1_json() { return nlohmann::json::parse(ruclip_test::read_file(v1_model_dir() + "/config.json")); }

using Shapes = std::map<std::string, std::vector<int64_t>>;

// The fixture's state-dict shapes as provenance.json lists them.
Shapes fixture_shapes() {
  const auto p = nlohmann::json::parse(ruclip_test::read_file(v1_model_dir() + "/provenance.json"));
  Shapes shapes;
  for (const auto& [name, entry] : p.at("state_dict").items()) shapes[name] = entry.at(1).get<std::vector<int64_t>>();
  return shapes;
}

// The shapes of ai-forever/ru-clip's ViT-B32-small.pt (OpenAI's ViT-B/32,
// ruGPT3-small, Projection(512 -> 1024) and Projection(768 -> 1024)).
Shapes published_v1_shapes() {
  Shapes s;
  const std::string v = "visual_encoder.model.", t = "text_encoder.model.";
  s[v + "conv1.weight"] = {768, 3, 32, 32};
  s[v + "class_embedding"] = {768};
  s[v + "positional_embedding"] = {50, 768};
  s[v + "proj"] = {768, 512};
  for (int i = 0; i < 12; ++i) {
    s[v + "transformer.resblocks." + std::to_string(i) + ".attn.in_proj_weight"] = {2304, 768};
    s[t + "h." + std::to_string(i) + ".mlp.c_fc.weight"] = {768, 3072};
    s[t + "h." + std::to_string(i) + ".attn.bias"] = {1, 1, 2048, 2048};
  }
  s[t + "wte.weight"] = {50264, 768};
  s[t + "wpe.weight"] = {2048, 768};
  s["visual_encoder.projection.linear1.weight"] = {1024, 512};
  s["text_encoder.projection.linear1.weight"] = {1024, 768};
  return s;
}

void expect_v1_error(const std::string& json, std::initializer_list<const char*> fragments) {
  expect_error(json, fragments);
}

}  // namespace

TEST(ConfigV1, ReadsTheFixtureConfig) {
  const auto c = ruclip::load_config(v1_model_dir());
  ruclip_test::expect_v1_tiny_geometry(c);
  EXPECT_EQ(c.tokenizer, "gpt2");
  EXPECT_FLOAT_EQ(c.mean[1], 0.4578275f);
  EXPECT_FLOAT_EQ(c.std[0], 0.26862954f);
}

// A published v1 folder has no config.json: build_model's derivation.
TEST(ConfigV1, GeometryFromTheShapesAlone) {
  const auto c = ruclip::v1_config_from_shapes(fixture_shapes(), nullptr, "x.pt");
  EXPECT_EQ(c.family, ruclip::ModelFamily::kV1);
  EXPECT_EQ(c.image_resolution, 32);  // sqrt(5 - 1) = 2 patches of 16
  EXPECT_EQ(c.vision_patch_size, 16);
  EXPECT_EQ(c.vision_width, 64);
  EXPECT_EQ(c.vision_layers, 2);
  EXPECT_EQ(c.vision_heads, 1);  // 64 / 64: the fixture's config.json says 2
  EXPECT_EQ(c.vision_output_dim, 48);
  EXPECT_EQ(c.vocab_size, 1260);
  EXPECT_EQ(c.text_positions, 32);
  EXPECT_EQ(c.transformer_width, 64);
  EXPECT_EQ(c.transformer_layers, 2);
  EXPECT_EQ(c.transformer_heads, 1);
  EXPECT_EQ(c.transformer_inner, 256);
  EXPECT_EQ(c.embed_dim, 40);
  EXPECT_EQ(c.context_length, 32);  // upstream's 128, but only 32 positions
  EXPECT_EQ(c.bos_id, 1);
  EXPECT_EQ(c.eos_id, 2);
  EXPECT_EQ(c.tokenizer, "gpt2");
}

TEST(ConfigV1, ConfigJsonOverridesTheShapes) {
  const auto stated = ruclip::load_config(v1_model_dir());
  const auto c = ruclip::v1_config_from_shapes(fixture_shapes(), &stated, "x.pt");
  EXPECT_EQ(c.vision_heads, 2);
  EXPECT_EQ(c.transformer_heads, 2);
  EXPECT_EQ(c.context_length, 16);
  // Only some fields stated: the rest from the shapes.
  const auto partial = parse_config(R"({"architecture": "ruclip-v1", "vision": {"heads": 4}, "seq_length": 20})", "c.json");
  EXPECT_EQ(partial.vision_width, 0);  // left for the shapes
  const auto d = ruclip::v1_config_from_shapes(fixture_shapes(), &partial, "x.pt");
  EXPECT_EQ(d.vision_heads, 4);
  EXPECT_EQ(d.vision_width, 64);
  EXPECT_EQ(d.transformer_heads, 1);
  EXPECT_EQ(d.context_length, 20);
}

TEST(ConfigV1, ThePublishedCheckpointsShapesGiveThePublishedGeometry) {
  const auto c = ruclip::v1_config_from_shapes(published_v1_shapes(), nullptr, "ViT-B32-small.pt");
  const auto g = ruclip::published_geometry("v1");
  EXPECT_EQ(c.image_resolution, 224);
  EXPECT_EQ(c.vision_heads, 12);
  EXPECT_EQ(c.transformer_heads, 12);
  EXPECT_EQ(c.context_length, ruclip::kV1DefaultSeqLength);
  for (auto [a, b] : {std::pair{c.embed_dim, g.embed_dim}, {c.image_resolution, g.image_resolution},
                      {c.vision_layers, g.vision_layers}, {c.vision_width, g.vision_width},
                      {c.vision_patch_size, g.vision_patch_size}, {c.vision_heads, g.vision_heads},
                      {c.vision_output_dim, g.vision_output_dim}, {c.context_length, g.context_length},
                      {c.vocab_size, g.vocab_size}, {c.text_positions, g.text_positions},
                      {c.transformer_width, g.transformer_width}, {c.transformer_heads, g.transformer_heads},
                      {c.transformer_layers, g.transformer_layers}, {c.transformer_inner, g.transformer_inner},
                      {c.bos_id, g.bos_id}, {c.eos_id, g.eos_id}, {c.pad_id, g.pad_id}})
    EXPECT_EQ(a, b);
  EXPECT_EQ(g.family, ruclip::ModelFamily::kV1);
  // Not among the v2 names (benchmarks list those), but known.
  const auto names = ruclip::published_geometry_names();
  EXPECT_EQ(std::count(names.begin(), names.end(), "v1"), 0);
  try {
    ruclip::published_geometry("v3");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(", v1)"), std::string::npos) << e.what();
  }
}

TEST(ConfigV1, ShapesThatGiveNoGeometry) {
  auto s = fixture_shapes();
  s.erase("visual_encoder.model.conv1.weight");
  s["text_encoder.model.wte.weight"] = {1260};
  try {
    ruclip::v1_config_from_shapes(s, nullptr, "/m/ViT-B32-small.pt");
    FAIL();
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("/m/ViT-B32-small.pt: the ruCLIP v1 geometry can't be read from the state dict"),
              std::string::npos)
        << msg;
    EXPECT_NE(msg.find("visual_encoder.model.conv1.weight is missing (it gives the vision width)"), std::string::npos)
        << msg;
    EXPECT_NE(msg.find("text_encoder.model.wte.weight is [1260], expected 2 axes"), std::string::npos) << msg;
  }
  s = fixture_shapes();
  s["visual_encoder.model.positional_embedding"] = {6, 64};
  EXPECT_THROW(ruclip::v1_config_from_shapes(s, nullptr, "x.pt"), Error);
  s = fixture_shapes();
  s["text_encoder.model.wte.weight"] = {1260, int64_t(1) << 40};  // a stride-0 view could claim it
  try {
    ruclip::v1_config_from_shapes(s, nullptr, "x.pt");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("out of range"), std::string::npos) << e.what();
  }
  // Width under 64 and no stated heads: width / 64 gives none.
  s = fixture_shapes();
  s["visual_encoder.model.conv1.weight"] = {32, 3, 16, 16};
  try {
    ruclip::v1_config_from_shapes(s, nullptr, "x.pt");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("must state vision.heads"), std::string::npos) << e.what();
  }
  // A v2 config.json with a v1 state dict.
  const auto v2 = ruclip::load_config(ruclip_test::tiny_model_dir());
  EXPECT_THROW(ruclip::v1_config_from_shapes(fixture_shapes(), &v2, "x.pt"), Error);
}

TEST(ConfigV1, StatementsAboutTheArithmeticAreChecked) {
  auto j = v1_json();
  j["architecture"] = "ruclip-v3";
  expect_v1_error(j.dump(), {"\"architecture\" = \"ruclip-v3\""});
  j = v1_json();
  j["vision"]["activation"] = "gelu";
  expect_v1_error(j.dump(), {"\"vision.activation\" = \"gelu\": ruCLIP v1 computes \"quick_gelu\""});
  j = v1_json();
  j["text"]["activation_function"] = "relu";
  expect_v1_error(j.dump(), {"\"text.activation_function\""});
  j = v1_json();
  j["text"]["layer_norm_epsilon"] = 1e-6;
  expect_v1_error(j.dump(), {"\"text.layer_norm_epsilon\""});
  j = v1_json();
  j["text"]["causal_mask_value"] = -1e9;
  expect_v1_error(j.dump(), {"\"text.causal_mask_value\""});
  j = v1_json();
  j["projection"]["bias"] = true;
  expect_v1_error(j.dump(), {"\"projection.bias\""});
  j = v1_json();
  j["interpolation"] = "bilinear";
  expect_v1_error(j.dump(), {"\"interpolation\""});
}

TEST(ConfigV1, InconsistentFields) {
  auto j = v1_json();
  j["image_size"] = 64;
  expect_v1_error(j.dump(), {"\"image_size\" = 64 disagrees with \"vision.input_resolution\" = 32"});
  j = v1_json();
  j["projection"]["vision_d_in"] = 50;
  expect_v1_error(j.dump(), {"\"projection.vision_d_in\" = 50 disagrees"});
  j = v1_json();
  j["seq_length"] = 64;  // n_positions 32
  expect_v1_error(j.dump(), {"n_ctx"});
  j = v1_json();
  j["text"].erase("n_ctx");
  j["seq_length"] = 64;
  expect_v1_error(j.dump(), {"seq_length 64 is more than the text tower's 32 positions"});
  j = v1_json();
  j["vision"]["heads"] = 3;
  expect_v1_error(j.dump(), {"not divisible by its 3 heads"});
  j = v1_json();
  j["vision"]["grid"] = 4;
  expect_v1_error(j.dump(), {"\"vision.grid\" = 4"});
  j = v1_json();
  j["eos_token_id"] = 5000;
  expect_v1_error(j.dump(), {"eos_token_id = 5000 is outside the vocabulary"});
  j = v1_json();
  j["text"]["n_embd"] = -64;
  expect_v1_error(j.dump(), {"\"text.n_embd\" = -64 is out of range"});
  j = v1_json();
  j["checkpoint"] = "../elsewhere.pt";
  expect_v1_error(j.dump(), {"\"checkpoint\" must be a file name in the model folder"});
  j = v1_json();
  j["tokenizer"] = "yttm";
  expect_v1_error(j.dump(), {"ruCLIP v1's tokenizer is \"gpt2\""});
  j = v1_json();
  j["vision"] = 5;
  expect_v1_error(j.dump(), {"\"vision\" must be an object"});
}

TEST(ConfigV1, RoundTripsThroughJson) {
  auto c = ruclip::load_config(v1_model_dir());
  c.templates = {"Изображение {}"};
  const auto back = parse_config(ruclip::config_to_json(c), "config.json");
  EXPECT_EQ(back.family, ruclip::ModelFamily::kV1);
  EXPECT_EQ(back.weights_file, c.weights_file);
  for (auto [a, b] : {std::pair{back.embed_dim, c.embed_dim}, {back.image_resolution, c.image_resolution},
                      {back.vision_layers, c.vision_layers}, {back.vision_width, c.vision_width},
                      {back.vision_patch_size, c.vision_patch_size}, {back.vision_heads, c.vision_heads},
                      {back.vision_output_dim, c.vision_output_dim}, {back.context_length, c.context_length},
                      {back.vocab_size, c.vocab_size}, {back.text_positions, c.text_positions},
                      {back.transformer_width, c.transformer_width}, {back.transformer_heads, c.transformer_heads},
                      {back.transformer_layers, c.transformer_layers}, {back.transformer_inner, c.transformer_inner},
                      {back.bos_id, c.bos_id}, {back.eos_id, c.eos_id}, {back.pad_id, c.pad_id}})
    EXPECT_EQ(a, b);
  EXPECT_EQ(back.mean, c.mean);
  EXPECT_EQ(back.std, c.std);
  EXPECT_EQ(back.templates, c.templates);
}
