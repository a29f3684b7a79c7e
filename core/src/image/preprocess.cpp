// Frame -> normalized C x H x W pixel values, equal to upstream ruCLIP's
// processors, one per ResizeMode. ruCLIP v2 (kCropThenBilinear):
//   img.convert('RGB')
//   -> torchvision 0.14 RandomResizedCrop(R, scale=(1, 1), ratio=(1, 1))
//   -> Pillow 9.4 Image.resize((R, R), BILINEAR)
//   -> ToTensor (/255) -> Normalize ((x - mean) / std).
// ruCLIP v1 (kBicubicThenCrop, OpenAI CLIP's _transform(R) after upstream's
// convert('RGB')):
//   -> torchvision Resize(R, BICUBIC): the shorter side to R, the longer to
//      int(R * long / short), by Pillow 9.4 Image.resize(..., BICUBIC)
//   -> CenterCrop(R): offsets int(round((size - R) / 2.0)), halves to even
//   -> ToTensor -> Normalize.
//
// With scale = ratio = 1 the v2 crop is the centred square of side
// min(width, height) (for a square image: the whole image). Either way the
// work is: convert the pixels read to 8-bit RGB, resample them the way Pillow
// does, and map every 8-bit value through a per-channel table. For v1 only the
// resized columns and rows inside the crop are computed: Pillow computes each
// output sample from its own weights, so the subset has the same values, and a
// 1080p frame reads only the ~1080 x 1080 pixels those outputs need.
//
// The resampler reproduces Pillow's ImagingResample (libImaging/Resample.c) for
// 8-bit images with the bilinear and bicubic filters, written from its
// description:
//  * the filter support is widened by the downscale factor (antialiasing);
//  * weights are computed in double, normalized to sum 1, then rounded to
//    fixed point with 22 fractional bits (32 - 8 - 2);
//  * a horizontal pass into an 8-bit intermediate holding only the source rows
//    the vertical pass reads, then a vertical pass; each output is rounded by
//    adding half and shifting, and clipped to 0..255 (bicubic overshoots);
//  * a pass is skipped when its dimension does not change.
// Matching these steps gives bit-identical 8-bit values, hence (through the same
// float32 ToTensor/Normalize arithmetic) the same floats as upstream.
// detail::resample_plan turns either mode into the frame rectangle read and
// the two passes' weights; everything after it is shared.
//
// Source pixels are never converted as a whole frame: the horizontal pass pulls
// one row of the rectangle at a time through RowFetcher, which converts just
// that row (any packed layout, gray or YUV) into a small RGB scratch row.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "ruclip/cpu.h"
#include "ruclip/error.h"
#include "ruclip/image.h"
#include "image/preprocess_internal.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace ruclip {
namespace detail {

std::string format_name(PixelFormat f) {
  switch (f) {
    case PixelFormat::RGB: return "RGB";
    case PixelFormat::BGR: return "BGR";
    case PixelFormat::RGBA: return "RGBA";
    case PixelFormat::BGRA: return "BGRA";
    case PixelFormat::RGBx: return "RGBx";
    case PixelFormat::BGRx: return "BGRx";
    case PixelFormat::xRGB: return "xRGB";
    case PixelFormat::xBGR: return "xBGR";
    case PixelFormat::GRAY8: return "GRAY8";
    case PixelFormat::I420: return "I420";
    case PixelFormat::NV12: return "NV12";
  }
  return "unknown";
}

bool packed_layout(PixelFormat f, PackedLayout* layout) {
  switch (f) {
    case PixelFormat::RGB: *layout = {3, 0, 1, 2}; return true;
    case PixelFormat::BGR: *layout = {3, 2, 1, 0}; return true;
    case PixelFormat::RGBA:
    case PixelFormat::RGBx: *layout = {4, 0, 1, 2}; return true;
    case PixelFormat::BGRA:
    case PixelFormat::BGRx: *layout = {4, 2, 1, 0}; return true;
    case PixelFormat::xRGB: *layout = {4, 1, 2, 3}; return true;
    case PixelFormat::xBGR: *layout = {4, 3, 2, 1}; return true;
    default: return false;
  }
}

void validate(const FrameView& frame, const Normalization& norm) {
  if (frame.width <= 0 || frame.height <= 0)
    throw Error("empty frame " + std::to_string(frame.width) + "x" + std::to_string(frame.height));
  if (norm.resolution <= 0)
    throw Error("preprocess: resolution must be positive, got " + std::to_string(norm.resolution));
  if (norm.resize != ResizeMode::kCropThenBilinear && norm.resize != ResizeMode::kBicubicThenCrop)
    throw Error("preprocess: unknown resize mode " + std::to_string(static_cast<int>(norm.resize)));

  const int64_t w = frame.width;
  const int64_t chroma_w = (w + 1) / 2;  // 4:2:0 chroma, odd sizes rounded up
  // Each plane the format needs: a name for messages and its minimal row size.
  struct PlaneSpec {
    const char* name;
    int64_t row_bytes;
  };
  PlaneSpec planes[3];
  int num_planes = 0;
  PackedLayout layout{};
  if (packed_layout(frame.format, &layout)) {
    planes[num_planes++] = {"packed", w * layout.bytes_per_pixel};
  } else if (frame.format == PixelFormat::GRAY8) {
    planes[num_planes++] = {"gray", w};
  } else if (frame.format == PixelFormat::I420) {
    planes[num_planes++] = {"Y", w};
    planes[num_planes++] = {"U", chroma_w};
    planes[num_planes++] = {"V", chroma_w};
  } else if (frame.format == PixelFormat::NV12) {
    planes[num_planes++] = {"Y", w};
    planes[num_planes++] = {"UV", 2 * chroma_w};
  } else {
    throw Error("preprocess: unknown pixel format " + std::to_string(static_cast<int>(frame.format)));
  }

  const std::string what = format_name(frame.format) + " frame " + std::to_string(frame.width) + "x" +
                           std::to_string(frame.height);
  for (int i = 0; i < num_planes; ++i) {
    const std::string plane = "plane " + std::to_string(i) + " (" + planes[i].name + ")";
    if (frame.planes[i] == nullptr) throw Error(what + ": " + plane + " is null");
    if (frame.strides[i] < planes[i].row_bytes)
      throw Error(what + ": " + plane + " stride " + std::to_string(frame.strides[i]) +
                  " is smaller than its row of " + std::to_string(planes[i].row_bytes) + " bytes");
  }
}

YuvToRgb::YuvToRgb(YuvMatrix matrix, bool full_range) {
  const double kr = matrix == YuvMatrix::BT709 ? 0.2126 : 0.299;
  const double kb = matrix == YuvMatrix::BT709 ? 0.0722 : 0.114;
  const double kg = 1.0 - kr - kb;
  const int y_offset = full_range ? 0 : 16;
  const double y_scale = full_range ? 255.0 : 219.0;
  const double c_scale = full_range ? 255.0 : 224.0;
  // Per code step, in 0..255 output units, in fixed point.
  const auto fixed = [](double x) { return static_cast<int32_t>(std::lround(x * (1 << kBits))); };
  const double c = 255.0 / c_scale;
  Coeffs& k = coeffs_;
  k.y = fixed(255.0 / y_scale);
  k.r_v = fixed(2.0 * (1.0 - kr) * c);
  k.g_u = fixed(-2.0 * kb * (1.0 - kb) / kg * c);
  k.g_v = fixed(-2.0 * kr * (1.0 - kr) / kg * c);
  k.b_u = fixed(2.0 * (1.0 - kb) * c);
  const int32_t base = kHalf - k.y * y_offset;
  k.r0 = base - 128 * k.r_v;
  k.g0 = base - 128 * (k.g_u + k.g_v);
  k.b0 = base - 128 * k.b_u;
  for (int v = 0; v < 256; ++v) {
    y_[v] = k.y * (v - y_offset);
    r_from_v_[v] = k.r_v * (v - 128);
    g_from_u_[v] = k.g_u * (v - 128);
    g_from_v_[v] = k.g_v * (v - 128);
    b_from_u_[v] = k.b_u * (v - 128);
  }
}

void YuvToRgb::copy_tables(int32_t out[5 * 256]) const {
  const int32_t* tables[5] = {y_, r_from_v_, g_from_u_, g_from_v_, b_from_u_};
  for (int t = 0; t < 5; ++t) std::copy_n(tables[t], 256, out + t * 256);
}

namespace {
double bilinear(double x) {
  x = std::fabs(x);
  return x < 1.0 ? 1.0 - x : 0.0;
}

// Pillow's bicubic_filter, the same expressions in the same order (a double
// that differs in its last bit can move a weight's rounding).
double bicubic(double x) {
  constexpr double a = -0.5;
  x = std::fabs(x);
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
  if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
  return 0.0;
}

// Python's int(round(d / 2.0)) for d >= 0: halves go to the even neighbour.
int half_rounded_to_even(int d) {
  const int q = d / 2;
  return d % 2 == 0 || q % 2 == 0 ? q : q + 1;
}
}  // namespace

// Mirrors Pillow's precompute_coeffs + normalize_coeffs_8bpc step by step
// (same operation order and the same truncating int casts), because a single
// differing weight can move an output value by one 8-bit level.
Weights resample_weights(Filter filter, int in_size, int out_size, int first_out, int n) {
  double (*const kernel)(double) = filter == Filter::Bicubic ? bicubic : bilinear;
  const double kernel_support = filter == Filter::Bicubic ? 2.0 : 1.0;
  const double scale = static_cast<double>(in_size) / out_size;
  // Downscaling stretches the filter over `scale` input samples: that is the
  // antialiasing. Upscaling keeps the plain kernel.
  const double filterscale = std::max(scale, 1.0);
  const double support = kernel_support * filterscale;
  Weights w;
  w.ksize = static_cast<int>(std::ceil(support)) * 2 + 1;
  w.first.resize(n);
  w.count.resize(n);
  w.coeffs.assign(static_cast<size_t>(n) * w.ksize, 0);
  std::vector<double> k(w.ksize);
  for (int i = 0; i < n; ++i) {
    const int xx = first_out + i;
    const double center = (xx + 0.5) * scale;
    const double ss = 1.0 / filterscale;
    // "+ 0.5" then a truncating cast is Pillow's rounding; it truncates toward
    // zero for negatives too, which the clamp to 0 makes harmless.
    const int xmin = std::max(static_cast<int>(center - support + 0.5), 0);
    const int xmax = std::min(static_cast<int>(center + support + 0.5), in_size) - xmin;
    double sum = 0.0;
    for (int x = 0; x < xmax; ++x) {
      k[x] = kernel((static_cast<double>(x + xmin) - center + 0.5) * ss);
      sum += k[x];
    }
    int32_t* out = &w.coeffs[static_cast<size_t>(i) * w.ksize];
    for (int x = 0; x < xmax; ++x) {
      const double kx = sum != 0.0 ? k[x] / sum : k[x];
      const double scaled = kx * (1 << kPrecisionBits);
      out[x] = static_cast<int32_t>(kx < 0 ? scaled - 0.5 : scaled + 0.5);
    }
    w.first[i] = xmin;
    w.count[i] = xmax;
  }
  return w;
}

Weights identity_weights(int first_out, int n) {
  Weights w;
  w.ksize = 1;
  w.first.resize(n);
  for (int i = 0; i < n; ++i) w.first[i] = first_out + i;
  w.count.assign(n, 1);
  w.coeffs.assign(n, int32_t{1} << kPrecisionBits);
  return w;
}

ResamplePlan resample_plan(const FrameView& frame, const Normalization& norm) {
  const int res = norm.resolution;
  // Pillow's input rectangle of the frame, the size it is resized to, and the
  // window of the resized image that is kept.
  int src_x0 = 0, src_y0 = 0, src_w = frame.width, src_h = frame.height;
  int out_w = res, out_h = res, keep_x = 0, keep_y = 0;
  Filter filter = Filter::Bilinear;
  if (norm.resize == ResizeMode::kCropThenBilinear) {
    // v2: crop the centred square, resize it to res x res.
    const CenterCrop crop = center_crop(frame);
    src_x0 = crop.x0, src_y0 = crop.y0, src_w = src_h = crop.side;
  } else {
    // v1: torchvision Resize(res): the shorter side to res, the longer to
    // int(res * long / short) (a correctly rounded double, truncated, as in
    // Python), then CenterCrop(res) of the result.
    filter = Filter::Bicubic;
    const int short_side = std::min(frame.width, frame.height), long_side = std::max(frame.width, frame.height);
    const double resized_long = static_cast<double>(res) * long_side / short_side;
    if (resized_long > 1 << 30)
      throw Error("preprocess: a " + std::to_string(frame.width) + "x" + std::to_string(frame.height) +
                  " frame resized to " + std::to_string(res) + " on its shorter side is too long");
    (frame.width <= frame.height ? out_h : out_w) = static_cast<int>(resized_long);
    keep_x = half_rounded_to_even(out_w - res);
    keep_y = half_rounded_to_even(out_h - res);
  }

  ResamplePlan plan;
  plan.copy = out_w == src_w && out_h == src_h;
  const auto weights = [&](int in_size, int out_size, int keep) {
    return in_size == out_size ? identity_weights(keep, res) : resample_weights(filter, in_size, out_size, keep, res);
  };
  plan.horizontal = weights(src_w, out_w, keep_x);
  const bool same_axes = src_h == src_w && out_h == out_w && keep_y == keep_x;
  if (!same_axes) plan.vertical_if_different = weights(src_h, out_h, keep_y);
  // Move the origin to the first sample read: first and first + count only
  // grow with the output index (the filter's centre does).
  const auto rebase = [](Weights& w, int origin, int* x0, int* size) {
    const int lo = w.first.front(), hi = w.first.back() + w.count.back();
    for (int& f : w.first) f -= lo;
    *x0 = origin + lo;
    *size = hi - lo;
  };
  rebase(plan.horizontal, src_x0, &plan.x0, &plan.width);
  if (same_axes) {
    plan.y0 = src_y0 + (plan.x0 - src_x0);
    plan.height = plan.width;
  } else {
    rebase(plan.vertical_if_different, src_y0, &plan.y0, &plan.height);
  }
  return plan;
}

NormalizeTable::NormalizeTable(const Normalization& norm) {
  for (int c = 0; c < 3; ++c)
    for (int v = 0; v < 256; ++v) value[c][v] = (static_cast<float>(v) / 255.0f - norm.mean[c]) / norm.std[c];
}

}  // namespace detail

