// Frame -> normalized C x H x W pixel values, equal to upstream ruCLIP's
// processor:
//   img.convert('RGB')
//   -> torchvision 0.14 RandomResizedCrop(R, scale=(1, 1), ratio=(1, 1))
//   -> Pillow 9.4 Image.resize((R, R), BILINEAR)
//   -> ToTensor (/255) -> Normalize ((x - mean) / std).
//
// With scale = ratio = 1 the crop is the centred square of side
// min(width, height) (for a square image: the whole image), so the work is:
// convert the crop's pixels to 8-bit RGB, resample the square to R x R the way
// Pillow does, and map every 8-bit value through a per-channel table.
//
// The resampler reproduces Pillow's ImagingResample (libImaging/Resample.c) for
// 8-bit images with the bilinear filter, written from its description:
//  * the filter support is widened by the downscale factor (antialiasing);
//  * weights are computed in double, normalized to sum 1, then rounded to
//    fixed point with 22 fractional bits (32 - 8 - 2);
//  * a horizontal pass into an 8-bit intermediate holding only the source rows
//    the vertical pass reads, then a vertical pass; each output is rounded by
//    adding half and shifting, and clipped to 0..255;
//  * a pass is skipped when its dimension does not change.
// Matching these steps gives bit-identical 8-bit values, hence (through the same
// float32 ToTensor/Normalize arithmetic) the same floats as upstream.
//
// Source pixels are never converted as a whole frame: the horizontal pass pulls
// one row of the crop at a time through RowFetcher, which converts just that row
// (any packed layout, gray or YUV) into a small RGB scratch row.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "ruclip/error.h"
#include "ruclip/image.h"
#include "preprocess_internal.h"

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
  const double y_offset = full_range ? 0.0 : 16.0;
  const double y_scale = full_range ? 255.0 : 219.0;
  const double c_scale = full_range ? 255.0 : 224.0;
  const auto fixed = [](double x) { return static_cast<int32_t>(std::lround(x * (1 << kBits))); };
  for (int v = 0; v < 256; ++v) {
    const double y = (v - y_offset) / y_scale * 255.0;  // luma in 0..255 units
    const double c = (v - 128.0) / c_scale * 255.0;     // chroma in 0..255 units
    y_[v] = fixed(y);
    r_from_v_[v] = fixed(2.0 * (1.0 - kr) * c);
    g_from_u_[v] = fixed(-2.0 * kb * (1.0 - kb) / kg * c);
    g_from_v_[v] = fixed(-2.0 * kr * (1.0 - kr) / kg * c);
    b_from_u_[v] = fixed(2.0 * (1.0 - kb) * c);
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
}  // namespace

