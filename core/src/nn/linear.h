// Internal (LibTorch + oneDNN): the linear layers of both towers (98 % of
// their arithmetic) on the kernel chosen for this machine.
//
// The oneDNN kernels call the libdnnl.so.2 that Debian's LibTorch itself runs
// on, through its matmul primitive: the weights are packed once, at load, into
// the layout the kernel wants (and only that copy is kept), and what follows
// each product (bias, QuickGELU, the residual add) is fused into its output
// pass instead of being separate passes over the activations.
#pragma once
#include <torch/torch.h>

#include <memory>

namespace ruclip::detail {

using torch::Tensor;

enum class LinearKernel {
  kLibTorch,    // torch::linear: OpenBLAS for float32 on the CPU, cuBLAS on CUDA
  kOneDnnF32,   // oneDNN, float32
  kOneDnnBf16,  // oneDNN, bfloat16 activations and weights (CPUs with native bf16)
  kOneDnnInt8,  // oneDNN, activations quantized to u8 per call (asymmetric,
                // per tensor), weights s8 per output channel; float32 in and out
};
const char* linear_kernel_name(LinearKernel kernel);  // "libtorch", "onednn-f32", ...
bool onednn_available();                              // built against oneDNN
// Whether `kernel` (a oneDNN one) runs in this process: a small product is
// tried once per kernel. With a LibTorch other than Debian's in the process
// (PyPI's, which carries its own oneDNN), Debian's oneDNN 2.6 makes its
// gemm-based primitives but can't execute them (docs/building.md); the
// brgemm ones of AVX-512 CPUs run.
bool onednn_kernel_runs(LinearKernel kernel);
// Whether the int8 kernel's weights keep all 8 bits on this CPU: where
// oneDNN's int8 products add u8 x s8 pairs in 32 bits (AVX-512 VNNI, AMX).
// Elsewhere they get 7 (AVX2's vpmaddubsw sums pairs in 16 bits, which
// 255 x 127 x 2 would overflow), also with AVX-VNNI alone: whether oneDNN
// 2.6's int8 matmul uses it is unverified (no such machine at hand).
bool int8_weights_full_range();

// What follows the product: y = x W^T + b, then
enum class Epilogue {
  kNone,         // y
  kQuickGelu,    // y * sigmoid(1.702 y)
  kAddResidual,  // y + residual
  kGeluTanh,     // 0.5 y (1 + tanh(sqrt(2/pi) (y + 0.044715 y^3))): GPT-2's gelu_new (ruCLIP v1's text MLP)
};

// x W^T + b and the epilogue as plain LibTorch ops (autograd works through
// them): the kLibTorch kernel, and training's layers.
Tensor libtorch_linear(const Tensor& x, const Tensor& w, const Tensor& b, Epilogue epilogue = Epilogue::kNone,
                       const Tensor& residual = {});

// One linear layer on one kernel. Immutable once built: forward() may run
// concurrently from several threads.
class Linear {
 public:
  Linear() = default;
  // `w` [out, in], `b` [out] (undefined: no bias). kLibTorch keeps both
  // tensors as they are (no copy); the oneDNN kernels pack `w` into their own
  // layout (CPU only) and keep only the packed copy, so the caller should
  // drop its `w`.
  Linear(const Tensor& w, const Tensor& b, LinearKernel kernel);
  bool defined() const { return defined_; }
  LinearKernel kernel() const { return kernel_; }

  // x [..., in] -> [..., out]; `residual` has the output's shape (kAddResidual).
  Tensor forward(const Tensor& x, Epilogue epilogue = Epilogue::kNone, const Tensor& residual = {}) const;

  // Bytes between two rows of the packed weights where oneDNN keeps them in a
  // plain layout (its gemm-based kernels: CPUs without AVX-512), else 0 (tests).
  int64_t weights_row_bytes() const;
  // oneDNN products made so far, one per row count, epilogue and thread count
  // (tests).
  size_t products_made() const;

 private:
  struct OneDnn;
  std::shared_ptr<const OneDnn> onednn_;
  Tensor w_, b_;
  LinearKernel kernel_ = LinearKernel::kLibTorch;
  bool defined_ = false;
};

// GFLOP/s of an [m x k] x [k x n] product with bias on `kernel` (best of a
// few short runs), under the thread setting in force: what the model
// measures at load to choose its kernel.
double measure_linear_gflops(LinearKernel kernel, int64_t m, int64_t k, int64_t n, double seconds = 0.03);

// Passes RUCLIP_MAX_CPU_ISA (ruclip/cpu.h) on to oneDNN, once, before the
// core's first primitive. Returns false when oneDNN refused (it had already
// chosen its ISA for a primitive LibTorch made earlier).
bool cap_onednn_isa();

}  // namespace ruclip::detail