namespace {

using detail::kPrecisionBits;
using detail::NormalizeTable;
using detail::PackedLayout;
using detail::PreprocessPath;
using detail::Weights;
using detail::YuvToRgb;
using detail::format_name;
using detail::packed_layout;

// The vector paths: x86-64 with GCC or Clang, compiled for their instruction
// set function by function and chosen at run time from cpu_features(), so the
// build machine's CPU decides nothing.
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define RUCLIP_X86_SIMD 1
#define RUCLIP_TARGET_AVX2 __attribute__((target("avx2")))
#else
#define RUCLIP_X86_SIMD 0
#endif

// -1: the best path this CPU has; otherwise a PreprocessPath a test forced.
std::atomic<int> forced_path{-1};

PreprocessPath best_path() {
#if RUCLIP_X86_SIMD
  if (cpu_features().avx2) return PreprocessPath::Avx2;
#endif
  return PreprocessPath::Portable;
}

PreprocessPath active_path() {
  const int forced = forced_path.load(std::memory_order_relaxed);
  return forced < 0 ? best_path() : static_cast<PreprocessPath>(forced);
}

// Pillow's accumulators start at one half, so the final shift rounds to nearest.
constexpr int32_t kRoundHalf = 1 << (kPrecisionBits - 1);

// Pillow's final rounding: shift, then clip to the 8-bit range.
inline uint8_t clip8(int32_t acc) { return static_cast<uint8_t>(std::clamp(acc >> kPrecisionBits, 0, 255)); }

// The horizontal pass's weights, each output's taps padded with zero weights to
// a multiple of 16 (zero weights add nothing, so the sums stay Pillow's), as
// int32 for the portable loop and in the vector loop's form (`split`):
//  * vpmaddwd multiplies 16-bit numbers, so each weight is split as
//    k = hi * 2^11 + lo with lo in 0..2047, and
//    sum(p * k) = 2^11 * sum(p * hi) + sum(p * lo), exactly, in 32 bits;
//  * outputs go in pairs, one per 128-bit lane, and per 16 taps a lane holds
//    its output's even taps (0, 2, .., 14) in one vector and odd taps in
//    another, matching 16 source bytes split into even and odd bytes as 16-bit
//    words (an AND and a shift instead of a lane-crossing zero extension);
//  * per pair and 16 taps: lo even, lo odd, hi even, hi odd, 16 values each;
//  * zero-weight outputs after the last, up to a multiple of 8, so the vector
//    loop runs whole blocks of eight without bounds checks.
struct RowWeights {
  static constexpr int kSplit = 11;
  int taps = 0;  // per output, a multiple of 16
  std::vector<int> first;
  std::vector<int32_t> coeffs;
  std::vector<int> split_first;  // first, padded with zeros
  std::vector<int16_t> split;

