// CudaPreprocessor (core/src/image/cuda) against ruclip::preprocess on the CPU.
//
// The GPU path repeats the CPU path's integer arithmetic with the same host-made
// tables and weights, so the bound is exact equality (max abs diff 0), stronger
// than the one-8-bit-level bound 1 / 255 / std ~ 0.015 that float-math
// resampling would need.
//
// Without a CUDA device the GPU tests skip; the kernels' per-thread code still
// runs here on the CPU over every index (KernelsOnCpu), which checks the staging
// layout, the plane boxes and the indexing; only the CUDA calls go unchecked.
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "preprocess_cuda.h"
#include "preprocess_plan.h"
#include "ruclip/error.h"
#include "ruclip/image.h"

using ruclip::FrameView;
using ruclip::Normalization;
using ruclip::PixelFormat;
using ruclip::YuvMatrix;

namespace {

constexpr const char* kNoDevice = "no CUDA device: GPU preprocessing not verified";

const PixelFormat kFormats[] = {PixelFormat::RGB,  PixelFormat::BGR,  PixelFormat::RGBA,  PixelFormat::BGRA,
                                PixelFormat::RGBx, PixelFormat::BGRx, PixelFormat::xRGB,  PixelFormat::xBGR,
                                PixelFormat::GRAY8, PixelFormat::I420, PixelFormat::NV12};

struct Size {
  int width, height, resolution;
};
// Landscape and portrait crops, odd sizes and offsets, a crop equal to the
// resolution (Pillow skips resampling), frames smaller than it (upscaling).
const Size kSizes[] = {{1920, 1080, 224}, {641, 479, 224}, {479, 641, 336}, {333, 333, 224},
                       {300, 224, 224},   {101, 67, 224},  {3, 5, 32}};

// A frame of random bytes (any byte is a valid pixel in every format, and
// random YUV exercises the RGB clamping) with padded rows.
struct OwnedFrame {
  std::vector<uint8_t> planes[3];
  FrameView view;
};

OwnedFrame random_frame(PixelFormat format, int w, int h, uint32_t seed) {
  std::mt19937 rng(seed);
  const int chroma_w = (w + 1) / 2, chroma_h = (h + 1) / 2, pad = 7;
  int row_bytes[3] = {0, 0, 0}, rows[3] = {h, chroma_h, chroma_h};
  switch (format) {
    case PixelFormat::RGB:
    case PixelFormat::BGR: row_bytes[0] = 3 * w; break;
    case PixelFormat::GRAY8: row_bytes[0] = w; break;
    case PixelFormat::I420: row_bytes[0] = w; row_bytes[1] = row_bytes[2] = chroma_w; break;
    case PixelFormat::NV12: row_bytes[0] = w; row_bytes[1] = 2 * chroma_w; break;
    default: row_bytes[0] = 4 * w; break;
  }
  OwnedFrame f;
  f.view.format = format;
  f.view.width = w;
  f.view.height = h;
  f.view.matrix = seed % 2 ? YuvMatrix::BT709 : YuvMatrix::BT601;
  f.view.full_range = seed % 3 == 0;
  for (int p = 0; p < 3 && row_bytes[p] > 0; ++p) {
    f.view.strides[p] = row_bytes[p] + pad;
    f.planes[p].resize(static_cast<size_t>(f.view.strides[p]) * rows[p]);
    for (auto& b : f.planes[p]) b = static_cast<uint8_t>(rng());
    f.view.planes[p] = f.planes[p].data();
  }
  return f;
}

Normalization norm_for(int resolution, ruclip::ResizeMode mode = ruclip::ResizeMode::kCropThenBilinear) {
  Normalization n;  // CLIP's mean / std
  n.resolution = resolution;
  n.resize = mode;
  return n;
}

// Both processors: v2 (centre crop, bilinear) and v1 (bicubic, then crop).
const ruclip::ResizeMode kModes[] = {ruclip::ResizeMode::kCropThenBilinear, ruclip::ResizeMode::kBicubicThenCrop};

std::vector<float> on_cpu(const FrameView& frame, const Normalization& norm) {
  std::vector<float> out(3 * static_cast<size_t>(norm.resolution) * norm.resolution, NAN);
  ruclip::preprocess(frame, norm, out.data());
  return out;
}

struct Diff {
  float max_abs = 0;
  size_t differing = 0;
};

Diff compare(const std::vector<float>& got, const std::vector<float>& want) {
  Diff d;
  for (size_t i = 0; i < got.size(); ++i) {
    const float e = std::fabs(got[i] - want[i]);
    if (!(e == 0)) ++d.differing;  // NaN (never written) counts too
    d.max_abs = std::max(d.max_abs, std::isnan(e) ? INFINITY : e);
  }
  return d;
}

std::string describe(PixelFormat format, const Size& s, ruclip::ResizeMode mode) {
  static const char* names[] = {"RGB", "BGR", "RGBA", "BGRA", "RGBx", "BGRx", "xRGB", "xBGR", "GRAY8", "I420", "NV12"};
  return std::string(mode == ruclip::ResizeMode::kBicubicThenCrop ? "v1 " : "v2 ") + names[static_cast<int>(format)] +
         " " + std::to_string(s.width) + "x" + std::to_string(s.height) + " -> " + std::to_string(s.resolution);
}

// Throws, so a failed CUDA call ends the test (gtest reports the exception).
void cuda_ok(cudaError_t err) {
  if (err != cudaSuccess) throw std::runtime_error(std::string("CUDA call failed: ") + cudaGetErrorString(err));
}

// Device memory for one output, freed on scope exit.
struct DeviceOutput {
  float* ptr = nullptr;
  size_t count;
  explicit DeviceOutput(int res) : count(3 * static_cast<size_t>(res) * res) {
    cuda_ok(cudaMalloc(reinterpret_cast<void**>(&ptr), count * sizeof(float)));
  }
  ~DeviceOutput() { cudaFree(ptr); }
  std::vector<float> download(cudaStream_t stream) const {
    std::vector<float> out(count, NAN);
    cuda_ok(cudaMemcpyAsync(out.data(), ptr, count * sizeof(float), cudaMemcpyDeviceToHost, stream));
    cuda_ok(cudaStreamSynchronize(stream));
    return out;
  }
};

}  // namespace

