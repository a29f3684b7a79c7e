// preprocess() and load_image(): parity with upstream's Pillow/torchvision
// pipeline, equivalence of every pixel format, YUV conversion, edge cases and
// errors.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <random>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "ruclip/cpu.h"
#include "ruclip/error.h"
#include "ruclip/tools/image_files.h"
#include "test_util.h"
#include "image/preprocess_internal.h"  // the code paths

using ruclip::FrameView;
using ruclip::Image;
using ruclip::Normalization;
using ruclip::PixelFormat;
using ruclip::YuvMatrix;

namespace {

// The tiny model's processor settings (config.json): resolution 32, CLIP's mean/std.
Normalization tiny_norm() {
  const auto config = nlohmann::json::parse(ruclip_test::read_file(ruclip_test::tiny_model_dir() + "/config.json"));
  Normalization n;
  n.resolution = config.at("image_resolution").get<int>();
  for (int c = 0; c < 3; ++c) {
    n.mean[c] = config.at("mean").at(c).get<float>();
    n.std[c] = config.at("std").at(c).get<float>();
  }
  return n;
}

Normalization with_resolution(int res) {
  Normalization n = tiny_norm();
  n.resolution = res;
  return n;
}

std::vector<float> run(const FrameView& frame, const Normalization& norm) {
  std::vector<float> out(3 * static_cast<size_t>(norm.resolution) * norm.resolution, NAN);
  ruclip::preprocess(frame, norm, out.data());
  return out;
}

// The normalized float back to the 8-bit level it came from. Levels are
// 1 / 255 / std ~ 0.015 apart, so rounding recovers them unambiguously.
int to_level(float v, int c, const Normalization& n) {
  return static_cast<int>(std::lround((v * n.std[c] + n.mean[c]) * 255.0f));
}

// Values of 3 x R x R planes (R = n.resolution) whose 8-bit levels differ.
int count_level_mismatches(const std::vector<float>& got, const std::vector<float>& want, const Normalization& n) {
  const size_t plane = static_cast<size_t>(n.resolution) * n.resolution;
  int mismatches = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const int c = static_cast<int>(i / plane);
    mismatches += to_level(got[i], c, n) != to_level(want[i], c, n);
  }
  return mismatches;
}

// What preprocess must output for 8-bit level v in channel c (torchvision's float32 math).
float normalized(int v, int c, const Normalization& n) {
  return (static_cast<float>(v) / 255.0f - n.mean[c]) / n.std[c];
}

Image load_fixture(const std::string& file) { return ruclip::load_image(ruclip_test::tiny_model_dir() + "/" + file); }

// Pillow's convert('RGB') done by hand, for building frames in other formats.
Image to_rgb(const Image& img) {
  Image rgb;
  rgb.format = PixelFormat::RGB;
  rgb.width = img.width;
  rgb.height = img.height;
  const size_t n = static_cast<size_t>(img.width) * img.height;
  rgb.pixels.resize(n * 3);
  for (size_t i = 0; i < n; ++i)
    for (int c = 0; c < 3; ++c) {
      switch (img.format) {
        case PixelFormat::GRAY8: rgb.pixels[i * 3 + c] = img.pixels[i]; break;
        case PixelFormat::RGBA: rgb.pixels[i * 3 + c] = img.pixels[i * 4 + c]; break;
        default: rgb.pixels[i * 3 + c] = img.pixels[i * 3 + c]; break;
      }
    }
  return rgb;
}

Image make_rgb(int w, int h, uint32_t seed) {
  Image img;
  img.width = w;
  img.height = h;
  img.pixels.resize(static_cast<size_t>(w) * h * 3);
  std::mt19937 rng(seed);
  for (auto& p : img.pixels) p = static_cast<uint8_t>(rng() & 0xff);
  return img;
}

// A smooth picture (gradients and low-frequency waves), the kind of content
// where 4:2:0 chroma subsampling loses little.
Image smooth_rgb(int w, int h) {
  Image img;
  img.width = w;
  img.height = h;
  img.pixels.resize(static_cast<size_t>(w) * h * 3);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      // Fixed scale in pixels (not relative to the size) so small pictures
      // are as smooth per pixel as large ones.
      const double u = x / 400.0, v = y / 400.0;
      const double rgb[3] = {128 + 100 * std::sin(3.0 * u + 1.0), 128 + 90 * std::sin(6.0 * v + 2.0 * u),
                             128 + 100 * std::cos(2.0 * u - 3.0 * v)};
      for (int c = 0; c < 3; ++c)
        img.pixels[(static_cast<size_t>(y) * w + x) * 3 + c] = static_cast<uint8_t>(std::lround(rgb[c]));
    }
  return img;
}

// A frame that owns its planes, padded rows filled with a marker that would
// show up if read.
struct OwnedFrame {
  std::vector<uint8_t> planes[3];
  FrameView view;
};

constexpr uint8_t kPadding = 0xEE;

// Packs an RGB image into any packed format with `pad` bytes after each row.
// Alpha / x bytes get varying junk: the output must not depend on them.
OwnedFrame make_packed(const Image& rgb, PixelFormat format, int pad) {
  int bpp = 4, r = 0, g = 1, b = 2, extra = 3;
  switch (format) {
    case PixelFormat::RGB: bpp = 3; extra = -1; break;
    case PixelFormat::BGR: bpp = 3; r = 2; b = 0; extra = -1; break;
    case PixelFormat::RGBA:
    case PixelFormat::RGBx: break;
    case PixelFormat::BGRA:
    case PixelFormat::BGRx: r = 2; b = 0; break;
    case PixelFormat::xRGB: r = 1; g = 2; b = 3; extra = 0; break;
    case PixelFormat::xBGR: r = 3; g = 2; b = 1; extra = 0; break;
    default: ADD_FAILURE() << "not a packed format"; break;
  }
  OwnedFrame f;
  const int stride = rgb.width * bpp + pad;
  f.planes[0].assign(static_cast<size_t>(stride) * rgb.height, kPadding);
  for (int y = 0; y < rgb.height; ++y)
    for (int x = 0; x < rgb.width; ++x) {
      const uint8_t* s = &rgb.pixels[(static_cast<size_t>(y) * rgb.width + x) * 3];
      uint8_t* d = &f.planes[0][static_cast<size_t>(y) * stride + static_cast<size_t>(x) * bpp];
      d[r] = s[0];
      d[g] = s[1];
      d[b] = s[2];
      if (extra >= 0) d[extra] = static_cast<uint8_t>(x * 37 + y * 11);
    }
  f.view.format = format;
  f.view.width = rgb.width;
  f.view.height = rgb.height;
  f.view.planes[0] = f.planes[0].data();
  f.view.strides[0] = stride;
  return f;
}