  RowWeights(const Weights& w, bool want_split) : taps((w.ksize + 15) / 16 * 16), first(w.first) {
    const size_t outputs = first.size();
    coeffs.assign(outputs * taps, 0);
    for (size_t o = 0; o < outputs; ++o) std::copy_n(&w.coeffs[o * w.ksize], w.count[o], &coeffs[o * taps]);
    if (!want_split) return;
    const size_t padded = (outputs + 7) / 8 * 8;
    split_first.assign(padded, 0);
    std::copy(first.begin(), first.end(), split_first.begin());
    split.assign(padded * 2 * taps, 0);
    for (size_t o = 0; o < outputs; ++o)
      for (int t = 0; t < taps; ++t) {
        // Weights are below 2^23 in magnitude (a normalized bilinear or
        // bicubic weight is under 2), so hi fits 16 bits with room to spare;
        // >> floors, so lo >= 0 (and hi < 0 for bicubic's negative lobes).
        const int32_t k = coeffs[o * taps + t], hi = k >> kSplit;
        int16_t* block = &split[(o / 2) * 4 * taps + (t / 16) * 64];
        const int at = (t % 2) * 16 + (o % 2) * 8 + (t % 16) / 2;
        block[at] = static_cast<int16_t>(k - hi * (1 << kSplit));
        block[32 + at] = static_cast<int16_t>(hi);
      }
  }
};

// ---- portable loops (the reference for the vector paths) --------------------

// Horizontal pass over the rows of kChannels channels. Each `in` must be
// readable up to first.back() + taps (the caller pads it).
template <int kChannels>
void hpass_portable(const uint8_t* const* in, const RowWeights& w, int out_size, uint8_t* const* out) {
  const int taps = w.taps;
  for (int c = 0; c < kChannels; ++c)
    for (int xx = 0; xx < out_size; ++xx) {
      const int32_t* k = &w.coeffs[static_cast<size_t>(xx) * taps];
      const uint8_t* p = in[c] + w.first[xx];
      int32_t acc = kRoundHalf;
      for (int t = 0; t < taps; ++t) acc += p[t] * k[t];
      out[c][xx] = clip8(acc);
    }
}

// Vertical pass for one output row: rows[t] weighted by k[t]. Pillow loops taps
// innermost; accumulating whole rows instead walks memory sequentially and,
// being exact integer arithmetic, gives the same sums.
void vpass_portable(const uint8_t* const* rows, const int32_t* k, int count, int n, uint8_t* out) {
  constexpr int kBlock = 256;
  int32_t acc[kBlock];
  for (int x0 = 0; x0 < n; x0 += kBlock) {
    const int m = std::min(kBlock, n - x0);
    std::fill_n(acc, m, kRoundHalf);
    for (int t = 0; t < count; ++t)
      for (int i = 0; i < m; ++i) acc[i] += rows[t][x0 + i] * k[t];
    for (int i = 0; i < m; ++i) out[x0 + i] = clip8(acc[i]);
  }
}

// ToTensor + Normalize of one finished row, through the table.
void normalize_portable(const uint8_t* in, int n, const float* table, float, float, float* out) {
  for (int i = 0; i < n; ++i) out[i] = table[in[i]];
}

// ---- AVX2 -------------------------------------------------------------------
// The same integers as the portable loops, so the same bytes. Nothing here
// depends on fast gathers (slow on Zen 3): YUV is multiplied out, packed
// pixels are split by byte shuffles, and the horizontal pass reads contiguous
// taps.
#if RUCLIP_X86_SIMD

template <typename T>
RUCLIP_TARGET_AVX2 inline __m128i load128(const T* p) {
  return _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
}
template <typename T>
RUCLIP_TARGET_AVX2 inline __m256i load256(const T* p) {
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
}
RUCLIP_TARGET_AVX2 inline __m128i load64(const uint8_t* p) {
  return _mm_loadl_epi64(reinterpret_cast<const __m128i*>(p));
}
RUCLIP_TARGET_AVX2 inline void store128(uint8_t* p, __m128i v) { _mm_storeu_si128(reinterpret_cast<__m128i*>(p), v); }

// The low n <= 8 bytes of `bytes`.
RUCLIP_TARGET_AVX2 inline void store_bytes(__m128i bytes, int n, uint8_t* out) {
  if (n == 8) {
    _mm_storel_epi64(reinterpret_cast<__m128i*>(out), bytes);
  } else {
    alignas(16) uint8_t tmp[16];
    _mm_store_si128(reinterpret_cast<__m128i*>(tmp), bytes);
    std::memcpy(out, tmp, n);
  }
}

// Eight int32 accumulators (with the rounding half in) to n <= 8 bytes:
// Pillow's shift, then the saturating packs clip to 0..255.
RUCLIP_TARGET_AVX2 inline void store_clipped(__m256i acc, int n, uint8_t* out) {
  const __m256i v = _mm256_srai_epi32(acc, kPrecisionBits);
  const __m128i words = _mm_packs_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  store_bytes(_mm_packus_epi16(words, words), n, out);
}

// Sixteen pixels of a YUV row from luma[x], x even. Pixels 2i and 2i + 1 share
// chroma sample i, so luma is split into even and odd pixels (the low and high
// 16-bit halves of each int32 lane) against one vector of eight chroma terms.
// With kBits = 16 each result is the high half of its 32-bit sum, and a word
// blend of the even and odd sums puts those halves back in pixel order.
// NV12 passes the interleaved UV row as `u` (`v` unused). Returns the pixels
// done from x: all but at most one.
static_assert(YuvToRgb::kBits == 16, "yuv_row_avx2 takes the results as the high 16 bits of the sums");
RUCLIP_TARGET_AVX2 inline __m256i high_words(__m256i even, __m256i odd) {
  return _mm256_blend_epi16(_mm256_srli_epi32(even, 16), odd, 0xAA);
}

// YuvToRgb::Coeffs in vectors.
struct YuvVectors {
  __m256i y, r_v, g_u, g_v, b_u, r0, g0, b0;
};

// Sixteen pixels from luma[0], chroma sample 0 at u[0] (NV12: u[0], u[1]) or
// u[0], v[0] (I420).
template <bool kNv12>
RUCLIP_TARGET_AVX2 inline void yuv_block(const YuvVectors& k, const uint8_t* luma, const uint8_t* u, const uint8_t* v,
                                         uint8_t* r, uint8_t* g, uint8_t* b) {
  const __m256i low = _mm256_set1_epi32(0xFFFF);
  const __m256i y16 = _mm256_cvtepu8_epi16(load128(luma));
  const __m256i ye = _mm256_mullo_epi32(_mm256_and_si256(y16, low), k.y);
  const __m256i yo = _mm256_mullo_epi32(_mm256_srli_epi32(y16, 16), k.y);
  __m256i cu, cv;
  if (kNv12) {
    const __m256i uv = _mm256_cvtepu8_epi16(load128(u));
    cu = _mm256_and_si256(uv, low);
    cv = _mm256_srli_epi32(uv, 16);
  } else {
    cu = _mm256_cvtepu8_epi32(load64(u));
    cv = _mm256_cvtepu8_epi32(load64(v));
  }
  const __m256i tr = _mm256_add_epi32(_mm256_mullo_epi32(cv, k.r_v), k.r0);
  const __m256i tg = _mm256_add_epi32(_mm256_add_epi32(_mm256_mullo_epi32(cu, k.g_u), _mm256_mullo_epi32(cv, k.g_v)), k.g0);
  const __m256i tb = _mm256_add_epi32(_mm256_mullo_epi32(cu, k.b_u), k.b0);
  const __m256i rr = high_words(_mm256_add_epi32(ye, tr), _mm256_add_epi32(yo, tr));
  const __m256i gg = high_words(_mm256_add_epi32(ye, tg), _mm256_add_epi32(yo, tg));
  const __m256i bb = high_words(_mm256_add_epi32(ye, tb), _mm256_add_epi32(yo, tb));
  // packus clamps the signed words to 0..255, per 128-bit lane: put the lanes in order.
  const __m256i rg = _mm256_permute4x64_epi64(_mm256_packus_epi16(rr, gg), 0xD8);
  const __m256i bx = _mm256_permute4x64_epi64(_mm256_packus_epi16(bb, bb), 0x08);
  store128(r, _mm256_castsi256_si128(rg));
  store128(g, _mm256_extracti128_si256(rg, 1));
  store128(b, _mm256_castsi256_si128(bx));
}

// Pixels x .. end - 1 of a YUV row (x even) into r, g, b from index 0, 16 at a
// time (yuv_block), the last block moved back to end where the row does: it
// redoes some pixels, with the same result. NV12 passes the interleaved UV row
// as `u` (`v` unused). Returns the pixels done: all but at most one.
template <bool kNv12>
RUCLIP_TARGET_AVX2 int yuv_row_avx2(const YuvToRgb::Coeffs& c, const uint8_t* luma, const uint8_t* u,
                                    const uint8_t* v, int x, int end, uint8_t* r, uint8_t* g, uint8_t* b) {
  if (end - x < 16) return 0;
  const YuvVectors k{_mm256_set1_epi32(c.y),   _mm256_set1_epi32(c.r_v), _mm256_set1_epi32(c.g_u),
                     _mm256_set1_epi32(c.g_v), _mm256_set1_epi32(c.b_u), _mm256_set1_epi32(c.r0),
                     _mm256_set1_epi32(c.g0),  _mm256_set1_epi32(c.b0)};
  const auto chroma_u = [&](int at) { return u + (kNv12 ? at : at / 2); };
  const int n = (end - x) / 16 * 16;
  const uint8_t *yp = luma + x, *up = chroma_u(x), *vp = v + x / 2;
  for (int i = 0; i < n; i += 16, yp += 16, up += kNv12 ? 16 : 8, vp += 8)
    yuv_block<kNv12>(k, yp, up, vp, r + i, g + i, b + i);
  if (n == end - x || n == end - x - 1) return n;
  const int last = end - 16 - (end - x) % 2;  // even, as chroma pairs need
  yuv_block<kNv12>(k, luma + last, chroma_u(last), v + last / 2, r + last - x, g + last - x, b + last - x);
  return last + 16 - x;
}

// Sixteen 4-byte pixels at a time: a byte shuffle gathers R, G, B of each
// 128-bit lane's four pixels into dwords, a dword permute puts each channel's
// eight bytes in one qword, two unpacks join two such vectors. `mask` (32 bytes)
// is the shuffle for the layout. Returns the pixels done: all or, below 16, none.
RUCLIP_TARGET_AVX2 inline void packed4_block(const uint8_t* p, __m256i shuffle, uint8_t* r, uint8_t* g, uint8_t* b) {
  const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  // qwords: R of 8 pixels, G, B, padding
  const __m256i a = _mm256_permutevar8x32_epi32(_mm256_shuffle_epi8(load256(p), shuffle), order);
  const __m256i c = _mm256_permutevar8x32_epi32(_mm256_shuffle_epi8(load256(p + 32), shuffle), order);
  const __m256i rb = _mm256_unpacklo_epi64(a, c), gx = _mm256_unpackhi_epi64(a, c);
  store128(r, _mm256_castsi256_si128(rb));
  store128(g, _mm256_castsi256_si128(gx));
  store128(b, _mm256_extracti128_si256(rb, 1));
}
RUCLIP_TARGET_AVX2 int packed4_row_avx2(const uint8_t* p, const uint8_t* mask, int width, uint8_t* r, uint8_t* g,
                                        uint8_t* b) {
  if (width < 16) return 0;
  const __m256i shuffle = load256(mask);
  for (int x = 0; x + 16 <= width; x += 16) packed4_block(p + 4 * x, shuffle, r + x, g + x, b + x);
  const int x = width - 16;  // a last block that redoes some pixels, with the same result
  if (width % 16) packed4_block(p + 4 * x, shuffle, r + x, g + x, b + x);
  return width;
}

// Two unaligned 16-byte loads as the low and high lanes.
RUCLIP_TARGET_AVX2 inline __m256i load2x128(const uint8_t* lo, const uint8_t* hi) {
  return _mm256_inserti128_si256(_mm256_castsi128_si256(load128(lo)), load128(hi), 1);
}

// Thirty-two 3-byte pixels at a time: each 128-bit lane holds 16 pixels (48
// bytes in three registers), and each channel is three byte shuffles OR-ed.
// `masks` holds, per channel, the three 32-byte shuffles. Returns the pixels
// done: all or, below 32, none.
RUCLIP_TARGET_AVX2 inline void packed3_block(const uint8_t* p, const uint8_t* masks, int x, uint8_t* const out[3]) {
  const uint8_t* q = p + 3 * x;
  const __m256i s0 = load2x128(q, q + 48), s1 = load2x128(q + 16, q + 64), s2 = load2x128(q + 32, q + 80);
  for (int c = 0; c < 3; ++c) {
    const uint8_t* m = masks + 96 * c;
    const __m256i v = _mm256_or_si256(
        _mm256_or_si256(_mm256_shuffle_epi8(s0, load256(m)), _mm256_shuffle_epi8(s1, load256(m + 32))),
        _mm256_shuffle_epi8(s2, load256(m + 64)));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out[c] + x), v);
  }
}
RUCLIP_TARGET_AVX2 int packed3_row_avx2(const uint8_t* p, const uint8_t* masks, int width, uint8_t* const out[3]) {
  if (width < 32) return 0;
  for (int x = 0; x + 32 <= width; x += 32) packed3_block(p, masks, x, out);
  if (width % 32) packed3_block(p, masks, width - 32, out);  // redoes some pixels, with the same result
  return width;
}

