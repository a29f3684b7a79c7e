#include "nn/linear.h"

#include <ATen/Parallel.h>
#include <immintrin.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <mutex>
#include <string>
#include <tuple>
#include <vector>

#include "ruclip/cpu.h"
#include "ruclip/error.h"

#include "nn/onednn_context.h"

namespace ruclip::detail {

const char* linear_kernel_name(LinearKernel kernel) {
  switch (kernel) {
    case LinearKernel::kLibTorch: return "libtorch";
    case LinearKernel::kOneDnnF32: return "onednn-f32";
    case LinearKernel::kOneDnnBf16: return "onednn-bf16";
    case LinearKernel::kOneDnnInt8: return "onednn-int8";
  }
  return "?";
}

Tensor libtorch_linear(const Tensor& x, const Tensor& w, const Tensor& b, Epilogue epilogue, const Tensor& residual) {
  Tensor y = torch::linear(x, w, b);
  switch (epilogue) {
    case Epilogue::kNone: return y;
    case Epilogue::kQuickGelu: return y * torch::sigmoid(1.702 * y);
    case Epilogue::kAddResidual: return residual + y;
    case Epilogue::kGeluTanh: return torch::gelu(y, "tanh");
  }
  return y;
}

#ifndef RUCLIP_HAVE_DNNL

bool onednn_available() { return false; }
bool onednn_kernel_runs(LinearKernel kernel) { return kernel == LinearKernel::kLibTorch; }
bool int8_weights_full_range() { return false; }
bool cap_onednn_isa() { return false; }
struct Linear::OneDnn {};

Linear::Linear(const Tensor& w, const Tensor& b, LinearKernel kernel) : w_(w), b_(b), kernel_(kernel), defined_(true) {
  if (kernel != LinearKernel::kLibTorch) throw Error(std::string(linear_kernel_name(kernel)) + ": built without oneDNN");
}

Tensor Linear::forward(const Tensor& x, Epilogue epilogue, const Tensor& residual) const {
  return libtorch_linear(x, w_, b_, epilogue, residual);
}

int64_t Linear::weights_row_bytes() const { return 0; }
size_t Linear::products_made() const { return 0; }

#else

bool onednn_available() { return true; }

bool onednn_kernel_runs(LinearKernel kernel) {
  if (kernel == LinearKernel::kLibTorch) return true;
  static std::mutex mutex;
  static std::map<LinearKernel, bool> known;
  std::lock_guard<std::mutex> guard(mutex);
  if (auto it = known.find(kernel); it != known.end()) return it->second;
  bool runs = true;
  try {
    c10::InferenceMode inference;
    const Linear probe(torch::ones({64, 64}), torch::zeros({64}), kernel);
    probe.forward(torch::ones({128, 64}, kernel == LinearKernel::kOneDnnBf16 ? torch::kBFloat16 : torch::kFloat32));
  } catch (const std::exception&) {
    runs = false;
  }
  known[kernel] = runs;
  return runs;
}

bool int8_weights_full_range() {
  const CpuFeatures& cpu = cpu_features();
  return cpu.avx512_vnni || cpu.amx_int8;
}

namespace {

using dnnl::memory;
using dt = memory::data_type;
using tag = memory::format_tag;

bool apply_isa_cap() {
  static const std::pair<const char*, dnnl::cpu_isa> names[] = {
      {"SSE41", dnnl::cpu_isa::sse41},
      {"AVX2", dnnl::cpu_isa::avx2},
      {"AVX512_CORE", dnnl::cpu_isa::avx512_core},
      {"AVX512_CORE_VNNI", dnnl::cpu_isa::avx512_core_vnni},
      {"AVX512_CORE_BF16", dnnl::cpu_isa::avx512_core_bf16},
      {"AVX512_CORE_AMX", dnnl::cpu_isa::avx512_core_amx},
  };
  if (cpu_features().isa_cap == "all") return true;
  const std::string isa = cpu_features().onednn_isa();
  for (const auto& [name, value] : names)
    if (isa == name) return dnnl::set_max_cpu_isa(value) == dnnl::status::success;
  return false;
}

struct Primitive {
  dnnl::matmul matmul;
  size_t scratchpad_bytes = 0;
};

// [min, max] of x[0..n) with 0 included (the range the activations are
// quantized over). Written here rather than as LibTorch's aminmax: at one
// image that op's dispatch, its parallel region and the two reads of its
// results back cost about as much as the reduction itself, before each of
// the four products of every block.
struct Range {
  float lo = 0, hi = 0;
};

Range range_scalar(const float* x, int64_t n) {
  Range r;
  for (int64_t i = 0; i < n; ++i) {
    r.lo = std::min(r.lo, x[i]);
    r.hi = std::max(r.hi, x[i]);
  }
  return r;
}

__attribute__((target("avx2"))) Range range_avx2(const float* x, int64_t n) {
  __m256 lo = _mm256_setzero_ps(), hi = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 v = _mm256_loadu_ps(x + i);
    // (v, lo): a NaN in v leaves lo, as the scalar loop's std::min does.
    lo = _mm256_min_ps(v, lo);
    hi = _mm256_max_ps(v, hi);
  }
  alignas(32) float l[8], h[8];
  _mm256_store_ps(l, lo);
  _mm256_store_ps(h, hi);
  Range r = range_scalar(x + i, n - i);
  for (int k = 0; k < 8; ++k) r.lo = std::min(r.lo, l[k]), r.hi = std::max(r.hi, h[k]);
  return r;
}

// One thread: even at 8 images (300 K values) a parallel reduction (LibTorch's
// parallel_reduce) ran slower, and the product after it is the larger cost.
Range activation_range(const float* x, int64_t n) {
  static const bool avx2 = cpu_features().avx2;
  return avx2 ? range_avx2(x, n) : range_scalar(x, n);
}

// A 2-D layout with no blocks: rows of one dimension, dense along the other.
bool plain_2d(const dnnl_memory_desc_t& md) {
  return md.ndims == 2 && md.format_kind == dnnl_blocked && md.format_desc.blocking.inner_nblks == 0;
}

// A plain (unblocked) weights layout, as oneDNN's gemm-based kernels ask for
// (every CPU without AVX-512), with its rows padded so that their stride is an
// odd multiple of 64 bytes. ViT-B's [768, 3072] weights have rows 12 KiB
// apart: every row of a column panel then falls in the same L1 set, and under
// the AVX2 cap the 50-row product ran at half the rate of the same product
// with rows 12 KiB + 64 B apart (bench/results-cpu.txt). `chosen_pd` is the
// product oneDNN chose the layout for, `describe` makes it for another
// layout; where the padded one would leave that kernel, the layout stays.
template <class Describe>
memory::desc with_spread_rows(const dnnl::matmul::primitive_desc& chosen_pd, const Describe& describe) {
  const memory::desc chosen = chosen_pd.weights_desc();
  const dnnl_memory_desc_t& c = chosen.data;
  if (!plain_2d(c)) return chosen;
  const int64_t rows_dim = c.format_desc.blocking.strides[1] == 1 ? 0 : 1;  // the dimension rows run along
  if (c.format_desc.blocking.strides[1 - rows_dim] != 1) return chosen;
  const int64_t row = c.dims[1 - rows_dim];  // elements in one row
  const int64_t bytes = static_cast<int64_t>(memory::data_type_size(chosen.data_type()));
  int64_t stride = (row * bytes + 63) / 64 * 64;
  if (stride % 128 == 0) stride += 64;
  if (stride % bytes != 0) return chosen;
  memory::dims strides(2);
  strides[rows_dim] = stride / bytes;
  strides[1 - rows_dim] = 1;
  const memory::desc padded(chosen.dims(), chosen.data_type(), strides);
  try {
    const auto pd = describe(padded);
    if (pd.weights_desc() == padded && std::string(pd.impl_info_str()) == chosen_pd.impl_info_str())
      return padded;
  } catch (const dnnl::error&) {
  }
  return chosen;
}

}  // namespace

