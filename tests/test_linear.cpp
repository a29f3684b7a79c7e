// The linear layers' oneDNN kernels (core/src/nn/linear.h) against a float64
// product, on the towers' own shapes, with each epilogue; and the plain
// weights layout of oneDNN's gemm-based kernels (what a CPU without AVX-512
// runs: meson registers this test a second time capped to AVX2), whose rows
// must be spread over the cache's sets.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <iterator>
#include <tuple>

#include "nn/linear.h"
#include "ruclip/cpu.h"

namespace {

using ruclip::detail::Epilogue;
using ruclip::detail::Linear;
using ruclip::detail::LinearKernel;
using torch::Tensor;

Tensor reference(const Tensor& x, const Tensor& w, const Tensor& b, Epilogue epilogue, const Tensor& residual) {
  const Tensor y = torch::matmul(x.to(torch::kFloat64), w.to(torch::kFloat64).t()) + b.to(torch::kFloat64);
  switch (epilogue) {
    case Epilogue::kQuickGelu: return y * torch::sigmoid(1.702 * y);
    case Epilogue::kAddResidual: return y + residual.to(torch::kFloat64);
    default: return y;
  }
}

// ViT-B's four products ([in, out]) and the text tower's MLP, the rows of one
// image (50) and of eight (400).
const std::tuple<int64_t, int64_t, Epilogue> kLayers[] = {
    {768, 2304, Epilogue::kNone},       {768, 768, Epilogue::kAddResidual}, {768, 3072, Epilogue::kQuickGelu},
    {3072, 768, Epilogue::kAddResidual}, {512, 2048, Epilogue::kQuickGelu},
};

TEST(Linear, OneDnnFloat32FollowsTheProduct) {
  if (!ruclip::detail::onednn_kernel_runs(LinearKernel::kOneDnnF32))
    GTEST_SKIP() << "oneDNN's float32 kernel doesn't run in this process";
  c10::InferenceMode inference;
  torch::manual_seed(3);
  for (const auto& [in, out, epilogue] : kLayers) {
    const Tensor w = torch::randn({out, in}) * 0.03, b = torch::randn({out}) * 0.1;
    const Linear layer(w, b, LinearKernel::kOneDnnF32);
    for (const int64_t rows : {50, 400}) {
      const Tensor x = torch::randn({rows, in}), residual = torch::randn({rows, out});
      const Tensor got = layer.forward(x, epilogue, residual).to(torch::kFloat64);
      const Tensor want = reference(x, w, b, epilogue, residual);
      const double error = (got - want).abs().max().item<double>();
      EXPECT_LT(error, 1e-4) << in << "x" << out << ", " << rows << " rows";
    }
  }
}

TEST(Linear, PlainWeightRowsAreSpreadOverCacheSets) {
  if (!ruclip::detail::onednn_kernel_runs(LinearKernel::kOneDnnF32))
    GTEST_SKIP() << "oneDNN's float32 kernel doesn't run in this process";
  c10::InferenceMode inference;
  int plain = 0;
  for (const auto& [in, out, epilogue] : kLayers) {
    const Linear layer(torch::randn({out, in}), torch::zeros({out}), LinearKernel::kOneDnnF32);
    const int64_t row = layer.weights_row_bytes();
    if (row == 0) continue;  // a blocked layout (AVX-512's brgemm kernels)
    ++plain;
    // An odd multiple of 64 bytes: consecutive rows fall in different sets of
    // an L1 with 64-byte lines, however many 4 KiB pages the rows span.
    EXPECT_EQ(row % 128, 64) << in << "x" << out << ": rows " << row << " bytes apart";
    EXPECT_GE(row, 4 * std::min(in, out)) << in << "x" << out;
    EXPECT_LE(row, 4 * std::max(in, out) + 128) << in << "x" << out;
  }
  // Capped to AVX2 (meson's linear_avx2) oneDNN has only its gemm kernels:
  // every layout must be plain there, so the checks above can't be skipped.
  if (ruclip::cpu_features().isa_cap == "avx2") {
    EXPECT_EQ(plain, static_cast<int>(std::size(kLayers))) << "blocked layouts under the AVX2 cap";
    return;
  }
  if (plain == 0) GTEST_SKIP() << "every layout here is blocked (this CPU's kernels are brgemm)";
}

}  // namespace
