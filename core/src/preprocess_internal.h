// Pieces of preprocess.cpp that the CUDA preprocessor (src/cuda/) shares, so
// both paths compute crop geometry, YUV tables, resampling weights and the
// normalization table with the very same host code. Internal: not installed.
#pragma once
#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "ruclip/image.h"

namespace ruclip::detail {

// Fixed-point precision of Pillow's 8-bit resampler: 8 bits for the result, two
// spare bits for filters whose weights overshoot, the rest fraction.
constexpr int kPrecisionBits = 32 - 8 - 2;

std::string format_name(PixelFormat f);

// Byte positions of R, G, B inside one pixel of a packed format.
struct PackedLayout {
  int bytes_per_pixel;
  int r, g, b;
};

// False for GRAY8, I420, NV12.
bool packed_layout(PixelFormat f, PackedLayout* layout);

// Checks everything preprocess relies on before touching memory, so a bad
// frame is a clear ruclip::Error instead of a crash.
void validate(const FrameView& frame, const Normalization& norm);

// RandomResizedCrop with scale = ratio = 1: the centred square of the shorter
// side (torchvision's fallback branch, offsets floor((size - side) / 2)).
struct CenterCrop {
  int side, x0, y0;
};
inline CenterCrop center_crop(const FrameView& frame) {
  const int side = std::min(frame.width, frame.height);
  return {side, (frame.width - side) / 2, (frame.height - side) / 2};
}

// YUV -> RGB with the standard matrices GStreamer uses for these
// colorimetries: BT.601 (Kr 0.299, Kb 0.114) and BT.709 (Kr 0.2126, Kb 0.0722),
// limited range (Y 16..235, chroma 16..240 around 128) or full range (0..255,
// chroma around 128 over 255 steps). Each term is tabulated per 8-bit code in
// fixed point (16 fractional bits, far finer than the final rounding), summed,
// rounded to nearest and clamped to 0..255 per pixel.
class YuvToRgb {
 public:
  static constexpr int kBits = 16;
  static constexpr int32_t kHalf = 1 << (kBits - 1);

  YuvToRgb(YuvMatrix matrix, bool full_range);

  void convert(uint8_t y, uint8_t u, uint8_t v, uint8_t* rgb) const {
    convert(y, chroma(u, v), &rgb[0], &rgb[1], &rgb[2]);
  }

  // The chroma terms, shared by the pixels of a 4:2:0 sample.
  struct Chroma {
    int32_t r, g, b;
  };
  Chroma chroma(uint8_t u, uint8_t v) const { return {r_from_v_[v], g_from_u_[u] + g_from_v_[v], b_from_u_[u]}; }
  void convert(uint8_t y, Chroma c, uint8_t* r, uint8_t* g, uint8_t* b) const {
    const int32_t luma = y_[y] + kHalf;
    *r = clamp8((luma + c.r) >> kBits);
    *g = clamp8((luma + c.g) >> kBits);
    *b = clamp8((luma + c.b) >> kBits);
  }

  // The five tables back to back (y, r_from_v, g_from_u, g_from_v, b_from_u),
  // for uploading to the GPU, which repeats convert() with them.
  void copy_tables(int32_t out[5 * 256]) const;
  // The tables themselves, for the vectorized row conversion.
  struct Tables {
    const int32_t *y, *r_from_v, *g_from_u, *g_from_v, *b_from_u;
  };
  Tables tables() const { return {y_, r_from_v_, g_from_u_, g_from_v_, b_from_u_}; }

 private:
  // Arithmetic shift of a negative sum floors, and anything below 0 clamps to 0.
  static uint8_t clamp8(int32_t x) { return static_cast<uint8_t>(std::clamp(x, 0, 255)); }

  int32_t y_[256], r_from_v_[256], g_from_u_[256], g_from_v_[256], b_from_u_[256];
};

// Pillow's precomputed resampling weights for one axis (in_size -> out_size
// over the whole input, bilinear filter), already in fixed point.
struct Weights {
  int ksize = 0;               // stride of `coeffs` per output sample
  std::vector<int> first;      // first input sample each output reads
  std::vector<int> count;      // how many input samples it reads
  std::vector<int32_t> coeffs; // out_size * ksize, fixed point with kPrecisionBits
};

Weights bilinear_weights(int in_size, int out_size);

// ToTensor + Normalize for every possible 8-bit value, computed with the same
// float32 operations as torchvision: (v / 255) then (x - mean) / std.
struct NormalizeTable {
  float value[3][256];
  explicit NormalizeTable(const Normalization& norm);
};

// The CPU path uses AVX2 where the processor has it (same integers, same
// result); tests switch it off to check the portable loops against it.
void set_preprocess_simd(bool enabled);
bool preprocess_simd_active();

}  // namespace ruclip::detail