// Builds I420 or NV12 with the forward BT.601 limited-range formula; chroma is
// the average of each 2x2 block (of the pixels that exist at odd edges).
OwnedFrame make_yuv_bt601_limited(const Image& rgb, PixelFormat format, int pad) {
  const int w = rgb.width, h = rgb.height, cw = (w + 1) / 2, ch = (h + 1) / 2;
  OwnedFrame f;
  f.view.format = format;
  f.view.width = w;
  f.view.height = h;
  f.view.matrix = YuvMatrix::BT601;
  f.view.full_range = false;
  const int y_stride = w + pad;
  f.planes[0].assign(static_cast<size_t>(y_stride) * h, kPadding);
  auto px = [&](int x, int y, int c) { return double(rgb.pixels[(static_cast<size_t>(y) * w + x) * 3 + c]); };
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      const double luma = 0.299 * px(x, y, 0) + 0.587 * px(x, y, 1) + 0.114 * px(x, y, 2);
      f.planes[0][static_cast<size_t>(y) * y_stride + x] = static_cast<uint8_t>(std::lround(16 + luma * 219 / 255));
    }
  std::vector<uint8_t> u(static_cast<size_t>(cw) * ch), v(u.size());
  for (int cy = 0; cy < ch; ++cy)
    for (int cx = 0; cx < cw; ++cx) {
      double su = 0, sv = 0;
      int n = 0;
      for (int y = 2 * cy; y < std::min(2 * cy + 2, h); ++y)
        for (int x = 2 * cx; x < std::min(2 * cx + 2, w); ++x) {
          const double luma = 0.299 * px(x, y, 0) + 0.587 * px(x, y, 1) + 0.114 * px(x, y, 2);
          su += (px(x, y, 2) - luma) / 1.772;
          sv += (px(x, y, 0) - luma) / 1.402;
          ++n;
        }
      u[static_cast<size_t>(cy) * cw + cx] = static_cast<uint8_t>(std::clamp(std::lround(128 + su / n * 224 / 255), 0L, 255L));
      v[static_cast<size_t>(cy) * cw + cx] = static_cast<uint8_t>(std::clamp(std::lround(128 + sv / n * 224 / 255), 0L, 255L));
    }
  if (format == PixelFormat::I420) {
    const int c_stride = cw + pad;
    for (int p = 1; p <= 2; ++p) {
      f.planes[p].assign(static_cast<size_t>(c_stride) * ch, kPadding);
      const auto& src = p == 1 ? u : v;
      for (int cy = 0; cy < ch; ++cy)
        std::copy_n(&src[static_cast<size_t>(cy) * cw], cw, &f.planes[p][static_cast<size_t>(cy) * c_stride]);
      f.view.strides[p] = c_stride;
    }
  } else {
    const int c_stride = 2 * cw + pad;
    f.planes[1].assign(static_cast<size_t>(c_stride) * ch, kPadding);
    for (int cy = 0; cy < ch; ++cy)
      for (int cx = 0; cx < cw; ++cx) {
        f.planes[1][static_cast<size_t>(cy) * c_stride + 2 * cx] = u[static_cast<size_t>(cy) * cw + cx];
        f.planes[1][static_cast<size_t>(cy) * c_stride + 2 * cx + 1] = v[static_cast<size_t>(cy) * cw + cx];
      }
    f.view.strides[1] = c_stride;
  }
  f.view.strides[0] = y_stride;
  for (int p = 0; p < 3; ++p) f.view.planes[p] = f.planes[p].empty() ? nullptr : f.planes[p].data();
  return f;
}

// Planes filled by a callback: (plane, x, y) -> byte, for hand-made YUV frames.
template <typename Fn>
OwnedFrame make_yuv(PixelFormat format, int w, int h, int pad, YuvMatrix matrix, bool full_range, Fn sample) {
  const int cw = (w + 1) / 2, ch = (h + 1) / 2;
  OwnedFrame f;
  f.view.format = format;
  f.view.width = w;
  f.view.height = h;
  f.view.matrix = matrix;
  f.view.full_range = full_range;
  f.view.strides[0] = w + pad;
  f.planes[0].assign(static_cast<size_t>(f.view.strides[0]) * h, kPadding);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) f.planes[0][static_cast<size_t>(y) * f.view.strides[0] + x] = sample(0, x, y);
  if (format == PixelFormat::I420) {
    for (int p = 1; p <= 2; ++p) {
      f.view.strides[p] = cw + pad;
      f.planes[p].assign(static_cast<size_t>(f.view.strides[p]) * ch, kPadding);
      for (int y = 0; y < ch; ++y)
        for (int x = 0; x < cw; ++x) f.planes[p][static_cast<size_t>(y) * f.view.strides[p] + x] = sample(p, x, y);
    }
  } else {
    f.view.strides[1] = 2 * cw + pad;
    f.planes[1].assign(static_cast<size_t>(f.view.strides[1]) * ch, kPadding);
    for (int y = 0; y < ch; ++y)
      for (int x = 0; x < cw; ++x)
        for (int p = 1; p <= 2; ++p)
          f.planes[1][static_cast<size_t>(y) * f.view.strides[1] + 2 * x + (p - 1)] = sample(p, x, y);
  }
  for (int p = 0; p < 3; ++p) f.view.planes[p] = f.planes[p].empty() ? nullptr : f.planes[p].data();
  return f;
}

// Independent double-precision YUV -> RGB (the standard inverse matrices), for
// checking preprocess's fixed-point tables.
std::array<int, 3> reference_rgb(int y, int u, int v, YuvMatrix matrix, bool full_range) {
  const double kr = matrix == YuvMatrix::BT709 ? 0.2126 : 0.299;
  const double kb = matrix == YuvMatrix::BT709 ? 0.0722 : 0.114;
  const double kg = 1 - kr - kb;
  const double yn = full_range ? y / 255.0 : (y - 16) / 219.0;
  const double pb = full_range ? (u - 128) / 255.0 : (u - 128) / 224.0;
  const double pr = full_range ? (v - 128) / 255.0 : (v - 128) / 224.0;
  const double rgb[3] = {yn + 2 * (1 - kr) * pr, yn - 2 * kb * (1 - kb) / kg * pb - 2 * kr * (1 - kr) / kg * pr,
                         yn + 2 * (1 - kb) * pb};
  std::array<int, 3> out{};
  for (int c = 0; c < 3; ++c) out[c] = static_cast<int>(std::clamp(std::lround(rgb[c] * 255), 0L, 255L));
  return out;
}

struct Diff {
  float max_abs = 0;
  double mean_abs = 0;
};

Diff diff(const std::vector<float>& a, const std::vector<float>& b) {
  Diff d;
  EXPECT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) {
    const float e = std::fabs(a[i] - b[i]);
    d.max_abs = std::max(d.max_abs, e);
    d.mean_abs += e;
  }
  d.mean_abs /= std::max<size_t>(a.size(), 1);
  return d;
}

std::string message_of(const FrameView& frame, const Normalization& norm = Normalization{}) {
  std::vector<float> out(3 * static_cast<size_t>(std::max(norm.resolution, 1)) * std::max(norm.resolution, 1));
  try {
    ruclip::preprocess(frame, norm, out.data());
  } catch (const ruclip::Error& e) {
    return e.what();
  }
  return "(no error)";
}

const PixelFormat kPacked[] = {PixelFormat::RGB,  PixelFormat::BGR,  PixelFormat::RGBA, PixelFormat::BGRA,
                               PixelFormat::RGBx, PixelFormat::BGRx, PixelFormat::xRGB, PixelFormat::xBGR};

}  // namespace

// 1. The fixture's pixel_values come from upstream's Python processor (Pillow
// 9.4 + torchvision). An exact Pillow-equivalent resampler reproduces every
// 8-bit level, leaving only float rounding differences.
TEST(Preprocess, MatchesUpstreamPixelValues) {
  const Normalization norm = tiny_norm();
  ASSERT_EQ(norm.resolution, 32);
  const auto& images = ruclip_test::expected().at("images");
  ASSERT_EQ(images.size(), 5u);
  for (const auto& entry : images) {
    const std::string file = entry.at("file").get<std::string>();
    const auto want = entry.at("pixel_values").get<std::vector<float>>();
    ASSERT_EQ(want.size(), 3u * 32 * 32) << file;
    const Image img = load_fixture(file);
    const auto got = run(img.view(), norm);
    const Diff d = diff(got, want);
    const int level_mismatches = count_level_mismatches(got, want, norm);
    std::printf("[ parity ] %-28s max abs %.3g  mean abs %.3g  8-bit level mismatches %d / %zu\n", file.c_str(),
                d.max_abs, d.mean_abs, level_mismatches, got.size());
    EXPECT_LE(d.max_abs, 0.03f) << file;
    EXPECT_LE(d.mean_abs, 0.005) << file;
    // Stronger than the brief's bound: the resampler is meant to be exact.
    EXPECT_EQ(level_mismatches, 0) << file;
    EXPECT_LE(d.max_abs, 1e-5f) << file;
  }
}

TEST(LoadImage, DecodesFixturesInTheirModes) {
  struct Case {
    const char* file;
    PixelFormat format;
    int w, h;
  };
  const Case cases[] = {{"images/img0_32x32_RGB.png", PixelFormat::RGB, 32, 32},
                        {"images/img1_64x48_RGB.png", PixelFormat::RGB, 64, 48},
                        {"images/img2_45x90_RGB.png", PixelFormat::RGB, 45, 90},
                        {"images/img3_33x33_L.png", PixelFormat::GRAY8, 33, 33},
                        {"images/img4_50x40_RGBA.png", PixelFormat::RGBA, 50, 40}};
  for (const auto& c : cases) {
    const Image img = load_fixture(c.file);
    EXPECT_EQ(img.format, c.format) << c.file;
    EXPECT_EQ(img.width, c.w) << c.file;
    EXPECT_EQ(img.height, c.h) << c.file;
    const size_t bpp = c.format == PixelFormat::GRAY8 ? 1 : c.format == PixelFormat::RGBA ? 4 : 3;
    EXPECT_EQ(img.pixels.size(), bpp * c.w * c.h) << c.file;
    const FrameView v = img.view();
    EXPECT_EQ(v.strides[0], static_cast<int>(bpp) * c.w);
    EXPECT_EQ(v.planes[0], img.pixels.data());
  }
}

