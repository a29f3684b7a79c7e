// The towers' attention (core/src/nn/attention.h): oneDNN's batched products
// against LibTorch's ops, on the strided views of a qkv projection the towers
// pass it, with and without masks, for a pooled row, in float32 and bfloat16.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

#include "nn/attention.h"
#include "nn/linear.h"  // onednn_available
#include "ruclip/cpu.h"

namespace {

using ruclip::detail::attention;
using ruclip::detail::attention_on_onednn;
using torch::Tensor;

// nn.MultiheadAttention's computation, written out.
Tensor expected(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask, double scale) {
  const Tensor qd = q.to(torch::kFloat64), kd = k.to(torch::kFloat64), vd = v.to(torch::kFloat64);
  Tensor scores = torch::matmul(qd, kd.transpose(-2, -1)) * scale;
  if (mask.defined()) scores = scores + mask.to(torch::kFloat64);
  const Tensor out = torch::matmul(torch::softmax(scores, -1), vd);
  return out.permute({0, 2, 1, 3}).reshape({q.size(0), q.size(2), q.size(1) * q.size(3)});
}

struct Views {
  Tensor qkv, q, k, v;
};

// q, k, v as the towers take them: [N, H, L, Dh] views of one [N, L, 3, H, Dh] tensor.
Views qkv_views(int64_t n, int64_t l, int64_t heads, int64_t head_dim, torch::ScalarType type) {
  torch::manual_seed(n * 1000 + l);
  Views s;
  s.qkv = torch::randn({n, l, 3, heads, head_dim}).to(type);
  s.q = s.qkv.select(2, 0).permute({0, 2, 1, 3});
  s.k = s.qkv.select(2, 1).permute({0, 2, 1, 3});
  s.v = s.qkv.select(2, 2).permute({0, 2, 1, 3});
  return s;
}

double max_difference(const Tensor& a, const Tensor& b) {
  return (a.to(torch::kFloat64) - b.to(torch::kFloat64)).abs().max().item<double>();
}

TEST(Attention, StridedViewsOnOneDnnEqualTheFormula) {
  c10::InferenceMode guard;
  for (auto [n, l] : {std::pair<int64_t, int64_t>{1, 50}, {8, 50}, {3, 77}, {2, 1}}) {
    const Views s = qkv_views(n, l, 12, 64, torch::kFloat32);
    SCOPED_TRACE("N=" + std::to_string(n) + " L=" + std::to_string(l));
#ifndef RUCLIP_PIP_LIBTORCH  // there oneDNN 2.6's batched products don't run (core/src/nn/attention.cpp)
    if (ruclip::detail::onednn_available()) {
      EXPECT_TRUE(attention_on_onednn(s.q, s.k, s.v, 0.125)) << "fell back to LibTorch's one-by-one products";
    }
#endif
    const Tensor out = attention(s.q, s.k, s.v, {}, 0.125);
    ASSERT_EQ(out.sizes(), (std::vector<int64_t>{n, l, 12 * 64}));
    EXPECT_TRUE(out.is_contiguous());
    EXPECT_LT(max_difference(out, expected(s.q, s.k, s.v, {}, 0.125)), 1e-5);
  }
}

TEST(Attention, CausalAndPaddingMasks) {
  c10::InferenceMode guard;
  const int64_t n = 4, l = 20;
  const Views s = qkv_views(n, l, 8, 64, torch::kFloat32);
  const Tensor causal = torch::full({l, l}, -INFINITY).triu(1);
  const Tensor out = attention(s.q, s.k, s.v, causal, 0.125);
  EXPECT_LT(max_difference(out, expected(s.q, s.k, s.v, causal, 0.125)), 1e-5);
  // Row 0 sees only key 0: its output is v's row 0.
  EXPECT_LT(max_difference(out.select(1, 0), s.v.select(2, 0).reshape({n, -1})), 1e-6);
  // Per sequence, as v1's full context adds it: [N, 1, L, L].
  const Tensor padding = torch::zeros({n, 1, 1, l}).index_fill_(3, torch::arange(15, l), -10000.0);
  const Tensor both = causal + padding;
  EXPECT_LT(max_difference(attention(s.q, s.k, s.v, both, 0.125), expected(s.q, s.k, s.v, both, 0.125)), 1e-5);
}

// The last block's pooled row: one query per sequence against every key.
TEST(Attention, OneQueryRowPerSequence) {
  c10::InferenceMode guard;
  const int64_t n = 3, l = 30;
  const Views s = qkv_views(n, l, 8, 64, torch::kFloat32);
  const Tensor pooled = torch::tensor({29, 0, 17}, torch::kInt64);
  const Tensor batch = torch::arange(n, torch::kInt64);
  const Tensor q = s.qkv.index({batch, pooled, 0}).unsqueeze(2);  // [N, H, 1, Dh]
  const Tensor causal = torch::full({l, l}, -INFINITY).triu(1);
  const Tensor rows_mask = causal.index({pooled}).view({n, 1, 1, l});
  const Tensor one = attention(q, s.k, s.v, rows_mask, 0.125);
  const Tensor full = attention(s.q, s.k, s.v, causal, 0.125);
  ASSERT_EQ(one.sizes(), (std::vector<int64_t>{n, 1, 8 * 64}));
  for (int64_t i = 0; i < n; ++i)
    EXPECT_LT(max_difference(one[i][0], full[i][pooled[i].item<int64_t>()]), 1e-6) << "sequence " << i;
}

TEST(Attention, Bfloat16FollowsFloat32) {
  if (!ruclip::cpu_features().native_bf16()) GTEST_SKIP() << "no native bf16 on this CPU";
  c10::InferenceMode guard;
  const Views s = qkv_views(2, 50, 12, 64, torch::kBFloat16);
  const Tensor out = attention(s.q, s.k, s.v, {}, 0.125);
  EXPECT_EQ(out.scalar_type(), torch::kBFloat16);
  // bf16 keeps 8 bits of mantissa: outputs of size ~1 within a few 1e-2.
  EXPECT_LT(max_difference(out, expected(s.q, s.k, s.v, {}, 0.125)), 5e-2);
}

// Where gradients are needed (training), LibTorch's ops run and autograd
// works through them.
TEST(Attention, GradientsFlowOnTheLibTorchPath) {
  const Views s = qkv_views(2, 10, 4, 64, torch::kFloat32);
  const Tensor qkv = s.qkv.clone().requires_grad_(true);
  const Tensor q = qkv.select(2, 0).permute({0, 2, 1, 3}), k = qkv.select(2, 1).permute({0, 2, 1, 3}),
               v = qkv.select(2, 2).permute({0, 2, 1, 3});
  EXPECT_FALSE(attention_on_onednn(q, k, v, 0.125));
  attention(q, k, v, {}, 0.125).sum().backward();
  ASSERT_TRUE(qkv.grad().defined());
  EXPECT_GT(qkv.grad().abs().sum().item<double>(), 0);
}

}  // namespace
