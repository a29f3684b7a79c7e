#include <gtest/gtest.h>

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
  EXPECT_EQ(back.bos_id, 2);
}
