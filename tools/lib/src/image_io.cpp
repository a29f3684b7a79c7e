// Image files -> 8-bit RGB / RGBA / GRAY8 for preprocess(). OpenCV only decodes;
// the conversions that matter for parity (alpha dropped, gray replicated,
// resizing) happen in preprocess, like Pillow's convert('RGB') upstream.
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <system_error>

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>

#include "ruclip/error.h"
#include "ruclip/tools/image_files.h"

namespace ruclip {
namespace {

// Why a file that OpenCV could not decode failed: missing or unreadable files
// get the OS reason, anything readable is reported as not an image.
[[noreturn]] void throw_unreadable(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::file_status st = fs::status(path, ec);
  if (ec || !fs::exists(st))
    throw Error("cannot read image '" + path + "': " + (ec ? ec.message() : std::string("no such file")));
  if (fs::is_directory(st)) throw Error("cannot read image '" + path + "': is a directory");
  std::ifstream probe(path, std::ios::binary);
  if (!probe) throw Error("cannot read image '" + path + "': " + std::strerror(errno));
  throw Error("cannot read image '" + path + "': not an image or unsupported format");
}

// Sample value scaled to 8 bits. 16-bit samples keep their high byte, which is
// what Pillow does when it opens 16-bit RGB(A) PNGs as 8-bit modes.
template <typename T>
uint8_t to8(T v);
template <>
uint8_t to8<uint8_t>(uint8_t v) { return v; }
template <>
uint8_t to8<uint16_t>(uint16_t v) { return static_cast<uint8_t>(v >> 8); }

// Copies OpenCV's channel order (gray, gray+alpha, BGR, BGRA) into our layout
// (GRAY8, GRAY8, RGB, RGBA).
template <typename T>
void copy_pixels(const cv::Mat& m, Image* img) {
  const int cn = m.channels();
  const int out_cn = img->format == PixelFormat::GRAY8 ? 1 : img->format == PixelFormat::RGB ? 3 : 4;
  img->pixels.resize(static_cast<size_t>(img->width) * img->height * out_cn);
  uint8_t* dst = img->pixels.data();
  for (int y = 0; y < m.rows; ++y) {
    const T* src = m.ptr<T>(y);
    for (int x = 0; x < m.cols; ++x, src += cn, dst += out_cn) {
      switch (cn) {
        case 1:
        case 2:  // gray + alpha: the alpha is dropped, as convert('RGB') would
          dst[0] = to8(src[0]);
          break;
        case 3:
          dst[0] = to8(src[2]);
          dst[1] = to8(src[1]);
          dst[2] = to8(src[0]);
          break;
        default:
          dst[0] = to8(src[2]);
          dst[1] = to8(src[1]);
          dst[2] = to8(src[0]);
          dst[3] = to8(src[3]);
          break;
      }
    }
  }
}

}  // namespace

FrameView Image::view() const {
  FrameView v;
  v.format = format;
  v.width = width;
  v.height = height;
  const int bytes_per_pixel = format == PixelFormat::GRAY8 ? 1 : format == PixelFormat::RGBA ? 4 : 3;
  v.planes[0] = pixels.data();
  v.strides[0] = width * bytes_per_pixel;
  return v;
}

namespace {

// A decoded picture in our layout; `what` names it in errors.
Image from_mat(const cv::Mat& m, const std::string& what) {
  Image img;
  img.width = m.cols;
  img.height = m.rows;
  switch (m.channels()) {
    case 1:
    case 2: img.format = PixelFormat::GRAY8; break;
    case 3: img.format = PixelFormat::RGB; break;
    case 4: img.format = PixelFormat::RGBA; break;
    default:
      throw Error("cannot read image " + what + ": unsupported number of channels " + std::to_string(m.channels()));
  }
  switch (m.depth()) {
    case CV_8U: copy_pixels<uint8_t>(m, &img); break;
    case CV_16U: copy_pixels<uint16_t>(m, &img); break;
    default: throw Error("cannot read image " + what + ": unsupported sample type (only 8- and 16-bit unsigned)");
  }
  return img;
}

}  // namespace

Image load_image(const std::string& path) {
  cv::Mat m;
  try {
    // UNCHANGED keeps alpha, gray and 16-bit samples as stored. EXIF
    // orientation is not applied (Pillow's open() does not either);
    // IGNORE_ORIENTATION says so explicitly although UNCHANGED already implies it.
    m = cv::imread(path, cv::IMREAD_UNCHANGED | cv::IMREAD_IGNORE_ORIENTATION);
  } catch (const cv::Exception& e) {
    throw Error("cannot read image '" + path + "': not an image or unsupported format (" + e.what() + ")");
  }
  if (m.empty()) throw_unreadable(path);
  return from_mat(m, "'" + path + "'");
}

Image decode_image(const std::vector<uint8_t>& bytes, const std::string& what) {
  cv::Mat m;
  try {
    if (!bytes.empty())
      m = cv::imdecode(bytes, cv::IMREAD_UNCHANGED | cv::IMREAD_IGNORE_ORIENTATION);
  } catch (const cv::Exception& e) {
    throw Error("cannot read image " + what + ": not an image or unsupported format (" + e.what() + ")");
  }
  if (m.empty()) throw Error("cannot read image " + what + ": not an image or unsupported format");
  return from_mat(m, what);
}

}  // namespace ruclip
