// What `ruclip bench` needs besides the model: the arithmetic a forward pass
// costs and what this machine's matrix multiply can do, so a measured
// images/s can be put next to the machine's limit.
#pragma once
#include <string>

#include "ruclip/config.h"
#include "ruclip/model.h"

namespace ruclip {

// Floating-point operations (multiply and add counted apart) of one image /
// one text through its tower: the linear layers, the patch embedding, the
// attention products. LayerNorm, softmax and activations are left out (<1 %).
double image_gflop(const ModelConfig& c);
double text_gflop(const ModelConfig& c);

// GFLOP/s of a 2048 x 2048 x 2048 matrix product in `options.precision` on
// `options.device` with `options.num_threads`, best of a few runs taking
// about `seconds` in all: the ceiling the towers' linear layers run against.
//  - kLibTorch: torch::mm as LibTorch dispatches it: for float32 on the CPU
//    the BLAS (OpenBLAS, all threads its own); bf16 on the CPU: oneDNN; CUDA: cuBLAS.
//  - kOneDnn: float32 on the CPU through oneDNN (what the model uses there);
//    0 where that path doesn't exist (other precisions, CUDA, no oneDNN).
enum class MatmulPath { kLibTorch, kOneDnn };
double matmul_gflops(const ModelOptions& options, MatmulPath path, double seconds = 2.0);

}  // namespace ruclip
