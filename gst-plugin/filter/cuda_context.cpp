#include "cuda_context.h"

#ifdef RUCLIP_GST_CUDA
#define GST_USE_UNSTABLE_API  // gst-plugins-bad's CUDA library
#include <dlfcn.h>
#include <gst/cuda/gstcudacontext.h>
#include <gst/cuda/gstcudaloader.h>
#include <gst/cuda/gstcudamemory.h>
#include <gst/cuda/gstcudautils.h>

#include <map>
#endif

GST_DEBUG_CATEGORY_EXTERN (gst_ruclip_filter_debug);
#define GST_CAT_DEFAULT gst_ruclip_filter_debug

namespace ruclip_gst {

CudaContextShare::~CudaContextShare ()
{
  reset ();
}

void
CudaContextShare::reset ()
{
  std::lock_guard<std::mutex> guard (lock_);
  gst_clear_object (&context_);
}

#ifdef RUCLIP_GST_CUDA

bool
CudaContextShare::available ()
{
  return true;
}

namespace {

int
device_of (GstObject * context)
{
  guint id = 0;
  g_object_get (context, "cuda-device-id", &id, NULL);
  return (int) id;
}

// The device's primary context, retained once for the process: LibTorch's
// runtime holds it as long, and wrapped contexts handed to other elements
// may outlive this element. The driver is the one LibTorch loaded.
CUcontext
primary_context (int device, CUdevice * handle, std::string * why)
{
  static std::mutex lock;
  static std::map<int, std::pair<CUcontext, CUdevice>> retained;
  std::lock_guard<std::mutex> guard (lock);
  const auto found = retained.find (device);
  if (found != retained.end ()) {
    *handle = found->second.second;
    return found->second.first;
  }
  void *driver = dlopen ("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
  if (!driver) {
    *why = std::string ("no CUDA driver: ") + dlerror ();
    return nullptr;
  }
  using DeviceGet = CUresult (*) (CUdevice *, int);
  using Retain = CUresult (*) (CUcontext *, CUdevice);
  auto device_get = reinterpret_cast<DeviceGet> (dlsym (driver, "cuDeviceGet"));
  auto retain = reinterpret_cast<Retain> (dlsym (driver, "cuDevicePrimaryCtxRetain"));
  CUdevice dev = 0;
  CUcontext context = nullptr;
  CUresult status = CUDA_ERROR_NOT_FOUND;
  if (!device_get || !retain || (status = device_get (&dev, device)) != CUDA_SUCCESS ||
      (status = retain (&context, dev)) != CUDA_SUCCESS) {
    *why = "the primary context of CUDA device " + std::to_string (device) + " could not be retained (CUresult " +
        std::to_string ((int) status) + ")";
    return nullptr;
  }
  retained[device] = {context, dev};
  *handle = dev;
  return context;
}

}  // namespace

bool
CudaContextShare::set_context (GstElement * element, GstContext * context)
{
  std::lock_guard<std::mutex> guard (lock_);
  if (context_)
    return false;
  GstCudaContext *cuda = nullptr;
  if (!gst_cuda_handle_set_context (element, context, -1, &cuda) || !cuda)
    return false;
  context_ = GST_OBJECT (cuda);
  GST_INFO_OBJECT (element, "using the CUDA context set on it (device %d)", device_of (context_));
  return true;
}

bool
CudaContextShare::answer_query (GstElement * element, GstQuery * query) const
{
  std::lock_guard<std::mutex> guard (lock_);
  return context_ && gst_cuda_handle_context_query (element, query, GST_CUDA_CONTEXT (context_));
}

std::string
CudaContextShare::share_device (GstElement * element, int device)
{
  std::lock_guard<std::mutex> guard (lock_);
  if (context_) {
    const int held = device_of (context_);
    if (held == device)
      return "";
    return "the CUDA context set on the element is on device " + std::to_string (held) + ", the model on " +
        std::to_string (device);
  }
  if (!gst_cuda_load_library ())
    return "GStreamer's CUDA library could not load the CUDA driver";
  std::string why;
  CUdevice handle = 0;
  CUcontext primary = primary_context (device, &handle, &why);
  if (!primary)
    return why;
  GstCudaContext *wrapped = gst_cuda_context_new_wrapped (primary, handle);
  if (!wrapped)
    return "GStreamer could not wrap the primary context of CUDA device " + std::to_string (device);
  context_ = GST_OBJECT (wrapped);
  GST_INFO_OBJECT (element, "offering the model's CUDA context (device %d) to its neighbours", device);
  GstContext *announced = gst_context_new_cuda_context (wrapped);
  gst_element_post_message (element, gst_message_new_have_context (GST_OBJECT (element), announced));
  return "";
}

CudaPlacement
CudaContextShare::placement (GstMemory * memory) const
{
  CudaPlacement p;
  if (!memory || !gst_is_cuda_memory (memory))
    return p;
  GstCudaContext *context = GST_CUDA_MEMORY_CAST (memory)->context;
  p.cuda_memory = true;
  p.device = device_of (GST_OBJECT (context));
  std::lock_guard<std::mutex> guard (lock_);
  // Another GstCudaContext may wrap the same CUcontext: compare the handles.
  p.model_context = context_ &&
      gst_cuda_context_get_handle (context) == gst_cuda_context_get_handle (GST_CUDA_CONTEXT (context_));
  return p;
}

#else  // no GStreamer CUDA library in this build

bool
CudaContextShare::available ()
{
  return false;
}

bool
CudaContextShare::set_context (GstElement *, GstContext *)
{
  return false;
}

bool
CudaContextShare::answer_query (GstElement *, GstQuery *) const
{
  return false;
}

std::string
CudaContextShare::share_device (GstElement *, int)
{
  return "this build has no GStreamer CUDA library";
}

CudaPlacement
CudaContextShare::placement (GstMemory *) const
{
  return {};
}

#endif

}  // namespace ruclip_gst
