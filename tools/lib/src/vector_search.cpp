// The exact scan of `ruclip search`: per-row SIMD dot products, a bounded
// heap per thread, the heaps merged. The kernels are compiled for their ISA
// with target attributes and picked from cpu_features() at run time, so one
// binary runs its fastest path on a Zen 3 (AVX2) and on a Zen 4/5 (AVX-512).
#include "ruclip/tools/vector_search.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <thread>

#include "ruclip/cpu.h"
#include "ruclip/error.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace ruclip {

VectorStorage parse_vector_storage(const std::string& name) {
  if (name == "float32") return VectorStorage::kFloat32;
  if (name == "float16") return VectorStorage::kFloat16;
  throw Error("vector storage '" + name + "': expected float32 or float16");
}

const char* vector_storage_name(VectorStorage storage) {
  return storage == VectorStorage::kFloat16 ? "float16" : "float32";
}

uint16_t float_to_half(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  const uint32_t sign = (x >> 16) & 0x8000;
  const uint32_t abs = x & 0x7FFFFFFF;
  if (abs >= 0x7F800000) return static_cast<uint16_t>(sign | 0x7C00 | (abs > 0x7F800000 ? 0x200 : 0));  // inf / nan
  if (abs >= 0x477FF000) return static_cast<uint16_t>(sign | 0x7C00);  // rounds past the largest half: inf
  if (abs < 0x38800000) {  // subnormal half (or zero): scale into the 10 mantissa bits, round to even
    float a;
    std::memcpy(&a, &abs, 4);
    const float scaled = a * 16777216.0f;  // 2^24: the subnormal half's unit
    return static_cast<uint16_t>(sign | static_cast<uint32_t>(std::nearbyint(scaled)));
  }
  // Normal: drop 13 mantissa bits, round half to even.
  const uint32_t rounded = abs + 0x0FFF + ((abs >> 13) & 1);
  return static_cast<uint16_t>(sign | ((rounded - 0x38000000) >> 13));
}

float half_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16;
  const uint32_t exp = (h >> 10) & 0x1F, mant = h & 0x3FF;
  uint32_t x;
  if (exp == 0) {
    const float v = std::ldexp(static_cast<float>(mant), -24);
    std::memcpy(&x, &v, 4);
    x |= sign;
  } else if (exp == 31) {
    x = sign | 0x7F800000 | (mant << 13);
  } else {
    x = sign | ((exp + 112) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &x, 4);
  return f;
}

namespace {

using DotF32 = float (*)(const float*, const float*, int);
using DotF16 = float (*)(const uint16_t*, const float*, int);

float dot_f32_portable(const float* a, const float* q, int n) {
  float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  int i = 0;
  for (; i + 4 <= n; i += 4) {
    s0 += a[i] * q[i];
    s1 += a[i + 1] * q[i + 1];
    s2 += a[i + 2] * q[i + 2];
    s3 += a[i + 3] * q[i + 3];
  }
  for (; i < n; ++i) s0 += a[i] * q[i];
  return (s0 + s1) + (s2 + s3);
}

float dot_f16_portable(const uint16_t* a, const float* q, int n) {
  float s = 0;
  for (int i = 0; i < n; ++i) s += half_to_float(a[i]) * q[i];
  return s;
}

#if defined(__x86_64__)
__attribute__((target("avx2,fma"))) float hsum256(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
  return _mm_cvtss_f32(s);
}

__attribute__((target("avx2,fma"))) float dot_f32_avx2(const float* a, const float* q, int n) {
  __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
  int i = 0;
  for (; i + 16 <= n; i += 16) {
    s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(q + i), s0);
    s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(q + i + 8), s1);
  }
  for (; i + 8 <= n; i += 8) s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(q + i), s0);
  float s = hsum256(_mm256_add_ps(s0, s1));
  for (; i < n; ++i) s += a[i] * q[i];
  return s;
}

__attribute__((target("avx2,fma,f16c"))) float dot_f16_avx2(const uint16_t* a, const float* q, int n) {
  __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
  int i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m256 a0 = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(a + i)));
    const __m256 a1 = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(a + i + 8)));
    s0 = _mm256_fmadd_ps(a0, _mm256_loadu_ps(q + i), s0);
    s1 = _mm256_fmadd_ps(a1, _mm256_loadu_ps(q + i + 8), s1);
  }
  float s = hsum256(_mm256_add_ps(s0, s1));
  for (; i < n; ++i) s += half_to_float(a[i]) * q[i];
  return s;
}

__attribute__((target("avx512f"))) float dot_f32_avx512(const float* a, const float* q, int n) {
  __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
  int i = 0;
  for (; i + 32 <= n; i += 32) {
    s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(q + i), s0);
    s1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(q + i + 16), s1);
  }
  if (i < n) {  // the tail, masked (up to two vectors)
    for (; i < n; i += 16) {
      const __mmask16 m = n - i >= 16 ? 0xFFFF : static_cast<__mmask16>((1u << (n - i)) - 1);
      s0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, q + i), s0);
    }
  }
  return _mm512_reduce_add_ps(_mm512_add_ps(s0, s1));
}

__attribute__((target("avx512f"))) float dot_f16_avx512(const uint16_t* a, const float* q, int n) {
  __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
  int i = 0;
  for (; i + 32 <= n; i += 32) {
    const __m512 a0 = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(a + i)));
    const __m512 a1 = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(a + i + 16)));
    s0 = _mm512_fmadd_ps(a0, _mm512_loadu_ps(q + i), s0);
    s1 = _mm512_fmadd_ps(a1, _mm512_loadu_ps(q + i + 16), s1);
  }
  float s = _mm512_reduce_add_ps(_mm512_add_ps(s0, s1));
  for (; i < n; ++i) s += half_to_float(a[i]) * q[i];
  return s;
}
#endif

