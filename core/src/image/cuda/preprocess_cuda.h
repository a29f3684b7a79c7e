// ruclip::preprocess on a CUDA device: the same crop, Pillow-exact
// antialiased resize (either ResizeMode) and normalization, written as planar float [3, R, R] into
// device memory, so a frame goes to the model without a host round trip of the
// floats. Internal API: LibTorch-free, needs only the CUDA runtime. Built when
// meson finds nvcc (option `cuda`); users then see RUCLIP_HAVE_CUDA_PREPROCESS=1.
#pragma once
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "ruclip/image.h"

namespace ruclip {

// True when the CUDA runtime sees at least one usable device (false, never an
// error, without a driver or GPU).
bool cuda_device_available();

// Holds reusable pinned-host and device buffers for one device, two sets
// used in turn, so that staging a frame overlaps the GPU work of the one
// before it; not thread-safe (one per streaming thread, or a lock). Errors
// are ruclip::Error naming the failed CUDA call and cudaGetErrorString.
class CudaPreprocessor {
 public:
  explicit CudaPreprocessor(int device = 0);
  ~CudaPreprocessor();
  CudaPreprocessor(const CudaPreprocessor&) = delete;
  CudaPreprocessor& operator=(const CudaPreprocessor&) = delete;

  // Enqueues on `stream`: the copy of the frame pixels read (a host frame's
  // are packed with the precomputed weights and tables into one host-to-device
  // copy; a frame in CUDA memory, FrameMemory::kCuda, on this device, is
  // copied device to device, only the tables coming from the host) and two
  // resampling kernels that write 3 x R x R floats to `device_out` (on this
  // preprocessor's device), equal to ruclip::preprocess(frame, norm, ...) on
  // the CPU. Returns once the frame is staged: the caller may reuse a host
  // frame's memory at once; the output (and the end of the reads of a device
  // frame) is ready when `stream` reaches this point. Waits only for the GPU
  // work of the run before the previous one, whose buffers it reuses.
  void run(const FrameView& frame, const Normalization& norm, float* device_out, cudaStream_t stream);

  int device() const { return device_; }

 private:
  struct Buffers {
    cudaEvent_t done = nullptr;        // recorded after the last kernel of a run using them
    uint8_t* host_staging = nullptr;   // pinned: the upload is truly asynchronous
    uint8_t* device_staging = nullptr;
    size_t staging_capacity = 0;
    uint8_t* device_temp = nullptr;    // horizontal pass result, planar 8-bit RGB
    size_t temp_capacity = 0;
  };
  void reserve(Buffers& b, size_t staging_bytes, size_t temp_bytes);

  int device_;
  Buffers buffers_[2];
  int next_ = 0;  // the set the next run uses
};

}  // namespace ruclip
