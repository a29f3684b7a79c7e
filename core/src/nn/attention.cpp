#include "nn/attention.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "nn/linear.h"
#include "nn/onednn_context.h"

namespace ruclip::detail {

namespace {

Tensor libtorch_attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask, double scale) {
  Tensor scores = torch::matmul(q * scale, k.transpose(-2, -1));  // [N, H, Lq, Lk]
  if (mask.defined()) scores = scores + mask;
  const Tensor out = torch::matmul(torch::softmax(scores, -1), v);  // [N, H, Lq, Dh]
  return out.permute({0, 2, 1, 3}).reshape({q.size(0), q.size(2), q.size(1) * q.size(3)});
}

}  // namespace

#ifndef RUCLIP_HAVE_DNNL

bool attention_on_onednn(const Tensor&, const Tensor&, const Tensor&, double) { return false; }
Tensor attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask, double scale) {
  return libtorch_attention(q, k, v, mask, scale);
}

#else

namespace {

using dnnl::memory;
using dt = memory::data_type;

// The three primitives of one shape, strides and type; `fallback` when
// oneDNN has only its reference implementation for one of them (slower than
// LibTorch's loop).
struct AttentionPrimitives {
  bool fallback = false;
  memory::desc q, k_transposed, v, scores, out;
  dnnl::matmul scores_product, output_product;
  dnnl::softmax_forward softmax;
  size_t scratchpad_bytes = 0;
};

// The three primitives on raw buffers of p's layouts; `after_scores` runs
// between the scores product and the softmax (the mask's pass).
void execute(const AttentionPrimitives& p, void* q, void* k, void* v, void* scores, void* out, void* scratch,
             const std::function<void()>& after_scores = {}) {
  auto& engine = onednn_cpu_engine();
  const memory scratchpad(memory::desc({static_cast<int64_t>(p.scratchpad_bytes)}, dt::u8, memory::format_tag::a),
                          engine, scratch);
  const memory q_mem(p.q, engine, q), k_mem(p.k_transposed, engine, k), v_mem(p.v, engine, v);
  const memory scores_mem(p.scores, engine, scores), out_mem(p.out, engine, out);
  dnnl::stream stream(engine);
  p.scores_product.execute(stream, {{DNNL_ARG_SRC, q_mem}, {DNNL_ARG_WEIGHTS, k_mem}, {DNNL_ARG_DST, scores_mem},
                                    {DNNL_ARG_SCRATCHPAD, scratchpad}});
  stream.wait();
  if (after_scores) after_scores();
  p.softmax.execute(stream, {{DNNL_ARG_SRC, scores_mem}, {DNNL_ARG_DST, scores_mem}, {DNNL_ARG_SCRATCHPAD, scratchpad}});
  p.output_product.execute(stream, {{DNNL_ARG_SRC, scores_mem}, {DNNL_ARG_WEIGHTS, v_mem}, {DNNL_ARG_DST, out_mem},
                                    {DNNL_ARG_SCRATCHPAD, scratchpad}});
  stream.wait();
}

bool dense_last_dimension(const Tensor& t) { return t.dim() == 4 && t.stride(3) == 1; }

bool reference_only(const char* impl) { return std::string(impl).rfind("ref", 0) == 0; }

std::shared_ptr<const AttentionPrimitives> make_primitives(const Tensor& q, const Tensor& k, const Tensor& v,
                                                           float scale) {
  cap_onednn_isa();
  auto& engine = onednn_cpu_engine();
  const dt type = q.scalar_type() == torch::kBFloat16 ? dt::bf16 : dt::f32;
  const int64_t n = q.size(0), h = q.size(1), lq = q.size(2), dh = q.size(3), lk = k.size(2);
  auto p = std::make_shared<AttentionPrimitives>();
  p->q = memory::desc({n, h, lq, dh}, type, memory::dims(q.strides().begin(), q.strides().end()));
  // k^T: k's own memory, its last two strides swapped.
  p->k_transposed = memory::desc({n, h, dh, lk}, type, memory::dims{k.stride(0), k.stride(1), k.stride(3), k.stride(2)});
  p->v = memory::desc({n, h, lk, dh}, type, memory::dims(v.strides().begin(), v.strides().end()));
  p->scores = memory::desc({n, h, lq, lk}, type, memory::format_tag::abcd);
  // [N, Lq, H, Dh] in memory: the heads side by side in each row.
  p->out = memory::desc({n, h, lq, dh}, type, memory::dims{lq * h * dh, dh, h * dh, 1});

  dnnl::primitive_attr scaled;
  scaled.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  scaled.set_output_scales(0, {scale});
  dnnl::primitive_attr plain;
  plain.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  const dnnl::matmul::primitive_desc first(dnnl::matmul::desc(p->q, p->k_transposed, p->scores), scaled, engine);
  const dnnl::matmul::primitive_desc second(dnnl::matmul::desc(p->scores, p->v, p->out), plain, engine);
  const dnnl::softmax_forward::primitive_desc soft(
      dnnl::softmax_forward::desc(dnnl::prop_kind::forward_inference, p->scores, 3), plain, engine);
  if (reference_only(first.impl_info_str()) || reference_only(second.impl_info_str()) ||
      reference_only(soft.impl_info_str())) {
    p->fallback = true;
    return p;
  }
  p->scores_product = dnnl::matmul(first);
  p->output_product = dnnl::matmul(second);
  p->softmax = dnnl::softmax_forward(soft);
  p->scratchpad_bytes = std::max({first.scratchpad_desc().get_size(), second.scratchpad_desc().get_size(),
                                  soft.scratchpad_desc().get_size()});
  // One run on zeros: in a process with PyPI's LibTorch (its own oneDNN
  // inside), Debian's oneDNN 2.6 creates the batched products' gemm:jit
  // matmul but its execution returns "unimplemented" (cause not established;
  // the brgemm matmuls of the linear layers run). Such shapes run on LibTorch.
  try {
    std::vector<uint8_t> zeros(std::max({p->q.get_size(), p->k_transposed.get_size(), p->v.get_size()}), 0);
    std::vector<uint8_t> scores(p->scores.get_size()), out(p->out.get_size()), scratch(p->scratchpad_bytes + 1);
    execute(*p, zeros.data(), zeros.data(), zeros.data(), scores.data(), out.data(), scratch.data());
  } catch (const dnnl::error&) {
    p->fallback = true;
  }
  return p;
}

// Made on first use per shape, strides, type and onednn_threads() (a text
// batch's length varies: a few dozen keys at most per process and batch size).
std::shared_ptr<const AttentionPrimitives> primitives_for(const Tensor& q, const Tensor& k, const Tensor& v,
                                                          double scale) {
  static std::mutex mutex;
  static std::map<std::vector<int64_t>, std::shared_ptr<const AttentionPrimitives>> cache;
  std::vector<int64_t> key = {static_cast<int64_t>(q.scalar_type()), k.size(2), onednn_threads()};
  for (const Tensor* t : {&q, &k, &v}) {
    key.insert(key.end(), t->sizes().begin(), t->sizes().end());
    key.insert(key.end(), t->strides().begin(), t->strides().end());
  }
  const float scale_f = static_cast<float>(scale);
  int32_t scale_bits;
  std::memcpy(&scale_bits, &scale_f, sizeof scale_bits);
  key.push_back(scale_bits);
  std::lock_guard<std::mutex> guard(mutex);
  auto it = cache.find(key);
  if (it != cache.end()) return it->second;
  auto p = make_primitives(q, k, v, scale_f);
  cache.emplace(std::move(key), p);
  return p;
}

bool eligible(const Tensor& q, const Tensor& k, const Tensor& v) {
  for (const Tensor* t : {&q, &k, &v})
    if (!t->device().is_cpu() || t->requires_grad() || !dense_last_dimension(*t) || t->scalar_type() != q.scalar_type())
      return false;
  return (q.scalar_type() == torch::kFloat32 || q.scalar_type() == torch::kBFloat16) && q.size(0) == k.size(0) &&
         q.size(1) == k.size(1) && q.size(3) == k.size(3) && k.sizes() == v.sizes() && q.numel() > 0 && k.numel() > 0;
}

}  // namespace

