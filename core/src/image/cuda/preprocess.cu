// ruclip::preprocess (src/preprocess.cpp) on the GPU, bit for bit.
//
// The CPU path is exact integer arithmetic on 8-bit values (fixed-point YUV
// tables, Pillow's fixed-point bilinear or bicubic weights, 8-bit rounding
// after each pass) followed by a table lookup for ToTensor + Normalize. The
// kernels repeat the same integer steps with the same tables and weights,
// computed on the host by the very functions the CPU path uses
// (preprocess_internal.h), so the GPU output equals the CPU output exactly; no
// float tolerance is involved.
//
// One run: validate as the CPU does; pack into a pinned staging buffer the
// weights, the tables and just the part of each plane the passes read (the
// columns and rows the kept outputs need: detail::resample_plan); one
// cudaMemcpyAsync of that buffer (a frame already in CUDA memory: the tables
// uploaded, its boxes copied device to device); a horizontal pass into a planar 8-bit
// [3, rows, R] intermediate; a vertical pass writing the normalized floats
// [3, R, R]. The per-thread work of both passes lives in preprocess_plan.h,
// where a CPU test can run it too, and the host-side layout in
// preprocess_plan.cpp.
#include <cuda_runtime.h>

#include <string>

#include "image/cuda/preprocess_cuda.h"
#include "image/cuda/preprocess_plan.h"
#include "ruclip/error.h"

namespace ruclip {
namespace {

using cuda_detail::KernelArgs;

void check(cudaError_t err, const char* what) {
  if (err != cudaSuccess)
    throw Error(std::string("CUDA preprocessing: ") + what + " failed: " + cudaGetErrorString(err));
}

// Makes `device` current for a scope and restores the caller's device after, so
// using a preprocessor never changes the calling thread's CUDA state.
class DeviceScope {
 public:
  explicit DeviceScope(int device) {
    check(cudaGetDevice(&previous_), "cudaGetDevice");
    if (previous_ != device) check(cudaSetDevice(device), "cudaSetDevice");
  }
  ~DeviceScope() { cudaSetDevice(previous_); }
  DeviceScope(const DeviceScope&) = delete;
  DeviceScope& operator=(const DeviceScope&) = delete;

 private:
  int previous_ = 0;
};

__global__ void horizontal_pass(KernelArgs a, uint8_t* temp) {
  const int xx = blockIdx.x * blockDim.x + threadIdx.x;
  const int r = blockIdx.y * blockDim.y + threadIdx.y;
  if (xx < a.res && r < a.rows) horizontal_one(a, xx, r, temp);
}

// Neighbouring threads read and write neighbouring bytes / floats.
__global__ void vertical_pass(KernelArgs a, const uint8_t* temp, float* out) {
  const int xx = blockIdx.x * blockDim.x + threadIdx.x;
  const int yy = blockIdx.y * blockDim.y + threadIdx.y;
  if (xx < a.res && yy < a.res) vertical_one(a, xx, yy, temp, out);
}

}  // namespace

bool cuda_device_available() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();  // no driver / no device: clear the error, answer no
    return false;
  }
  return count > 0;
}

CudaPreprocessor::CudaPreprocessor(int device) : device_(device) {
  int count = 0;
  check(cudaGetDeviceCount(&count), "cudaGetDeviceCount");
  if (device < 0 || device >= count)
    throw Error("CUDA preprocessing: device " + std::to_string(device) + " does not exist (" +
                std::to_string(count) + " CUDA device(s))");
  DeviceScope scope(device_);
  for (Buffers& b : buffers_) check(cudaEventCreateWithFlags(&b.done, cudaEventDisableTiming), "cudaEventCreate");
}

