// The host side of a CUDA preprocessing run (see preprocess_plan.h): plain
// C++, built by the C++ compiler; no CUDA runtime needed.
#include "image/cuda/preprocess_plan.h"

#include <cstring>
#include <string>

#include "ruclip/error.h"

namespace ruclip {
namespace cuda_detail {
namespace {

size_t align16(size_t n) { return (n + 15) & ~size_t{15}; }

}  // namespace

Plan make_plan(const FrameView& frame, const Normalization& norm) {
  detail::validate(frame, norm);
  Plan plan;
  KernelArgs& a = plan.args;
  a.res = norm.resolution;
  // Either ResizeMode: the frame rectangle read and both passes' weights
  // (identities for a pass Pillow skips, so the same two kernels serve).
  plan.resample = detail::resample_plan(frame, norm);
  const detail::ResamplePlan& rp = plan.resample;
  a.x0 = rp.x0;
  a.y0 = rp.y0;
  a.h_ksize = rp.horizontal.ksize;
  a.v_ksize = rp.vertical().ksize;
  // The source rows the vertical pass reads: the horizontal pass does only these.
  a.rows = rp.height;

  // Frame pixels the passes read, and the matching byte boxes of each plane
  // (4:2:0 chroma: the samples x / 2, y / 2 of those pixels).
  const int fx0 = rp.x0, fx1 = rp.x0 + rp.width;
  const int fy0 = rp.y0, fy1 = rp.y0 + rp.height;
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
  plan.h_first_at = place(sizeof(int) * rp.horizontal.first.size());
  plan.h_count_at = place(sizeof(int) * rp.horizontal.count.size());
  plan.h_coeffs_at = place(sizeof(int32_t) * rp.horizontal.coeffs.size());
  plan.v_first_at = place(sizeof(int) * rp.vertical().first.size());
  plan.v_count_at = place(sizeof(int) * rp.vertical().count.size());
  plan.v_coeffs_at = place(sizeof(int32_t) * rp.vertical().coeffs.size());
  for (int i = 0; i < n; ++i) {
    boxes[i].offset = place(static_cast<size_t>(boxes[i].x1 - boxes[i].x0) * (boxes[i].y1 - boxes[i].y0));
    a.pitch[i] = boxes[i].x1 - boxes[i].x0;
    a.box_x0[i] = boxes[i].x0;
    a.box_y0[i] = boxes[i].y0;
  }
  return plan;
}

void fill_staging(const Plan& plan, const FrameView& frame, const Normalization& norm, uint8_t* staging) {
  fill_tables(plan, frame, norm, staging);
  copy_boxes(plan, frame, staging);
}

size_t tables_size(const Plan& plan) { return plan.num_boxes > 0 ? plan.boxes[0].offset : plan.size; }

const uint8_t* box_source(const Plan& plan, const FrameView& frame, int i) {
  return frame.planes[i] + static_cast<ptrdiff_t>(plan.boxes[i].y0) * frame.strides[i] + plan.boxes[i].x0;
}

void copy_boxes(const Plan& plan, const FrameView& frame, uint8_t* staging) {
  for (int i = 0; i < plan.num_boxes; ++i) {
    const Box& b = plan.boxes[i];
    const size_t pitch = static_cast<size_t>(b.x1 - b.x0);
    const uint8_t* source = box_source(plan, frame, i);
    for (int y = 0; y < b.y1 - b.y0; ++y)
      std::memcpy(staging + b.offset + y * pitch, source + static_cast<ptrdiff_t>(y) * frame.strides[i], pitch);
  }
}

void fill_tables(const Plan& plan, const FrameView& frame, const Normalization& norm, uint8_t* staging) {
  const detail::NormalizeTable table(norm);
  std::memcpy(staging + plan.table_at, table.value, sizeof(table.value));
  detail::YuvToRgb(frame.matrix, frame.full_range).copy_tables(reinterpret_cast<int32_t*>(staging + plan.yuv_at));
  const auto put = [staging](size_t at, const auto& values) {
    std::memcpy(staging + at, values.data(), sizeof(values[0]) * values.size());
  };
  const detail::ResamplePlan& rp = plan.resample;
  put(plan.h_first_at, rp.horizontal.first);
  put(plan.h_count_at, rp.horizontal.count);
  put(plan.h_coeffs_at, rp.horizontal.coeffs);
  put(plan.v_first_at, rp.vertical().first);
  put(plan.v_count_at, rp.vertical().count);
  put(plan.v_coeffs_at, rp.vertical().coeffs);
}

KernelArgs bind(const Plan& plan, const uint8_t* base) {
  KernelArgs a = plan.args;
  for (int i = 0; i < plan.num_boxes; ++i) a.plane[i] = base + plan.boxes[i].offset;
  a.yuv = reinterpret_cast<const int32_t*>(base + plan.yuv_at);
  a.h_first = reinterpret_cast<const int*>(base + plan.h_first_at);
  a.h_count = reinterpret_cast<const int*>(base + plan.h_count_at);
  a.h_coeffs = reinterpret_cast<const int32_t*>(base + plan.h_coeffs_at);
  a.v_first = reinterpret_cast<const int*>(base + plan.v_first_at);
  a.v_count = reinterpret_cast<const int*>(base + plan.v_count_at);
  a.v_coeffs = reinterpret_cast<const int32_t*>(base + plan.v_coeffs_at);
  a.table = reinterpret_cast<const float*>(base + plan.table_at);
  return a;
}

}  // namespace cuda_detail
}  // namespace ruclip