// Channel order: OpenCV decodes BGR; we must hand out RGB. A PPM stores RGB
// plainly, so the first pixel's bytes are known.
TEST(LoadImage, ChannelOrderAnd16BitAndGrayAlpha) {
  const std::string dir = ruclip_test::make_temp_dir();
  ruclip_test::write_file(dir + "/rgb.ppm", std::string("P6\n2 1\n255\n") + "\x0a\x14\x1e\x28\x32\x3c");
  Image rgb = ruclip::load_image(dir + "/rgb.ppm");
  ASSERT_EQ(rgb.format, PixelFormat::RGB);
  EXPECT_EQ(rgb.pixels, (std::vector<uint8_t>{10, 20, 30, 40, 50, 60}));

  // 16-bit samples (big-endian in PPM) keep their high byte.
  ruclip_test::write_file(dir + "/rgb16.ppm", std::string("P6\n1 1\n65535\n") + std::string("\x12\x34\xab\xcd\xff\xff", 6));
  Image rgb16 = ruclip::load_image(dir + "/rgb16.ppm");
  ASSERT_EQ(rgb16.format, PixelFormat::RGB);
  EXPECT_EQ(rgb16.pixels, (std::vector<uint8_t>{0x12, 0xab, 0xff}));

  ruclip_test::write_file(dir + "/gray16.pgm", std::string("P5\n2 1\n65535\n") + std::string("\x80\x01\x00\xff", 4));
  Image gray16 = ruclip::load_image(dir + "/gray16.pgm");
  ASSERT_EQ(gray16.format, PixelFormat::GRAY8);
  EXPECT_EQ(gray16.pixels, (std::vector<uint8_t>{0x80, 0x00}));

  // Gray + alpha (PAM): the alpha is dropped.
  ruclip_test::write_file(dir + "/la.pam", std::string("P7\nWIDTH 2\nHEIGHT 1\nDEPTH 2\nMAXVAL 255\n"
                                                       "TUPLTYPE GRAYSCALE_ALPHA\nENDHDR\n") +
                                               std::string("\x07\x00\x09\xff", 4));
  Image la = ruclip::load_image(dir + "/la.pam");
  ASSERT_EQ(la.format, PixelFormat::GRAY8);
  EXPECT_EQ(la.pixels, (std::vector<uint8_t>{7, 9}));
}