// Mirrors Pillow's precompute_coeffs + normalize_coeffs_8bpc step by step
// (same operation order and the same truncating int casts), because a single
// differing weight can move an output value by one 8-bit level.
Weights bilinear_weights(int in_size, int out_size) {
  const double scale = static_cast<double>(in_size) / out_size;
  // Downscaling stretches the filter over `scale` input samples: that is the
  // antialiasing. Upscaling keeps the plain triangle.
  const double filterscale = std::max(scale, 1.0);
  const double support = 1.0 * filterscale;  // bilinear support is 1
  Weights w;
  w.ksize = static_cast<int>(std::ceil(support)) * 2 + 1;
  w.first.resize(out_size);
  w.count.resize(out_size);
  w.coeffs.assign(static_cast<size_t>(out_size) * w.ksize, 0);
  std::vector<double> k(w.ksize);
  for (int xx = 0; xx < out_size; ++xx) {
    const double center = (xx + 0.5) * scale;
    const double ss = 1.0 / filterscale;
    // "+ 0.5" then a truncating cast is Pillow's rounding; it truncates toward
    // zero for negatives too, which the clamp to 0 makes harmless.
    const int xmin = std::max(static_cast<int>(center - support + 0.5), 0);
    const int xmax = std::min(static_cast<int>(center + support + 0.5), in_size) - xmin;
    double sum = 0.0;
    for (int x = 0; x < xmax; ++x) {
      k[x] = bilinear((static_cast<double>(x + xmin) - center + 0.5) * ss);
      sum += k[x];
    }
    int32_t* out = &w.coeffs[static_cast<size_t>(xx) * w.ksize];
    for (int x = 0; x < xmax; ++x) {
      const double kx = sum != 0.0 ? k[x] / sum : k[x];
      const double scaled = kx * (1 << kPrecisionBits);
      out[x] = static_cast<int32_t>(kx < 0 ? scaled - 0.5 : scaled + 0.5);
    }
    w.first[xx] = xmin;
    w.count[xx] = xmax;
  }
  return w;
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
using detail::Weights;
using detail::YuvToRgb;
using detail::format_name;
using detail::packed_layout;

// AVX2 versions of the two hot loops (row conversion, horizontal pass): the
// same integer arithmetic eight values at a time, so the same result; chosen
// at run time, the portable loops otherwise.
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define RUCLIP_AVX2 1
#else
#define RUCLIP_AVX2 0
#endif

bool simd_enabled = true;

bool use_avx2() {
#if RUCLIP_AVX2
  static const bool supported = __builtin_cpu_supports("avx2");
  return supported && simd_enabled;
#else
  return false;
#endif
}

#if RUCLIP_AVX2
#define RUCLIP_TARGET_AVX2 __attribute__((target("avx2")))

// Eight int32 lanes to eight bytes, saturating: clamp to 0..255.
RUCLIP_TARGET_AVX2 inline __m128i to_bytes(__m256i x) {
  const __m128i words = _mm_packus_epi32(_mm256_castsi256_si128(x), _mm256_extracti128_si256(x, 1));
  return _mm_packus_epi16(words, words);
}

// Four chroma samples at p[0], p[step], p[2 step], p[3 step] (step 1 or 2),
// each repeated twice, as eight int32 lanes.
RUCLIP_TARGET_AVX2 inline __m256i load_chroma_pairs(const uint8_t* p, int step) {
  const __m128i dup = step == 1 ? _mm_setr_epi8(0, 0, 1, 1, 2, 2, 3, 3, -1, -1, -1, -1, -1, -1, -1, -1)
                                : _mm_setr_epi8(0, 0, 2, 2, 4, 4, 6, 6, -1, -1, -1, -1, -1, -1, -1, -1);
  int32_t word;  // 4 bytes, unaligned
  std::memcpy(&word, p, sizeof word);
  const __m128i bytes = step == 1 ? _mm_cvtsi32_si128(word) : _mm_loadl_epi64(reinterpret_cast<const __m128i*>(p));
  return _mm256_cvtepu8_epi32(_mm_shuffle_epi8(bytes, dup));
}

// Eight pixels at a time from luma[x] (x even) with chroma samples
// u[c * step], v[c * step], c = x / 2 ...: gathers from the five tables, then
// the sums and shifts of YuvToRgb::convert. Returns how many pixels it did.
RUCLIP_TARGET_AVX2 int yuv_row_avx2(const YuvToRgb::Tables& t, const uint8_t* luma, const uint8_t* u,
                                    const uint8_t* v, int step, int x, int end, uint8_t* r, uint8_t* g,
                                    uint8_t* b) {
  const __m256i half = _mm256_set1_epi32(YuvToRgb::kHalf);
  int i = 0;
  for (; x + 8 <= end; x += 8, i += 8) {
    const int c = (x / 2) * step;
    const __m256i yi = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(luma + x)));
    const __m256i ui = load_chroma_pairs(u + c, step), vi = load_chroma_pairs(v + c, step);
    const __m256i l = _mm256_add_epi32(_mm256_i32gather_epi32(t.y, yi, 4), half);
    const __m256i rr = _mm256_add_epi32(l, _mm256_i32gather_epi32(t.r_from_v, vi, 4));
    const __m256i gg = _mm256_add_epi32(_mm256_add_epi32(l, _mm256_i32gather_epi32(t.g_from_u, ui, 4)),
                                        _mm256_i32gather_epi32(t.g_from_v, vi, 4));
    const __m256i bb = _mm256_add_epi32(l, _mm256_i32gather_epi32(t.b_from_u, ui, 4));
    _mm_storel_epi64(reinterpret_cast<__m128i*>(r + i), to_bytes(_mm256_srai_epi32(rr, YuvToRgb::kBits)));
    _mm_storel_epi64(reinterpret_cast<__m128i*>(g + i), to_bytes(_mm256_srai_epi32(gg, YuvToRgb::kBits)));
    _mm_storel_epi64(reinterpret_cast<__m128i*>(b + i), to_bytes(_mm256_srai_epi32(bb, YuvToRgb::kBits)));
  }
  return i;  // pixels done; the caller finishes the row
}
#endif

