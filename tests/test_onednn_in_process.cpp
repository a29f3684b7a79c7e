// The direct oneDNN kernels (core/src/nn/linear.h) call Debian's libdnnl.so.2.
// A LibTorch from PyPI carries its own oneDNN inside libtorch_cpu.so. Both can
// share a process only if that copy is hidden: every dnnl_* call of ours must
// bind to libdnnl.so.2, and each library must compute right with the other
// loaded. This test checks both, in the process of whichever LibTorch the
// build uses (Debian's links that very libdnnl.so.2; the pip one does not).
#include <dlfcn.h>
#include <gtest/gtest.h>
#include <link.h>
#include <torch/torch.h>

#include <string>
#include <vector>

#include "nn/linear.h"

namespace {

using ruclip::detail::Linear;
using ruclip::detail::LinearKernel;
using ruclip::detail::onednn_available;

std::string library_of(const void* address) {
  Dl_info info{};
  return dladdr(address, &info) && info.dli_fname ? info.dli_fname : "";
}

// The loaded objects whose dynamic symbol tables export `name`.
std::vector<std::string> exporters(const char* name) {
  struct Search {
    const char* name;
    std::vector<std::string> found;
  } search{name, {}};
  dl_iterate_phdr(
      [](dl_phdr_info* info, size_t, void* data) {
        auto* s = static_cast<Search*>(data);
        void* handle = dlopen(info->dlpi_name[0] ? info->dlpi_name : nullptr, RTLD_LAZY | RTLD_NOLOAD);
        if (handle) {
          if (void* sym = dlsym(handle, s->name); sym && library_of(sym) == std::string(info->dlpi_name))
            s->found.push_back(info->dlpi_name);
          dlclose(handle);
        }
        return 0;
      },
      &search);
  return search.found;
}

TEST(OneDnnInProcess, OurCallsBindToDebiansLibdnnl) {
  if (!onednn_available()) GTEST_SKIP() << "built without oneDNN: the linear layers run on LibTorch";
  // Only libdnnl.so.2 exports the C API: LibTorch's own copy, if it has one, is hidden.
  const std::vector<std::string> found = exporters("dnnl_primitive_execute");
  ASSERT_EQ(found.size(), 1u) << "dnnl_primitive_execute exported by " << found.size() << " objects";
  EXPECT_NE(found[0].find("libdnnl.so"), std::string::npos) << found[0];
  for (const char* torch_lib : {"libtorch_cpu.so"}) {
    void* handle = dlopen(torch_lib, RTLD_LAZY | RTLD_NOLOAD);
    ASSERT_NE(handle, nullptr) << torch_lib << " is not loaded";
    void* sym = dlsym(handle, "dnnl_primitive_execute");
    // Debian's libtorch_cpu.so links libdnnl.so.2, so dlsym through it finds that one.
    if (sym) {
      EXPECT_NE(library_of(sym).find("libdnnl.so"), std::string::npos) << library_of(sym);
    }
    dlclose(handle);
  }
}

TEST(OneDnnInProcess, BothLibrariesComputeRightTogether) {
  if (!onednn_available()) GTEST_SKIP() << "built without oneDNN: the linear layers run on LibTorch";
  torch::manual_seed(7);
  const torch::Tensor x = torch::randn({5, 64}), w = torch::randn({48, 64}), b = torch::randn({48});
  const torch::Tensor expected = torch::matmul(x.to(torch::kFloat64), w.to(torch::kFloat64).t()) + b.to(torch::kFloat64);
  // Ours, on libdnnl.so.2 ...
  const Linear ours(w, b, LinearKernel::kOneDnnF32);
  EXPECT_TRUE(torch::allclose(ours.forward(x).to(torch::kFloat64), expected, 1e-4, 1e-4));
  // ... and LibTorch's convolution, which runs on its oneDNN (mkldnn) when
  // built with it, on the same numbers: a 1x1 convolution is the same product.
  const torch::Tensor conv = torch::conv2d(x.t().reshape({1, 64, 5, 1}), w.reshape({48, 64, 1, 1}), b);
  EXPECT_TRUE(torch::allclose(conv.reshape({48, 5}).t().to(torch::kFloat64), expected, 1e-4, 1e-4));
  // Ours again, after LibTorch's oneDNN ran.
  EXPECT_TRUE(torch::allclose(ours.forward(x).to(torch::kFloat64), expected, 1e-4, 1e-4));
}

}  // namespace
