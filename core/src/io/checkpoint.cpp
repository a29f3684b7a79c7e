// Reading torch.save checkpoints without LibTorch and without running Python.
//
// A pytorch_model.bin is a zip archive: <archive>/data.pkl is a pickle of the
// state dict in which every tensor refers, by key, to a raw little-endian
// storage <archive>/data/<key>. data.pkl goes through a restricted unpickler
// that executes nothing (checkpoint_pickle.cpp); every tensor view is then
// checked against the bytes its storage really has (checkpoint_tensor.cpp).
// This file: the zip archive (libzip), the assembly of the state dict, and
// telling the zip format from torch's legacy one (checkpoint_legacy.cpp) by
// the file's first bytes.
#include "ruclip/checkpoint.h"

#include <libdeflate.h>
#include <zip.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "io/checkpoint_internal.h"
#include "io/checkpoint_pickle.h"
#include "ruclip/error.h"

namespace ruclip {
namespace {

using detail::fail;
using detail::Kind;
using detail::kind_name;
using detail::printable;
using detail::Value;
using detail::view_problem;

// Limits: a real checkpoint stays far below them.
constexpr uint64_t kMaxPickleBytes = 256ull << 20;  // size of data.pkl
// Deflate cannot expand data by more than about 1032:1, so an entry declaring
// a larger ratio lies about its size (the zip bomb trick).
constexpr uint64_t kMaxDeflateRatio = 1032;

// ---------------------------------------------------------------------------
// The zip archive.

std::string zip_error_text(int code) {
  zip_error_t error;
  zip_error_init_with_code(&error, code);
  std::string text = zip_error_strerror(&error);
  zip_error_fini(&error);
  return text;
}

// Why libzip could not open an archive. A file that starts like a zip (a
// local header signature) but has no usable central directory was most
// likely cut short or damaged, which is worth saying instead of "not a zip".
std::string open_failure(int code, bool starts_like_zip) {
  const std::string detail = " (libzip: " + zip_error_text(code) + ")";
  if (code == ZIP_ER_INCONS || (code == ZIP_ER_NOZIP && starts_like_zip))
    return "truncated or corrupted zip archive" + detail;
  if (code == ZIP_ER_NOZIP) return "not a zip archive nor a legacy torch.save file" + detail;
  return "cannot open as a zip archive" + detail;
}

bool starts_like_zip(const uint8_t* data, size_t size) {
  return size >= 4 && std::memcmp(data, "PK\x03\x04", 4) == 0;
}

class ZipReader {
 public:
  // Takes ownership of an open archive of `archive_bytes` bytes.
  ZipReader(zip_t* archive, uint64_t archive_bytes, std::string origin)
      : zip_(archive), archive_bytes_(archive_bytes), origin_(std::move(origin)) {}
  ~ZipReader() { zip_discard(zip_); }
  ZipReader(const ZipReader&) = delete;
  ZipReader& operator=(const ZipReader&) = delete;

  std::vector<std::string> names() const {
    std::vector<std::string> out;
    const zip_int64_t count = zip_get_num_entries(zip_, 0);
    for (zip_int64_t i = 0; i < count; ++i) {
      const char* name = zip_get_name(zip_, static_cast<zip_uint64_t>(i), ZIP_FL_ENC_RAW);
      if (name) out.emplace_back(name);
    }
    return out;
  }

  bool has(const std::string& name) const { return zip_name_locate(zip_, name.c_str(), ZIP_FL_ENC_RAW) >= 0; }

