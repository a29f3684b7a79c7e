// Internal (LibTorch): turning the user's device and precision strings into
// LibTorch's, with the errors users see. Shared by the model and the benchmark.
#pragma once
#include <torch/torch.h>

#include <string>

namespace ruclip::detail {

// "cpu", "cuda", "cuda:N", "auto"; throws when CUDA is asked for and absent.
torch::Device pick_device(const std::string& name);
// "fp32", "bf16", "fp16" (CUDA only).
torch::ScalarType pick_dtype(const std::string& precision, const torch::Device& device);

}  // namespace ruclip::detail
