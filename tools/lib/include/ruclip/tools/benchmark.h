// What `ruclip bench` needs besides the model: the arithmetic a forward pass
// costs and what this machine's matrix multiply can do, so a measured
// images/s can be put next to the machine's limit.
// Library: ruclip_tools (for the `ruclip` command and the tests), not the inference library.
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

// GFLOP/s of a 2048 x 2048 x 2048 matrix product (8192 on CUDA, timed with
// the device synchronized) on the kernel `model` runs
// its linear layers with (Model::kernels().linear_kernel), in its precision,
// under the process's thread setting; best of a few runs taking about
// `seconds` in all: the ceiling the towers' linear layers run against.
double matmul_gflops(const Model& model, double seconds = 2.0);

}  // namespace ruclip
