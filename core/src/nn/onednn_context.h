// Internal (oneDNN): what the core's oneDNN primitives (linear.cpp,
// attention.cpp) share. Only built with oneDNN (RUCLIP_HAVE_DNNL).
#pragma once
#ifdef RUCLIP_HAVE_DNNL
#include <oneapi/dnnl/dnnl.hpp>

#include <cstddef>

namespace ruclip::detail {

// The CPU engine, made once (after cap_onednn_isa, linear.h).
dnnl::engine& onednn_cpu_engine();

// Scratch memory for one primitive call: the primitives are made with a
// user-managed scratchpad so that concurrent calls never share one (the
// library's own is per primitive); one growing buffer per calling thread.
void* onednn_thread_scratchpad(size_t bytes);

// The threads a oneDNN primitive made or run on this thread now gets: 1
// inside a parallel region (oneDNN runs nested calls on the calling thread
// alone), else LibTorch's thread count. A primitive splits its work for the
// threads it was made for, so the primitive caches are keyed by this too.
int onednn_threads();

}  // namespace ruclip::detail
#endif