  // An entry as its directory describes it, once its sizes are plausible:
  // refused before anything is allocated when they could not come from the
  // bytes the archive holds.
  struct Entry {
    std::string label;  // "entry 'NAME' ", for messages
    zip_uint64_t index = 0;
    uint64_t size = 0;
    bool stored = false;  // uncompressed
    uint32_t crc = 0;
    bool has_crc = false;
  };
  Entry checked_entry(const std::string& name) const {
    zip_stat_t st;
    zip_stat_init(&st);
    if (zip_stat(zip_, name.c_str(), ZIP_FL_ENC_RAW, &st) != 0) fail(origin_, "no entry '" + printable(name) + "'");
    const zip_uint64_t need = ZIP_STAT_INDEX | ZIP_STAT_SIZE | ZIP_STAT_COMP_SIZE | ZIP_STAT_COMP_METHOD;
    if ((st.valid & need) != need) fail(origin_, "entry '" + printable(name) + "' has no size information");
    Entry e;
    e.label = "entry '" + printable(name) + "' ";
    e.index = st.index;
    e.size = st.size;
    e.stored = st.comp_method == ZIP_CM_STORE;
    e.has_crc = st.valid & ZIP_STAT_CRC;
    e.crc = st.crc;
    if (st.comp_size > archive_bytes_)
      fail(origin_, e.label + "claims " + std::to_string(st.comp_size) + " compressed bytes, the archive has " +
                        std::to_string(archive_bytes_));
    if (e.stored) {
      if (st.size != st.comp_size)
        fail(origin_, e.label + "is stored uncompressed but declares " + std::to_string(st.size) + " bytes from " +
                          std::to_string(st.comp_size));
    } else if (st.comp_method == ZIP_CM_DEFLATE) {
      if (st.size / kMaxDeflateRatio > st.comp_size + 1)
        fail(origin_, e.label + "declares " + std::to_string(st.size) + " bytes from " + std::to_string(st.comp_size) +
                          " compressed: more than deflate can expand (zip bomb?)");
    } else {
      fail(origin_, e.label + "uses unsupported compression method " + std::to_string(st.comp_method));
    }
    return e;
  }

  // A small entry (data.pkl, byteorder) of at most `limit` bytes.
  std::vector<uint8_t> read(const std::string& name, uint64_t limit) const {
    const Entry e = checked_entry(name);
    if (e.size > limit)
      fail(origin_, e.label + "declares " + std::to_string(e.size) + " bytes, more than the " +
                        std::to_string(limit) + " allowed");
    std::vector<uint8_t> bytes(static_cast<size_t>(e.size));
    read_into(e, bytes.data());
    return bytes;
  }

  // A storage, into a buffer of its own: read once, never copied again.
  std::shared_ptr<Storage> read_storage(const Entry& e) const {
    std::shared_ptr<Storage> storage = Storage::allocate(static_cast<size_t>(e.size));
    read_into(e, storage->writable_data());
    return storage;
  }

 private:
  // The entry's `size` bytes into `dst`.
  void read_into(const Entry& e, uint8_t* dst) const {
    // Stored entries (torch.save's tensors) are read as byte ranges, which
    // libzip doesn't check, and their CRC computed here with libdeflate, whose
    // CRC-32 runs on the CPU's carry-less multiply: zlib's, which libzip uses
    // for a whole entry, is slow enough to show in a model's load time.
    if (e.stored && e.has_crc && e.size > 0) {
      // libzip also checks a range that covers the whole entry: two ranges.
      const uint64_t head = e.size - 1;
      read_range(e, dst, 0, head);
      read_range(e, dst + head, head, 1);
      if (crc32(dst, e.size) != e.crc) fail(origin_, "cannot read " + e.label + "(CRC error)");
      return;
    }
    std::unique_ptr<zip_file_t, decltype(&zip_fclose)> file(zip_fopen_index(zip_, e.index, 0), &zip_fclose);
    if (!file) fail(origin_, "cannot read " + e.label + "(" + zip_strerror(zip_) + ")");
    auto error = [&] { return "cannot read " + e.label + "(" + zip_file_strerror(file.get()) + ")"; };
    read_exactly(e, dst, 0, e.size, [&](uint8_t* to, uint64_t n) { return zip_fread(file.get(), to, n); }, error);
    // libzip checks the CRC when it reaches the end of the entry: read once more.
    uint8_t extra;
    const zip_int64_t n = zip_fread(file.get(), &extra, 1);
    if (n < 0) fail(origin_, error());
    if (n > 0) fail(origin_, e.label + "is longer than it declares");
  }

