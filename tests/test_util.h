// Shared helpers for the test suite: where the data is, reading files and
// the upstream golden outputs.
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace ruclip_test {

// tests/data, or $RUCLIP_TEST_DATA when set.
std::string data_dir();
std::string tiny_model_dir();  // tests/data/ruclip-tiny-v2
std::string read_file(const std::string& path);
void write_file(const std::string& path, const std::string& bytes);
// expected.json of the tiny model.
const nlohmann::json& expected();
// A fresh empty directory under the system temp dir.
std::string make_temp_dir();
// Copies the tiny model folder to a temp dir, so a test can break one file.
std::string copy_tiny_model();

float max_abs_diff(const std::vector<float>& a, const std::vector<float>& b);
float cosine(const std::vector<float>& a, const std::vector<float>& b);

}  // namespace ruclip_test