// The kernels' per-thread functions over the whole grid, on the CPU, reading
// a host copy of the staging buffer.
std::vector<float> kernels_on_cpu(const ruclip::cuda_detail::Plan& plan, const uint8_t* staging) {
  using namespace ruclip::cuda_detail;
  const KernelArgs a = bind(plan, staging);
  std::vector<uint8_t> temp(3 * static_cast<size_t>(a.rows) * a.res);
  std::vector<float> got(3 * static_cast<size_t>(a.res) * a.res, NAN);
  for (int r = 0; r < a.rows; ++r)
    for (int xx = 0; xx < a.res; ++xx) horizontal_one(a, xx, r, temp.data());
  for (int yy = 0; yy < a.res; ++yy)
    for (int xx = 0; xx < a.res; ++xx) vertical_one(a, xx, yy, temp.data(), got.data());
  return got;
}

// The kernels run on the CPU over the staging buffer: exact equality with
// ruclip::preprocess, for the staging of a host frame (fill_staging) and of a
// frame in CUDA memory: the tables from the host (fill_tables), each plane
// box copied with the arguments run() gives cudaMemcpy2DAsync (box_source,
// the frame's stride, the box's width and rows), emulated on host memory, the
// rest of the buffer poisoned.
TEST(CudaPreprocessPlan, KernelsOnCpuMatchPreprocess) {
  using namespace ruclip::cuda_detail;
  uint32_t seed = 1;
  for (ruclip::ResizeMode mode : kModes)
    for (const Size& s : kSizes)
      for (PixelFormat format : kFormats) {
        const OwnedFrame f = random_frame(format, s.width, s.height, seed++);
        const Normalization norm = norm_for(s.resolution, mode);
        const Plan plan = make_plan(f.view, norm);
        const std::vector<float> want = on_cpu(f.view, norm);
        std::vector<uint8_t> staging(plan.size);
        fill_staging(plan, f.view, norm, staging.data());
        const Diff d = compare(kernels_on_cpu(plan, staging.data()), want);
        EXPECT_EQ(d.differing, 0u) << describe(format, s, mode) << ": max abs diff " << d.max_abs;

        std::vector<uint8_t> device_style(plan.size, 0xAB);
        fill_tables(plan, f.view, norm, device_style.data());
        for (int i = 0; i < plan.num_boxes; ++i) {
          const Box& box = plan.boxes[i];
          const size_t width = static_cast<size_t>(box.x1 - box.x0);
          const uint8_t* source = box_source(plan, f.view, i);
          for (int row = 0; row < box.y1 - box.y0; ++row)  // cudaMemcpy2D(dst, width, src, stride, width, rows)
            std::memcpy(device_style.data() + box.offset + row * width,
                        source + static_cast<ptrdiff_t>(row) * f.view.strides[i], width);
        }
        const Diff dd = compare(kernels_on_cpu(plan, device_style.data()), want);
        EXPECT_EQ(dd.differing, 0u) << describe(format, s, mode) << " staged as a frame in CUDA memory";
      }
}