// Converts one row of the crop (columns x0 .. x0 + width - 1 of frame row y)
// into three planes of 8-bit R, G, B: Pillow's convert('RGB') for packed input
// (alpha and padding bytes dropped, gray replicated), the YUV matrix for
// planar input.
//
// Chroma siting for I420/NV12: each pixel (x, y) takes the chroma sample at
// (x / 2, y / 2) in frame coordinates, i.e. the co-sited / nearest sample with
// no interpolation. It is exact for left/top co-sited content and cheap; the
// antialiasing downscale that follows averages away most of the difference to
// interpolated upsampling.
class RowFetcher {
 public:
  RowFetcher(const FrameView& frame, int x0, int width)
      : frame_(frame), x0_(x0), width_(width), yuv_(frame.matrix, frame.full_range) {
    is_packed_ = packed_layout(frame.format, &layout_);
  }

  void fetch(int y, uint8_t* r, uint8_t* g, uint8_t* b) const {
    const uint8_t* row0 = plane_row(0, y);
    if (is_packed_) {
      const uint8_t* p = row0 + static_cast<ptrdiff_t>(x0_) * layout_.bytes_per_pixel;
      for (int x = 0; x < width_; ++x, p += layout_.bytes_per_pixel) {
        r[x] = p[layout_.r];
        g[x] = p[layout_.g];
        b[x] = p[layout_.b];
      }
      return;
    }
    switch (frame_.format) {
      case PixelFormat::GRAY8: {
        const uint8_t* p = row0 + x0_;
        for (int x = 0; x < width_; ++x) r[x] = g[x] = b[x] = p[x];
        return;
      }
      case PixelFormat::I420:
        yuv_row(row0, plane_row(1, y / 2), plane_row(2, y / 2), 1, r, g, b);
        return;
      case PixelFormat::NV12: {
        const uint8_t* uv = plane_row(1, y / 2);
        yuv_row(row0, uv, uv + 1, 2, r, g, b);
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

  // Chroma sample c of a row is u[c * step], v[c * step]; it serves pixels 2c
  // and 2c + 1, so its table terms are looked up once per pair.
  void yuv_row(const uint8_t* luma, const uint8_t* u, const uint8_t* v, int step, uint8_t* r, uint8_t* g,
               uint8_t* b) const {
    const int end = x0_ + width_;
    auto one = [&](int x, int i) {
      const int c = (x / 2) * step;
      yuv_.convert(luma[x], yuv_.chroma(u[c], v[c]), &r[i], &g[i], &b[i]);
    };
    int x = x0_, i = 0;
    if (x % 2 == 1) one(x++, i++);  // a crop starting mid-pair
#if RUCLIP_AVX2
    if (use_avx2()) {
      const int done = yuv_row_avx2(yuv_.tables(), luma, u, v, step, x, end, r + i, g + i, b + i);
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
  PackedLayout layout_{};
  bool is_packed_ = false;
  YuvToRgb yuv_;
};

// Pillow's final rounding: the accumulator starts at one half, so the shift
// rounds to nearest; then clip to the 8-bit range.
inline uint8_t clip8(int32_t acc) { return static_cast<uint8_t>(std::clamp(acc >> kPrecisionBits, 0, 255)); }

// Resampling weights with every output's taps padded to a multiple of 8 with
// zero weights, so the tap loop has a fixed length the compiler vectorizes;
// zero weights add nothing, so the sums are Pillow's.
struct PaddedWeights {
  int taps = 0;  // per output
  std::vector<int> first;
  std::vector<int32_t> coeffs;  // out_size * taps
  explicit PaddedWeights(const Weights& w) : taps((w.ksize + 7) / 8 * 8), first(w.first) {
    coeffs.assign(first.size() * taps, 0);
    for (size_t o = 0; o < first.size(); ++o)
      std::copy_n(&w.coeffs[o * w.ksize], w.count[o], &coeffs[o * taps]);
  }
};

// Horizontal pass over one channel row. `in` must be readable up to
// first.back() + taps (the caller pads it).
void resample_channel(const uint8_t* in, const PaddedWeights& w, int out_size, uint8_t* out) {
  constexpr int32_t half = 1 << (kPrecisionBits - 1);
  const int taps = w.taps;
  for (int xx = 0; xx < out_size; ++xx) {
    const int32_t* k = &w.coeffs[static_cast<size_t>(xx) * taps];
    const uint8_t* p = in + w.first[xx];
    int32_t acc = half;
    for (int t = 0; t < taps; ++t) acc += p[t] * k[t];
    out[xx] = clip8(acc);
  }
}

#if RUCLIP_AVX2
RUCLIP_TARGET_AVX2 void resample_channel_avx2(const uint8_t* in, const PaddedWeights& w, int out_size,
                                              uint8_t* out) {
  constexpr int32_t half = 1 << (kPrecisionBits - 1);
  const int taps = w.taps;
  for (int xx = 0; xx < out_size; ++xx) {
    const int32_t* k = &w.coeffs[static_cast<size_t>(xx) * taps];
    const uint8_t* p = in + w.first[xx];
    __m256i acc = _mm256_setzero_si256();
    for (int t = 0; t < taps; t += 8) {
      const __m256i px = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p + t)));
      const __m256i kt = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(k + t));
      acc = _mm256_add_epi32(acc, _mm256_mullo_epi32(px, kt));
    }
    __m128i sum = _mm_add_epi32(_mm256_castsi256_si128(acc), _mm256_extracti128_si256(acc, 1));
    sum = _mm_add_epi32(sum, _mm_shuffle_epi32(sum, 0x4E));
    sum = _mm_add_epi32(sum, _mm_shuffle_epi32(sum, 0xB1));
    out[xx] = clip8(_mm_cvtsi128_si32(sum) + half);
  }
}
#endif

// acc[i] += src[i] * k over a row: the vertical pass, one tap at a time.
void accumulate_row(const uint8_t* src, int32_t k, size_t n, int32_t* acc) {
  for (size_t i = 0; i < n; ++i) acc[i] += src[i] * k;
}

// Writes one finished plane row of the R x R result through the table.
void write_row(const int32_t* acc, const float* table, size_t n, float* out) {
  for (size_t i = 0; i < n; ++i) out[i] = table[clip8(acc[i])];
}

}  // namespace

