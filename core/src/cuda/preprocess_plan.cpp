// The host side of a CUDA preprocessing run (see preprocess_plan.h): plain
// C++, built by the C++ compiler; no CUDA runtime needed.
#include "preprocess_plan.h"

#include <cstring>
#include <string>

#include "ruclip/error.h"

namespace ruclip {
namespace cuda_detail {
namespace {

// Pillow skips both passes when the size does not change. One tap of weight
// 1.0 reproduces that exactly ((v << 22) + half, shifted back, is v), so the
// same two kernels serve.
detail::Weights identity_weights(int size) {
  detail::Weights w;
  w.ksize = 1;
  w.first.resize(size);
  for (int i = 0; i < size; ++i) w.first[i] = i;
  w.count.assign(size, 1);
  w.coeffs.assign(size, int32_t{1} << detail::kPrecisionBits);
  return w;
}

size_t align16(size_t n) { return (n + 15) & ~size_t{15}; }

}  // namespace

Plan make_plan(const FrameView& frame, const Normalization& norm) {
  detail::validate(frame, norm);
  Plan plan;
  KernelArgs& a = plan.args;
  a.res = norm.resolution;
  const detail::CenterCrop crop = detail::center_crop(frame);
  a.crop_x0 = crop.x0;
  a.crop_y0 = crop.y0;
  plan.weights = crop.side == a.res ? identity_weights(a.res) : detail::bilinear_weights(crop.side, a.res);
  const detail::Weights& w = plan.weights;
  a.ksize = w.ksize;
  // The crop rows the vertical pass reads: the horizontal pass does only these.
  a.first_row = w.first.front();
  a.rows = w.first.back() + w.count.back() - a.first_row;

  // Frame pixels the passes read, and the matching byte boxes of each plane
  // (4:2:0 chroma: the samples x / 2, y / 2 of those pixels).
  const int fx0 = crop.x0, fx1 = crop.x0 + crop.side;
  const int fy0 = crop.y0 + a.first_row, fy1 = fy0 + a.rows;
  const int cx0 = fx0 / 2, cx1 = (fx1 - 1) / 2 + 1, cy0 = fy0 / 2, cy1 = (fy1 - 1) / 2 + 1;
  Box* boxes = plan.boxes;
  int& n = plan.num_boxes;
  detail::PackedLayout layout{};
  if (detail::packed_layout(frame.format, &layout)) {
    a.kind = kPacked;
    a.bpp = layout.bytes_per_pixel;
    a.r = layout.r;
    a.g = layout.g;
    a.b = layout.b;
    boxes[n++] = {fx0 * a.bpp, fx1 * a.bpp, fy0, fy1, 0};
  } else if (frame.format == PixelFormat::GRAY8) {
    a.kind = kGray;
    boxes[n++] = {fx0, fx1, fy0, fy1, 0};
  } else if (frame.format == PixelFormat::I420) {
    a.kind = kI420;
    boxes[n++] = {fx0, fx1, fy0, fy1, 0};
    boxes[n++] = {cx0, cx1, cy0, cy1, 0};
    boxes[n++] = {cx0, cx1, cy0, cy1, 0};
  } else if (frame.format == PixelFormat::NV12) {
    a.kind = kNV12;
    boxes[n++] = {fx0, fx1, fy0, fy1, 0};
    boxes[n++] = {2 * cx0, 2 * cx1, cy0, cy1, 0};
  } else {
    throw Error("CUDA preprocessing: unsupported pixel format " + detail::format_name(frame.format));
  }

  // Staging layout: normalize table, YUV tables, weights, then the boxes.
  const auto place = [&plan](size_t bytes) {
    const size_t at = plan.size;
    plan.size = align16(plan.size + bytes);
    return at;
  };
  plan.table_at = place(sizeof(float) * 3 * 256);
  plan.yuv_at = place(sizeof(int32_t) * 5 * 256);
  plan.first_at = place(sizeof(int) * w.first.size());
  plan.count_at = place(sizeof(int) * w.count.size());
  plan.coeffs_at = place(sizeof(int32_t) * w.coeffs.size());
  for (int i = 0; i < n; ++i) {
    boxes[i].offset = place(static_cast<size_t>(boxes[i].x1 - boxes[i].x0) * (boxes[i].y1 - boxes[i].y0));
    a.pitch[i] = boxes[i].x1 - boxes[i].x0;
    a.box_x0[i] = boxes[i].x0;
    a.box_y0[i] = boxes[i].y0;
  }
  return plan;
}

void fill_staging(const Plan& plan, const FrameView& frame, const Normalization& norm, uint8_t* staging) {
  const detail::NormalizeTable table(norm);
  std::memcpy(staging + plan.table_at, table.value, sizeof(table.value));
  detail::YuvToRgb(frame.matrix, frame.full_range).copy_tables(reinterpret_cast<int32_t*>(staging + plan.yuv_at));
  const detail::Weights& w = plan.weights;
  std::memcpy(staging + plan.first_at, w.first.data(), sizeof(int) * w.first.size());
  std::memcpy(staging + plan.count_at, w.count.data(), sizeof(int) * w.count.size());
  std::memcpy(staging + plan.coeffs_at, w.coeffs.data(), sizeof(int32_t) * w.coeffs.size());
  for (int i = 0; i < plan.num_boxes; ++i) {
    const Box& b = plan.boxes[i];
    const size_t pitch = static_cast<size_t>(b.x1 - b.x0);
    for (int y = b.y0; y < b.y1; ++y)
      std::memcpy(staging + b.offset + (y - b.y0) * pitch,
                  frame.planes[i] + static_cast<ptrdiff_t>(y) * frame.strides[i] + b.x0, pitch);
  }
}

KernelArgs bind(const Plan& plan, const uint8_t* base) {
  KernelArgs a = plan.args;
  for (int i = 0; i < plan.num_boxes; ++i) a.plane[i] = base + plan.boxes[i].offset;
  a.yuv = reinterpret_cast<const int32_t*>(base + plan.yuv_at);
  a.first = reinterpret_cast<const int*>(base + plan.first_at);
  a.count = reinterpret_cast<const int*>(base + plan.count_at);
  a.coeffs = reinterpret_cast<const int32_t*>(base + plan.coeffs_at);
  a.table = reinterpret_cast<const float*>(base + plan.table_at);
  return a;
}

}  // namespace cuda_detail
}  // namespace ruclip