// The CPU path refuses a frame in CUDA memory with a message, reading nothing.
TEST(CudaPreprocessPlan, CpuPathRefusesDeviceFrames) {
  OwnedFrame f = random_frame(PixelFormat::NV12, 64, 48, 5);
  f.view.memory = ruclip::FrameMemory::kCuda;
  std::vector<float> out(3 * 32 * 32);
  try {
    ruclip::preprocess(f.view, norm_for(32), out.data());
    FAIL() << "a frame in CUDA memory was read on the CPU";
  } catch (const ruclip::Error& e) {
    EXPECT_NE(std::string(e.what()).find("CUDA memory"), std::string::npos) << e.what();
  }
  // The plan (what the GPU path computes on the host) takes it.
  EXPECT_GT(ruclip::cuda_detail::tables_size(ruclip::cuda_detail::make_plan(f.view, norm_for(32))), 0u);
}

// Runs here too: without a driver or device the constructor's error says so.
TEST(CudaPreprocess, BadDeviceIsAClearError) {
  try {
    ruclip::CudaPreprocessor bad(-1);
    FAIL() << "device -1 accepted";
  } catch (const ruclip::Error& e) {
    std::printf("[ message ] %s\n", e.what());
    EXPECT_NE(std::string(e.what()).find("CUDA preprocessing: "), std::string::npos) << e.what();
  }
}

TEST(CudaPreprocess, MatchesCpuForEveryFormatAndSize) {
  if (!ruclip::cuda_device_available()) GTEST_SKIP() << kNoDevice;
  ruclip::CudaPreprocessor gpu(0);
  cudaStream_t stream = nullptr;
  cuda_ok(cudaStreamCreate(&stream));
  uint32_t seed = 100;
  for (ruclip::ResizeMode mode : kModes)
    for (const Size& s : kSizes) {
      DeviceOutput out(s.resolution);
      for (PixelFormat format : kFormats) {
        const OwnedFrame f = random_frame(format, s.width, s.height, seed++);
        const Normalization norm = norm_for(s.resolution, mode);
        gpu.run(f.view, norm, out.ptr, stream);
        const Diff d = compare(out.download(stream), on_cpu(f.view, norm));
        std::printf("[ parity ] %-29s max abs diff %g, %zu of %zu values differ (bound: 0)\n",
                    describe(format, s, mode).c_str(), d.max_abs, d.differing, out.count);
        EXPECT_EQ(d.differing, 0u) << describe(format, s, mode);
      }
    }
  cuda_ok(cudaStreamDestroy(stream));
}

// The same frames in device memory (as GStreamer's CUDA memory holds them,
// strides padded), read by the device-to-device path; and several runs in a
// row before any download, so the two buffer sets alternate.
TEST(CudaPreprocess, FramesInDeviceMemoryMatchCpu) {
  if (!ruclip::cuda_device_available()) GTEST_SKIP() << kNoDevice;
  ruclip::CudaPreprocessor gpu(0);
  cudaStream_t stream = nullptr;
  cuda_ok(cudaStreamCreate(&stream));
  uint32_t seed = 500;
  for (const Size& s : kSizes)
    for (PixelFormat format : {PixelFormat::NV12, PixelFormat::I420, PixelFormat::RGBA, PixelFormat::BGRx}) {
      const OwnedFrame host = random_frame(format, s.width, s.height, seed++);
      ruclip::FrameView device_view = host.view;
      device_view.memory = ruclip::FrameMemory::kCuda;
      std::vector<void*> planes;
      for (int p = 0; p < 3 && host.view.planes[p]; ++p) {
        void* d = nullptr;
        cuda_ok(cudaMalloc(&d, host.planes[p].size()));
        cuda_ok(cudaMemcpy(d, host.planes[p].data(), host.planes[p].size(), cudaMemcpyHostToDevice));
        device_view.planes[p] = static_cast<const uint8_t*>(d);
        planes.push_back(d);
      }
      const Normalization norm = norm_for(s.resolution);
      std::vector<std::unique_ptr<DeviceOutput>> outs;
      for (int run = 0; run < 3; ++run) outs.push_back(std::make_unique<DeviceOutput>(s.resolution));
      for (auto& out : outs) gpu.run(device_view, norm, out->ptr, stream);
      const std::vector<float> want = on_cpu(host.view, norm);
      for (auto& out : outs) {
        const Diff d = compare(out->download(stream), want);
        EXPECT_EQ(d.differing, 0u) << describe(format, s, ruclip::ResizeMode::kCropThenBilinear) << " from device memory";
      }
      for (void* d : planes) cudaFree(d);
    }
  cuda_ok(cudaStreamDestroy(stream));
}

