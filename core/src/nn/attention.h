// Internal (LibTorch + oneDNN): the towers' scaled dot-product attention.
//
// LibTorch 1.13 multiplies small batched matrices on the CPU one at a time
// (a select and a product per head and sequence): at batch 1 that costs an
// image far more time than the 0.5 % of the arithmetic both products hold.
// Inference runs each of the two products as one batched oneDNN matmul
// instead, reading q, k and v where the qkv projection wrote them, scaling
// inside the first product, and writing the heads' outputs straight into
// [N, L, D] rows.
#pragma once
#include <torch/torch.h>

namespace ruclip::detail {

using torch::Tensor;

// softmax(q k^T * scale + mask) v, for q [N, H, Lq, Dh] and k, v
// [N, H, Lk, Dh] (any strides with a dense last dimension, e.g. views of one
// qkv tensor); `mask` (undefined: none) is added to the scores, broadcast to
// [N, H, Lq, Lk]. Returns [N, Lq, H * Dh], the heads side by side
// (nn.MultiheadAttention's order), contiguous.
// On oneDNN for float32 and bfloat16 CPU tensors that need no gradient;
// otherwise (training, CUDA, a shape oneDNN has only reference code for)
// LibTorch's ops, scaling q first as upstream v2 does (for head_dim 64, every
// published geometry, the scale is a power of two and the order can't change
// a bit). May run concurrently from any number of threads.
Tensor attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask, double scale);

// Whether attention() of these operands runs on oneDNN (tests).
bool attention_on_onednn(const Tensor& q, const Tensor& k, const Tensor& v, double scale);

}  // namespace ruclip::detail