void preprocess(const FrameView& frame, const Normalization& norm, float* out) {
  detail::validate(frame, norm);
  if (out == nullptr) throw Error("preprocess: output buffer is null");
  const int res = norm.resolution;
  const size_t plane = static_cast<size_t>(res) * res;

  const auto [side, x0, y0] = detail::center_crop(frame);

  const RowFetcher fetcher(frame, x0, side);
  const NormalizeTable table(norm);

  if (side == res) {
    // Pillow skips both passes when the size does not change.
    std::vector<uint8_t> rgb(3 * static_cast<size_t>(side));
    for (int y = 0; y < res; ++y) {
      fetcher.fetch(y0 + y, &rgb[0], &rgb[side], &rgb[2 * side]);
      for (int c = 0; c < 3; ++c)
        for (int x = 0; x < res; ++x) out[c * plane + static_cast<size_t>(y) * res + x] = table.value[c][rgb[c * side + x]];
    }
    return;
  }

  // The crop is square, so both axes share the same weights (and, as in
  // Pillow, both passes run because both dimensions change).
  const Weights w = detail::bilinear_weights(side, res);
  const PaddedWeights padded(w);

  // Horizontal pass, only over the source rows the vertical pass will read,
  // into three planes of 8-bit rows (res wide).
  const int first_row = w.first.front();
  const int end_row = w.first.back() + w.count.back();
  const size_t rows = static_cast<size_t>(end_row - first_row);
  const size_t row_len = static_cast<size_t>(side) + padded.taps;  // zero tail for the padded taps
  std::vector<uint8_t> source(3 * row_len, 0);
  std::vector<uint8_t> temp(3 * rows * res);
  for (int y = first_row; y < end_row; ++y) {
    uint8_t* r = &source[0];
    fetcher.fetch(y0 + y, r, r + row_len, r + 2 * row_len);
    for (int c = 0; c < 3; ++c) {
      uint8_t* dst = &temp[(c * rows + static_cast<size_t>(y - first_row)) * res];
#if RUCLIP_AVX2
      if (use_avx2()) {
        resample_channel_avx2(&source[c * row_len], padded, res, dst);
        continue;
      }
#endif
      resample_channel(&source[c * row_len], padded, res, dst);
    }
  }

  // Vertical pass. Pillow loops taps innermost; accumulating whole rows instead
  // walks memory sequentially and, being exact integer arithmetic, gives the
  // same sums.
  std::vector<int32_t> acc(res);
  for (int c = 0; c < 3; ++c) {
    for (int yy = 0; yy < res; ++yy) {
      std::fill(acc.begin(), acc.end(), 1 << (kPrecisionBits - 1));
      const int32_t* k = &w.coeffs[static_cast<size_t>(yy) * w.ksize];
      for (int t = 0; t < w.count[yy]; ++t)
        accumulate_row(&temp[(c * rows + static_cast<size_t>(w.first[yy] + t - first_row)) * res], k[t], res,
                       acc.data());
      write_row(acc.data(), table.value[c], res, out + c * plane + static_cast<size_t>(yy) * res);
    }
  }
}

namespace detail {
void set_preprocess_simd(bool enabled) { simd_enabled = enabled; }
bool preprocess_simd_active() { return use_avx2(); }
}  // namespace detail

}  // namespace ruclip
