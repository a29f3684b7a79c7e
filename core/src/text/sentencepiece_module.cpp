// The only code that touches libsentencepiece, built as a loadable module.
//
// Why a module: Debian 12's libsentencepiece.so.0 carries its own copy of
// protobuf-lite 3.14 and exports it, while LibTorch links the system
// libprotobuf 3.21. Linked into one program, the two interpose each other's
// symbols and the process crashes while loading. Opened with RTLD_LOCAL |
// RTLD_DEEPBIND (sentencepiece_tokenizer.cpp), each keeps its own.
// Only a C interface crosses the boundary; memory and exceptions never do.
#include <sentencepiece_processor.h>

#include <cstring>
#include <exception>
#include <memory>
#include <string>
#include <vector>

namespace {
void set_error(char* error, size_t size, const std::string& message) {
  if (!error || size == 0) return;
  std::strncpy(error, message.c_str(), size - 1);
  error[size - 1] = '\0';
}

// libsentencepiece can throw: its protobuf's version check does when the
// module was opened without RTLD_DEEPBIND (AddressSanitizer builds) and so
// calls LibTorch's protobuf. At the C boundary an exception becomes `error`
// and the `failed` value, without leaking.
template <typename T, typename F>
T without_exceptions(char* error, size_t error_size, T failed, F&& f) {
  try {
    return f();
  } catch (const std::exception& e) {
    set_error(error, error_size, e.what());
  } catch (...) {
    set_error(error, error_size, "unknown exception in libsentencepiece");
  }
  return failed;
}
}  // namespace

extern "C" {

__attribute__((visibility("default"))) void* ruclip_spm_open(const char* path, char* error, size_t error_size) {
  return without_exceptions<void*>(error, error_size, nullptr, [&]() -> void* {
    auto processor = std::make_unique<sentencepiece::SentencePieceProcessor>();
    const auto status = processor->Load(path);
    if (!status.ok()) {
      set_error(error, error_size, status.ToString());
      return nullptr;
    }
    return processor.release();
  });
}

__attribute__((visibility("default"))) int ruclip_spm_piece_size(void* handle) {
  return static_cast<sentencepiece::SentencePieceProcessor*>(handle)->GetPieceSize();
}

// Number of ids the text encodes to (only the first `capacity` are written),
// or -1 with `error` set.
__attribute__((visibility("default"))) long ruclip_spm_encode(void* handle, const char* text, size_t length, int* ids,
                                                              size_t capacity, char* error, size_t error_size) {
  return without_exceptions<long>(error, error_size, -1, [&]() -> long {
    std::vector<int> out;
    const auto status =
        static_cast<sentencepiece::SentencePieceProcessor*>(handle)->Encode(std::string(text, length), &out);
    if (!status.ok()) {
      set_error(error, error_size, status.ToString());
      return -1;
    }
    for (size_t i = 0; i < out.size() && i < capacity; ++i) ids[i] = out[i];
    return static_cast<long>(out.size());
  });
}

__attribute__((visibility("default"))) void ruclip_spm_close(void* handle) {
  delete static_cast<sentencepiece::SentencePieceProcessor*>(handle);
}

}  // extern "C"
