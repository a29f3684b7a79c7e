#include "ruclip/benchmark.h"

#include <torch/torch.h>

#include <chrono>

#include "clip_weights.h"
#include "device.h"
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

double matmul_gflops(const ModelOptions& options, MatmulPath path, double seconds) {
  const torch::Device device = detail::pick_device(options.device);
  const torch::ScalarType dtype = detail::pick_dtype(options.precision, device);
  const bool onednn = path == MatmulPath::kOneDnn;
  if (onednn && (!at::hasMKLDNN() || device.is_cuda() || dtype != torch::kFloat32)) return 0;
  const bool blas = !onednn && device.is_cpu() && dtype == torch::kFloat32;
  detail::set_cpu_threads(options.num_threads, blas ? detail::ThreadPlan::kBlas : detail::ThreadPlan::kOneDnn);
  c10::InferenceMode guard;
  const int64_t n = 2048;
  const torch::Tensor a = torch::randn({n, n}).to(device, dtype), b = torch::randn({n, n}).to(device, dtype);
  const torch::Tensor b_onednn = onednn ? b.to_mkldnn() : torch::Tensor();
  auto run = [&] {
    if (onednn) {
      torch::mkldnn_linear(a.to_mkldnn(), b_onednn, {}).to_dense();
      return;
    }
    torch::Tensor c = torch::mm(a, b);
    if (device.is_cuda()) c.cpu();  // wait for the kernel
  };
  run();  // first call: library initialization, kernel selection
  double best = 0, spent = 0;
  for (int i = 0; i < 3 || spent < seconds; ++i) {
    const auto start = std::chrono::steady_clock::now();
    run();
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    spent += s;
    best = std::max(best, 2.0 * n * n * n / s / 1e9);
    if (i >= 50) break;
  }
  // Back to the plan the model runs with.
  detail::set_cpu_threads(options.num_threads, detail::ThreadPlan::kOneDnn);
  return best;
}

}  // namespace ruclip
