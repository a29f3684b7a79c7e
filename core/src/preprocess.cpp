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
#include <string>
#include <vector>

#include "ruclip/error.h"
#include "ruclip/image.h"
#include "preprocess_internal.h"

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

// Converts one row of the crop (columns x0 .. x0 + width - 1 of frame row y)
// into packed 8-bit RGB: Pillow's convert('RGB') for packed input (alpha and
// padding bytes dropped, gray replicated), the YUV matrix for planar input.
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

  void fetch(int y, uint8_t* rgb) const {
    const uint8_t* row0 = plane_row(0, y);
    if (is_packed_) {
      const uint8_t* p = row0 + static_cast<ptrdiff_t>(x0_) * layout_.bytes_per_pixel;
      for (int x = 0; x < width_; ++x, p += layout_.bytes_per_pixel, rgb += 3) {
        rgb[0] = p[layout_.r];
        rgb[1] = p[layout_.g];
        rgb[2] = p[layout_.b];
      }
      return;
    }
    switch (frame_.format) {
      case PixelFormat::GRAY8: {
        const uint8_t* p = row0 + x0_;
        for (int x = 0; x < width_; ++x, rgb += 3) rgb[0] = rgb[1] = rgb[2] = p[x];
        return;
      }
      case PixelFormat::I420: {
        const uint8_t* u = plane_row(1, y / 2);
        const uint8_t* v = plane_row(2, y / 2);
        for (int x = x0_; x < x0_ + width_; ++x, rgb += 3) yuv_.convert(row0[x], u[x / 2], v[x / 2], rgb);
        return;
      }
      case PixelFormat::NV12: {
        const uint8_t* uv = plane_row(1, y / 2);
        for (int x = x0_; x < x0_ + width_; ++x, rgb += 3) {
          const uint8_t* c = uv + (x / 2) * 2;
          yuv_.convert(row0[x], c[0], c[1], rgb);
        }
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

  const FrameView& frame_;
  int x0_, width_;
  PackedLayout layout_{};
  bool is_packed_ = false;
  YuvToRgb yuv_;
};

// Pillow's final rounding: the accumulator starts at one half, so the shift
// rounds to nearest; then clip to the 8-bit range.
inline uint8_t clip8(int32_t acc) { return static_cast<uint8_t>(std::clamp(acc >> kPrecisionBits, 0, 255)); }

// Horizontal pass over one RGB row: `in` has the crop's width, `out` has
// out_size pixels.
void resample_row(const uint8_t* in, const Weights& w, int out_size, uint8_t* out) {
  constexpr int32_t half = 1 << (kPrecisionBits - 1);
  for (int xx = 0; xx < out_size; ++xx, out += 3) {
    const int32_t* k = &w.coeffs[static_cast<size_t>(xx) * w.ksize];
    const uint8_t* p = in + static_cast<size_t>(w.first[xx]) * 3;
    int32_t r = half, g = half, b = half;
    for (int x = 0; x < w.count[xx]; ++x, p += 3) {
      r += p[0] * k[x];
      g += p[1] * k[x];
      b += p[2] * k[x];
    }
    out[0] = clip8(r);
    out[1] = clip8(g);
    out[2] = clip8(b);
  }
}

// Writes one finished RGB row of the R x R result into the planar output.
void write_row(const uint8_t* rgb, int row, int res, const NormalizeTable& table, float* out) {
  const size_t plane = static_cast<size_t>(res) * res;
  float* r = out + static_cast<size_t>(row) * res;
  float* g = r + plane;
  float* b = g + plane;
  for (int x = 0; x < res; ++x, rgb += 3) {
    r[x] = table.value[0][rgb[0]];
    g[x] = table.value[1][rgb[1]];
    b[x] = table.value[2][rgb[2]];
  }
}

}  // namespace

void preprocess(const FrameView& frame, const Normalization& norm, float* out) {
  detail::validate(frame, norm);
  if (out == nullptr) throw Error("preprocess: output buffer is null");
  const int res = norm.resolution;

  const auto [side, x0, y0] = detail::center_crop(frame);

  const RowFetcher fetcher(frame, x0, side);
  const NormalizeTable table(norm);
  std::vector<uint8_t> row(static_cast<size_t>(side) * 3);

  if (side == res) {
    // Pillow skips both passes when the size does not change.
    for (int y = 0; y < res; ++y) {
      fetcher.fetch(y0 + y, row.data());
      write_row(row.data(), y, res, table, out);
    }
    return;
  }

  // The crop is square, so both axes share the same weights (and, as in
  // Pillow, both passes run because both dimensions change).
  const Weights w = detail::bilinear_weights(side, res);

  // Horizontal pass, only over the source rows the vertical pass will read.
  const int first_row = w.first.front();
  const int end_row = w.first.back() + w.count.back();
  const size_t temp_stride = static_cast<size_t>(res) * 3;
  std::vector<uint8_t> temp(static_cast<size_t>(end_row - first_row) * temp_stride);
  for (int y = first_row; y < end_row; ++y) {
    fetcher.fetch(y0 + y, row.data());
    resample_row(row.data(), w, res, &temp[static_cast<size_t>(y - first_row) * temp_stride]);
  }

  // Vertical pass. Pillow loops taps innermost; accumulating whole rows instead
  // walks memory sequentially and, being exact integer arithmetic, gives the
  // same sums.
  std::vector<int32_t> acc(temp_stride);
  std::vector<uint8_t> out_row(temp_stride);
  for (int yy = 0; yy < res; ++yy) {
    std::fill(acc.begin(), acc.end(), 1 << (kPrecisionBits - 1));
    const int32_t* k = &w.coeffs[static_cast<size_t>(yy) * w.ksize];
    for (int t = 0; t < w.count[yy]; ++t) {
      const uint8_t* src = &temp[static_cast<size_t>(w.first[yy] + t - first_row) * temp_stride];
      const int32_t kt = k[t];
      for (size_t i = 0; i < temp_stride; ++i) acc[i] += src[i] * kt;
    }
    for (size_t i = 0; i < temp_stride; ++i) out_row[i] = clip8(acc[i]);
    write_row(out_row.data(), yy, res, table, out);
  }
}

}  // namespace ruclip
