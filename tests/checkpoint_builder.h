// Builders for checkpoint tests: pickles written opcode by opcode as
// torch.save writes them, and zip archives made with libzip in memory.
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
  // ('storage', torch.<type>, key, 'cpu', numel) as a persistent id.
  PickleWriter& storage(const std::string& type, const std::string& key, int64_t numel) {
    mark().str("storage").global("torch", type).str(key).str("cpu").integer(numel).tuple();
    return binpersid();
  }
  const std::string& bytes() const { return bytes_; }

 private:
  PickleWriter& le(uint64_t v, int n) {
    for (int i = 0; i < n; ++i) bytes_ += static_cast<char>((v >> (8 * i)) & 0xff);
    return *this;
  }
  std::string bytes_;
};

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
