#include "test_util.h"

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace fs = std::filesystem;

namespace ruclip_test {

std::string data_dir() {
  const char* env = std::getenv("RUCLIP_TEST_DATA");
  return env && *env ? env : RUCLIP_TEST_DATA;
}

std::string tiny_model_dir() { return data_dir() + "/ruclip-tiny-v2"; }

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open " + path);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!out) throw std::runtime_error("cannot write " + path);
}

const nlohmann::json& expected() {
  static const nlohmann::json json = nlohmann::json::parse(read_file(tiny_model_dir() + "/expected.json"));
  return json;
}

std::string v1_model_dir() { return data_dir() + "/ruclip-v1-tiny"; }

const nlohmann::json& v1_expected() {
  static const nlohmann::json json = nlohmann::json::parse(read_file(v1_model_dir() + "/expected.json"));
  return json;
}

std::vector<std::vector<int64_t>> fixture_ids(const nlohmann::json& expected) {
  std::vector<std::vector<int64_t>> ids;
  for (const auto& t : expected["texts"]) ids.push_back(t["input_ids"].get<std::vector<int64_t>>());
  return ids;
}

std::vector<float> fixture_pixels(const nlohmann::json& expected) {
  std::vector<float> pixels;
  for (const auto& image : expected["images"])
    for (float v : image["pixel_values"]) pixels.push_back(v);
  return pixels;
}

std::vector<int64_t> context_filling_ids(const ruclip::ModelConfig& c, int64_t first_token) {
  std::vector<int64_t> ids(c.context_length, 0);
  ids[0] = c.bos_id;
  for (int i = 1; i < c.context_length - 1; ++i) ids[i] = first_token + i - 1;
  ids[c.context_length - 1] = c.eos_id;
  return ids;
}

void expect_v1_tiny_geometry(const ruclip::ModelConfig& c) {
  EXPECT_EQ(c.family, ruclip::ModelFamily::kV1);
  EXPECT_EQ(c.weights_file, "ViT-B32-small.pt");
  EXPECT_EQ(c.image_resolution, 32);
  EXPECT_EQ(c.vision_patch_size, 16);
  EXPECT_EQ(c.vision_width, 64);
  EXPECT_EQ(c.vision_layers, 2);
  EXPECT_EQ(c.vision_heads, 2);  // config.json's, not 64 / 64
  EXPECT_EQ(c.vision_output_dim, 48);
  EXPECT_EQ(c.vocab_size, 1260);
  EXPECT_EQ(c.text_positions, 32);
  EXPECT_EQ(c.transformer_width, 64);
  EXPECT_EQ(c.transformer_layers, 2);
  EXPECT_EQ(c.transformer_heads, 2);
  EXPECT_EQ(c.transformer_inner, 256);
  EXPECT_EQ(c.embed_dim, 40);
  EXPECT_EQ(c.context_length, 16);  // seq_length
  EXPECT_EQ(c.context_length, v1_expected()["seq_length"].get<int>());
  EXPECT_EQ(c.pad_id, 0);
  EXPECT_EQ(c.bos_id, 1);
  EXPECT_EQ(c.eos_id, 2);
}

std::string make_temp_dir() {
  std::string pattern = (fs::temp_directory_path() / "ruclip-test-XXXXXX").string();
  if (!mkdtemp(pattern.data())) throw std::runtime_error("mkdtemp failed");
  return pattern;
}

std::string copy_tiny_model() {
  std::string dir = make_temp_dir();
  for (const char* name : {"config.json", "pytorch_model.bin", "bpe.model"})
    fs::copy_file(tiny_model_dir() + "/" + name, dir + "/" + name);
  return dir;
}

float max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) return INFINITY;
  float worst = 0;
  for (size_t i = 0; i < a.size(); ++i) worst = std::max(worst, std::fabs(a[i] - b[i]));
  return worst;
}

float cosine(const std::vector<float>& a, const std::vector<float>& b) {
  double dot = 0, na = 0, nb = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) {
    dot += double(a[i]) * b[i];
    na += double(a[i]) * a[i];
    nb += double(b[i]) * b[i];
  }
  return static_cast<float>(dot / std::sqrt(na * nb));
}

}  // namespace ruclip_test
