// Timing one image-tower block per kernel (block_timing.h).
#include "runtime/block_timing.h"

#include <chrono>

namespace ruclip::detail {

std::vector<double> measure_block_gflops(const ModelConfig& config, LinearKernel kernel,
                                         LinearKernel mlp_output_kernel, const std::vector<BlockLoad>& loads) {
  c10::InferenceMode guard;
  const int64_t d = config.vision_width, grid = config.image_resolution / config.vision_patch_size;
  const int64_t tokens = grid * grid + 1;
  // Constant weights: a product's time doesn't depend on the values (none are
  // subnormal), and filling them costs nothing next to drawing random ones.
  Block b;
  b.ln_1_w = b.ln_2_w = torch::ones({d});
  b.ln_1_b = b.ln_2_b = torch::zeros({d});
  b.in_proj = Linear(torch::full({3 * d, d}, 0.02), torch::zeros({3 * d}), kernel);
  b.out_proj = Linear(torch::full({d, d}, 0.02), torch::zeros({d}), kernel);
  b.c_fc = Linear(torch::full({4 * d, d}, 0.02), torch::zeros({4 * d}), kernel);
  b.c_proj = Linear(torch::full({d, 4 * d}, 0.02), torch::zeros({d}), mlp_output_kernel);
  std::vector<double> rates;
  for (const BlockLoad& load : loads) {
    const Tensor x = torch::linspace(-1, 1, load.images * tokens * d)
                         .view({load.images, tokens, d})
                         .to(kernel == LinearKernel::kOneDnnBf16 ? torch::kBFloat16 : torch::kFloat32);
    residual_block(x, b, config.vision_heads, {}, Epilogue::kQuickGelu);  // first call: kernel generation, caches
    double best = 0;
    for (int i = 0; i < load.calls; ++i) {
      const auto start = std::chrono::steady_clock::now();
      residual_block(x, b, config.vision_heads, {}, Epilogue::kQuickGelu);
      best = std::max(best, 1.0 / std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    }
    // The block's arithmetic: its four products and the two attention products.
    const double flop = 2.0 * load.images * tokens * (12.0 * d * d + 2.0 * tokens * d);
    rates.push_back(flop * best / 1e9);
  }
  return rates;
}

}  // namespace ruclip::detail