// Horizontal pass over the rows of kChannels channels (RowWeights describes the
// layout), eight outputs at a time, two per vector: per 16 taps, both outputs'
// source bytes in one load pair, split into even and odd 16-bit words, four
// vpmaddwd against weights loaded once for all channels. The four vectors of
// partial sums are reduced together with unpacks (cheaper than vphaddd), which
// leaves even outputs in the low lane and odd ones in the high lane. kChunks is
// taps / 16 when known at compile time, 0 otherwise.
template <int kChannels, int kChunks>
RUCLIP_TARGET_AVX2 void hpass_avx2(const uint8_t* const* in, const RowWeights& w, int out_size, uint8_t* const* out) {
  const int chunks = kChunks > 0 ? kChunks : w.taps / 16;
  const __m256i half = _mm256_set1_epi32(kRoundHalf), low_bytes = _mm256_set1_epi16(0xFF);
  const __m128i interleave = _mm_setr_epi8(0, 1, 8, 9, 2, 3, 10, 11, 4, 5, 12, 13, 6, 7, 14, 15);
  const int* first = w.split_first.data();
  const int16_t* k = w.split.data();
  for (int xx = 0; xx < out_size; xx += 8, first += 8) {
    __m256i v[kChannels][4];
    for (int m = 0; m < 4; ++m, k += 64 * chunks) {
      __m256i l[kChannels], h[kChannels];
      for (int c = 0; c < kChannels; ++c) l[c] = h[c] = _mm256_setzero_si256();
      for (int q = 0; q < chunks; ++q) {
        const int16_t* kq = k + 64 * q;
        const __m256i lo_even = load256(kq), lo_odd = load256(kq + 16);
        const __m256i hi_even = load256(kq + 32), hi_odd = load256(kq + 48);
        for (int c = 0; c < kChannels; ++c) {
          const __m256i bytes = load2x128(in[c] + first[2 * m] + 16 * q, in[c] + first[2 * m + 1] + 16 * q);
          const __m256i even = _mm256_and_si256(bytes, low_bytes), odd = _mm256_srli_epi16(bytes, 8);
          l[c] = _mm256_add_epi32(
              l[c], _mm256_add_epi32(_mm256_madd_epi16(even, lo_even), _mm256_madd_epi16(odd, lo_odd)));
          h[c] = _mm256_add_epi32(
              h[c], _mm256_add_epi32(_mm256_madd_epi16(even, hi_even), _mm256_madd_epi16(odd, hi_odd)));
        }
      }
      for (int c = 0; c < kChannels; ++c) v[c][m] = _mm256_add_epi32(l[c], _mm256_slli_epi32(h[c], RowWeights::kSplit));
    }
    for (int c = 0; c < kChannels; ++c) {
      // Per lane, [sum v0, sum v1, sum v2, sum v3]: outputs 0 2 4 6 | 1 3 5 7.
      const __m256i* vc = v[c];
      const __m256i t0 = _mm256_add_epi32(_mm256_unpacklo_epi32(vc[0], vc[1]), _mm256_unpackhi_epi32(vc[0], vc[1]));
      const __m256i t1 = _mm256_add_epi32(_mm256_unpacklo_epi32(vc[2], vc[3]), _mm256_unpackhi_epi32(vc[2], vc[3]));
      const __m256i sum = _mm256_add_epi32(_mm256_unpacklo_epi64(t0, t1), _mm256_unpackhi_epi64(t0, t1));
      const __m256i shifted = _mm256_srai_epi32(_mm256_add_epi32(sum, half), kPrecisionBits);
      const __m128i words = _mm_shuffle_epi8(
          _mm_packs_epi32(_mm256_castsi256_si128(shifted), _mm256_extracti128_si256(shifted, 1)), interleave);
      store_bytes(_mm_packus_epi16(words, words), std::min(8, out_size - xx), out[c] + xx);
    }
  }
}

