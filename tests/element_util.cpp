#include "element_util.h"

#include <algorithm>
#include <cmath>

#include "ruclipmeta.h"

namespace element_test {

namespace {
std::vector<double> doubles(const GstStructure* s, const char* field) {
  std::vector<double> out;
  const GValue* v = gst_structure_get_value(s, field);
  if (!v) return out;
  for (guint i = 0; i < gst_value_array_get_size(v); ++i)
    out.push_back(g_value_get_double(gst_value_array_get_value(v, i)));
  return out;
}
uint8_t clamp8(double v) { return static_cast<uint8_t>(std::clamp(std::lround(v), 0L, 255L)); }
}  // namespace

LabelResult read_structure(const GstStructure* s) {
  LabelResult r;
  for (guint i = 0; i < ruclip_result_n_labels(s); ++i) r.labels.push_back(ruclip_result_label(s, i));
  r.scores = doubles(s, "scores");
  r.cosines = doubles(s, "cosines");
  r.embedding = doubles(s, "embedding");
  r.smoothed = doubles(s, "smoothed-scores");
  gst_structure_get_uint64(s, "frame", &r.frame);
  r.source_pts = ruclip_result_source_pts(s);
  r.fresh = ruclip_result_is_fresh(s);
  if (const char* m = gst_structure_get_string(s, "model")) r.model = m;
  return r;
}

bool read_meta(GstBuffer* buffer, LabelResult* out) {
  const GstStructure* s = ruclip_buffer_get_result(buffer);
  if (!s) return false;
  *out = read_structure(s);
  return true;
}

Rgb to_rgb(const ruclip::Image& image) {
  Rgb rgb;
  rgb.width = image.width;
  rgb.height = image.height;
  rgb.pixels.resize(size_t(image.width) * image.height * 3);
  const int channels = image.format == ruclip::PixelFormat::GRAY8 ? 1 : image.format == ruclip::PixelFormat::RGBA ? 4 : 3;
  for (size_t i = 0; i < size_t(image.width) * image.height; ++i)
    for (int c = 0; c < 3; ++c) rgb.pixels[i * 3 + c] = image.pixels[i * channels + (channels == 1 ? 0 : c)];
  return rgb;
}

Rgb to_gray_rgb(const Rgb& rgb) {
  Rgb gray = rgb;
  for (size_t i = 0; i < gray.pixels.size(); i += 3) {
    // Pillow: L = (R*19595 + G*38470 + B*7471 + 0x8000) >> 16
    const uint8_t l = static_cast<uint8_t>(
        (rgb.pixels[i] * 19595 + rgb.pixels[i + 1] * 38470 + rgb.pixels[i + 2] * 7471 + 0x8000) >> 16);
    gray.pixels[i] = gray.pixels[i + 1] = gray.pixels[i + 2] = l;
  }
  return gray;
}

GstBuffer* make_buffer(const Rgb& rgb, GstVideoFormat format, std::string* caps) {
  GstVideoInfo info;
  gst_video_info_set_format(&info, format, rgb.width, rgb.height);
  if (GST_VIDEO_FORMAT_INFO_IS_YUV(info.finfo)) {
    info.colorimetry.matrix = GST_VIDEO_COLOR_MATRIX_BT601;
    info.colorimetry.range = GST_VIDEO_COLOR_RANGE_16_235;
  }
  GstCaps* c = gst_video_info_to_caps(&info);
  gst_caps_set_simple(c, "framerate", GST_TYPE_FRACTION, 30, 1, NULL);
  gchar* str = gst_caps_to_string(c);
  *caps = str;
  g_free(str);
  gst_caps_unref(c);

  GstBuffer* buffer = gst_buffer_new_allocate(nullptr, GST_VIDEO_INFO_SIZE(&info), nullptr);
  GstVideoFrame frame;
  gst_video_frame_map(&frame, &info, buffer, GST_MAP_WRITE);
  const int w = rgb.width, h = rgb.height;
  auto Y = [](int r, int g, int b) { return clamp8(16 + 0.256788 * r + 0.504129 * g + 0.097906 * b); };
  auto U = [](double r, double g, double b) { return clamp8(128 - 0.148223 * r - 0.290993 * g + 0.439216 * b); };
  auto V = [](double r, double g, double b) { return clamp8(128 + 0.439216 * r - 0.367788 * g - 0.071427 * b); };

  if (format == GST_VIDEO_FORMAT_I420 || format == GST_VIDEO_FORMAT_NV12) {
    auto* y_plane = static_cast<uint8_t*>(GST_VIDEO_FRAME_PLANE_DATA(&frame, 0));
    const int y_stride = GST_VIDEO_FRAME_PLANE_STRIDE(&frame, 0);
    for (int y = 0; y < h; ++y)
      for (int x = 0; x < w; ++x) y_plane[y * y_stride + x] = Y(rgb.at(x, y, 0), rgb.at(x, y, 1), rgb.at(x, y, 2));
    // Chroma from the average of each 2x2 block (what a camera or encoder gives).
    for (int cy = 0; cy < (h + 1) / 2; ++cy)
      for (int cx = 0; cx < (w + 1) / 2; ++cx) {
        double r = 0, g = 0, b = 0;
        int n = 0;
        for (int dy = 0; dy < 2; ++dy)
          for (int dx = 0; dx < 2; ++dx) {
            const int x = std::min(2 * cx + dx, w - 1), y = std::min(2 * cy + dy, h - 1);
            r += rgb.at(x, y, 0), g += rgb.at(x, y, 1), b += rgb.at(x, y, 2), ++n;
          }
        r /= n, g /= n, b /= n;
        if (format == GST_VIDEO_FORMAT_I420) {
          static_cast<uint8_t*>(GST_VIDEO_FRAME_PLANE_DATA(&frame, 1))[cy * GST_VIDEO_FRAME_PLANE_STRIDE(&frame, 1) + cx] = U(r, g, b);
          static_cast<uint8_t*>(GST_VIDEO_FRAME_PLANE_DATA(&frame, 2))[cy * GST_VIDEO_FRAME_PLANE_STRIDE(&frame, 2) + cx] = V(r, g, b);
        } else {
          uint8_t* uv = static_cast<uint8_t*>(GST_VIDEO_FRAME_PLANE_DATA(&frame, 1)) + cy * GST_VIDEO_FRAME_PLANE_STRIDE(&frame, 1);
          uv[2 * cx] = U(r, g, b);
          uv[2 * cx + 1] = V(r, g, b);
        }
      }
  } else {
    auto* data = static_cast<uint8_t*>(GST_VIDEO_FRAME_PLANE_DATA(&frame, 0));
    const int stride = GST_VIDEO_FRAME_PLANE_STRIDE(&frame, 0);
    const int pixel_stride = GST_VIDEO_FRAME_COMP_PSTRIDE(&frame, 0);
    for (int y = 0; y < h; ++y)
      for (int x = 0; x < w; ++x) {
        uint8_t* p = data + y * stride + x * pixel_stride;
        if (format == GST_VIDEO_FORMAT_GRAY8) {
          p[0] = rgb.at(x, y, 0);  // callers pass a gray image
          continue;
        }
        std::fill(p, p + pixel_stride, 0x7f);  // x / alpha bytes: anything
        p[GST_VIDEO_FORMAT_INFO_POFFSET(frame.info.finfo, 0)] = rgb.at(x, y, 0);
        p[GST_VIDEO_FORMAT_INFO_POFFSET(frame.info.finfo, 1)] = rgb.at(x, y, 1);
        p[GST_VIDEO_FORMAT_INFO_POFFSET(frame.info.finfo, 2)] = rgb.at(x, y, 2);
      }
  }
  gst_video_frame_unmap(&frame);
  return buffer;
}

}  // namespace element_test
