// ruclipfilter's CudaContextShare (gst-plugin/filter/cuda_context.h) where no
// GPU is: it holds no context, answers no query, and says why it has none.
// On a GPU, scripts/gpu-check.sh shows the frames arriving in the shared
// context.
#include <dlfcn.h>
#include <gst/gst.h>
#include <gtest/gtest.h>

#include "cuda_context.h"

GST_DEBUG_CATEGORY (gst_ruclip_filter_debug);

namespace {

bool
cuda_driver_present ()
{
  void *driver = dlopen ("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
  if (driver)
    dlclose (driver);
  return driver != nullptr;
}

struct Element {
  GstElement *element = gst_element_factory_make ("identity", nullptr);
  ~Element () { gst_object_unref (element); }
};

}  // namespace

TEST (CudaContextShare, HoldsNothingUntilShared)
{
  Element e;
  ruclip_gst::CudaContextShare share;
  GstQuery *query = gst_query_new_context ("gst.cuda.context");
  EXPECT_FALSE (share.answer_query (e.element, query));
  gst_query_unref (query);

  GstMemory *host = gst_allocator_alloc (nullptr, 64, nullptr);
  const ruclip_gst::CudaPlacement p = share.placement (host);
  EXPECT_FALSE (p.cuda_memory);
  EXPECT_EQ (p.device, -1);
  EXPECT_FALSE (p.model_context);
  gst_memory_unref (host);
}

TEST (CudaContextShare, TakesOnlyCudaContexts)
{
  Element e;
  ruclip_gst::CudaContextShare share;
  GstContext *gl = gst_context_new ("gst.gl.GLDisplay", TRUE);
  EXPECT_FALSE (share.set_context (e.element, gl));
  gst_context_unref (gl);
  // A CUDA context without its GstCudaContext inside is not taken either.
  GstContext *empty = gst_context_new ("gst.cuda.context", TRUE);
  EXPECT_FALSE (share.set_context (e.element, empty));
  gst_context_unref (empty);
  GstQuery *query = gst_query_new_context ("gst.cuda.context");
  EXPECT_FALSE (share.answer_query (e.element, query));
  gst_query_unref (query);
}

TEST (CudaContextShare, SaysWhyThereIsNoContextWithoutADriver)
{
  if (cuda_driver_present ())
    GTEST_SKIP () << "a CUDA driver is here: scripts/gpu-check.sh checks the shared context";
  Element e;
  ruclip_gst::CudaContextShare share;
  const std::string why = share.share_device (e.element, 0);
  if (ruclip_gst::CudaContextShare::available ())
    EXPECT_EQ (why, "GStreamer's CUDA library could not load the CUDA driver");
  else
    EXPECT_EQ (why, "this build has no GStreamer CUDA library");
  GstQuery *query = gst_query_new_context ("gst.cuda.context");
  EXPECT_FALSE (share.answer_query (e.element, query));
  gst_query_unref (query);
}

int
main (int argc, char **argv)
{
  gst_init (&argc, &argv);
  GST_DEBUG_CATEGORY_INIT (gst_ruclip_filter_debug, "ruclipfilter", 0, "test");
  testing::InitGoogleTest (&argc, argv);
  return RUN_ALL_TESTS ();
}