// The instance for a channel count and tap count.
template <int kChannels>
auto hpass_avx2_for(int taps) {
  return taps == 16 ? hpass_avx2<kChannels, 1> : taps == 32 ? hpass_avx2<kChannels, 2> : hpass_avx2<kChannels, 0>;
}

// Vertical pass for one output row, 32 columns per step with the taps
// innermost and the sums in registers.
RUCLIP_TARGET_AVX2 void vpass_avx2(const uint8_t* const* rows, const int32_t* k, int count, int n, uint8_t* out) {
  const __m256i half = _mm256_set1_epi32(kRoundHalf);
  int x = 0;
  for (; x + 32 <= n; x += 32) {
    __m256i acc[4] = {half, half, half, half};
    for (int t = 0; t < count; ++t) {
      const __m256i kt = _mm256_set1_epi32(k[t]);
      const uint8_t* row = rows[t] + x;
      for (int q = 0; q < 4; ++q)
        acc[q] = _mm256_add_epi32(acc[q], _mm256_mullo_epi32(_mm256_cvtepu8_epi32(load64(row + 8 * q)), kt));
    }
    for (int q = 0; q < 4; ++q) store_clipped(acc[q], 8, out + x + 8 * q);
  }
  for (; x < n; x += 8) {
    __m256i acc = half;
    const int m = std::min(8, n - x);
    for (int t = 0; t < count; ++t) {
      uint64_t bytes = 0;  // the m <= 8 bytes that exist
      std::memcpy(&bytes, rows[t] + x, m);
      const __m256i px = _mm256_cvtepu8_epi32(_mm_cvtsi64_si128(static_cast<long long>(bytes)));
      acc = _mm256_add_epi32(acc, _mm256_mullo_epi32(px, _mm256_set1_epi32(k[t])));
    }
    store_clipped(acc, m, out + x);
  }
}

