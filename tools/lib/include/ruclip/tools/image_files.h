// Pictures from files (OpenCV), for the CLI, evaluation, training and tests;
// video frames reach the model as FrameView (ruclip/image.h) without it.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "ruclip/image.h"

namespace ruclip {

// An 8-bit image decoded from a file, tightly packed.
struct Image {
  PixelFormat format = PixelFormat::RGB;  // RGB, RGBA or GRAY8
  int width = 0;
  int height = 0;
  std::vector<uint8_t> pixels;
  FrameView view() const;
};

// Decodes PNG, JPEG, ... (OpenCV). Throws ruclip::Error naming the file.
Image load_image(const std::string& path);
// The same from a file's bytes (an upload); `what` names it in errors.
Image decode_image(const std::vector<uint8_t>& bytes, const std::string& what);

}  // namespace ruclip
