// Shared helpers for the test suite: where the data is, reading files and
// the upstream golden outputs.
#pragma once
#include <gtest/gtest.h>

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "ruclip/config.h"
#include "ruclip/error.h"

namespace ruclip_test {

// tests/data, or $RUCLIP_TEST_DATA when set.
std::string data_dir();
std::string tiny_model_dir();  // tests/data/ruclip-tiny-v2
std::string read_file(const std::string& path);
void write_file(const std::string& path, const std::string& bytes);
// expected.json of the tiny model.
const nlohmann::json& expected();
// tests/data/ruclip-v1-tiny (ruCLIP v1) and its expected.json.
std::string v1_model_dir();
const nlohmann::json& v1_expected();
// An expected.json's texts as upstream tokenized them (input_ids), and its
// images' pixel_values, one after another (N x 3 x R x R).
std::vector<std::vector<int64_t>> fixture_ids(const nlohmann::json& expected);
std::vector<float> fixture_pixels(const nlohmann::json& expected);
// Row i of embeddings (ruclip/model.h's Embeddings, or anything with row() and dim).
template <typename E>
std::vector<float> row(const E& e, int i) {
  return {e.row(i), e.row(i) + e.dim};
}
// Ids that fill the whole context: bos, first_token, first_token + 1, ..., eos
// (a text whose tower is computed over every position).
std::vector<int64_t> context_filling_ids(const ruclip::ModelConfig& c, int64_t first_token);
// The v1 fixture's geometry, as its config.json states it.
void expect_v1_tiny_geometry(const ruclip::ModelConfig& c);
// A fresh empty directory under the system temp dir.
std::string make_temp_dir();
// Copies the tiny model folder to a temp dir, so a test can break one file.
std::string copy_tiny_model();

// what() of the ruclip::Error `f` throws; a test failure (and "") when it
// throws nothing or something else.
template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const ruclip::Error& e) {
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "threw a non-ruclip exception: " << e.what();
    return {};
  }
  ADD_FAILURE() << "did not throw a ruclip::Error";
  return {};
}

float max_abs_diff(const std::vector<float>& a, const std::vector<float>& b);
float cosine(const std::vector<float>& a, const std::vector<float>& b);

}  // namespace ruclip_test
