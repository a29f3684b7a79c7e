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