// ToTensor + Normalize computed rather than looked up: the same float32
// operations as NormalizeTable (v / 255, - mean, / std), each correctly rounded
// in SIMD as in scalar code, so the same floats.
RUCLIP_TARGET_AVX2 void normalize_avx2(const uint8_t* in, int n, const float* table, float mean, float std,
                                       float* out) {
  const __m256 k255 = _mm256_set1_ps(255.0f), m = _mm256_set1_ps(mean), s = _mm256_set1_ps(std);
  int x = 0;
  for (; x + 8 <= n; x += 8) {
    const __m256 v = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(load64(in + x)));
    _mm256_storeu_ps(out + x, _mm256_div_ps(_mm256_sub_ps(_mm256_div_ps(v, k255), m), s));
  }
  for (; x < n; ++x) out[x] = table[in[x]];
}

#endif  // RUCLIP_X86_SIMD

// Converts one row of the rectangle read (columns x0 .. x0 + width - 1 of frame row y)
// into planes of 8-bit R, G, B: Pillow's convert('RGB') for packed input (alpha
// and padding bytes dropped), the YUV matrix for planar input. Gray is one
// plane (channels() == 1): convert('RGB') would only replicate it.
//
// Chroma siting for I420/NV12: each pixel (x, y) takes the chroma sample at
// (x / 2, y / 2) in frame coordinates, i.e. the co-sited / nearest sample with
// no interpolation. It is exact for left/top co-sited content and cheap; the
// antialiasing downscale that follows averages away most of the difference to
// interpolated upsampling.
class RowFetcher {
 public:
  RowFetcher(const FrameView& frame, int x0, int width, PreprocessPath path)
      : frame_(frame), x0_(x0), width_(width), simd_(path != PreprocessPath::Portable),
        yuv_(frame.matrix, frame.full_range) {
    is_packed_ = packed_layout(frame.format, &layout_);
    if (is_packed_) make_masks();
  }