  // Bytes [start, start + size) of a stored entry into `dst` (size 0: nothing).
  void read_range(const Entry& e, uint8_t* dst, uint64_t start, uint64_t size) const {
    if (size == 0) return;
    std::unique_ptr<zip_source_t, decltype(&zip_source_free)> source(
        zip_source_zip(zip_, zip_, e.index, ZIP_FL_COMPRESSED, start, static_cast<zip_int64_t>(size)), &zip_source_free);
    if (!source) fail(origin_, "cannot read " + e.label + "(" + zip_strerror(zip_) + ")");
    auto error = [&] { return "cannot read " + e.label + "(" + zip_error_strerror(zip_source_error(source.get())) + ")"; };
    if (zip_source_open(source.get()) != 0) fail(origin_, error());
    read_exactly(e, dst, start, size, [&](uint8_t* to, uint64_t n) { return zip_source_read(source.get(), to, n); },
                 error);
    zip_source_close(source.get());
  }

  // Bytes [start, start + size) into `dst` through `read_some` (zip_fread's
  // contract: a count, 0 at the end, < 0 on an error, told by `error`).
  template <typename ReadSome, typename ErrorText>
  void read_exactly(const Entry& e, uint8_t* dst, uint64_t start, uint64_t size, ReadSome read_some,
                    ErrorText error) const {
    for (uint64_t got = 0; got < size;) {
      const zip_int64_t n = read_some(dst + got, size - got);
      if (n < 0) fail(origin_, error());
      if (n == 0)
        fail(origin_, e.label + "is truncated (" + std::to_string(start + got) + " of " + std::to_string(start + size) +
                          " bytes)");
      got += static_cast<uint64_t>(n);
    }
  }

  static uint32_t crc32(const uint8_t* data, uint64_t size) {
    uint32_t crc = 0;
    for (uint64_t done = 0; done < size;) {  // libdeflate takes a size_t: chunks keep it portable
      const size_t chunk = static_cast<size_t>(std::min<uint64_t>(size - done, uint64_t{1} << 30));
      crc = libdeflate_crc32(crc, data + done, chunk);
      done += chunk;
    }
    return crc;
  }