CudaPreprocessor::~CudaPreprocessor() {
  // No throwing here: errors at teardown are ignored.
  int previous = 0;
  cudaGetDevice(&previous);
  cudaSetDevice(device_);
  for (Buffers& b : buffers_) {
    if (b.done) cudaEventSynchronize(b.done);
    cudaEventDestroy(b.done);
    cudaFreeHost(b.host_staging);
    cudaFree(b.device_staging);
    cudaFree(b.device_temp);
  }
  cudaSetDevice(previous);
}

// Grows one set of buffers; called only once that set's last run is
// finished, so nothing in flight still uses the old ones.
void CudaPreprocessor::reserve(Buffers& b, size_t staging_bytes, size_t temp_bytes) {
  if (staging_bytes > b.staging_capacity) {
    cudaFreeHost(b.host_staging);
    cudaFree(b.device_staging);
    b.host_staging = b.device_staging = nullptr;
    b.staging_capacity = 0;
    check(cudaMallocHost(reinterpret_cast<void**>(&b.host_staging), staging_bytes), "cudaMallocHost");
    check(cudaMalloc(reinterpret_cast<void**>(&b.device_staging), staging_bytes), "cudaMalloc");
    b.staging_capacity = staging_bytes;
  }
  if (temp_bytes > b.temp_capacity) {
    cudaFree(b.device_temp);
    b.device_temp = nullptr;
    b.temp_capacity = 0;
    check(cudaMalloc(reinterpret_cast<void**>(&b.device_temp), temp_bytes), "cudaMalloc");
    b.temp_capacity = temp_bytes;
  }
}

void CudaPreprocessor::run(const FrameView& frame, const Normalization& norm, float* device_out,
                           cudaStream_t stream) {
  using namespace cuda_detail;
  const Plan plan = make_plan(frame, norm);
  if (device_out == nullptr) throw Error("CUDA preprocessing: output buffer is null");
  DeviceScope scope(device_);

  // This set's last run (the one before the previous) may still be copying
  // from its staging buffer or reading its device buffers: wait for it only.
  Buffers& b = buffers_[next_];
  next_ ^= 1;
  check(cudaEventSynchronize(b.done), "waiting for the frame before the previous one");
  const KernelArgs& a = plan.args;
  reserve(b, plan.size, static_cast<size_t>(3) * a.rows * a.res);
  if (frame.memory == FrameMemory::kCuda) {
    // The tables from the host; the plane boxes from the device frame, a
    // copy the driver resolves across contexts (unified addressing).
    fill_tables(plan, frame, norm, b.host_staging);
    check(cudaMemcpyAsync(b.device_staging, b.host_staging, tables_size(plan), cudaMemcpyHostToDevice, stream),
          "cudaMemcpyAsync (tables)");
    for (int i = 0; i < plan.num_boxes; ++i) {
      const Box& box = plan.boxes[i];
      check(cudaMemcpy2DAsync(b.device_staging + box.offset, box.x1 - box.x0, box_source(plan, frame, i),
                              frame.strides[i], box.x1 - box.x0, box.y1 - box.y0, cudaMemcpyDefault, stream),
            "cudaMemcpy2DAsync (frame in CUDA memory)");
    }
  } else {
    fill_staging(plan, frame, norm, b.host_staging);
    check(cudaMemcpyAsync(b.device_staging, b.host_staging, plan.size, cudaMemcpyHostToDevice, stream),
          "cudaMemcpyAsync");
  }

  const KernelArgs args = bind(plan, b.device_staging);
  const dim3 block(32, 8);
  horizontal_pass<<<dim3((a.res + 31) / 32, (a.rows + 7) / 8), block, 0, stream>>>(args, b.device_temp);
  check(cudaGetLastError(), "horizontal pass launch");
  vertical_pass<<<dim3((a.res + 31) / 32, (a.res + 7) / 8), block, 0, stream>>>(args, b.device_temp, device_out);
  check(cudaGetLastError(), "vertical pass launch");
  check(cudaEventRecord(b.done, stream), "cudaEventRecord");
}

}  // namespace ruclip
