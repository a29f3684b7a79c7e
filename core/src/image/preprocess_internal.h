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
// ruCLIP v2's crop, made before its resize.
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
// chroma around 128 over 255 steps). Each term is an integer coefficient in
// fixed point (16 fractional bits) times the code minus its offset, i.e.
// exactly linear in the code, so vector code can multiply where scalar code
// and the GPU look the terms up in tables; the terms are summed, rounded to
// nearest and clamped to 0..255 per pixel. (Rounding the coefficient rather
// than each table entry moves a term by at most |code - offset| / 2^17, under
// 0.002 of a level: about 0.02 % of the samples of all codes come out one
// level from the exact formula.)
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

  // The same terms as multiply-adds: with Y, U, V the codes,
  //   R = (y * Y + r_v * V + r0) >> kBits
  //   G = (y * Y + g_u * U + g_v * V + g0) >> kBits
  //   B = (y * Y + b_u * U + b0) >> kBits,
  // clamped: the offsets and the rounding half are folded into r0, g0, b0.
  // Equal to convert() for every code, in 32-bit integers without overflow.
  struct Coeffs {
    int32_t y, r_v, g_u, g_v, b_u;
    int32_t r0, g0, b0;
  };
  const Coeffs& coeffs() const { return coeffs_; }

 private:
  // Arithmetic shift of a negative sum floors, and anything below 0 clamps to 0.
  static uint8_t clamp8(int32_t x) { return static_cast<uint8_t>(std::clamp(x, 0, 255)); }

  Coeffs coeffs_{};
  int32_t y_[256], r_from_v_[256], g_from_u_[256], g_from_v_[256], b_from_u_[256];
};

// Pillow's precomputed resampling weights for some outputs of one axis,
// already in fixed point.
struct Weights {
  int ksize = 0;               // stride of `coeffs` per output sample
  std::vector<int> first;      // first input sample each output reads
  std::vector<int> count;      // how many input samples it reads
  std::vector<int32_t> coeffs; // outputs * ksize, fixed point with kPrecisionBits
};

// The filters of Pillow's resampler that the processors use: BILINEAR
// (triangle, support 1; ruCLIP v2) and BICUBIC (Keys' cubic with a = -0.5,
// support 2; ruCLIP v1 / OpenAI CLIP). Both are widened by the downscale factor.
enum class Filter { Bilinear, Bicubic };

// The weights of outputs [first_out, first_out + n) of Pillow's resize of
// in_size samples to out_size (the whole input, no box). Pillow computes each
// output from its own weights, so these are the full resize's rows, cut.
Weights resample_weights(Filter filter, int in_size, int out_size, int first_out, int n);
// All outputs, bilinear.
inline Weights bilinear_weights(int in_size, int out_size) {
  return resample_weights(Filter::Bilinear, in_size, out_size, 0, out_size);
}
// Pillow skips a pass whose size does not change: outputs [first_out,
// first_out + n) are input samples first_out.. as they are. One tap of weight
// 1.0 reproduces that exactly ((v << 22) + half, shifted back, is v).
Weights identity_weights(int first_out, int n);

// Where the resolution x resolution outputs come from, for either ResizeMode:
// output (xx, yy) is Pillow's two passes, the horizontal weights of output xx
// over frame columns x0 + first[xx].., then the vertical weights of output yy
// over those rows y0 + first[yy].. Only the kept outputs have weights (the crop
// after a v1 resize cuts the rest), and the frame rectangle [x0, x0 + width) x
// [y0, y0 + height) is exactly what they read: first starts at 0 on both axes.
struct ResamplePlan {
  int x0 = 0, y0 = 0, width = 0, height = 0;
  Weights horizontal;  // resolution outputs
  // Empty when the vertical weights are the horizontal ones (a v2 crop is
  // square): making them costs time on every frame, and even a copy shows
  // in the frame time.
  Weights vertical_if_different;
  const Weights& vertical() const { return vertical_if_different.first.empty() ? horizontal : vertical_if_different; }
  // Both passes skipped (the resize does not change the size): output
  // (xx, yy) is frame pixel (x0 + xx, y0 + yy); the weights are identities.
  bool copy = false;
};
// Expects a validated frame and normalization.
ResamplePlan resample_plan(const FrameView& frame, const Normalization& norm);

// ToTensor + Normalize for every possible 8-bit value, computed with the same
// float32 operations as torchvision: (v / 255) then (x - mean) / std.
struct NormalizeTable {
  float value[3][256];
  explicit NormalizeTable(const Normalization& norm);
};

// The code paths of the CPU preprocessor. Each gives the same bytes (the same
// integer arithmetic, vectorized differently); the best one the CPU has, as
// ruclip::cpu_features() reports it after RUCLIP_MAX_CPU_ISA, runs unless a
// test forces another. (No AVX-512 path: bench/preprocess.md says why.)
enum class PreprocessPath { Portable, Avx2 };
std::string preprocess_path_name(PreprocessPath path);
// The paths this CPU can run, portable first, best last.
std::vector<PreprocessPath> preprocess_paths();
// Forces `path` for the whole process (ruclip::Error if this CPU lacks it).
void set_preprocess_path(PreprocessPath path);
// The path preprocess() takes now.
PreprocessPath preprocess_path();

// The tests' on/off switch for vector code: false forces the portable loops,
// true returns to the best path.
void set_preprocess_simd(bool enabled);
// Whether preprocess() runs vector code now.
bool preprocess_simd_active();

}  // namespace ruclip::detail