TEST(CudaPreprocess, RejectsBadInputLikeTheCpu) {
  if (!ruclip::cuda_device_available()) GTEST_SKIP() << kNoDevice;
  ruclip::CudaPreprocessor gpu(0);
  DeviceOutput out(224);
  OwnedFrame f = random_frame(PixelFormat::I420, 64, 48, 7);
  f.view.planes[2] = nullptr;
  std::string cpu_message;
  std::vector<float> cpu(3 * 224 * 224);
  try {
    ruclip::preprocess(f.view, norm_for(224), cpu.data());
  } catch (const ruclip::Error& e) {
    cpu_message = e.what();
  }
  try {
    gpu.run(f.view, norm_for(224), out.ptr, nullptr);
    FAIL() << "a missing plane was accepted";
  } catch (const ruclip::Error& e) {
    EXPECT_EQ(e.what(), cpu_message);
  }
  f = random_frame(PixelFormat::RGB, 64, 48, 8);
  EXPECT_THROW(gpu.run(f.view, norm_for(224), nullptr, nullptr), ruclip::Error);
}

// 1080p I420 -> 224: GPU time of one run's upload + two kernels (cudaEvents),
// and the host time of run() (staging the crop into pinned memory).
TEST(CudaPreprocess, Timing1080pI420) {
  if (!ruclip::cuda_device_available()) GTEST_SKIP() << kNoDevice;
  ruclip::CudaPreprocessor gpu(0);
  const OwnedFrame f = random_frame(PixelFormat::I420, 1920, 1080, 42);
  const Normalization norm = norm_for(224);
  DeviceOutput out(224);
  cudaStream_t stream = nullptr;
  cuda_ok(cudaStreamCreate(&stream));
  cudaEvent_t start, stop;
  cuda_ok(cudaEventCreate(&start));
  cuda_ok(cudaEventCreate(&stop));
  for (int i = 0; i < 5; ++i) gpu.run(f.view, norm, out.ptr, stream);  // buffers, module load
  cuda_ok(cudaStreamSynchronize(stream));

  // A host function holds the stream until run() has enqueued everything, so
  // the events bracket GPU work only, not the host staging in between.
  constexpr int kRuns = 50;
  double gpu_ms = 0, host_ms = 0;
  std::atomic<bool> go{false};
  const cudaHostFn_t hold = [](void* flag) {
    while (!static_cast<std::atomic<bool>*>(flag)->load()) std::this_thread::yield();
  };
  for (int i = 0; i < kRuns; ++i) {
    go = false;
    cuda_ok(cudaLaunchHostFunc(stream, hold, &go));
    cuda_ok(cudaEventRecord(start, stream));
    const auto t0 = std::chrono::steady_clock::now();
    try {
      gpu.run(f.view, norm, out.ptr, stream);
    } catch (...) {
      go = true;  // release the stream before reporting
      cudaStreamSynchronize(stream);
      throw;
    }
    host_ms += std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    cuda_ok(cudaEventRecord(stop, stream));
    go = true;
    cuda_ok(cudaEventSynchronize(stop));
    float ms = 0;
    cuda_ok(cudaEventElapsedTime(&ms, start, stop));
    gpu_ms += ms;
  }

  // The upload alone, for reading the kernels' share off the total.
  const auto plan = ruclip::cuda_detail::make_plan(f.view, norm);
  void *host = nullptr, *dev = nullptr;
  cuda_ok(cudaMallocHost(&host, plan.size));
  cuda_ok(cudaMalloc(&dev, plan.size));
  double copy_ms = 0;
  for (int i = 0; i < kRuns; ++i) {
    cuda_ok(cudaEventRecord(start, stream));
    cuda_ok(cudaMemcpyAsync(dev, host, plan.size, cudaMemcpyHostToDevice, stream));
    cuda_ok(cudaEventRecord(stop, stream));
    cuda_ok(cudaEventSynchronize(stop));
    float ms = 0;
    cuda_ok(cudaEventElapsedTime(&ms, start, stop));
    copy_ms += ms;
  }
  cudaFreeHost(host);
  cudaFree(dev);

  cudaDeviceProp prop{};
  cuda_ok(cudaGetDeviceProperties(&prop, 0));
  std::printf("[ timing ] %s: 1080p I420 -> 224: GPU %.3f ms per frame (upload of %zu bytes %.3f ms + kernels "
              "%.3f ms), host run() %.3f ms\n",
              prop.name, gpu_ms / kRuns, plan.size, copy_ms / kRuns, (gpu_ms - copy_ms) / kRuns, host_ms / kRuns);
  // CPU reference for the same frame, for comparison.
  std::vector<float> cpu(3 * 224 * 224);
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < 5; ++i) ruclip::preprocess(f.view, norm, cpu.data());
  std::printf("[ timing ] CPU ruclip::preprocess: %.3f ms per frame\n",
              std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count() / 5);
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  cudaStreamDestroy(stream);
}
