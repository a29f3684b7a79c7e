// ruclipfilter's share of GStreamer's CUDA context.
//
// LibTorch runs a model in its device's primary CUDA context. Producers of
// CUDA memory (nvh264dec, nvh265dec, cudaupload, cudaconvert) ask their
// neighbours for a GstCudaContext (a context query, then a need-context
// message) before making their own; the element answers with one wrapping
// the model's primary context, so frames are allocated in the very context
// the model reads them from. Frames from another context on the same device
// are still read (a copy across contexts); frames on another device are
// refused.
//
// Built with GStreamer's CUDA library (gstreamer-cuda-1.0) where the core has
// its GPU preprocessor (gst-plugin/meson.build); in other builds available()
// is false and every method reports that there is no CUDA context.
//
// Thread rule: every method may be called from any thread (a lock inside).
#pragma once

#include <gst/gst.h>

#include <mutex>
#include <string>

namespace ruclip_gst {

// Where a buffer's memory lives, as far as the model is concerned.
struct CudaPlacement {
  bool cuda_memory = false;   // a GstCudaMemory
  int device = -1;            // its CUDA device
  bool model_context = false; // allocated in the held context (the model's)
};

class CudaContextShare {
public:
  CudaContextShare () = default;
  ~CudaContextShare ();
  CudaContextShare (const CudaContextShare &) = delete;
  CudaContextShare & operator= (const CudaContextShare &) = delete;

  // Whether this build can share a context at all.
  static bool available ();

  // A context the application or a neighbour set (GstElement::set_context):
  // held if none is yet. True where it was a CUDA context and taken.
  bool set_context (GstElement * element, GstContext * context);
  // Answers a neighbour's context query with the held context.
  bool answer_query (GstElement * element, GstQuery * query) const;
  // Holds a context for `device`, the model's: the one set already if it is
  // on that device, else the device's primary context wrapped, announced on
  // the bus (have-context). Returns "" or why there is none.
  std::string share_device (GstElement * element, int device);
  // Drops the held context (the element stopped).
  void reset ();

  CudaPlacement placement (GstMemory * memory) const;

private:
  mutable std::mutex lock_;
  GstObject *context_ = nullptr;  // a GstCudaContext
};

}  // namespace ruclip_gst
