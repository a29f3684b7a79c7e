// Internal (LibTorch): LibTorch's and CUDA's exceptions turned into the one
// error type the core's API throws, with a one-line message (c10::Error's
// what() carries a C++ backtrace users can't act on).
#pragma once
#include <c10/util/Exception.h>

#include <string>
#include <utility>

#include "ruclip/error.h"

namespace ruclip::detail {

// The first line of LibTorch's message, without its backtrace.
inline std::string first_line(const char* message) {
  std::string s(message);
  const size_t end = s.find('\n');
  return end == std::string::npos ? s : s.substr(0, end);
}

// Runs `work`; c10 errors become ruclip::Error naming `what` (e.g. "encoding
// images"), and running out of memory names the batch size (when `batch` > 0),
// the one thing the caller can change.
template <typename Work>
auto with_torch_errors(const std::string& what, int batch, Work&& work) -> decltype(work()) {
  try {
    return std::forward<Work>(work)();
  } catch (const c10::OutOfMemoryError& e) {
    const std::string advice =
        batch > 0 ? " at batch " + std::to_string(batch) + " (use a smaller batch)" : std::string();
    throw Error(what + ": out of device memory" + advice + ": " + first_line(e.what_without_backtrace()));
  } catch (const c10::Error& e) {
    throw Error(what + ": " + first_line(e.what_without_backtrace()));
  }
}

}  // namespace ruclip::detail
