// What one CUDA preprocessing run uploads, and the kernels' per-thread work,
// as plain C++ that compiles for host and device: preprocess.cu wraps these in
// kernels; tests/test_cuda_preprocess.cpp also runs them on the CPU over every
// index, so the indexing is checked against ruclip::preprocess even on a
// machine without a GPU. Internal to the CUDA preprocessor.
#pragma once
#include <cstddef>
#include <cstdint>

#include "image/preprocess_internal.h"

#if defined(__CUDACC__)
#define RUCLIP_HD __host__ __device__
#else
#define RUCLIP_HD
#endif

namespace ruclip::cuda_detail {

enum Kind { kPacked, kGray, kI420, kNV12 };

// The uploaded part of one plane: bytes [x0, x1) of rows [y0, y1) of the
// frame's plane, stored at `offset` in the staging buffer with pitch x1 - x0.
struct Box {
  int x0, x1, y0, y1;
  size_t offset;
};

// Everything the kernels read, as pointers into the uploaded staging buffer.
struct KernelArgs {
  Kind kind;
  int bpp, r, g, b;          // packed layout: bytes per pixel, channel positions
  int x0, y0;                // the frame pixel of source sample (0, 0) (ResamplePlan::x0, y0)
  const uint8_t* plane[3];   // each Box's first byte
  int pitch[3], box_x0[3], box_y0[3];
  const int32_t* yuv;        // YuvToRgb's tables: y, r_from_v, g_from_u, g_from_v, b_from_u
  // ResamplePlan's weights: horizontal (h_) and vertical (v_), res outputs each.
  const int *h_first, *h_count, *v_first, *v_count;
  const int32_t *h_coeffs, *v_coeffs;
  int h_ksize, v_ksize;
  const float* table;        // NormalizeTable, 3 x 256
  int res, rows;             // the horizontal pass does source rows [0, rows)
};

// A run's layout, computed on the host with the CPU path's own functions.
struct Plan {
  KernelArgs args{};  // pointers are offsets into the staging buffer until bind()
  detail::ResamplePlan resample;
  Box boxes[3] = {};
  int num_boxes = 0;
  size_t table_at = 0, yuv_at = 0;
  size_t h_first_at = 0, h_count_at = 0, h_coeffs_at = 0, v_first_at = 0, v_count_at = 0, v_coeffs_at = 0;
  size_t size = 0;  // staging bytes
};

// Validates like ruclip::preprocess (same ruclip::Error messages) and lays out
// the staging buffer.
Plan make_plan(const FrameView& frame, const Normalization& norm);
// Writes tables, weights and plane boxes into `staging` (plan.size bytes):
// fill_tables, then copy_boxes.
void fill_staging(const Plan& plan, const FrameView& frame, const Normalization& norm, uint8_t* staging);
// The tables and weights alone: the first tables_size(plan) bytes.
void fill_tables(const Plan& plan, const FrameView& frame, const Normalization& norm, uint8_t* staging);
size_t tables_size(const Plan& plan);
// Where box `i` starts in the frame's plane (the frame's own stride is its
// pitch there), for a copy into the staging buffer at plan.boxes[i].offset.
const uint8_t* box_source(const Plan& plan, const FrameView& frame, int i);
// The boxes, copied from a frame in host memory.
void copy_boxes(const Plan& plan, const FrameView& frame, uint8_t* staging);
// The kernels' arguments for a staging buffer at `base` (device or host).
KernelArgs bind(const Plan& plan, const uint8_t* base);

RUCLIP_HD inline int clamp255(int v) { return v < 0 ? 0 : (v > 255 ? 255 : v); }

// Pillow's final rounding: the accumulator starts at one half; shift and clip.
RUCLIP_HD inline int clip8(int32_t acc) { return clamp255(acc >> detail::kPrecisionBits); }

RUCLIP_HD inline int byte_at(const KernelArgs& a, int p, int x, int y) {
  return a.plane[p][static_cast<size_t>(y - a.box_y0[p]) * a.pitch[p] + (x - a.box_x0[p])];
}

// Source pixel (x, y) (frame pixel (x0 + x, y0 + y)) as 8-bit RGB: RowFetcher::fetch for one pixel,
// including YuvToRgb::convert and the co-sited chroma sample (x / 2, y / 2).
RUCLIP_HD inline void fetch(const KernelArgs& a, int x, int y, int rgb[3]) {
  const int fx = a.x0 + x, fy = a.y0 + y;
  if (a.kind == kPacked) {
    const int at = fx * a.bpp;
    rgb[0] = byte_at(a, 0, at + a.r, fy);
    rgb[1] = byte_at(a, 0, at + a.g, fy);
    rgb[2] = byte_at(a, 0, at + a.b, fy);
    return;
  }
  const int luma_code = byte_at(a, 0, fx, fy);
  if (a.kind == kGray) {
    rgb[0] = rgb[1] = rgb[2] = luma_code;
    return;
  }
  const int cx = fx / 2, cy = fy / 2;
  const int u = a.kind == kI420 ? byte_at(a, 1, cx, cy) : byte_at(a, 1, 2 * cx, cy);
  const int v = a.kind == kI420 ? byte_at(a, 2, cx, cy) : byte_at(a, 1, 2 * cx + 1, cy);
  const int32_t* t = a.yuv;
  const int32_t luma = t[luma_code] + detail::YuvToRgb::kHalf;
  rgb[0] = clamp255((luma + t[256 + v]) >> detail::YuvToRgb::kBits);
  rgb[1] = clamp255((luma + t[512 + u] + t[768 + v]) >> detail::YuvToRgb::kBits);
  rgb[2] = clamp255((luma + t[1024 + u]) >> detail::YuvToRgb::kBits);
}

// Horizontal pass, output column xx of intermediate row r (source row r),
// into planar 8-bit temp [3, rows, res].
RUCLIP_HD inline void horizontal_one(const KernelArgs& a, int xx, int r, uint8_t* temp) {
  const int32_t* k = a.h_coeffs + static_cast<size_t>(xx) * a.h_ksize;
  const int x_first = a.h_first[xx], n = a.h_count[xx];
  const int32_t half = 1 << (detail::kPrecisionBits - 1);
  int32_t acc[3] = {half, half, half};
  int rgb[3];
  for (int t = 0; t < n; ++t) {
    fetch(a, x_first + t, r, rgb);
    for (int c = 0; c < 3; ++c) acc[c] += rgb[c] * k[t];
  }
  const size_t plane = static_cast<size_t>(a.rows) * a.res;
  uint8_t* o = temp + static_cast<size_t>(r) * a.res + xx;
  for (int c = 0; c < 3; ++c) o[c * plane] = static_cast<uint8_t>(clip8(acc[c]));
}

// Vertical pass at output (xx, yy), then ToTensor + Normalize by table, into
// planar float out [3, res, res].
RUCLIP_HD inline void vertical_one(const KernelArgs& a, int xx, int yy, const uint8_t* temp, float* out) {
  const int32_t* k = a.v_coeffs + static_cast<size_t>(yy) * a.v_ksize;
  const int n = a.v_count[yy];
  const size_t plane = static_cast<size_t>(a.rows) * a.res;
  for (int c = 0; c < 3; ++c) {
    const uint8_t* src = temp + c * plane + static_cast<size_t>(a.v_first[yy]) * a.res + xx;
    int32_t acc = 1 << (detail::kPrecisionBits - 1);
    for (int t = 0; t < n; ++t) acc += src[static_cast<size_t>(t) * a.res] * k[t];
    out[(static_cast<size_t>(c) * a.res + yy) * a.res + xx] = a.table[c * 256 + clip8(acc)];
  }
}

}  // namespace ruclip::cuda_detail
