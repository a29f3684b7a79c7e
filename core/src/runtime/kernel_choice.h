// Internal (LibTorch): which kernels and arithmetic a model runs with on this
// machine, from the precision asked for, the device, the CPU's features and,
// where those don't decide, a short measurement on the model's own shapes.
#pragma once
#include <torch/torch.h>

#include "nn/clip_weights.h"
#include "nn/linear.h"
#include "runtime/cpu_threads.h"
#include "ruclip/config.h"
#include "ruclip/options.h"

namespace ruclip::detail {

struct KernelPlan {
  Precision precision = Precision::kFp32;  // what runs (never kAuto)
  torch::ScalarType dtype = torch::kFloat32;  // the towers' activations
  LayerKernels kernels;  // kLibTorch on CUDA
  ThreadPlan threads = ThreadPlan::kOpenMp;
  KernelReport report;
};

// "cpu" / "cuda:N" / "auto" to LibTorch's device; throws ruclip::Error when
// the CUDA device asked for isn't there.
torch::Device to_torch_device(const Device& device);

// Throws ruclip::Error for a precision the device can't run at all (fp16 on
// the CPU, int8 on CUDA or without oneDNN). The first model of the process
// sets the process-wide CPU threads (num_threads, 0: all) the way its kernel
// wants them; a later one asking for other threads gets a warning in its
// report (claim_cpu_threads). Measurements are made once per process and
// shape, under the thread setting.
// The errors choose_kernels would throw for a precision `device` can't run,
// without measuring anything (Model::load checks before reading the weights).
void check_precision(Precision requested, const torch::Device& device);

KernelPlan choose_kernels(Precision requested, const torch::Device& device, const ModelConfig& config,
                          int num_threads);

}  // namespace ruclip::detail
