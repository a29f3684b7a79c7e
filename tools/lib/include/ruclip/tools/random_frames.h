// Video frames of random bytes in a YUV layout, for the GPU check and its
// benchmark: every value and chroma pair differs, so a wrong plane, stride or
// sample shows. Header-only (no library to link).
#pragma once
#include <cstdint>
#include <random>
#include <vector>

#include "ruclip/image.h"

namespace ruclip {

struct OwnedFrame {
  std::vector<uint8_t> bytes;
  FrameView view;  // points into bytes: keep the OwnedFrame where it is while the view is used
};

// NV12 or I420, `width` x `height` (both even), tightly packed planes.
inline OwnedFrame random_yuv_frame(PixelFormat format, int width, int height, uint32_t seed) {
  OwnedFrame f;
  f.bytes.resize(static_cast<size_t>(width) * height * 3 / 2);
  std::mt19937 rng(seed);
  for (auto& b : f.bytes) b = static_cast<uint8_t>(rng());
  f.view.format = format;
  f.view.width = width;
  f.view.height = height;
  f.view.planes[0] = f.bytes.data();
  f.view.strides[0] = width;
  f.view.planes[1] = f.bytes.data() + static_cast<size_t>(width) * height;
  f.view.strides[1] = format == PixelFormat::NV12 ? width : width / 2;
  if (format == PixelFormat::I420) {
    f.view.planes[2] = f.view.planes[1] + static_cast<size_t>(width / 2) * (height / 2);
    f.view.strides[2] = width / 2;
  }
  return f;
}

}  // namespace ruclip
