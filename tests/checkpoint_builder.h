// Builders for checkpoint tests: pickles written opcode by opcode as
// torch.save writes them, zip archives made with libzip in memory, and files
// of torch's legacy (pre-1.6) format.
#pragma once
#include <zip.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

namespace checkpoint_test {

// Writes pickle opcodes one by one; method names follow Python's pickletools.
class PickleWriter {
 public:
  PickleWriter& op(uint8_t code) {
    bytes_ += static_cast<char>(code);
    return *this;
  }
  PickleWriter& raw(const std::string& bytes) {
    bytes_ += bytes;
    return *this;
  }
  PickleWriter& proto(int version) { return op(0x80).op(static_cast<uint8_t>(version)); }
  PickleWriter& global(const std::string& module, const std::string& name) {
    return op('c').raw(module + "\n" + name + "\n");
  }
  PickleWriter& str(const std::string& s) { return op('X').le(s.size(), 4).raw(s); }  // BINUNICODE
  PickleWriter& short_str(const std::string& s) { return op(0x8c).le(s.size(), 1).raw(s); }  // SHORT_BINUNICODE
  PickleWriter& integer(int64_t v) {
    if (v >= 0 && v < 256) return op('K').le(static_cast<uint64_t>(v), 1);                // BININT1
    if (v >= 0 && v < 65536) return op('M').le(static_cast<uint64_t>(v), 2);              // BININT2
    if (v >= INT32_MIN && v <= INT32_MAX) return op('J').le(static_cast<uint64_t>(v), 4);  // BININT
    return op(0x8a).op(8).le(static_cast<uint64_t>(v), 8);                                // LONG1
  }
  PickleWriter& ints(const std::vector<int64_t>& values) {  // a tuple of ints
    mark();
    for (int64_t v : values) integer(v);
    return tuple();
  }
  PickleWriter& mark() { return op('('); }
  PickleWriter& tuple() { return op('t'); }
  PickleWriter& empty_tuple() { return op(')'); }
  PickleWriter& empty_dict() { return op('}'); }
  PickleWriter& reduce() { return op('R'); }
  PickleWriter& binpersid() { return op('Q'); }
  PickleWriter& setitem() { return op('s'); }
  PickleWriter& setitems() { return op('u'); }
  PickleWriter& build() { return op('b'); }
  PickleWriter& binput(uint8_t i) { return op('q').op(i); }
  PickleWriter& binget(uint8_t i) { return op('h').op(i); }
  PickleWriter& stop() { return op('.'); }
  // ('storage', torch.<type>, key, 'cpu', numel) as a persistent id; after
  // legacy(): the legacy format's ('storage', torch.<type>, key, 'cpu', numel, None).
  PickleWriter& storage(const std::string& type, const std::string& key, int64_t numel) {
    mark().str("storage").global("torch", type).str(key).str("cpu").integer(numel);
    if (legacy_) op('N');
    return tuple().binpersid();
  }
  // A legacy persistent id of a view: elements [offset, offset + size) of storage `key`, named `view_key`.
  PickleWriter& storage_view(const std::string& type, const std::string& key, int64_t numel,
                             const std::string& view_key, int64_t offset, int64_t size) {
    mark().str("storage").global("torch", type).str(key).str("cpu").integer(numel);
    mark().str(view_key).integer(offset).integer(size).tuple();
    return tuple().binpersid();
  }
  PickleWriter& legacy(bool on = true) {
    legacy_ = on;
    return *this;
  }
  const std::string& bytes() const { return bytes_; }