  zip_t* zip_;
  uint64_t archive_bytes_;
  std::string origin_;
};

// ---------------------------------------------------------------------------
// From the archive to a state dict.

StateDict load_checkpoint(const ZipReader& zip, const std::string& origin) {
  // torch.save puts everything under one top-level folder whose name varies
  // ("archive", or the file's stem): find it through data.pkl.
  std::string prefix;
  for (const std::string& name : zip.names()) {
    const size_t slash = name.find('/');
    if (slash == std::string::npos || name.compare(slash, std::string::npos, "/data.pkl") != 0) continue;
    if (!prefix.empty()) fail(origin, "several data.pkl in the archive");
    prefix = name.substr(0, slash + 1);
  }
  if (prefix.empty()) fail(origin, "no data.pkl in the archive (not a torch.save checkpoint?)");

  if (zip.has(prefix + "byteorder")) {
    const std::vector<uint8_t> raw = zip.read(prefix + "byteorder", 64);
    std::string order(raw.begin(), raw.end());
    while (!order.empty() && std::isspace(static_cast<unsigned char>(order.back()))) order.pop_back();
    if (order == "big") fail(origin, "big-endian checkpoint (byteorder 'big') is not supported");
    if (order != "little") fail(origin, "unknown byteorder '" + printable(order) + "'");
  }

  const std::vector<uint8_t> pickle = zip.read(prefix + "data.pkl", kMaxPickleBytes);
  const detail::Pickle unpickled = detail::unpickle(pickle.data(), pickle.size(), origin + ": data.pkl");

  StateDict dict;
  std::map<std::string, StoragePtr> storages;  // by key: each read once
  for (const auto& [name, value] : detail::state_dict_tensors(unpickled.root, origin, "data.pkl")) {
    const std::string tensor_name = "tensor '" + printable(name) + "'";
    const Value& storage = *value->storage;
    const std::string storage_name = "storage '" + printable(storage.text) + "'";
    const std::string entry = prefix + "data/" + storage.text;
    if (!zip.has(entry)) fail(origin, tensor_name + ": " + storage_name + " has no entry '" + printable(entry) + "'");

    // The storage's claim against its entry, before anything is read.
    const size_t element_size = dtype_size(storage.dtype);
    int64_t claimed_bytes;
    const auto checked = zip.checked_entry(entry);
    const uint64_t entry_bytes = checked.size;
    if (__builtin_mul_overflow(storage.storage_numel, static_cast<int64_t>(element_size), &claimed_bytes) ||
        static_cast<uint64_t>(claimed_bytes) > entry_bytes)
      fail(origin, storage_name + " claims " + std::to_string(storage.storage_numel) + " " +
                       dtype_name(storage.dtype) + " elements but its entry holds " + std::to_string(entry_bytes) +
                       " bytes");
    const std::string problem =
        view_problem(value->shape, value->strides, value->offset, storage.storage_numel, storage_name);
    if (!problem.empty()) fail(origin, tensor_name + " " + problem);

    StoragePtr& bytes = storages[storage.text];
    if (!bytes) bytes = zip.read_storage(checked);

    TensorData t;
    t.dtype = storage.dtype;
    t.shape = value->shape;
    t.strides = value->strides;
    t.offset = value->offset;
    t.storage = bytes;
    dict[name] = std::move(t);
  }
  return dict;
}

}  // namespace

namespace detail {

std::vector<std::pair<std::string, const Value*>> state_dict_tensors(const Value* root, const std::string& origin,
                                                                     const std::string& pickle_name) {
  if (root->kind != Kind::Dict)
    fail(origin, pickle_name + " holds a " + kind_name(root->kind) + ", not a state dict");
  // Training scripts sometimes save {"state_dict": {...}} or {"model": {...}}.
  if (root->entries.size() == 1) {
    const auto& [key, value] = root->entries.front();
    if (key->kind == Kind::String && (key->text == "state_dict" || key->text == "model") && value->kind == Kind::Dict)
      root = value;
  }
  std::vector<std::pair<std::string, const Value*>> tensors;
  for (const auto& [key, value] : root->entries) {
    if (key->kind != Kind::String) fail(origin, std::string("state dict has a ") + kind_name(key->kind) + " key");
    if (value->kind != Kind::Tensor)
      fail(origin, "state dict entry '" + printable(key->text) + "' is a " + kind_name(value->kind) + ", not a tensor");
    tensors.emplace_back(key->text, value);
  }
  return tensors;
}

}  // namespace detail

StateDict read_torch_checkpoint(const std::string& path) {
  std::error_code ec;
  const uintmax_t size = std::filesystem::file_size(path, ec);
  if (ec) fail(path, "cannot open (" + ec.message() + ")");
  if (size == 0) fail(path, "empty file, not a zip archive");
  // The format by content, not by name: both are called .pt, .pth or .bin.
  uint8_t head[4] = {};
  std::ifstream(path, std::ios::binary).read(reinterpret_cast<char*>(head), sizeof head);
  const size_t head_size = static_cast<size_t>(std::min<uintmax_t>(size, sizeof head));
  if (detail::starts_like_legacy(head, head_size)) return detail::read_legacy_checkpoint(path, size);
  int code = 0;
  // ZIP_CHECKCONS: compare local and central headers, which catches more corruption.
  zip_t* archive = zip_open(path.c_str(), ZIP_RDONLY | ZIP_CHECKCONS, &code);
  if (!archive) fail(path, open_failure(code, starts_like_zip(head, head_size)));
  ZipReader zip(archive, size, path);
  return load_checkpoint(zip, path);
}

StateDict read_torch_checkpoint(const uint8_t* data, size_t size, const std::string& origin) {
  if (size == 0) fail(origin, "empty file, not a zip archive");
  if (detail::starts_like_legacy(data, size)) return detail::read_legacy_checkpoint(data, size, origin);
  zip_error_t error;
  zip_error_init(&error);
  zip_source_t* source = zip_source_buffer_create(data, size, 0, &error);
  if (!source) {
    const std::string text = zip_error_strerror(&error);
    zip_error_fini(&error);
    fail(origin, "cannot open as a zip archive (" + text + ")");
  }
  zip_t* archive = zip_open_from_source(source, ZIP_RDONLY | ZIP_CHECKCONS, &error);
  if (!archive) {
    zip_source_free(source);  // still ours when opening failed
    const int code = zip_error_code_zip(&error);
    zip_error_fini(&error);
    fail(origin, open_failure(code, starts_like_zip(data, size)));
  }
  zip_error_fini(&error);
  ZipReader zip(archive, size, origin);
  return load_checkpoint(zip, origin);
}

}  // namespace ruclip