bool cap_onednn_isa() {
  static const bool applied = apply_isa_cap();
  return applied;
}

dnnl::engine& onednn_cpu_engine() {
  static dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

int onednn_threads() { return at::in_parallel_region() ? 1 : at::get_num_threads(); }

void* onednn_thread_scratchpad(size_t bytes) {
  thread_local std::vector<uint8_t> buffer;
  if (buffer.size() < bytes) buffer.resize(bytes);
  return buffer.data();
}

struct Linear::OneDnn {
  LinearKernel kernel;
  int64_t in = 0, out = 0;
  dt act;                  // activation type (src, dst, residual)
  memory::desc weights_md;  // the packed layout
  memory weights;           // owns the packed weights
  Tensor bias;              // float32 [out]
  // int8: weight scale per output channel (activations: u8, 0..255).
  std::vector<float> weight_scales;
  // int8: s_w[n] * sum_k q_w[n][k], float32 [out]: what the activations'
  // zero point takes off each output (see forward).
  Tensor weight_sums;

  mutable std::mutex mutex;
  // (rows, epilogue, onednn_threads())
  mutable std::map<std::tuple<int64_t, int, int>, std::shared_ptr<const Primitive>> primitives;
  // int8: float32 activations to u8 with a scale and zero point given per
  // call, one per row count (and onednn_threads()). oneDNN's reorder is
  // vectorized; LibTorch's quantize_per_tensor quantizes element by element
  // (a visible share of an int8 image's time).
  mutable std::map<std::pair<int64_t, int>, std::shared_ptr<const dnnl::reorder>> quantizers;

  std::shared_ptr<const dnnl::reorder> quantizer(int64_t rows) const {
    const auto key = std::make_pair(rows, onednn_threads());
    std::lock_guard<std::mutex> guard(mutex);
    auto it = quantizers.find(key);
    if (it != quantizers.end()) return it->second;
    dnnl::primitive_attr attr;
    attr.set_output_scales(0, {DNNL_RUNTIME_F32_VAL});
    attr.set_zero_points(DNNL_ARG_DST, 0, {DNNL_RUNTIME_S32_VAL});
    auto& engine = onednn_cpu_engine();
    const dnnl::reorder::primitive_desc pd(engine, memory::desc({rows, in}, dt::f32, tag::ab), engine,
                                           memory::desc({rows, in}, dt::u8, tag::ab), attr);
    auto q = std::make_shared<const dnnl::reorder>(pd);
    quantizers.emplace(key, q);
    return q;
  }

  // The product for `rows` rows with `epilogue`, made on first use.
  dnnl::matmul::primitive_desc describe(int64_t rows, Epilogue epilogue, const memory::desc& weights_desc) const {
    const bool int8 = kernel == LinearKernel::kOneDnnInt8;
    const memory::desc src({rows, in}, int8 ? dt::u8 : act, tag::ab);
    const memory::desc dst({rows, out}, act, tag::ab);
    const memory::desc bias_md({1, out}, dt::f32, tag::ab);
    dnnl::primitive_attr attr;
    attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
    dnnl::post_ops ops;
    if (int8) {
      // dst = s_x * s_w[n] * sum_k (q_x - z_x) q_w + b
      //     = s_x * (s_w[n] * sum_k q_x q_w) + (b - s_x z_x s_w[n] sum_k q_w):
      // the weight scales are fixed (runtime scales would leave the fast
      // kernels), the activation scale comes per call as a 1x1 operand of a
      // multiply, and the zero point's share is folded into the bias per call.
      // (Given to oneDNN as a source zero point, it makes the packed weights
      // carry a compensation term, which oneDNN 2.6 packs with scalar code,
      // slowly enough to show in an int8 model's load time.)
      attr.set_output_scales(2, weight_scales);
      ops.append_binary(dnnl::algorithm::binary_mul, memory::desc({1, 1}, dt::f32, tag::ab));
      ops.append_binary(dnnl::algorithm::binary_add, bias_md);
    }
    if (epilogue == Epilogue::kQuickGelu) ops.append_eltwise(1.0f, dnnl::algorithm::eltwise_swish, 1.702f, 0.0f);
    if (epilogue == Epilogue::kGeluTanh) ops.append_eltwise(1.0f, dnnl::algorithm::eltwise_gelu_tanh, 0.0f, 0.0f);
    if (epilogue == Epilogue::kAddResidual) ops.append_binary(dnnl::algorithm::binary_add, dst);
    attr.set_post_ops(ops);
    const dnnl::matmul::desc desc = int8 ? dnnl::matmul::desc(src, weights_desc, dst)
                                         : dnnl::matmul::desc(src, weights_desc, bias_md, dst);
    return dnnl::matmul::primitive_desc(desc, attr, onednn_cpu_engine());
  }

  // Scratch for the int8 bias corrected per call (see forward), one per calling thread.
  static std::vector<float>& corrected_bias_buffer(int64_t size) {
    thread_local std::vector<float> buffer;
    buffer.resize(size);
    return buffer;
  }

  std::shared_ptr<const Primitive> primitive(int64_t rows, Epilogue epilogue) const {
    const auto key = std::make_tuple(rows, static_cast<int>(epilogue), onednn_threads());
    std::lock_guard<std::mutex> guard(mutex);
    auto it = primitives.find(key);
    if (it != primitives.end()) return it->second;
    dnnl::matmul::primitive_desc pd;
    try {
      pd = describe(rows, epilogue, weights_md);
    } catch (const dnnl::error& e) {
      throw Error(std::string("oneDNN has no ") + linear_kernel_name(kernel) + " kernel for a " +
                  std::to_string(rows) + "x" + std::to_string(in) + "x" + std::to_string(out) +
                  " product with the packed weights: " + e.what());
    }
    auto p = std::make_shared<Primitive>();
    p->matmul = dnnl::matmul(pd);
    p->scratchpad_bytes = pd.scratchpad_desc().get_size();
    primitives.emplace(key, p);
    return p;
  }
};

Linear::Linear(const Tensor& w, const Tensor& b, LinearKernel kernel) : kernel_(kernel), defined_(true) {
  if (kernel == LinearKernel::kLibTorch) {
    w_ = w;
    b_ = b;
    return;
  }
  if (!w.device().is_cpu()) throw Error(std::string(linear_kernel_name(kernel)) + ": the CPU only");
  cap_onednn_isa();
  auto d = std::make_shared<OneDnn>();
  d->kernel = kernel;
  d->out = w.size(0);
  d->in = w.size(1);
  d->act = kernel == LinearKernel::kOneDnnBf16 ? dt::bf16 : dt::f32;
  // No bias (ruCLIP v1's Projection): a zero one, which adds exactly nothing.
  d->bias = b.defined() ? b.to(torch::kFloat32).contiguous() : torch::zeros({d->out}, torch::kFloat32);

  c10::InferenceMode guard;
  const bool int8 = kernel == LinearKernel::kOneDnnInt8;
  const Tensor source = int8 ? w.to(torch::kFloat32).contiguous() : w.contiguous();  // [out, in] row-major:
  const dt source_type = source.scalar_type() == torch::kBFloat16 ? dt::bf16 : dt::f32;  // [in, out] in "ba" order
  memory plain(memory::desc({d->in, d->out}, source_type, tag::ba), onednn_cpu_engine(), source.data_ptr());
  dnnl::stream stream(onednn_cpu_engine());
  Tensor quantized;
  if (int8) {
    // Symmetric, per output channel: q = saturate(nearbyint(w / scale)),
    // |q| <= weight_max, in one oneDNN reorder pass (a LibTorch
    // abs/divide/round/clamp/convert chain makes five temporaries of every
    // weight, which shows in an int8 load). amax and amin apart: LibTorch
    // 1.13's aminmax along a row, and its int8 -> int64 sum below, run
    // far slower.
    // Without VNNI (int8_weights_full_range) the weights get 7 bits (255 x 63
    // x 2 fits in 16 bits), not the activations (PyTorch's x86 int8 takes
    // the bit from those: reduce_range): weights are scaled per channel,
    // activations per tensor, so the weights lose less to the missing bit.
    // On the shipped model the image latents' error (1 - cosine to fp32) then
    // comes close to that of VNNI's 8 + 8 bits (bench/results-cpu.txt).
    const double weight_max = int8_weights_full_range() ? 127.0 : 63.0;
    const Tensor scales = (torch::maximum(source.amax(1), -source.amin(1)) / weight_max).clamp_min(1e-12);
    d->weight_scales.assign(scales.data_ptr<float>(), scales.data_ptr<float>() + scales.numel());
    const Tensor inverse = scales.reciprocal();
    dnnl::primitive_attr attr;
    attr.set_output_scales(1 << 1, std::vector<float>(inverse.data_ptr<float>(), inverse.data_ptr<float>() + d->out));
    // Into plain s8, then packed: oneDNN 2.6 has no reorder from f32
    // straight into the packed s8 layout with per-channel scales.
    quantized = torch::empty_like(source, torch::kInt8);
    memory q(memory::desc({d->in, d->out}, dt::s8, tag::ba), onednn_cpu_engine(), quantized.data_ptr());
    dnnl::reorder(dnnl::reorder::primitive_desc(plain, q, attr)).execute(stream, plain, q);
    plain = q;
    // |sum| <= 127 x in: exact in int32 up to in = 16 M.
    d->weight_sums = (quantized.sum(1, false, torch::kInt32).to(torch::kFloat64) * scales.to(torch::kFloat64))
                         .to(torch::kFloat32)
                         .contiguous();
  }
  // Ask the kernel for its layout (the same for every row count at these
  // sizes), then reorder the weights into it once.
  const memory::desc any({d->in, d->out}, int8 ? dt::s8 : d->act, tag::any);
  const auto chosen = d->describe(128, Epilogue::kNone, any);
  // (int8's gemm-based kernel ran no faster with its rows spread.)
  d->weights_md = int8 ? chosen.weights_desc() : with_spread_rows(chosen, [&](const memory::desc& md) {
    return d->describe(128, Epilogue::kNone, md);
  });
  d->weights = memory(d->weights_md, onednn_cpu_engine());
  dnnl::reorder(plain, d->weights).execute(stream, plain, d->weights);
  stream.wait();
  onednn_ = std::move(d);
}

int64_t Linear::weights_row_bytes() const {
  if (!onednn_) return 0;
  const dnnl_memory_desc_t& md = onednn_->weights_md.data;
  if (!plain_2d(md)) return 0;
  const auto& strides = md.format_desc.blocking.strides;
  return std::max(strides[0], strides[1]) * static_cast<int64_t>(memory::data_type_size(onednn_->weights_md.data_type()));
}

size_t Linear::products_made() const {
  if (!onednn_) return 0;
  std::lock_guard<std::mutex> guard(onednn_->mutex);
  return onednn_->primitives.size();
}

Tensor Linear::forward(const Tensor& x, Epilogue epilogue, const Tensor& residual) const {
  if (!onednn_) return libtorch_linear(x, w_, b_, epilogue, residual);
  const OneDnn& d = *onednn_;
  at::internal::lazy_init_num_threads();  // this thread's OpenMP team size, as LibTorch's own ops use it
  std::vector<int64_t> shape = x.sizes().vec();
  shape.back() = d.out;
  const Tensor src = x.reshape({-1, d.in}).contiguous();
  const int64_t rows = src.size(0);
  Tensor dst = torch::empty({rows, d.out}, src.options());
  if (rows == 0) return dst.view(shape);
  const auto p = d.primitive(rows, epilogue);
  auto& engine = onednn_cpu_engine();
  const bool int8 = d.kernel == LinearKernel::kOneDnnInt8;
  thread_local dnnl::stream stream(engine);  // in-order: the int8 quantizing reorder, then the product

  std::unordered_map<int, memory> args;
  args[DNNL_ARG_WEIGHTS] = d.weights;
  args[DNNL_ARG_DST] = memory(memory::desc({rows, d.out}, d.act, tag::ab), engine, dst.data_ptr());
  args[DNNL_ARG_SCRATCHPAD] = memory(memory::desc({static_cast<int64_t>(p->scratchpad_bytes)}, dt::u8, tag::a),
                                     engine, onednn_thread_scratchpad(p->scratchpad_bytes));
  const memory bias(memory::desc({1, d.out}, dt::f32, tag::ab), engine, d.bias.data_ptr());
  int post_op = 0;
  Tensor quantized;
  float scale = 1, inverse_scale = 1;  // alive until the stream is waited for
  int32_t zero_point = 0;
  if (int8) {
    // Per call and per tensor, asymmetric: [min, max] (always holding 0) onto 0..255.
    const auto [lo, hi] = activation_range(src.data_ptr<float>(), src.numel());
    constexpr int qmax = 255;
    scale = hi > lo ? (hi - lo) / qmax : 1.0f;
    zero_point = static_cast<int32_t>(std::min<float>(qmax, std::max(0.0f, std::nearbyint(-lo / scale))));
    // q = saturate(nearbyint(x / scale) + zero_point), as quantize_per_tensor computes it.
    quantized = torch::empty({rows, d.in}, src.options().dtype(torch::kUInt8));
    const memory quantized_mem(memory::desc({rows, d.in}, dt::u8, tag::ab), engine, quantized.data_ptr());
    inverse_scale = 1.0f / scale;
    d.quantizer(rows)->execute(stream,
                               {{DNNL_ARG_FROM, memory(memory::desc({rows, d.in}, dt::f32, tag::ab), engine, src.data_ptr())},
                                {DNNL_ARG_TO, quantized_mem},
                                {DNNL_ARG_ATTR_OUTPUT_SCALES, memory(memory::desc({1}, dt::f32, tag::a), engine, &inverse_scale)},
                                {DNNL_ARG_ATTR_ZERO_POINTS | DNNL_ARG_DST,
                                 memory(memory::desc({1}, dt::s32, tag::a), engine, &zero_point)}});
    args[DNNL_ARG_SRC] = quantized_mem;
    args[DNNL_ARG_ATTR_MULTIPLE_POST_OP(post_op++) | DNNL_ARG_SRC_1] =
        memory(memory::desc({1, 1}, dt::f32, tag::ab), engine, &scale);
    // b - s_x z_x s_w[n] sum_k q_w (see describe)
    std::vector<float>& corrected_bias = OneDnn::corrected_bias_buffer(d.out);
    const float* b = d.bias.data_ptr<float>();
    const float* sums = d.weight_sums.data_ptr<float>();
    const float shift = -scale * static_cast<float>(zero_point);
    for (int64_t n = 0; n < d.out; ++n) corrected_bias[n] = b[n] + shift * sums[n];
    args[DNNL_ARG_ATTR_MULTIPLE_POST_OP(post_op++) | DNNL_ARG_SRC_1] =
        memory(memory::desc({1, d.out}, dt::f32, tag::ab), engine, corrected_bias.data());
  } else {
    args[DNNL_ARG_SRC] = memory(memory::desc({rows, d.in}, d.act, tag::ab), engine, src.data_ptr());
    args[DNNL_ARG_BIAS] = bias;
  }
  Tensor res;
  if (epilogue == Epilogue::kQuickGelu || epilogue == Epilogue::kGeluTanh) ++post_op;
  if (epilogue == Epilogue::kAddResidual) {
    res = residual.reshape({rows, d.out}).to(src.scalar_type()).contiguous();
    args[DNNL_ARG_ATTR_MULTIPLE_POST_OP(post_op++) | DNNL_ARG_SRC_1] =
        memory(memory::desc({rows, d.out}, d.act, tag::ab), engine, res.data_ptr());
  }
  p->matmul.execute(stream, args);
  stream.wait();
  return dst.view(shape);
}

#endif  // RUCLIP_HAVE_DNNL

double measure_linear_gflops(LinearKernel kernel, int64_t m, int64_t k, int64_t n, double seconds) {
  c10::InferenceMode guard;
  torch::manual_seed(0);
  const torch::ScalarType type = kernel == LinearKernel::kOneDnnBf16 ? torch::kBFloat16 : torch::kFloat32;
  const Tensor x = torch::randn({m, k}).to(type);
  // The oneDNN kernels keep their packed copy only (the dense one is freed here).
  const Linear layer((torch::randn({n, k}) * 0.03).to(type), torch::zeros({n}).to(type), kernel);
  layer.forward(x);  // first call: kernel generation, caches
  double best = 0, spent = 0;
  for (int i = 0; i < 50 && (i < 3 || spent < seconds); ++i) {
    const auto start = std::chrono::steady_clock::now();
    layer.forward(x);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    spent += s;
    best = std::max(best, 2.0 * m * k * n / s / 1e9);
  }
  return best;
}

}  // namespace ruclip::detail
