// SentencePiece backend: libsentencepiece does the encoding, inside the
// ruclip-sentencepiece module (see sentencepiece_module.cpp for why it is a
// module); this adapts it to the Tokenizer interface and to ruclip::Error.
#include <dlfcn.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>
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

// True when this code runs from the build folder (a test, the build's ruclip
// or plugin), false in an installed program or plugin.
bool in_build_tree() {
  Dl_info info{};
  if (!dladdr(reinterpret_cast<void*>(&in_build_tree), &info) || !info.dli_fname) return false;
  // In a program (not a shared library) glibc names the main executable by
  // its argv[0], which may be a bare name found on PATH: use its real path.
  std::string self = info.dli_fname;
  if (self.find('/') == std::string::npos || self == program_invocation_name) self = "/proc/self/exe";
  std::error_code ec;
  const std::filesystem::path path = std::filesystem::canonical(self, ec);
  if (ec) return false;
  const std::filesystem::path root = std::filesystem::weakly_canonical(RUCLIP_BUILD_ROOT, ec);
  return !ec && !root.empty() && path.string().rfind(root.string() + "/", 0) == 0;
}

// Opens the module once: $RUCLIP_SENTENCEPIECE_MODULE, else the build
// folder's for code running from there, else where `meson install` put it.
const SentencePieceModule& module() {
  static SentencePieceModule m;
  static std::string failure;
  static std::once_flag once;
  std::call_once(once, [] {
    std::vector<std::string> candidates;
    if (const char* env = std::getenv("RUCLIP_SENTENCEPIECE_MODULE"); env && *env) candidates.push_back(env);
    // The build's module for code running from the build folder, the installed one otherwise; the
    // other after it, for a program copied out of its build folder.
    const bool build = in_build_tree();
    candidates.push_back(build ? RUCLIP_SENTENCEPIECE_MODULE_BUILD : RUCLIP_SENTENCEPIECE_MODULE_INSTALLED);
    candidates.push_back(build ? RUCLIP_SENTENCEPIECE_MODULE_INSTALLED : RUCLIP_SENTENCEPIECE_MODULE_BUILD);
    void* handle = nullptr;
    for (const auto& path : candidates) {
      if (!std::filesystem::exists(path)) continue;
      handle = dlopen(path.c_str(), kOpenFlags);
      if (handle) break;
      failure += std::string(" ") + dlerror();
    }
    if (!handle) {
      failure = "cannot load the SentencePiece module (looked for " + candidates[candidates.size() - 2] + ")" + failure;
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


// ---- A check libsentencepiece does not make ---------------------------------
//
// A model's normalizer carries a precompiled character map: a Darts
// double-array trie whose leaves are offsets into a blob of NUL-terminated
// replacement strings. libsentencepiece (0.1.97) follows trie transitions and
// offsets without bounds checks, so a crafted map reads freed or foreign
// memory (found by tests/fuzz/fuzz_sentencepiece). Before the model is handed
// to it, every transition and leaf of every such map is checked here.

// Protobuf wire format, just enough to find the maps: ModelProto field 3
// (normalizer_spec) and 5 (denormalizer_spec), NormalizerSpec field 2.
bool read_varint(std::string_view& in, uint64_t* value) {
  *value = 0;
  for (int shift = 0; shift < 64 && !in.empty(); shift += 7) {
    const uint8_t byte = static_cast<uint8_t>(in.front());
    in.remove_prefix(1);
    *value |= uint64_t(byte & 0x7f) << shift;
    if (byte < 0x80) return true;
  }
  return false;
}

// Calls `visit(field, bytes)` for each length-delimited field of `message`;
// false when the message is not well-formed.
template <typename Visit>
bool for_each_bytes_field(std::string_view message, Visit&& visit) {
  while (!message.empty()) {
    uint64_t key, value;
    if (!read_varint(message, &key)) return false;
    switch (key & 7) {
      case 0:
        if (!read_varint(message, &value)) return false;
        break;
      case 1:
        if (message.size() < 8) return false;
        message.remove_prefix(8);
        break;
      case 5:
        if (message.size() < 4) return false;
        message.remove_prefix(4);
        break;
      case 2:
        if (!read_varint(message, &value) || value > message.size()) return false;
        visit(key >> 3, message.substr(0, value));
        message.remove_prefix(value);
        break;
      default:
        return false;
    }
  }
  return true;
}

uint32_t load_le32(const char* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;  // little-endian machines only, like the format itself
}

// "" when `map` is safe to hand to libsentencepiece, else the reason.
std::string check_charsmap(std::string_view map) {
  if (map.empty()) return "";  // the builtin rules are used
  if (map.size() < 4) return "precompiled_charsmap shorter than its header";
  const uint32_t trie_size = load_le32(map.data());
  if (trie_size >= map.size() - 4 + 1 || trie_size % 4 != 0 || trie_size == 0)
    return "precompiled_charsmap trie size " + std::to_string(trie_size) + " does not fit";
  const char* trie = map.data() + 4;
  const size_t units = trie_size / 4;
  const std::string_view strings = map.substr(4 + trie_size);
  auto unit = [&](size_t i) { return load_le32(trie + 4 * i); };
  auto offset = [](uint32_t u) -> size_t { return (u >> 10) << ((u & (1u << 9)) >> 6); };
  auto has_leaf = [](uint32_t u) { return (u >> 8) & 1; };
  auto label = [](uint32_t u) { return u & ((1u << 31) | 0xff); };

  // Walk every node reachable from the root, as Darts' prefix search would.
  std::vector<bool> seen(units, false);
  std::vector<size_t> todo = {0};
  seen[0] = true;
  while (!todo.empty()) {
    const size_t node = todo.back();
    todo.pop_back();
    const size_t base = node ^ offset(unit(node));
    for (uint32_t c = 0; c < 256; ++c) {
      const size_t child = base ^ c;
      if (child >= units) return "precompiled_charsmap trie reaches outside itself";
      const uint32_t u = unit(child);
      if (label(u) != c) continue;
      if (has_leaf(u)) {
        const size_t leaf = child ^ offset(u);
        if (leaf >= units) return "precompiled_charsmap leaf outside the trie";
        const uint32_t value = unit(leaf) & ((1u << 31) - 1);
        if (value >= strings.size() || strings.find('\0', value) == std::string_view::npos)
          return "precompiled_charsmap points outside its strings";
      }
      if (!seen[child]) {
        seen[child] = true;
        todo.push_back(child);
      }
    }
  }
  return "";
}

void check_model_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream bytes;
  bytes << in.rdbuf();
  const std::string model = bytes.str();
  std::string problem;
  const bool ok = for_each_bytes_field(model, [&](uint64_t field, std::string_view spec) {
    if (field != 3 && field != 5) return;  // normalizer_spec, denormalizer_spec
    if (!for_each_bytes_field(spec, [&](uint64_t f, std::string_view map) {
          if (f == 2 && problem.empty()) problem = check_charsmap(map);
        }))
      problem = "malformed normalizer spec";
  });
  if (!ok) problem = "not a SentencePiece model (malformed protobuf)";
  if (!problem.empty()) throw Error(path + ": cannot load the SentencePiece model (" + problem + ")");
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
    check_model_file(path);
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
