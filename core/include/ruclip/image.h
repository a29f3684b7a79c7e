// Image side of the processor: raw video frames in, the
// model's normalized pixel values out, equal to upstream's
// convert('RGB') -> center square crop -> Pillow bilinear resize -> ToTensor -> Normalize
// (ruCLIP v2), or to ruCLIP v1's convert('RGB') -> Pillow bicubic resize of the
// shorter side -> center crop -> ToTensor -> Normalize (see ResizeMode).
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace ruclip {

enum class PixelFormat { RGB, BGR, RGBA, BGRA, RGBx, BGRx, xRGB, xBGR, GRAY8, I420, NV12 };

// How planar YUV is turned into RGB (the caps' colorimetry).
enum class YuvMatrix { BT601, BT709 };

// Where a frame's planes are: host memory, or device memory of a CUDA GPU
// (e.g. GStreamer's CUDA memory), which only a model on that GPU reads.
enum class FrameMemory { kHost, kCuda };

// A frame in memory the caller owns. Packed formats use plane 0 only;
// I420 uses Y, U, V planes; NV12 uses Y and interleaved UV. Strides in bytes.
struct FrameView {
  PixelFormat format = PixelFormat::RGB;
  int width = 0;
  int height = 0;
  const uint8_t* planes[3] = {nullptr, nullptr, nullptr};
  int strides[3] = {0, 0, 0};
  YuvMatrix matrix = YuvMatrix::BT601;
  bool full_range = false;  // YUV range; limited (16-235) is what video usually is
  FrameMemory memory = FrameMemory::kHost;
};

// How a frame becomes resolution x resolution pixels.
//  - kCropThenBilinear (ruCLIP v2's processor): the centred square of side
//    min(width, height), Pillow-bilinear resized to resolution.
//  - kBicubicThenCrop (ruCLIP v1 / OpenAI CLIP's _transform): the shorter side
//    Pillow-bicubic resized to resolution (the longer to
//    int(resolution * long / short)), then the centre crop, offsets rounded
//    half to even as Python's round(). Only the kept part of the resize is
//    computed (the same values); slower than v2 per frame, bicubic reading
//    twice bilinear's taps (bench/preprocess.md).
enum class ResizeMode { kCropThenBilinear, kBicubicThenCrop };

struct Normalization {
  ResizeMode resize = ResizeMode::kCropThenBilinear;
  int resolution = 224;
  std::array<float, 3> mean{0.48145466f, 0.4578275f, 0.40821073f};
  std::array<float, 3> std{0.26862954f, 0.26130258f, 0.27577711f};
};

// The part of `frame` inside the rectangle (x, y, w, h), clipped to the
// frame: a view of the same pixels, nothing copied. For I420 and NV12 the
// rectangle's origin moves to even coordinates (and its size shrinks to
// stay inside), so that chroma samples line up. Empty (width or height 0)
// when nothing of it is inside.
FrameView crop(const FrameView& frame, int x, int y, int w, int h);

// Writes 3 x resolution x resolution floats (C, H, W) to `out`.
// Throws ruclip::Error for an empty frame, missing planes or a frame in CUDA
// memory (Model::encode_frames on a CUDA device reads those).
void preprocess(const FrameView& frame, const Normalization& norm, float* out);

}  // namespace ruclip
