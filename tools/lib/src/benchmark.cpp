#include "ruclip/tools/benchmark.h"

#include <torch/torch.h>

#include <chrono>

#include "nn/clip_weights.h"
#include "nn/linear.h"
#include "ruclip/error.h"

namespace ruclip {
namespace {

// One pre-LN residual block over `tokens` tokens of width `w`: q, k, v and
// output projections (4 w^2), the MLP (8 w^2), and the two attention products.
double block_flop(double tokens, double w) { return 2 * tokens * 12 * w * w + 4 * tokens * tokens * w; }

}  // namespace

double image_gflop(const ModelConfig& c) {
  const double grid = c.image_resolution / c.vision_patch_size, patches = grid * grid, w = c.vision_width;
  const double patch_embedding = 2 * patches * 3.0 * c.vision_patch_size * c.vision_patch_size * w;
  return (patch_embedding + c.vision_layers * block_flop(patches + 1, w) + 2 * w * c.embed_dim) / 1e9;
}

double text_gflop(const ModelConfig& c) {
  const double w = c.transformer_width;
  return (c.transformer_layers * block_flop(c.context_length, w) + 2 * w * c.embed_dim) / 1e9;
}

double matmul_gflops(const Model& model, double seconds) {
  c10::InferenceMode guard;
  const std::string& kernel = model.kernels().linear_kernel;
  if (kernel == "cuda") {
    // Large enough to reach a data-centre GPU's peak; timed with the device
    // synchronized, nothing copied back.
    const int64_t n = 8192;
    const torch::Device device(model.device());
    const torch::ScalarType dtype = model.precision() == Precision::kFp32   ? torch::kFloat32
                                    : model.precision() == Precision::kBf16 ? torch::kBFloat16
                                                                            : torch::kFloat16;
    const torch::Tensor a = torch::randn({n, n}).to(device, dtype), b = torch::randn({n, n}).to(device, dtype);
    double best = 0, spent = 0;
    torch::Tensor c;
    for (int i = 0; i < 50 && (i < 4 || spent < seconds); ++i) {
      torch::cuda::synchronize(device.index());
      const auto start = std::chrono::steady_clock::now();
      c = torch::mm(a, b);
      torch::cuda::synchronize(device.index());
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      if (i > 0) spent += s, best = std::max(best, 2.0 * n * n * n / s / 1e9);  // the first: cuBLAS setup
    }
    return best;
  }
  const int64_t n = 2048;
  for (detail::LinearKernel k : {detail::LinearKernel::kLibTorch, detail::LinearKernel::kOneDnnF32,
                                 detail::LinearKernel::kOneDnnBf16, detail::LinearKernel::kOneDnnInt8})
    if (kernel.rfind(detail::linear_kernel_name(k), 0) == 0) return detail::measure_linear_gflops(k, n, n, n, seconds);
  throw Error("matmul_gflops: unknown kernel '" + kernel + "'");
}

}  // namespace ruclip