  int channels() const { return frame_.format == PixelFormat::GRAY8 ? 1 : 3; }

  void fetch(int y, uint8_t* const rgb[3]) const {
    const uint8_t* row0 = plane_row(0, y);
    if (is_packed_) return packed_row(row0 + static_cast<ptrdiff_t>(x0_) * layout_.bytes_per_pixel, rgb);
    switch (frame_.format) {
      case PixelFormat::GRAY8:
        std::memcpy(rgb[0], row0 + x0_, width_);
        return;
      case PixelFormat::I420:
        yuv_row(row0, plane_row(1, y / 2), plane_row(2, y / 2), false, rgb);
        return;
      case PixelFormat::NV12: {
        const uint8_t* uv = plane_row(1, y / 2);
        yuv_row(row0, uv, uv + 1, true, rgb);
        return;
      }
      default:
        throw Error("preprocess: unsupported pixel format " + format_name(frame_.format));
    }
  }

 private:
  const uint8_t* plane_row(int plane, int y) const {
    return frame_.planes[plane] + static_cast<ptrdiff_t>(y) * frame_.strides[plane];
  }

  // The byte shuffles of the vector packed paths for this layout.
  void make_masks() {
    const int at[3] = {layout_.r, layout_.g, layout_.b};
    if (layout_.bytes_per_pixel == 4) {
      // Per 128-bit lane: R of its 4 pixels, then G, then B, then nothing.
      for (int j = 0; j < 32; ++j) {
        const int c = (j % 16) / 4, px = j % 4;
        masks_[j] = static_cast<uint8_t>(c < 3 ? 4 * px + at[c] : 0x80);
      }
    } else {
      // Channel c, source register s: byte i of a lane is pixel i's if its
      // byte 3i + at[c] lies in that register's 16 bytes.
      for (int c = 0; c < 3; ++c)
        for (int s = 0; s < 3; ++s)
          for (int j = 0; j < 32; ++j) {
            const int src = 3 * (j % 16) + at[c] - 16 * s;
            masks_[96 * c + 32 * s + j] = static_cast<uint8_t>(src >= 0 && src < 16 ? src : 0x80);
          }
    }
  }

  void packed_row(const uint8_t* p, uint8_t* const rgb[3]) const {
    const int bpp = layout_.bytes_per_pixel;
    int x = 0;
#if RUCLIP_X86_SIMD
    if (simd_)
      x = bpp == 4 ? packed4_row_avx2(p, masks_, width_, rgb[0], rgb[1], rgb[2])
                   : packed3_row_avx2(p, masks_, width_, rgb);
#endif
    for (p += static_cast<ptrdiff_t>(x) * bpp; x < width_; ++x, p += bpp) {
      rgb[0][x] = p[layout_.r];
      rgb[1][x] = p[layout_.g];
      rgb[2][x] = p[layout_.b];
    }
  }

  // Chroma sample c of a row is u[c * step], v[c * step] (step 2 for NV12's
  // interleaved row); it serves pixels 2c and 2c + 1, so its terms are computed
  // once per pair.
  void yuv_row(const uint8_t* luma, const uint8_t* u, const uint8_t* v, bool nv12, uint8_t* const rgb[3]) const {
    uint8_t *r = rgb[0], *g = rgb[1], *b = rgb[2];
    const int step = nv12 ? 2 : 1;
    const int end = x0_ + width_;
    auto one = [&](int x, int i) {
      const int c = (x / 2) * step;
      yuv_.convert(luma[x], yuv_.chroma(u[c], v[c]), &r[i], &g[i], &b[i]);
    };
    int x = x0_, i = 0;
    if (x % 2 == 1) one(x++, i++);  // a crop starting mid-pair
#if RUCLIP_X86_SIMD
    if (simd_) {
      const int done = (nv12 ? yuv_row_avx2<true> : yuv_row_avx2<false>)(yuv_.coeffs(), luma, u, v, x, end, r + i,
                                                                         g + i, b + i);
      x += done, i += done;
    }
#endif
    for (; x + 1 < end; x += 2, i += 2) {
      const int c = (x / 2) * step;
      const YuvToRgb::Chroma chroma = yuv_.chroma(u[c], v[c]);
      yuv_.convert(luma[x], chroma, &r[i], &g[i], &b[i]);
      yuv_.convert(luma[x + 1], chroma, &r[i + 1], &g[i + 1], &b[i + 1]);
    }
    if (x < end) one(x, i);
  }

  const FrameView& frame_;
  int x0_, width_;
  bool simd_;
  PackedLayout layout_{};
  bool is_packed_ = false;
  YuvToRgb yuv_;
  alignas(32) uint8_t masks_[3 * 96] = {};
};

// The stages of one path.
struct Kernels {
  void (*hpass)(const uint8_t* const* in, const RowWeights& w, int out_size, uint8_t* const* out);
  void (*vpass)(const uint8_t* const* rows, const int32_t* k, int count, int n, uint8_t* out);
  void (*normalize)(const uint8_t* in, int n, const float* table, float mean, float std, float* out);
};

Kernels kernels_for(PreprocessPath path, int channels, int taps) {
#if RUCLIP_X86_SIMD
  if (path == PreprocessPath::Avx2)
    return {channels == 1 ? hpass_avx2_for<1>(taps) : hpass_avx2_for<3>(taps), vpass_avx2, normalize_avx2};
#endif
  (void)path, (void)taps;
  return {channels == 1 ? hpass_portable<1> : hpass_portable<3>, vpass_portable, normalize_portable};
}

}  // namespace

