// Internal (LibTorch): the load-time measurement the kernel choice rests on.
#pragma once
#include <vector>

#include "nn/clip_weights.h"

namespace ruclip::detail {

// A timing of one image-tower block: on `images` images' tokens, the best
// of `calls` timed calls after a warm-up.
struct BlockLoad {
  int64_t images;
  int calls;
};
// GFLOP/s of one image-tower block of `config`'s geometry (constant weights
// in `kernel`'s layout, the MLP's output product in `mlp_output_kernel`'s,
// made once for all `loads`) under each of `loads`
// (bf16 activations for onednn-bf16, as the model runs it), under the thread
// setting in force. What the model measures at load to choose its kernel:
// the whole block, because a kernel's thread plan decides how fast
// everything between the products runs too.
std::vector<double> measure_block_gflops(const ModelConfig& config, LinearKernel kernel,
                                         LinearKernel mlp_output_kernel, const std::vector<BlockLoad>& loads);

}  // namespace ruclip::detail
