// LibTorch's exceptions reach callers as ruclip::Error with one line
// (core/src/runtime/torch_errors.h): a real shape error from an op, and an
// out-of-memory error as CUDA's caching allocator raises it.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <functional>
#include <string>

#include "runtime/torch_errors.h"

namespace {

using ruclip::detail::with_torch_errors;

std::string message_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const ruclip::Error& e) {
    return e.what();
  } catch (const std::exception& e) {
    return std::string("not a ruclip::Error: ") + e.what();
  }
  return "nothing thrown";
}

TEST(TorchErrors, OpErrorIsOneLineNamingTheWork) {
  const std::string m = message_of([] {
    with_torch_errors("encoding images", 4, [] { return torch::matmul(torch::ones({2, 3}), torch::ones({4, 5})); });
  });
  EXPECT_EQ(m.rfind("encoding images: ", 0), 0u) << m;
  EXPECT_NE(m.find("cannot be multiplied"), std::string::npos) << m;
  EXPECT_EQ(m.find('\n'), std::string::npos) << m;
  EXPECT_EQ(m.find("out of device memory"), std::string::npos) << m;
}

TEST(TorchErrors, OutOfMemoryNamesTheBatch) {
  const std::string m = message_of([] {
    with_torch_errors("encoding frames", 256, [] {
      TORCH_CHECK_WITH(OutOfMemoryError, false, "CUDA out of memory. Tried to allocate 2.00 GiB");
      return 0;
    });
  });
  EXPECT_EQ(m.rfind("encoding frames: out of device memory at batch 256 (use a smaller batch): CUDA out of memory.", 0), 0u)
      << m;
  EXPECT_EQ(m.find('\n'), std::string::npos) << m;
}

TEST(TorchErrors, ResultAndOtherExceptionsPassThrough) {
  EXPECT_EQ(with_torch_errors("adding", 1, [] { return 2 + 3; }), 5);
  EXPECT_THROW(with_torch_errors("reading", 1, []() -> int { throw std::out_of_range("x"); }), std::out_of_range);
}

}  // namespace