void preprocess(const FrameView& frame, const Normalization& norm, float* out) {
  if (frame.memory == FrameMemory::kCuda)
    throw Error("preprocess: the frame is in CUDA memory, which the CPU can't read (a model on that GPU can)");
  detail::validate(frame, norm);
  if (out == nullptr) throw Error("preprocess: output buffer is null");
  const PreprocessPath path = active_path();
  const int res = norm.resolution;
  const size_t plane = static_cast<size_t>(res) * res;

  const detail::ResamplePlan rp = detail::resample_plan(frame, norm);
  const RowFetcher fetcher(frame, rp.x0, rp.width, path);
  const int channels = fetcher.channels();
  const NormalizeTable table(norm);

  // Writes row yy of the result from its finished 8-bit rows; a gray row
  // serves all three channels.
  const auto write = [&](const Kernels& k, uint8_t* const rows[3], int yy) {
    for (int c = 0; c < 3; ++c)
      k.normalize(rows[channels == 1 ? 0 : c], res, table.value[c], norm.mean[c], norm.std[c],
                  out + c * plane + static_cast<size_t>(yy) * res);
  };

  if (rp.copy) {
    // Pillow skips both passes when the size does not change.
    const Kernels k = kernels_for(path, channels, 16);
    std::vector<uint8_t> rgb(3 * static_cast<size_t>(res));
    uint8_t* const rows[3] = {&rgb[0], &rgb[res], &rgb[2 * res]};
    for (int y = 0; y < res; ++y) {
      fetcher.fetch(rp.y0 + y, rows);
      write(k, rows, y);
    }
    return;
  }

  // A pass whose size does not change has identity weights (one tap of 1.0):
  // the same bytes as skipping it.
  const Weights& hw = rp.horizontal;
  const Weights& vw = rp.vertical();
  const RowWeights row_weights(hw, path != PreprocessPath::Portable);
  const Kernels k = kernels_for(path, channels, row_weights.taps);

  // One pass over the frame: each source row the vertical pass reads is
  // converted, resampled horizontally into a ring of the last ksize rows
  // (output row yy reads at most ksize consecutive rows, and they only move
  // forward), and every output row whose last source row is in is finished at
  // once. Nothing frame-sized is ever written.
  const int ring = vw.ksize;
  const size_t row_len = static_cast<size_t>(rp.width) + row_weights.taps;  // zero tail for the padded taps
  std::vector<uint8_t> source(3 * row_len, 0);
  std::vector<uint8_t> horizontal(static_cast<size_t>(channels) * ring * res);
  std::vector<uint8_t> finished(3 * static_cast<size_t>(res));
  std::vector<const uint8_t*> taps(vw.ksize);
  uint8_t* const source_rows[3] = {&source[0], &source[row_len], &source[2 * row_len]};
  uint8_t* const finished_rows[3] = {&finished[0], &finished[res], &finished[2 * res]};
  uint8_t* resampled[3] = {};
  const auto ring_row = [&](int y, int c) { return &horizontal[(static_cast<size_t>(c) * ring + y % ring) * res]; };
  int yy = 0;
  const auto finish_through = [&](int last_row) {
    for (; yy < res && vw.first[yy] + vw.count[yy] - 1 <= last_row; ++yy) {
      for (int c = 0; c < channels; ++c) {
        for (int t = 0; t < vw.count[yy]; ++t) taps[t] = ring_row(vw.first[yy] + t, c);
        k.vpass(taps.data(), &vw.coeffs[static_cast<size_t>(yy) * vw.ksize], vw.count[yy], res, finished_rows[c]);
      }
      write(k, finished_rows, yy);
    }
  };
  for (int y = 0; y < rp.height; ++y) {
    fetcher.fetch(rp.y0 + y, source_rows);
    for (int c = 0; c < channels; ++c) resampled[c] = ring_row(y, c);
    k.hpass(source_rows, row_weights, res, resampled);
    finish_through(y);
  }
  finish_through(rp.height);
}

namespace detail {

std::string preprocess_path_name(PreprocessPath path) {
  switch (path) {
    case PreprocessPath::Portable: return "portable";
    case PreprocessPath::Avx2: return "avx2";
  }
  return "unknown";
}

std::vector<PreprocessPath> preprocess_paths() {
  std::vector<PreprocessPath> paths = {PreprocessPath::Portable};
  if (best_path() != PreprocessPath::Portable) paths.push_back(PreprocessPath::Avx2);
  return paths;
}

void set_preprocess_path(PreprocessPath path) {
  const std::vector<PreprocessPath> paths = preprocess_paths();
  if (std::find(paths.begin(), paths.end(), path) == paths.end())
    throw Error("preprocess: this CPU (RUCLIP_MAX_CPU_ISA=" + cpu_features().isa_cap + ") has no " +
                preprocess_path_name(path) + " path");
  forced_path.store(static_cast<int>(path), std::memory_order_relaxed);
}

PreprocessPath preprocess_path() { return active_path(); }

void set_preprocess_simd(bool enabled) {
  forced_path.store(enabled ? -1 : static_cast<int>(PreprocessPath::Portable), std::memory_order_relaxed);
}

bool preprocess_simd_active() { return active_path() != PreprocessPath::Portable; }

}  // namespace detail

FrameView crop(const FrameView& frame, int x, int y, int w, int h) {
  FrameView v = frame;
  // Clip in 64 bits: the rectangle comes from metadata and may be anything.
  const int64_t x0 = std::max<int64_t>(0, x), y0 = std::max<int64_t>(0, y);
  const int64_t x1 = std::min<int64_t>(frame.width, int64_t(x) + std::max(0, w));
  const int64_t y1 = std::min<int64_t>(frame.height, int64_t(y) + std::max(0, h));
  int64_t cx = x0, cy = y0;
  const bool subsampled = frame.format == PixelFormat::I420 || frame.format == PixelFormat::NV12;
  if (subsampled) cx &= ~int64_t(1), cy &= ~int64_t(1);
  v.width = static_cast<int>(std::max<int64_t>(0, x1 - cx));
  v.height = static_cast<int>(std::max<int64_t>(0, y1 - cy));
  if (v.width == 0 || v.height == 0 || x0 >= x1 || y0 >= y1) {
    v.width = v.height = 0;
    return v;
  }
  detail::PackedLayout layout;
  if (detail::packed_layout(frame.format, &layout)) {
    v.planes[0] = frame.planes[0] + cy * frame.strides[0] + cx * layout.bytes_per_pixel;
  } else if (frame.format == PixelFormat::GRAY8) {
    v.planes[0] = frame.planes[0] + cy * frame.strides[0] + cx;
  } else if (frame.format == PixelFormat::I420) {
    v.planes[0] = frame.planes[0] + cy * frame.strides[0] + cx;
    v.planes[1] = frame.planes[1] + (cy / 2) * frame.strides[1] + cx / 2;
    v.planes[2] = frame.planes[2] + (cy / 2) * frame.strides[2] + cx / 2;
  } else {  // NV12: interleaved UV, one pair per 2x2 luma pixels
    v.planes[0] = frame.planes[0] + cy * frame.strides[0] + cx;
    v.planes[1] = frame.planes[1] + (cy / 2) * frame.strides[1] + cx;
  }
  return v;
}

}  // namespace ruclip
