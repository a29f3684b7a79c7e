// SentencePiece backend: libsentencepiece does the encoding, inside the
// ruclip-sentencepiece module (see sentencepiece_module.cpp for why it is a
// module); this adapts it to the Tokenizer interface and to ruclip::Error.
#include <dlfcn.h>

#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <string>
#include <system_error>

#include "ruclip/error.h"
#include "ruclip/tokenizer.h"

namespace ruclip {
namespace {

// RTLD_LOCAL keeps libsentencepiece's protobuf out of everyone else's way;
// RTLD_DEEPBIND makes libsentencepiece call its own protobuf rather than
// LibTorch's. AddressSanitizer refuses RTLD_DEEPBIND; there the module still
// loads and fails cleanly in a process that has LibTorch's protobuf.
#if defined(__SANITIZE_ADDRESS__)  // gcc
#define RUCLIP_ASAN 1
#elif defined(__has_feature)  // clang
#if __has_feature(address_sanitizer)
#define RUCLIP_ASAN 1
#endif
#endif
#ifdef RUCLIP_ASAN
constexpr int kOpenFlags = RTLD_NOW | RTLD_LOCAL;
#else
constexpr int kOpenFlags = RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND;
#endif

struct SentencePieceModule {
  void* (*open)(const char*, char*, size_t) = nullptr;
  int (*piece_size)(void*) = nullptr;
  long (*encode)(void*, const char*, size_t, int*, size_t, char*, size_t) = nullptr;
  void (*close)(void*) = nullptr;
};

// Opens the module once: $RUCLIP_SENTENCEPIECE_MODULE, else next to the build
// tree's core library, else where `meson install` puts it.
const SentencePieceModule& module() {
  static SentencePieceModule m;
  static std::string failure;
  static std::once_flag once;
  std::call_once(once, [] {
    std::vector<std::string> candidates;
    if (const char* env = std::getenv("RUCLIP_SENTENCEPIECE_MODULE"); env && *env) candidates.push_back(env);
    candidates.push_back(RUCLIP_SENTENCEPIECE_MODULE_BUILD);
    candidates.push_back(RUCLIP_SENTENCEPIECE_MODULE_INSTALLED);
    void* handle = nullptr;
    for (const auto& path : candidates) {
      if (!std::filesystem::exists(path)) continue;
      handle = dlopen(path.c_str(), kOpenFlags);
      if (handle) break;
      failure += std::string(" ") + dlerror();
    }
    if (!handle) {
      failure = "cannot load the SentencePiece module (looked for " + candidates.back() + ")" + failure;
      return;
    }
    m.open = reinterpret_cast<decltype(m.open)>(dlsym(handle, "ruclip_spm_open"));
    m.piece_size = reinterpret_cast<decltype(m.piece_size)>(dlsym(handle, "ruclip_spm_piece_size"));
    m.encode = reinterpret_cast<decltype(m.encode)>(dlsym(handle, "ruclip_spm_encode"));
    m.close = reinterpret_cast<decltype(m.close)>(dlsym(handle, "ruclip_spm_close"));
    if (!m.open || !m.piece_size || !m.encode || !m.close) {
      failure = "the SentencePiece module lacks its functions";
      m = SentencePieceModule{};
    }
  });
  if (!m.open) throw Error(failure);
  return m;
}

class SentencePieceTokenizer : public Tokenizer {
 public:
  explicit SentencePieceTokenizer(const std::string& path) : path_(path) {
    // Load() reports a missing file and a file that is not a model alike;
    // naming the common cases first gives a clearer message.
    std::error_code ec;
    if (!std::filesystem::exists(path, ec))
      throw Error(path + ": cannot open the SentencePiece model (no such file)");
    if (std::filesystem::is_directory(path, ec))
      throw Error(path + ": is a directory, expected a SentencePiece model file");
    char error[512] = "";
    handle_ = module().open(path.c_str(), error, sizeof error);
    if (!handle_) throw Error(path + ": cannot load the SentencePiece model (" + error + ")");
    vocab_size_ = module().piece_size(handle_);
    if (vocab_size_ <= 0) {
      module().close(handle_);
      throw Error(path + ": the SentencePiece model has no pieces");
    }
  }
  ~SentencePieceTokenizer() override { module().close(handle_); }
  SentencePieceTokenizer(const SentencePieceTokenizer&) = delete;
  SentencePieceTokenizer& operator=(const SentencePieceTokenizer&) = delete;

  std::vector<int> encode(std::string_view utf8) const override {
    // SentencePiece would silently replace invalid bytes; the interface
    // promises an error instead, the same as the YouTokenToMe backend.
    decode_utf8(utf8);
    std::vector<int> ids(utf8.size() + 8);
    char error[512] = "";
    for (;;) {
      const long n = module().encode(handle_, utf8.data(), utf8.size(), ids.data(), ids.size(), error, sizeof error);
      if (n < 0) throw Error(path_ + ": SentencePiece failed to encode text (" + error + ")");
      if (static_cast<size_t>(n) <= ids.size()) {
        ids.resize(n);
        return ids;
      }
      ids.resize(n);
    }
  }

  int vocab_size() const override { return vocab_size_; }

 private:
  std::string path_;
  void* handle_ = nullptr;
  int vocab_size_ = 0;
};

}  // namespace

std::unique_ptr<Tokenizer> load_sentencepiece_tokenizer(const std::string& path) {
  return std::make_unique<SentencePieceTokenizer>(path);
}

}  // namespace ruclip
