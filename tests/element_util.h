// Helpers for the ruclipfilter tests: making raw video buffers of every
// supported format from a decoded image, and reading RuClipMeta back.
#pragma once
#include <gst/gst.h>
#include <gst/video/video.h>

#include <string>
#include <vector>

#include "ruclip/tools/image_files.h"

namespace element_test {

struct LabelResult {
  std::vector<std::string> labels;
  std::vector<double> scores;
  std::vector<double> cosines;
  guint64 frame = 0;
  guint64 source_pts = GST_CLOCK_TIME_NONE;
  bool fresh = false;
  std::string model;
  std::vector<double> embedding;
  std::vector<double> smoothed;  // "smoothed-scores" (smoothing or segments on)
};

// The RuClipMeta on `buffer`; false when there is none.
bool read_meta(GstBuffer* buffer, LabelResult* out);
// The same fields from a structure (meta or bus message).
LabelResult read_structure(const GstStructure* s);

// An 8-bit RGB image (3 bytes/pixel, tightly packed).
struct Rgb {
  int width = 0, height = 0;
  std::vector<uint8_t> pixels;
  uint8_t at(int x, int y, int c) const { return pixels[(size_t(y) * width + x) * 3 + c]; }
};
Rgb to_rgb(const ruclip::Image& image);

// A buffer holding `rgb` in `format` (BT.601 limited range for YUV), laid out
// as GstVideoInfo says for these caps; its caps string goes to `caps`.
GstBuffer* make_buffer(const Rgb& rgb, GstVideoFormat format, std::string* caps);

// The gray value Pillow's convert('L') gives (ITU-R 601-2 luma, integer).
Rgb to_gray_rgb(const Rgb& rgb);

}  // namespace element_test