TEST(LoadImage, ErrorsNameTheFileAndReason) {
  const std::string dir = ruclip_test::make_temp_dir();
  try {
    ruclip::load_image(dir + "/missing.png");
    FAIL() << "no error";
  } catch (const ruclip::Error& e) {
    EXPECT_NE(std::string(e.what()).find("cannot read image"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("missing.png"), std::string::npos) << e.what();
  }
  ruclip_test::write_file(dir + "/notes.png", "this is not a picture");
  try {
    ruclip::load_image(dir + "/notes.png");
    FAIL() << "no error";
  } catch (const ruclip::Error& e) {
    EXPECT_NE(std::string(e.what()).find("not an image or unsupported format"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("notes.png"), std::string::npos) << e.what();
  }
}

// 2. Every packed layout is the same picture: the output must be identical to
// the RGB one, with padded strides and junk in the alpha / x bytes.
TEST(Preprocess, PackedFormatsEqualRgb) {
  for (const char* file : {"images/img1_64x48_RGB.png", "images/img2_45x90_RGB.png", "images/img4_50x40_RGBA.png"}) {
    const Image rgb = to_rgb(load_fixture(file));
    for (int res : {32, 20, 57}) {
      const Normalization norm = with_resolution(res);
      const auto want = run(rgb.view(), norm);
      for (PixelFormat format : kPacked) {
        const OwnedFrame f = make_packed(rgb, format, 13);
        EXPECT_EQ(run(f.view, norm), want) << file << " format " << static_cast<int>(format) << " res " << res;
      }
    }
  }
  // The RGBA fixture: alpha is dropped, not blended (convert('RGB')).
  const Image rgba = load_fixture("images/img4_50x40_RGBA.png");
  ASSERT_EQ(rgba.format, PixelFormat::RGBA);
  EXPECT_EQ(run(rgba.view(), tiny_norm()), run(to_rgb(rgba).view(), tiny_norm()));
}

// 3. GRAY8 is convert('RGB') of an L image: gray replicated to 3 channels.
TEST(Preprocess, GrayEqualsReplicatedRgb) {
  const Image gray = load_fixture("images/img3_33x33_L.png");
  ASSERT_EQ(gray.format, PixelFormat::GRAY8);
  for (int res : {32, 33, 16, 50}) {
    const Normalization norm = with_resolution(res);
    EXPECT_EQ(run(gray.view(), norm), run(to_rgb(gray).view(), norm)) << res;
  }
  // A non-square gray picture (from one channel of an RGB fixture) with a padded stride.
  const Image rgb = load_fixture("images/img2_45x90_RGB.png");
  Image g;
  g.format = PixelFormat::GRAY8;
  g.width = rgb.width;
  g.height = rgb.height;
  for (size_t i = 0; i < rgb.pixels.size(); i += 3) g.pixels.push_back(rgb.pixels[i + 1]);
  const int stride = g.width + 13;
  std::vector<uint8_t> padded(static_cast<size_t>(stride) * g.height, kPadding);
  for (int y = 0; y < g.height; ++y)
    std::copy_n(&g.pixels[static_cast<size_t>(y) * g.width], g.width, &padded[static_cast<size_t>(y) * stride]);
  FrameView view = g.view();
  view.planes[0] = padded.data();
  view.strides[0] = stride;
  EXPECT_EQ(run(view, tiny_norm()), run(to_rgb(g).view(), tiny_norm()));
}

// 4a. The YUV matrices per pixel: frames of the output size skip resampling,
// so each output is one converted pixel. Odd crop offsets (35 -> 32 crops from
// 1) check that chroma is taken at (x / 2, y / 2) in frame coordinates.
TEST(Preprocess, YuvPixelsConvertWithTheChosenMatrix) {
  const Normalization norm = with_resolution(32);
  std::mt19937 rng(7);
  std::vector<uint8_t> noise(3 * 64 * 64);
  for (auto& b : noise) b = static_cast<uint8_t>(rng() & 0xff);
  auto sample = [&](int p, int x, int y) { return noise[(static_cast<size_t>(p) * 64 + y) * 64 + x]; };
  int checked = 0, off_by_one = 0;
  for (PixelFormat format : {PixelFormat::I420, PixelFormat::NV12})
    for (YuvMatrix matrix : {YuvMatrix::BT601, YuvMatrix::BT709})
      for (bool full : {false, true})
        for (auto [w, h] : {std::pair{32, 35}, std::pair{35, 32}, std::pair{32, 32}}) {
          const OwnedFrame f = make_yuv(format, w, h, 5, matrix, full, sample);
          const auto out = run(f.view, norm);
          const int x0 = (w - 32) / 2, y0 = (h - 32) / 2;
          for (int y = 0; y < 32; ++y)
            for (int x = 0; x < 32; ++x) {
              const int fx = x0 + x, fy = y0 + y;
              const auto want = reference_rgb(sample(0, fx, fy), sample(1, fx / 2, fy / 2), sample(2, fx / 2, fy / 2),
                                              matrix, full);
              for (int c = 0; c < 3; ++c) {
                const int got = to_level(out[(static_cast<size_t>(c) * 32 + y) * 32 + x], c, norm);
                // Fixed-point tables vs double: only a value within ~1e-4 of
                // a .5 boundary may round the other way.
                ASSERT_LE(std::abs(got - want[c]), 1) << "format " << static_cast<int>(format) << " " << w << "x" << h;
                off_by_one += got != want[c];
                ++checked;
              }
            }
        }
  std::printf("[ yuv    ] %d converted samples vs double reference: %d off by one level\n", checked, off_by_one);
  EXPECT_LE(off_by_one, checked / 1000);
}

// 4b. Known values: mid gray (Y = U = V = 128) is 130.4 -> 130 in limited
// range and exactly 128 in full range, with either matrix; a saturated colour
// differs between BT.601 and BT.709 and matches each reference exactly. These
// go through the resampler (64x48 -> 32), which keeps flat areas exact.
TEST(Preprocess, YuvRangeAndMatrixKnownValues) {
  const Normalization norm = with_resolution(32);
  for (PixelFormat format : {PixelFormat::I420, PixelFormat::NV12})
    for (YuvMatrix matrix : {YuvMatrix::BT601, YuvMatrix::BT709})
      for (bool full : {false, true}) {
        const OwnedFrame gray = make_yuv(format, 64, 48, 3, matrix, full, [](int, int, int) { return uint8_t{128}; });
        const auto out = run(gray.view, norm);
        const int level = full ? 128 : 130;
        for (size_t i = 0; i < out.size(); ++i)
          ASSERT_EQ(out[i], normalized(level, static_cast<int>(i / (32 * 32)), norm)) << i;
      }

  // BT.601 limited "red" (Y 81, U 90, V 240).
  const uint8_t yuv[3] = {81, 90, 240};
  std::vector<float> firsts;
  for (YuvMatrix matrix : {YuvMatrix::BT601, YuvMatrix::BT709})
    for (bool full : {false, true}) {
      const OwnedFrame f = make_yuv(PixelFormat::I420, 64, 48, 0, matrix, full,
                                    [&](int p, int, int) { return yuv[p]; });
      const auto out = run(f.view, norm);
      const auto want = reference_rgb(81, 90, 240, matrix, full);
      for (int c = 0; c < 3; ++c) {
        EXPECT_EQ(out[static_cast<size_t>(c) * 32 * 32 + 500], normalized(want[c], c, norm))
            << "matrix " << static_cast<int>(matrix) << " full " << full << " channel " << c;
        firsts.push_back(out[static_cast<size_t>(c) * 32 * 32]);
      }
    }
  // BT.601 limited decodes it to (nearly) pure red; the four settings give four different colours.
  EXPECT_EQ(reference_rgb(81, 90, 240, YuvMatrix::BT601, false), (std::array<int, 3>{254, 0, 0}));
  for (int a = 0; a < 4; ++a)
    for (int b = a + 1; b < 4; ++b)
      EXPECT_FALSE(std::equal(&firsts[a * 3], &firsts[a * 3 + 3], &firsts[b * 3])) << a << " vs " << b;
}

// 4c. A picture encoded to 4:2:0 with the forward BT.601 limited formula comes
// back close to the RGB original. The error is the encoding's, not ours: luma
// quantized to 220 codes (~1.16 RGB levels each), chroma to 225 and shared by
// 2x2 pixels (taken nearest-sample on decode), so a pixel can be off by one or
// two 8-bit levels before resampling. Measured on these smooth pictures: at most
// 2 levels after resizing (0.030 in normalized units, green channel), mean
// 0.16-0.45 levels (highest when upscaling, which averages nothing). Asserted in
// 8-bit levels: max 2, mean 0.6.
TEST(Preprocess, YuvCloseToRgbOnSmoothPictures) {
  constexpr int kMaxLevels = 2;
  constexpr double kMeanLevels = 0.6;
  for (auto [w, h, res] : {std::tuple{200, 150, 32}, std::tuple{45, 91, 32}, std::tuple{91, 45, 24},
                           std::tuple{640, 360, 224}, std::tuple{33, 33, 64}, std::tuple{1920, 1080, 224}}) {
    const Image rgb = smooth_rgb(w, h);
    const Normalization norm = with_resolution(res);
    const auto want = run(rgb.view(), norm);
    for (PixelFormat format : {PixelFormat::I420, PixelFormat::NV12}) {
      const OwnedFrame f = make_yuv_bt601_limited(rgb, format, 7);
      const auto got = run(f.view, norm);
      const Diff d = diff(got, want);
      int max_levels = 0;
      double mean_levels = 0;
      const size_t plane = static_cast<size_t>(res) * res;
      for (size_t i = 0; i < got.size(); ++i) {
        const int c = static_cast<int>(i / plane);
        const int e = std::abs(to_level(got[i], c, norm) - to_level(want[i], c, norm));
        max_levels = std::max(max_levels, e);
        mean_levels += e;
      }
      mean_levels /= got.size();
      std::printf("[ yuv    ] %s %dx%d -> %d vs RGB: max abs %.4f mean abs %.5f (levels: max %d, mean %.3f)\n",
                  format == PixelFormat::I420 ? "I420" : "NV12", w, h, res, d.max_abs, d.mean_abs, max_levels,
                  mean_levels);
      EXPECT_LE(max_levels, kMaxLevels) << w << "x" << h;
      EXPECT_LE(mean_levels, kMeanLevels) << w << "x" << h;
    }
  }
  // I420 and NV12 carry the same samples, so they must agree exactly.
  const Image rgb = smooth_rgb(45, 91);
  EXPECT_EQ(run(make_yuv_bt601_limited(rgb, PixelFormat::I420, 3).view, tiny_norm()),
            run(make_yuv_bt601_limited(rgb, PixelFormat::NV12, 0).view, tiny_norm()));
}

// 5. Upscaling against values Pillow 9.4 produces for a 2x2 L image resized
// to 4x4 bilinear ([0, 200; 100, 40]): both passes, rounding included.
TEST(Preprocess, UpscaleMatchesPillowValues) {
  const Normalization norm = with_resolution(4);
  const uint8_t px[4] = {0, 200, 100, 40};
  FrameView v;
  v.format = PixelFormat::GRAY8;
  v.width = v.height = 2;
  v.planes[0] = px;
  v.strides[0] = 2;
  const int pillow[16] = {0, 50, 150, 200, 25, 59, 126, 160, 75, 76, 79, 80, 100, 85, 55, 40};
  const auto out = run(v, norm);
  for (int c = 0; c < 3; ++c)
    for (int i = 0; i < 16; ++i) EXPECT_EQ(out[c * 16 + i], normalized(pillow[i], c, norm)) << c << " " << i;

  // 16x16 -> 32: flat stays flat, a horizontal ramp stays monotonic and
  // keeps its end values, and every row is the same.
  Image ramp;
  ramp.width = ramp.height = 16;
  for (int y = 0; y < 16; ++y)
    for (int x = 0; x < 16; ++x)
      for (int c = 0; c < 3; ++c) ramp.pixels.push_back(static_cast<uint8_t>(x * 17));
  const Normalization n32 = with_resolution(32);
  const auto up = run(ramp.view(), n32);
  for (int c = 0; c < 3; ++c)
    for (int y = 0; y < 32; ++y) {
      const float* row = &up[(static_cast<size_t>(c) * 32 + y) * 32];
      EXPECT_EQ(row[0], normalized(0, c, n32));
      EXPECT_EQ(row[31], normalized(255, c, n32));
      for (int x = 1; x < 32; ++x) EXPECT_LE(row[x - 1], row[x]);
      EXPECT_TRUE(std::equal(row, row + 32, &up[static_cast<size_t>(c) * 32 * 32]));
    }
}

// 5. Degenerate shapes: the crop is the centred square, so a 1-pixel-thin
// strip reduces to its middle pixel, upscaled to a flat R x R.
TEST(Preprocess, TinyAndExtremeShapes) {
  const Normalization norm = tiny_norm();
  auto flat_of = [&](const std::vector<float>& out, const uint8_t rgb[3]) {
    for (size_t i = 0; i < out.size(); ++i) {
      const int c = static_cast<int>(i / (32 * 32));
      if (out[i] != normalized(rgb[c], c, norm)) return false;
    }
    return true;
  };
  const Image one = make_rgb(1, 1, 1);
  EXPECT_TRUE(flat_of(run(one.view(), norm), one.pixels.data()));

  const Image column = make_rgb(1, 50, 2);  // 1 x 50: the pixel of row (50 - 1) / 2 = 24
  EXPECT_TRUE(flat_of(run(column.view(), norm), &column.pixels[24 * 3]));
  const Image row = make_rgb(51, 1, 3);  // 51 x 1: column 25
  EXPECT_TRUE(flat_of(run(row.view(), norm), &row.pixels[25 * 3]));

  // 5000 x 3 and 3 x 4001: the same as the 3 x 3 centre cut out by hand.
  for (auto [w, h] : {std::pair{5000, 3}, std::pair{3, 4001}}) {
    const Image wide = make_rgb(w, h, 4);
    const int x0 = (w - 3) / 2, y0 = (h - 3) / 2;
    Image centre;
    centre.width = centre.height = 3;
    for (int y = 0; y < 3; ++y)
      for (int x = 0; x < 3; ++x)
        for (int c = 0; c < 3; ++c)
          centre.pixels.push_back(wide.pixels[(static_cast<size_t>(y0 + y) * w + x0 + x) * 3 + c]);
    EXPECT_EQ(run(wide.view(), norm), run(centre.view(), norm)) << w << "x" << h;
  }

  // Non-square downscale: equal to resizing the centre square cut by hand.
  const Image img = load_fixture("images/img1_64x48_RGB.png");  // crop x from 8
  Image square;
  square.width = square.height = 48;
  for (int y = 0; y < 48; ++y)
    square.pixels.insert(square.pixels.end(), &img.pixels[(static_cast<size_t>(y) * 64 + 8) * 3],
                         &img.pixels[(static_cast<size_t>(y) * 64 + 56) * 3]);
  EXPECT_EQ(run(img.view(), norm), run(square.view(), norm));

  // 1 x 1 YUV (chroma planes are 1 x 1 too).
  const OwnedFrame yuv = make_yuv(PixelFormat::I420, 1, 1, 0, YuvMatrix::BT601, true,
                                  [](int p, int, int) { return uint8_t(p == 0 ? 200 : 128); });
  const uint8_t white[3] = {200, 200, 200};
  EXPECT_TRUE(flat_of(run(yuv.view, norm), white));
}

// 5. Bad input is a ruclip::Error with a message saying what is wrong.
TEST(Preprocess, RejectsBadFrames) {
  auto contains = [](const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; };
  std::vector<uint8_t> buf(64 * 64 * 4, 0);

  FrameView empty;
  empty.planes[0] = buf.data();
  empty.strides[0] = 0;
  EXPECT_TRUE(contains(message_of(empty), "empty frame 0x0")) << message_of(empty);

  FrameView negative;
  negative.width = -4;
  negative.height = 10;
  negative.planes[0] = buf.data();
  negative.strides[0] = 64;
  EXPECT_TRUE(contains(message_of(negative), "empty frame -4x10")) << message_of(negative);

  FrameView null_packed;
  null_packed.width = null_packed.height = 8;
  null_packed.strides[0] = 24;
  EXPECT_TRUE(contains(message_of(null_packed), "plane 0 (packed) is null")) << message_of(null_packed);

  FrameView null_v;
  null_v.format = PixelFormat::I420;
  null_v.width = null_v.height = 8;
  null_v.planes[0] = null_v.planes[1] = buf.data();
  null_v.strides[0] = 8;
  null_v.strides[1] = null_v.strides[2] = 4;
  EXPECT_TRUE(contains(message_of(null_v), "plane 2 (V) is null")) << message_of(null_v);

  FrameView short_rgbx;
  short_rgbx.format = PixelFormat::RGBx;
  short_rgbx.width = short_rgbx.height = 10;
  short_rgbx.planes[0] = buf.data();
  short_rgbx.strides[0] = 30;  // 3 bytes a pixel, but RGBx has 4
  EXPECT_TRUE(contains(message_of(short_rgbx), "stride 30 is smaller than its row of 40 bytes"))
      << message_of(short_rgbx);

  FrameView short_uv;  // odd width 9: the UV row is 2 * 5 = 10 bytes
  short_uv.format = PixelFormat::NV12;
  short_uv.width = short_uv.height = 9;
  short_uv.planes[0] = short_uv.planes[1] = buf.data();
  short_uv.strides[0] = 9;
  short_uv.strides[1] = 9;
  EXPECT_TRUE(contains(message_of(short_uv), "plane 1 (UV) stride 9 is smaller than its row of 10 bytes"))
      << message_of(short_uv);

  FrameView fine;
  fine.width = fine.height = 4;
  fine.planes[0] = buf.data();
  fine.strides[0] = 12;
  EXPECT_EQ(message_of(fine), "(no error)");
  Normalization zero;
  zero.resolution = 0;
  EXPECT_TRUE(contains(message_of(fine, zero), "resolution must be positive, got 0")) << message_of(fine, zero);
  zero.resolution = -3;
  EXPECT_TRUE(contains(message_of(fine, zero), "resolution must be positive")) << message_of(fine, zero);
}

// 6. Every code path this CPU has (portable; AVX2; whatever
// preprocess_paths() lists after RUCLIP_MAX_CPU_ISA) gives the same bytes as
// the portable loops: the same integers, so identical floats. Every format,
// noise (so clamping and every level occur), padded strides, odd crop offsets
// and sizes, resolutions that are not a multiple of 8, upscaling, no resampling
// (224 -> 224), and downscales with 16, 32 and 144 taps per output (each a
// vector loop of its own). Run the suite under RUCLIP_MAX_CPU_ISA=avx2 or
// sse41 to check what a smaller CPU runs.
namespace {

struct PathCase {
  int w, h, pad;
  std::vector<int> resolutions;
};

// Every format (YUV of both matrices and ranges, packed, gray) of each size
// at each resolution in `mode`: each vector path in `paths` against the
// portable loops, exact equality. Returns the frames compared.
int compare_paths(const std::vector<ruclip::detail::PreprocessPath>& paths, const std::vector<PathCase>& sizes,
                  ruclip::ResizeMode mode) {
  std::mt19937 rng(5);
  auto noise = [&](int, int, int) { return static_cast<uint8_t>(rng()); };
  int compared = 0;
  for (const PathCase& size : sizes) {
    std::vector<OwnedFrame> frames;
    for (PixelFormat f : {PixelFormat::I420, PixelFormat::NV12})
      for (bool full : {false, true})
        frames.push_back(make_yuv(f, size.w, size.h, size.pad, full ? YuvMatrix::BT709 : YuvMatrix::BT601, full, noise));
    const Image rgb = make_rgb(size.w, size.h, static_cast<uint32_t>(size.w * size.h));
    for (PixelFormat f : kPacked) frames.push_back(make_packed(rgb, f, size.pad));
    Image gray;
    gray.format = PixelFormat::GRAY8;
    gray.width = size.w;
    gray.height = size.h;
    for (size_t i = 0; i < rgb.pixels.size(); i += 3) gray.pixels.push_back(rgb.pixels[i]);
    for (const OwnedFrame& frame : frames) {
      for (int res : size.resolutions) {
        Normalization norm = with_resolution(res);
        norm.resize = mode;
        ruclip::detail::set_preprocess_path(ruclip::detail::PreprocessPath::Portable);
        const std::vector<float> want = run(frame.view, norm), want_gray = run(gray.view(), norm);
        for (size_t p = 1; p < paths.size(); ++p) {
          ruclip::detail::set_preprocess_path(paths[p]);
          const std::string what = ruclip::detail::preprocess_path_name(paths[p]) + " " +
                                   ruclip::detail::format_name(frame.view.format) + " " + std::to_string(size.w) + "x" +
                                   std::to_string(size.h) + " -> " + std::to_string(res);
          EXPECT_EQ(run(frame.view, norm), want) << what;
          if (frame.view.format == PixelFormat::RGB) {
            EXPECT_EQ(run(gray.view(), norm), want_gray) << what << " (GRAY8)";
          }
          ++compared;
        }
      }
    }
  }
  ruclip::detail::set_preprocess_simd(true);
  return compared;
}

}  // namespace

TEST(Preprocess, EveryPathGivesTheSameBytes) {
  const std::vector<ruclip::detail::PreprocessPath> paths = ruclip::detail::preprocess_paths();
  ASSERT_EQ(paths.front(), ruclip::detail::PreprocessPath::Portable);
  std::string names;
  for (auto p : paths) names += " " + ruclip::detail::preprocess_path_name(p);
  std::printf("[ paths  ] this CPU (%s):%s\n", ruclip::cpu_features().model.c_str(), names.c_str());
  if (paths.size() == 1) GTEST_SKIP() << "only the portable loops run on this CPU";
  const std::vector<PathCase> sizes = {{1920, 1080, 3, {224, 57}},  {641, 479, 5, {224, 32}}, {333, 335, 13, {224, 57}},
                                       {37, 29, 1, {224, 20}},      {224, 224, 7, {224}},     {9, 300, 3, {224, 57}},
                                       {2170, 2161, 5, {224, 32}}};
  const int compared = compare_paths(paths, sizes, ruclip::ResizeMode::kCropThenBilinear);
  std::printf("[ paths  ] %d frames compared against the portable loops\n", compared);
}

// 6. The vector paths compute ToTensor + Normalize instead of looking it up:
// every 8-bit level, in every channel, must give the table's float exactly. A
// 256 x 256 ramp at resolution 256 skips resampling, so output x is level x.
TEST(Preprocess, EveryPathNormalizesEveryLevelExactly) {
  Image ramp;
  ramp.width = ramp.height = 256;
  for (int y = 0; y < 256; ++y)
    for (int x = 0; x < 256; ++x)
      for (int c = 0; c < 3; ++c) ramp.pixels.push_back(static_cast<uint8_t>(c == 1 ? 255 - x : x));
  const Normalization norm = with_resolution(256);
  for (auto path : ruclip::detail::preprocess_paths()) {
    ruclip::detail::set_preprocess_path(path);
    const auto out = run(ramp.view(), norm);
    for (int c = 0; c < 3; ++c)
      for (int x = 0; x < 256; ++x)
        ASSERT_EQ(out[(static_cast<size_t>(c) * 256 + 7) * 256 + x], normalized(c == 1 ? 255 - x : x, c, norm))
            << ruclip::detail::preprocess_path_name(path) << " channel " << c << " level " << x;
  }
  ruclip::detail::set_preprocess_simd(true);
}

// 6. The paths follow ruclip::cpu_features() (RUCLIP_MAX_CPU_ISA included),
// a path the CPU lacks is refused, and the old on/off switch still works.
TEST(Preprocess, PathsFollowTheCpuFeatures) {
  using ruclip::detail::PreprocessPath;
  const auto& cpu = ruclip::cpu_features();
  const auto paths = ruclip::detail::preprocess_paths();
  const auto has = [&](PreprocessPath p) { return std::find(paths.begin(), paths.end(), p) != paths.end(); };
  EXPECT_TRUE(has(PreprocessPath::Portable));
#if defined(__x86_64__)
  EXPECT_EQ(has(PreprocessPath::Avx2), cpu.avx2) << "RUCLIP_MAX_CPU_ISA=" << cpu.isa_cap;
#endif
  EXPECT_EQ(ruclip::detail::preprocess_path(), paths.back());
  EXPECT_EQ(ruclip::detail::preprocess_simd_active(), paths.size() > 1);
  for (PreprocessPath p : {PreprocessPath::Portable, PreprocessPath::Avx2}) {
    if (has(p)) {
      ruclip::detail::set_preprocess_path(p);
      EXPECT_EQ(ruclip::detail::preprocess_path(), p);
    } else {
      EXPECT_THROW(ruclip::detail::set_preprocess_path(p), ruclip::Error) << ruclip::detail::preprocess_path_name(p);
    }
  }
  EXPECT_THROW(ruclip::detail::set_preprocess_path(static_cast<PreprocessPath>(99)), ruclip::Error);
  ruclip::detail::set_preprocess_simd(false);
  EXPECT_EQ(ruclip::detail::preprocess_path(), PreprocessPath::Portable);
  EXPECT_FALSE(ruclip::detail::preprocess_simd_active());
  ruclip::detail::set_preprocess_simd(true);
  EXPECT_EQ(ruclip::detail::preprocess_path(), paths.back());
}

// crop(): a view of a rectangle, clipped to the frame; preprocessing it
// equals preprocessing a copy of those pixels. YUV origins move to even.
TEST(Preprocess, CropIsAViewOfTheRectangleClippedToTheFrame) {
  const Image rgb = to_rgb(load_fixture("images/img1_64x48_RGB.png"));
  auto copy_of = [&](int x, int y, int w, int h) {
    Image c;
    c.format = PixelFormat::RGB;
    c.width = w;
    c.height = h;
    for (int r = y; r < y + h; ++r)
      c.pixels.insert(c.pixels.end(), rgb.pixels.begin() + (size_t(r) * rgb.width + x) * 3,
                      rgb.pixels.begin() + (size_t(r) * rgb.width + x + w) * 3);
    return c;
  };
  const Normalization norm = tiny_norm();
  EXPECT_EQ(run(ruclip::crop(rgb.view(), 10, 5, 30, 20), norm), run(copy_of(10, 5, 30, 20).view(), norm));
  // Half outside: clipped to what is inside.
  const FrameView clipped = ruclip::crop(rgb.view(), 40, -10, 100, 30);
  EXPECT_EQ(clipped.width, 24);
  EXPECT_EQ(clipped.height, 20);
  EXPECT_EQ(run(clipped, norm), run(copy_of(40, 0, 24, 20).view(), norm));
  // Outside or empty: an empty view.
  for (auto [x, y, w, h] : {std::tuple{70, 0, 10, 10}, {0, 48, 10, 10}, {-20, -20, 10, 10}, {5, 5, 0, 9}, {5, 5, -4, 9}})
    EXPECT_EQ(ruclip::crop(rgb.view(), x, y, w, h).width * ruclip::crop(rgb.view(), x, y, w, h).height, 0);
  // I420 and NV12: the origin moves to even coordinates, inside the frame.
  for (PixelFormat format : {PixelFormat::I420, PixelFormat::NV12}) {
    const OwnedFrame yuv = make_yuv_bt601_limited(rgb, format, 7);
    const FrameView odd = ruclip::crop(yuv.view, 11, 7, 20, 20), even = ruclip::crop(yuv.view, 10, 6, 21, 21);
    EXPECT_EQ(odd.width, 21);
    EXPECT_EQ(odd.height, 21);
    EXPECT_EQ(run(odd, norm), run(even, norm));
  }
}

// ---- ruCLIP v1 (ResizeMode::kBicubicThenCrop) --------------------------------
// Upstream's v1 transform (tests/data/ruclip-v1-tiny/README.md, "Image"):
// convert('RGB'), Pillow-bicubic resize of the shorter side to R, CenterCrop(R)
// with Python's round, ToTensor, Normalize.

namespace {

using ruclip_test::v1_expected;
using ruclip_test::v1_model_dir;

// The v1 fixture's settings (config.json: image_size, mean, std) at `res`.
Normalization v1_norm(int res = 0) {
  const auto config = nlohmann::json::parse(ruclip_test::read_file(v1_model_dir() + "/config.json"));
  Normalization n;
  n.resize = ruclip::ResizeMode::kBicubicThenCrop;
  n.resolution = res > 0 ? res : config.at("image_size").get<int>();
  for (int c = 0; c < 3; ++c) {
    n.mean[c] = config.at("mean").at(c).get<float>();
    n.std[c] = config.at("std").at(c).get<float>();
  }
  return n;
}

// The v1 transform written the long way, on an RGB image: Pillow's resize of
// the whole picture to torchvision's size (the horizontal pass over every
// row, then the vertical pass; a pass skipped when its size does not change),
// then the crop with std::nearbyint (round half to even, as Python's round).
// Only the weights come from preprocess (checked against upstream by
// MatchesUpstreamPixelValues); the geometry is recomputed here, so this
// checks the size, the crop offsets and computing only the kept outputs.
// Returns the 8-bit levels, C x R x R.
std::vector<uint8_t> v1_reference_levels(const Image& rgb, int res) {
  const int w = rgb.width, h = rgb.height;
  const int resized_long = static_cast<int>(static_cast<double>(res) * std::max(w, h) / std::min(w, h));
  const int out_w = w <= h ? res : resized_long, out_h = w <= h ? resized_long : res;
  // One pass along an axis of a [3][rows][cols] picture.
  const auto pass = [](const std::vector<int>& in, int rows, int cols, int out_size, bool along_rows) {
    const int in_size = along_rows ? cols : rows;
    if (in_size == out_size) return in;
    const auto k = ruclip::detail::resample_weights(ruclip::detail::Filter::Bicubic, in_size, out_size, 0, out_size);
    const int out_rows = along_rows ? rows : out_size, out_cols = along_rows ? out_size : cols;
    std::vector<int> out(3 * static_cast<size_t>(out_rows) * out_cols);
    for (int c = 0; c < 3; ++c)
      for (int y = 0; y < out_rows; ++y)
        for (int x = 0; x < out_cols; ++x) {
          const int o = along_rows ? x : y;
          int32_t acc = 1 << (ruclip::detail::kPrecisionBits - 1);
          for (int t = 0; t < k.count[o]; ++t) {
            const int sx = along_rows ? k.first[o] + t : x, sy = along_rows ? y : k.first[o] + t;
            acc += in[(static_cast<size_t>(c) * rows + sy) * cols + sx] * k.coeffs[static_cast<size_t>(o) * k.ksize + t];
          }
          out[(static_cast<size_t>(c) * out_rows + y) * out_cols + x] =
              std::clamp(acc >> ruclip::detail::kPrecisionBits, 0, 255);
        }
    return out;
  };
  std::vector<int> planar(3 * static_cast<size_t>(w) * h);
  for (int c = 0; c < 3; ++c)
    for (size_t i = 0; i < static_cast<size_t>(w) * h; ++i) planar[c * static_cast<size_t>(w) * h + i] = rgb.pixels[i * 3 + c];
  const std::vector<int> resized = pass(pass(planar, h, w, out_w, true), h, out_w, out_h, false);
  const int top = static_cast<int>(std::nearbyint((out_h - res) / 2.0));
  const int left = static_cast<int>(std::nearbyint((out_w - res) / 2.0));
  std::vector<uint8_t> levels(3 * static_cast<size_t>(res) * res);
  for (int c = 0; c < 3; ++c)
    for (int y = 0; y < res; ++y)
      for (int x = 0; x < res; ++x)
        levels[(static_cast<size_t>(c) * res + y) * res + x] =
            static_cast<uint8_t>(resized[(static_cast<size_t>(c) * out_h + top + y) * out_w + left + x]);
  return levels;
}

// preprocess's output must be exactly the floats of these levels.
void expect_levels(const std::vector<float>& got, const std::vector<uint8_t>& levels, const Normalization& norm,
                   const std::string& what) {
  ASSERT_EQ(got.size(), levels.size()) << what;
  const size_t plane = static_cast<size_t>(norm.resolution) * norm.resolution;
  int wrong = 0;
  for (size_t i = 0; i < got.size(); ++i) wrong += got[i] != normalized(levels[i], static_cast<int>(i / plane), norm);
  EXPECT_EQ(wrong, 0) << what << ": values off the expected levels";
}

// A gray picture from a formula, as GRAY8.
Image gray_of(int w, int h, int (*f)(int, int)) {
  Image g;
  g.format = PixelFormat::GRAY8;
  g.width = w;
  g.height = h;
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) g.pixels.push_back(static_cast<uint8_t>(f(x, y)));
  return g;
}

}  // namespace

// The bar: our values from the fixture PNGs within 1e-6 of upstream's
// (Pillow's bicubic reproduced), every 8-bit level the same. The five cover
// landscape and portrait downscales, a 33x33 that shrinks by one pixel, RGBA
// (alpha dropped), L (replicated) and a 32x32 that Pillow copies unchanged.
TEST(PreprocessV1, MatchesUpstreamPixelValues) {
  const Normalization norm = v1_norm();
  ASSERT_EQ(norm.resolution, 32);
  const auto& images = v1_expected().at("images");
  ASSERT_EQ(images.size(), 5u);
  for (const auto& entry : images) {
    const std::string file = entry.at("file").get<std::string>();
    const auto want = entry.at("pixel_values").get<std::vector<float>>();
    ASSERT_EQ(want.size(), 3u * 32 * 32) << file;
    const Image img = ruclip::load_image(v1_model_dir() + "/" + file);
    EXPECT_EQ(img.width, entry.at("width").get<int>()) << file;
    EXPECT_EQ(img.height, entry.at("height").get<int>()) << file;
    const auto got = run(img.view(), norm);
    const Diff d = diff(got, want);
    const int level_mismatches = count_level_mismatches(got, want, norm);
    std::printf("[ v1     ] %-28s %-4s max abs %.3g  8-bit level mismatches %d / %zu\n", file.c_str(),
                entry.at("mode").get<std::string>().c_str(), d.max_abs, level_mismatches, got.size());
    EXPECT_LE(d.max_abs, 1e-6f) << file;
    EXPECT_EQ(level_mismatches, 0) << file;
  }
}

// Values Pillow 9.4 gives (Image.resize(..., BICUBIC) then the crop, as
// torchvision computes both) for small gray pictures of
// (97x + 59y + 31 * (xy mod 7)) mod 256:
//  - 3x4 -> 4: upscaled to 4x5; the crop's top is round(0.5) = 0, not 1;
//  - 6x4 -> 3: downscaled to 4x3; left round(0.5) = 0;
//  - 12x7 -> 3: downscaled to 5x3; left 1.
TEST(PreprocessV1, SmallPicturesMatchPillowValues) {
  const auto f = [](int x, int y) { return (x * 97 + y * 59 + (x * y) % 7 * 31) % 256; };
  struct Case {
    int w, h, res;
    std::vector<int> pillow;
  };
  const Case cases[] = {{3, 4, 4, {0, 50, 140, 205, 32, 129, 151, 84, 87, 97, 111, 120, 144, 65, 71, 157}},
                        {6, 4, 3, {51, 145, 91, 93, 121, 100, 137, 71, 75}},
                        {12, 7, 3, {114, 131, 122, 116, 135, 117, 104, 144, 135}}};
  for (const Case& c : cases) {
    const Image g = gray_of(c.w, c.h, f);
    const Normalization norm = v1_norm(c.res);
    std::vector<uint8_t> levels;
    for (int ch = 0; ch < 3; ++ch)
      for (int v : c.pillow) levels.push_back(static_cast<uint8_t>(v));
    const std::string what = std::to_string(c.w) + "x" + std::to_string(c.h) + " -> " + std::to_string(c.res);
    expect_levels(run(g.view(), norm), levels, norm, what);
    expect_levels(run(to_rgb(g).view(), norm), levels, norm, what + " (RGB)");
    EXPECT_EQ(v1_reference_levels(to_rgb(g), c.res), levels) << what << " (the test's reference)";
  }
}

// CenterCrop's offsets are int(round((size - R) / 2.0)) with Python's round:
// a 49-pixel side cropped to 32 starts at round(8.5) = 8, a 51-pixel one at
// round(9.5) = 10. When the shorter side already is R, Pillow copies, so the
// output is the frame's own pixels from there; otherwise the full resize, then
// the crop (v1_reference_levels).
TEST(PreprocessV1, CenterCropRoundsHalfToEven) {
  const Normalization norm = v1_norm(32);
  struct Case {
    int w, h, left, top;
  };
  for (const Case& c : {Case{32, 49, 0, 8}, Case{32, 51, 0, 10}, Case{49, 32, 8, 0}, Case{51, 32, 10, 0},
                        Case{32, 33, 0, 0}, Case{35, 32, 2, 0}, Case{32, 32, 0, 0}}) {
    const Image img = make_rgb(c.w, c.h, static_cast<uint32_t>(c.w * 100 + c.h));
    std::vector<uint8_t> levels;
    for (int ch = 0; ch < 3; ++ch)
      for (int y = 0; y < 32; ++y)
        for (int x = 0; x < 32; ++x)
          levels.push_back(img.pixels[(static_cast<size_t>(c.top + y) * c.w + c.left + x) * 3 + ch]);
    const std::string what = std::to_string(c.w) + "x" + std::to_string(c.h) + " (copied)";
    expect_levels(run(img.view(), norm), levels, norm, what);
    EXPECT_EQ(v1_reference_levels(img, 32), levels) << what << " (the test's reference)";
  }
  // Resampled, then cropped at a half: 64x98 -> 32x49 (top 8), 102x64 ->
  // 51x32 (left 10), 13x20 -> 32x49 (upscaled, top 8).
  for (auto [w, h] : {std::pair{64, 98}, std::pair{102, 64}, std::pair{13, 20}}) {
    const Image img = make_rgb(w, h, static_cast<uint32_t>(w + h));
    expect_levels(run(img.view(), norm), v1_reference_levels(img, 32), norm,
                  std::to_string(w) + "x" + std::to_string(h));
  }
}

// Upscaling (support not widened), same-size input, extreme shapes (only the
// kept columns of a 53333-wide resize are computed), all against the full
// resize then crop, through RGB and GRAY8.
TEST(PreprocessV1, UpscalingSameSizeAndExtremeShapes) {
  struct Case {
    int w, h, res;
  };
  for (const Case& c : {Case{20, 13, 32}, Case{37, 29, 224}, Case{31, 31, 32}, Case{1, 1, 32}, Case{1, 50, 32},
                        Case{50, 1, 32}, Case{5000, 3, 32}, Case{3, 401, 32}, Case{224, 224, 224},
                        Case{225, 224, 224}, Case{223, 224, 224}, Case{300, 224, 224}, Case{9, 300, 57},
                        Case{333, 335, 57}, Case{641, 479, 224}, Case{1080, 1920, 224}}) {
    const Normalization norm = v1_norm(c.res);
    const Image img = make_rgb(c.w, c.h, static_cast<uint32_t>(c.w * 7 + c.h));
    const std::string what = std::to_string(c.w) + "x" + std::to_string(c.h) + " -> " + std::to_string(c.res);
    expect_levels(run(img.view(), norm), v1_reference_levels(img, c.res), norm, what);
    Image gray = img;
    gray.format = PixelFormat::GRAY8;
    gray.pixels.clear();
    for (size_t i = 0; i < img.pixels.size(); i += 3) gray.pixels.push_back(img.pixels[i + 1]);
    expect_levels(run(gray.view(), norm), v1_reference_levels(to_rgb(gray), c.res), norm, what + " GRAY8");
  }
  // A flat picture stays flat whatever the scale (the weights sum to 1).
  Image flat;
  flat.width = 7;
  flat.height = 5;
  for (int i = 0; i < 35; ++i) flat.pixels.insert(flat.pixels.end(), {200, 17, 90});
  const Normalization norm = v1_norm(32);
  const auto out = run(flat.view(), norm);
  for (size_t i = 0; i < out.size(); ++i) {
    const int c = static_cast<int>(i / (32 * 32));
    ASSERT_EQ(out[i], normalized(c == 0 ? 200 : c == 1 ? 17 : 90, c, norm)) << i;
  }
}

// Every raw format is the same picture as its RGB: packed layouts and gray
// exactly (junk in alpha / x bytes, padded strides), YUV within the bound of
// Preprocess.YuvCloseToRgbOnSmoothPictures (the 4:2:0 encoding's error), and
// I420 equal to NV12.
TEST(PreprocessV1, RawFormatsEqualRgb) {
  for (const char* file : {"images/img0_rgb_64x48.png", "images/img1_rgb_45x90.png", "images/img3_rgba_50x40.png"}) {
    const Image rgb = to_rgb(ruclip::load_image(v1_model_dir() + "/" + file));
    for (int res : {32, 20, 57}) {
      const Normalization norm = v1_norm(res);
      const auto want = run(rgb.view(), norm);
      for (PixelFormat format : kPacked) {
        const OwnedFrame f = make_packed(rgb, format, 13);
        EXPECT_EQ(run(f.view, norm), want) << file << " " << ruclip::detail::format_name(format) << " res " << res;
      }
    }
  }
  const Image rgba = ruclip::load_image(v1_model_dir() + "/images/img3_rgba_50x40.png");
  ASSERT_EQ(rgba.format, PixelFormat::RGBA);
  EXPECT_EQ(run(rgba.view(), v1_norm()), run(to_rgb(rgba).view(), v1_norm()));

  const Image gray = ruclip::load_image(v1_model_dir() + "/images/img2_l_33x33.png");
  ASSERT_EQ(gray.format, PixelFormat::GRAY8);
  for (int res : {32, 33, 16, 50}) EXPECT_EQ(run(gray.view(), v1_norm(res)), run(to_rgb(gray).view(), v1_norm(res))) << res;
  // Non-square gray with a padded stride.
  const Image g = gray_of(45, 91, [](int x, int y) { return (x * 13 + y * 7) % 256; });
  const int stride = g.width + 13;
  std::vector<uint8_t> padded(static_cast<size_t>(stride) * g.height, kPadding);
  for (int y = 0; y < g.height; ++y)
    std::copy_n(&g.pixels[static_cast<size_t>(y) * g.width], g.width, &padded[static_cast<size_t>(y) * stride]);
  FrameView view = g.view();
  view.planes[0] = padded.data();
  view.strides[0] = stride;
  EXPECT_EQ(run(view, v1_norm()), run(to_rgb(g).view(), v1_norm()));

  // YUV: the v2 bound (Preprocess.YuvCloseToRgbOnSmoothPictures: max 2
  // levels, mean 0.6) for all but a few values. Bicubic's negative lobes
  // amplify the encoding's per-pixel error (the weights' absolute values sum
  // to about 1.2 per pass), so a rare value goes to 3 levels: measured, 1 of
  // the 150528 at 640x360 -> 224, none elsewhere; mean 0.20-0.49 levels.
  constexpr int kMaxLevels = 3;
  constexpr double kMeanLevels = 0.6;
  constexpr double kBeyondTwoLevels = 1e-4;  // share of values more than 2 levels off
  for (auto [w, h, res] : {std::tuple{200, 150, 32}, std::tuple{45, 91, 32}, std::tuple{91, 45, 24},
                           std::tuple{640, 360, 224}, std::tuple{33, 33, 64}, std::tuple{1920, 1080, 224}}) {
    const Image rgb = smooth_rgb(w, h);
    const Normalization norm = v1_norm(res);
    const auto want = run(rgb.view(), norm);
    for (PixelFormat format : {PixelFormat::I420, PixelFormat::NV12}) {
      const auto got = run(make_yuv_bt601_limited(rgb, format, 7).view, norm);
      int max_levels = 0, beyond_two = 0;
      double mean_levels = 0;
      const size_t plane = static_cast<size_t>(res) * res;
      for (size_t i = 0; i < got.size(); ++i) {
        const int c = static_cast<int>(i / plane);
        const int e = std::abs(to_level(got[i], c, norm) - to_level(want[i], c, norm));
        max_levels = std::max(max_levels, e);
        mean_levels += e;
        beyond_two += e > 2;
      }
      mean_levels /= got.size();
      std::printf("[ v1 yuv ] %s %dx%d -> %d vs RGB: levels max %d, mean %.3f, %d more than 2 off\n",
                  ruclip::detail::format_name(format).c_str(), w, h, res, max_levels, mean_levels, beyond_two);
      EXPECT_LE(max_levels, kMaxLevels) << w << "x" << h;
      EXPECT_LE(mean_levels, kMeanLevels) << w << "x" << h;
      EXPECT_LE(beyond_two, kBeyondTwoLevels * got.size()) << w << "x" << h;
    }
  }
  const Image smooth = smooth_rgb(45, 91);
  EXPECT_EQ(run(make_yuv_bt601_limited(smooth, PixelFormat::I420, 3).view, v1_norm()),
            run(make_yuv_bt601_limited(smooth, PixelFormat::NV12, 0).view, v1_norm()));
}

// The vector paths give the portable loops' bytes in v1 too: bicubic weights
// are negative in places (split as hi < 0, lo >= 0) and outputs overshoot and
// clip; 32 taps per output at 1080 -> 224, 272 at 2161 -> 32, copies with an
// offset (224x300), upscaling (37x29).
TEST(PreprocessV1, EveryPathGivesTheSameBytes) {
  const std::vector<ruclip::detail::PreprocessPath> paths = ruclip::detail::preprocess_paths();
  if (paths.size() == 1) GTEST_SKIP() << "only the portable loops run on this CPU";
  const std::vector<PathCase> sizes = {{1920, 1080, 3, {224, 57}}, {1080, 1920, 0, {224}}, {641, 479, 5, {224, 32}},
                                       {37, 29, 1, {224, 20}},     {224, 300, 7, {224}},   {9, 300, 3, {224, 57}},
                                       {49, 70, 2, {32}},          {2170, 2161, 5, {32}}};
  const int compared = compare_paths(paths, sizes, ruclip::ResizeMode::kBicubicThenCrop);
  std::printf("[ paths  ] v1: %d frames compared against the portable loops\n", compared);
}

// An unknown mode, and a strip whose resized long side would not fit an int
// (1 x 2^25 at 224: 7.5e9 pixels long), are errors before any pixel is read.
TEST(PreprocessV1, RejectsAnUnknownModeAndAnOverlongResize) {
  const Image img = make_rgb(8, 8, 1);
  Normalization norm = v1_norm(4);
  norm.resize = static_cast<ruclip::ResizeMode>(7);
  EXPECT_NE(message_of(img.view(), norm).find("unknown resize mode 7"), std::string::npos) << message_of(img.view(), norm);

  FrameView strip;
  strip.format = PixelFormat::GRAY8;
  strip.width = 1;
  strip.height = 1 << 25;
  strip.planes[0] = img.pixels.data();  // never read
  strip.strides[0] = 1;
  const std::string message = message_of(strip, v1_norm(224));
  EXPECT_NE(message.find("1x33554432 frame resized to 224 on its shorter side is too long"), std::string::npos)
      << message;
}
