// model.h's promise: encode_* may run concurrently from any number of
// threads on one loaded Model. Each kernel keeps caches filled on first use
// (oneDNN primitives per row count, int8's quantizers, attention's primitives
// per shape), so threads here ask for shapes nobody asked for before, at the
// same time. Run under ThreadSanitizer by scripts/tsan.sh.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "ruclip/cpu.h"
#include "ruclip/model.h"
#include "test_util.h"

namespace {

struct Inputs {
  std::vector<float> pixels;                 // 5 images
  std::vector<std::vector<int64_t>> texts;  // ids of different lengths
};

Inputs fixture_inputs() {
  Inputs in;
  for (const auto& image : ruclip_test::expected()["images"])
    for (float v : image["pixel_values"]) in.pixels.push_back(v);
  for (const auto& t : ruclip_test::expected()["texts"]) in.texts.push_back(t["input_ids"].get<std::vector<int64_t>>());
  return in;
}

// The latents of images [0, n) and of texts [0, n): batch sizes and text
// lengths vary with n, so each n is a new set of shapes.
std::vector<float> encode(const ruclip::Model& model, const Inputs& in, int n) {
  const auto images = model.encode_pixels(in.pixels.data(), n);
  const auto texts = model.encode_token_ids({in.texts.begin(), in.texts.begin() + std::min<size_t>(n, in.texts.size())});
  std::vector<float> out(images.row(0), images.row(0) + images.rows * images.dim);
  out.insert(out.end(), texts.row(0), texts.row(0) + texts.rows * texts.dim);
  return out;
}

void expect_threads_match_one_thread(const ruclip::Model& model, const Inputs& in) {
  constexpr int kThreads = 4, kSizes = 5;
  std::vector<std::vector<std::vector<float>>> got(kThreads, std::vector<std::vector<float>>(kSizes));
  {
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t)
      threads.emplace_back([&, t] {
        // Each thread walks the sizes in its own order: first uses collide.
        for (int i = 0; i < kSizes; ++i) {
          const int n = 1 + (i + t) % kSizes;
          got[t][n - 1] = encode(model, in, n);
        }
      });
    for (auto& th : threads) th.join();
  }
  for (int n = 1; n <= kSizes; ++n) {
    const auto want = encode(model, in, n);  // now alone
    for (int t = 0; t < kThreads; ++t)
      EXPECT_LE(ruclip_test::max_abs_diff(got[t][n - 1], want), 1e-5) << "thread " << t << ", " << n << " inputs";
  }
}

TEST(ModelConcurrency, CallsFromManyThreadsEqualOneThread) {
  const Inputs in = fixture_inputs();
  std::vector<std::pair<std::string, std::string>> runs = {{"fp32", "onednn-f32"}, {"fp32", "libtorch-blas"},
                                                          {"int8", ""}};
  if (ruclip::cpu_features().native_bf16()) runs.push_back({"bf16", ""});
  for (const auto& [precision, fp32_kernel] : runs) {
    SCOPED_TRACE(precision + " " + fp32_kernel);
    if (!fp32_kernel.empty()) setenv("RUCLIP_FP32_KERNEL", fp32_kernel.c_str(), 1);
    auto model = ruclip::Model::load(ruclip_test::tiny_model_dir(),
                                     {ruclip::Device::parse("cpu"), 2, ruclip::parse_precision(precision)});
    unsetenv("RUCLIP_FP32_KERNEL");
    ASSERT_EQ(model->kernels().precision, precision);
    if (!fp32_kernel.empty()) {
      ASSERT_EQ(model->kernels().linear_kernel, fp32_kernel);
    }
    expect_threads_match_one_thread(*model, in);
  }
}

}  // namespace