 private:
  PickleWriter& le(uint64_t v, int n) {
    for (int i = 0; i < n; ++i) bytes_ += static_cast<char>((v >> (8 * i)) & 0xff);
    return *this;
  }
  std::string bytes_;
  bool legacy_ = false;
};

// ---------------------------------------------------------------------------
// torch's legacy format (torch.serialization._legacy_save): magic number,
// protocol version and sys_info pickles, the object pickle, the storage key
// list pickle, then per key its element count (8 bytes) and its bytes.

// The magic number 0x1950a86a20f9469cfc6c as pickle protocol 2 writes it (LONG1, 10 bytes).
inline std::string legacy_magic() {
  return PickleWriter().proto(2).op(0x8a).op(10).raw("\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19").stop().bytes();
}

struct SysInfo {
  int64_t protocol_version = 1001;
  bool little_endian = true;
  int64_t short_size = 2, int_size = 4, long_size = 4;
};

// The magic number, protocol version and sys_info pickles.
inline std::string legacy_preamble(const SysInfo& info = {}, int64_t protocol_version = 1001) {
  PickleWriter sys;
  sys.proto(2).empty_dict().mark().str("protocol_version").integer(info.protocol_version);
  sys.str("little_endian").op(info.little_endian ? 0x88 : 0x89).str("type_sizes").empty_dict().mark();
  sys.str("short").integer(info.short_size).str("int").integer(info.int_size).str("long").integer(info.long_size);
  sys.setitems().setitems().stop();
  return legacy_magic() + PickleWriter().proto(2).integer(protocol_version).stop().bytes() + sys.bytes();
}

inline std::string key_list_pickle(const std::vector<std::string>& keys) {
  PickleWriter p;
  p.proto(2).op(']').mark();
  for (const std::string& key : keys) p.str(key);
  return p.op('e').stop().bytes();
}

// One storage of the storage section: its element count, then its bytes.
inline std::string storage_record(uint64_t count, const std::string& bytes) {
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((count >> (8 * i)) & 0xff);
  return out + bytes;
}

struct LegacyStorage {
  std::string key;
  uint64_t count;  // elements
  std::string bytes;
};

// A whole legacy file: the key list names `storages` in their order.
inline std::string make_legacy(const std::string& object_pickle, const std::vector<LegacyStorage>& storages,
                               const std::string& preamble = legacy_preamble()) {
  std::vector<std::string> keys;
  std::string records;
  for (const LegacyStorage& s : storages) {
    keys.push_back(s.key);
    records += storage_record(s.count, s.bytes);
  }
  return preamble + object_pickle + key_list_pickle(keys) + records;
}

template <class T>
std::string raw_bytes(const std::vector<T>& values) {
  std::string out(values.size() * sizeof(T), '\0');
  if (!values.empty()) std::memcpy(out.data(), values.data(), out.size());
  return out;
}

using Entries = std::vector<std::pair<std::string, std::string>>;

// A zip archive built in memory with libzip.
std::string make_zip(const Entries& entries, bool deflate = false) {
  zip_error_t error;
  zip_error_init(&error);
  zip_source_t* buffer = zip_source_buffer_create(nullptr, 0, 0, &error);
  zip_t* archive = zip_open_from_source(buffer, ZIP_TRUNCATE, &error);
  if (!archive) throw std::runtime_error("zip_open_from_source failed");
  for (const auto& [name, data] : entries) {
    zip_source_t* source = zip_source_buffer(archive, data.data(), data.size(), 0);
    const zip_int64_t index = zip_file_add(archive, name.c_str(), source, ZIP_FL_ENC_UTF_8);
    if (index < 0) throw std::runtime_error("zip_file_add failed");
    zip_set_file_compression(archive, static_cast<zip_uint64_t>(index), deflate ? ZIP_CM_DEFLATE : ZIP_CM_STORE, 0);
  }
  zip_source_keep(buffer);  // keep the written bytes after zip_close
  if (zip_close(archive) != 0) throw std::runtime_error("zip_close failed");
  zip_stat_t st;
  zip_source_stat(buffer, &st);
  std::string bytes(st.size, '\0');
  zip_source_open(buffer);
  zip_source_read(buffer, bytes.data(), st.size);
  zip_source_close(buffer);
  zip_source_free(buffer);
  zip_error_fini(&error);
  return bytes;
}

}  // namespace checkpoint_test