struct Kernels {
  DotF32 f32 = dot_f32_portable;
  DotF16 f16 = dot_f16_portable;
  const char* name = "portable";
};

const Kernels& kernels() {
  static const Kernels k = [] {
    Kernels out;
#if defined(__x86_64__)
    const CpuFeatures& cpu = cpu_features();
    if (cpu.avx512f) {
      out = {dot_f32_avx512, dot_f16_avx512, "avx512"};
    } else if (cpu.avx2 && cpu.fma && cpu.f16c) {
      out = {dot_f32_avx2, dot_f16_avx2, "avx2"};
    }
#endif
    return out;
  }();
  return k;
}

// Better = higher score, then lower row: a strict order, so results don't
// depend on how rows were split between threads.
bool better(const VectorHit& a, const VectorHit& b) {
  return a.score > b.score || (a.score == b.score && a.row < b.row);
}

}  // namespace

VectorMatrix::VectorMatrix(int dim, VectorStorage storage) : dim_(dim), storage_(storage) {
  if (dim <= 0) throw Error("vector dimension must be above 0, got " + std::to_string(dim));
}

VectorMatrix VectorMatrix::view(const void* data, size_t rows, int dim, VectorStorage storage,
                                std::shared_ptr<const void> owner) {
  VectorMatrix m(dim, storage);
  m.rows_ = rows;
  m.view_ = data;
  m.owner_ = std::move(owner);
  return m;
}

const void* VectorMatrix::data() const {
  return storage_ == VectorStorage::kFloat32 ? static_cast<const void*>(f32_rows()) : f16_rows();
}

void VectorMatrix::reserve(size_t rows) {
  if (storage_ == VectorStorage::kFloat32)
    f32_.reserve(rows * dim_);
  else
    f16_.reserve(rows * dim_);
}

void VectorMatrix::add(const float* row) {
  if (view_) throw Error("a VectorMatrix view can't grow");
  if (storage_ == VectorStorage::kFloat32) {
    f32_.insert(f32_.end(), row, row + dim_);
  } else {
    for (int i = 0; i < dim_; ++i) f16_.push_back(float_to_half(row[i]));
  }
  ++rows_;
}

void VectorMatrix::add_rows(const VectorMatrix& from) {
  if (view_) throw Error("a VectorMatrix view can't grow");
  if (from.dim_ != dim_ || from.storage_ != storage_) throw Error("add_rows: another dimension or storage");
  if (storage_ == VectorStorage::kFloat32)
    f32_.insert(f32_.end(), from.f32_rows(), from.f32_rows() + from.rows_ * dim_);
  else
    f16_.insert(f16_.end(), from.f16_rows(), from.f16_rows() + from.rows_ * dim_);
  rows_ += from.rows_;
}

size_t VectorMatrix::bytes() const {
  return rows_ * dim_ * (storage_ == VectorStorage::kFloat32 ? sizeof(float) : sizeof(uint16_t));
}

const char* VectorMatrix::kernel() const { return kernels().name; }

float VectorMatrix::dot(size_t row, const float* query) const {
  if (row >= rows_) throw Error("row " + std::to_string(row) + " outside the " + std::to_string(rows_) + " stored");
  const size_t at = row * dim_;
  return storage_ == VectorStorage::kFloat32 ? kernels().f32(f32_rows() + at, query, dim_)
                                             : kernels().f16(f16_rows() + at, query, dim_);
}

std::vector<VectorHit> VectorMatrix::top(const float* query, size_t n, int threads, const uint8_t* keep) const {
  n = std::min(n, rows_);
  if (n == 0) return {};
  const Kernels& k = kernels();
  const float* f32 = f32_rows();
  const uint16_t* f16 = f16_rows();
  // Each part keeps a heap of its n best, the worst on top.
  auto scan = [&](size_t begin, size_t end, std::vector<VectorHit>* heap) {
    heap->reserve(n + 1);
    auto worse_on_top = [](const VectorHit& a, const VectorHit& b) { return better(a, b); };
    for (size_t r = begin; r < end; ++r) {
      if (keep && !keep[r]) continue;
      const float s = storage_ == VectorStorage::kFloat32 ? k.f32(f32 + r * dim_, query, dim_)
                                                          : k.f16(f16 + r * dim_, query, dim_);
      if (heap->size() < n) {
        heap->push_back({r, s});
        std::push_heap(heap->begin(), heap->end(), worse_on_top);
      } else if (better({r, s}, heap->front())) {
        std::pop_heap(heap->begin(), heap->end(), worse_on_top);
        heap->back() = {r, s};
        std::push_heap(heap->begin(), heap->end(), worse_on_top);
      }
    }
  };
  // Threads pay off once a part is well above their start-up cost:
  // about 64k values each.
  size_t parts = threads > 0 ? static_cast<size_t>(threads) : std::max(1u, std::thread::hardware_concurrency());
  parts = std::max<size_t>(1, std::min(parts, rows_ * dim_ / (1 << 16)));
  std::vector<std::vector<VectorHit>> heaps(parts);
  if (parts == 1) {
    scan(0, rows_, &heaps[0]);
  } else {
    std::vector<std::thread> workers;
    const size_t step = (rows_ + parts - 1) / parts;
    for (size_t p = 0; p < parts; ++p)
      workers.emplace_back(scan, std::min(rows_, p * step), std::min(rows_, (p + 1) * step), &heaps[p]);
    for (auto& w : workers) w.join();
  }
  std::vector<VectorHit> all;
  for (auto& h : heaps) all.insert(all.end(), h.begin(), h.end());
  std::sort(all.begin(), all.end(), better);
  all.resize(std::min(n, all.size()));
  return all;
}

}  // namespace ruclip