bool attention_on_onednn(const Tensor& q, const Tensor& k, const Tensor& v, double scale) {
  return eligible(q, k, v) && !primitives_for(q, k, v, scale)->fallback;
}

Tensor attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask, double scale) {
  if (!eligible(q, k, v)) return libtorch_attention(q, k, v, mask, scale);
  const auto p = primitives_for(q, k, v, scale);
  if (p->fallback) return libtorch_attention(q, k, v, mask, scale);

  at::internal::lazy_init_num_threads();  // this thread's OpenMP team, as LibTorch's own ops use it
  const int64_t n = q.size(0), h = q.size(1), lq = q.size(2), dh = q.size(3), lk = k.size(2);
  Tensor scores = torch::empty({n, h, lq, lk}, q.options());
  Tensor out = torch::empty({n, lq, h * dh}, q.options());
  // The mask as its own pass: a broadcast binary post-op sends oneDNN 2.6's
  // batched product to its reference code.
  execute(*p, q.data_ptr(), k.data_ptr(), v.data_ptr(), scores.data_ptr(), out.data_ptr(),
          onednn_thread_scratchpad(p->scratchpad_bytes), [&] {
            if (mask.defined()) scores.add_(mask);
          });
  return out;
}

#endif  // RUCLIP_HAVE_DNNL

}  // namespace ruclip::detail
