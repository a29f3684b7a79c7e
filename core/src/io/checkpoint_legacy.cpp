// Reading torch's legacy checkpoints: what torch.save wrote before torch 1.6
// (and still writes with _use_new_zipfile_serialization=False), as
// torch.serialization's _legacy_save lays it out. One file holds, back to back:
//   1. a pickle of the magic number 0x1950a86a20f9469cfc6c,
//   2. a pickle of the format's protocol version, 1001,
//   3. a pickle of sys_info: {protocol_version, little_endian, type_sizes},
//   4. the pickle of the object (the state dict), whose persistent ids are
//      ('storage', storage_type, root_key, location, numel, view_metadata),
//   5. a pickle of the list of storage keys, and then, for each key in that
//      order, its storage: an 8-byte little-endian element count followed by
//      the elements.
// The pickles go through the restricted unpickler (checkpoint_pickle.cpp).
// Everything about the storages (each key's claims, the counts against the
// file's size, the views) is checked before anything big is allocated; then
// each storage is read once, straight into its own buffer.
#include <algorithm>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "io/checkpoint_internal.h"
#include "io/checkpoint_pickle.h"
#include "ruclip/checkpoint.h"
#include "ruclip/error.h"

namespace ruclip::detail {
namespace {

// Limits: a real checkpoint stays far below them.
constexpr size_t kFirstHead = 64u << 10;             // the first piece of a file read for its pickles
constexpr uint64_t kMaxPickleSection = 256ull << 20;  // the five pickles together
constexpr int64_t kProtocolVersion = 1001;            // torch.serialization.PROTOCOL_VERSION

// The magic number's pickle after PROTO (LONG1 of 10 bytes, STOP), and the
// FRAME that protocols 4 and 5 put in front of it.
const std::string kMagicBody("\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19.", 13);
const std::string kMagicFrame("\x95\x0d\0\0\0\0\0\0\0", 9);

// Where the bytes come from. The pickles are parsed from a head of the file
// that grows until they fit (only parsing finds their end); storages are read
// into their buffers directly.
class Source {
 public:
  explicit Source(uint64_t size) : size_(size) {}
  virtual ~Source() = default;
  uint64_t size() const { return size_; }
  // How much of the head to parse first.
  virtual size_t first_head() const { return static_cast<size_t>(std::min<uint64_t>(size_, kFirstHead)); }
  // The first `n` bytes (n <= size()); valid until the next call.
  virtual const uint8_t* head(size_t n) = 0;
  // `n` bytes at `offset` (within size()) into `dst`.
  virtual void read(uint64_t offset, uint8_t* dst, size_t n) = 0;

 private:
  uint64_t size_;
};

class MemorySource : public Source {
 public:
  MemorySource(const uint8_t* data, size_t size) : Source(size), data_(data) {}
  const uint8_t* head(size_t) override { return data_; }
  size_t first_head() const override { return static_cast<size_t>(size()); }  // all there already
  void read(uint64_t offset, uint8_t* dst, size_t n) override {
    if (n) std::memcpy(dst, data_ + offset, n);
  }

 private:
  const uint8_t* data_;
};

class FileSource : public Source {
 public:
  FileSource(const std::string& path, uint64_t size) : Source(size), in_(path, std::ios::binary), path_(path) {
    if (!in_) fail(path_, "cannot open for reading");
  }
  const uint8_t* head(size_t n) override {
    if (head_.size() < n) {
      const size_t have = head_.size();
      head_.resize(n);
      read(have, head_.data() + have, n - have);
    }
    return head_.data();
  }
  void read(uint64_t offset, uint8_t* dst, size_t n) override {
    in_.clear();
    in_.seekg(static_cast<std::streamoff>(offset));
    in_.read(reinterpret_cast<char*>(dst), static_cast<std::streamsize>(n));
    if (static_cast<size_t>(in_.gcount()) != n)
      fail(path_, "cannot read " + std::to_string(n) + " bytes at byte " + std::to_string(offset) +
                      " (the file changed while it was read?)");
  }

 private:
  std::ifstream in_;
  std::string path_;
  std::vector<uint8_t> head_;
};

// What the object pickle says about one stored storage (a root key).
struct Root {
  const Value* first = nullptr;  // its first persistent id: the dtype its element count is in
  uint64_t bytes = 0;
  bool listed = false;
  uint64_t data_at = 0;  // where its elements start in the file
  std::shared_ptr<Storage> buffer;  // allocated once a tensor uses it
};

std::string storage_name(const std::string& key) { return "storage '" + printable(key) + "'"; }

class LegacyReader {
 public:
  LegacyReader(Source& source, std::string origin) : source_(source), origin_(std::move(origin)) {}

  StateDict read() {
    size_t at = check_magic();
    const Pickle version = parse(at, "protocol version pickle");
    at = version.end;
    if (version.root->kind != Kind::Int)
      fail(origin_, std::string("protocol version is a ") + kind_name(version.root->kind) + ", not an int");
    if (version.root->integer != kProtocolVersion)
      fail(origin_, "legacy protocol version " + std::to_string(version.root->integer) + " is not supported (expected " +
                        std::to_string(kProtocolVersion) + ")");
    const Pickle sys_info = parse(at, "sys_info pickle");
    at = sys_info.end;
    check_sys_info(sys_info.root);
    const Pickle object = parse(at, "object pickle", PersistentIds::Legacy);
    at = object.end;
    const Pickle keys = parse(at, "storage key list pickle");
    at = keys.end;

    std::map<std::string, Root> roots;
    collect_storages(object, roots);
    const std::vector<std::string> order = check_key_list(keys.root, roots);
    locate_storages(at, order, roots);

    StateDict dict;
    for (const auto& [name, tensor] : state_dict_tensors(object.root, origin_, "the object pickle")) {
      const Value& storage = *tensor->storage;
      Root& root = roots.at(storage.text);
      const bool view = storage.view_numel >= 0;
      const std::string where = view ? "view '" + printable(storage.view_key) + "' of " + storage_name(storage.text)
                                     : storage_name(storage.text);
      const std::string problem = view_problem(tensor->shape, tensor->strides, tensor->offset,
                                               view ? storage.view_numel : storage.storage_numel, where);
      if (!problem.empty()) fail(origin_, "tensor '" + printable(name) + "' " + problem);
      if (!root.buffer) root.buffer = Storage::allocate(static_cast<size_t>(root.bytes));
      TensorData t;
      t.dtype = storage.dtype;
      t.shape = tensor->shape;
      t.strides = tensor->strides;
      // Within the storage's elements (collect_storages checked the view's end).
      t.offset = tensor->offset + (view ? storage.view_offset : 0);
      t.storage = root.buffer;
      dict[name] = std::move(t);
    }
    // In file order, each storage a tensor uses once.
    for (const std::string& key : order) {
      const Root& root = roots.at(key);
      if (root.buffer) source_.read(root.data_at, root.buffer->writable_data(), static_cast<size_t>(root.bytes));
    }
    return dict;
  }

 private:
  // The magic number's pickle, compared byte for byte: its int has 10 bytes,
  // more than the unpickler's 64-bit ints hold. Returns where it ends.
  size_t check_magic() {
    const size_t n = static_cast<size_t>(std::min<uint64_t>(source_.size(), 2 + kMagicFrame.size() + kMagicBody.size()));
    const std::string head(reinterpret_cast<const char*>(source_.head(n)), n);
    if (n < 2) fail(origin_, "truncated legacy torch.save file (" + std::to_string(n) + " bytes)");
    const int protocol = static_cast<uint8_t>(head[1]);
    if (protocol >= 2 && protocol <= 5) {
      std::vector<std::string> forms = {head.substr(0, 2) + kMagicBody};
      if (protocol >= 4) forms.push_back(head.substr(0, 2) + kMagicFrame + kMagicBody);
      for (const std::string& form : forms)
        if (head.compare(0, form.size(), form) == 0) return form.size();
      for (const std::string& form : forms)
        if (n < form.size() && form.compare(0, n, head) == 0)
          fail(origin_, "truncated legacy torch.save file (" + std::to_string(n) + " bytes)");
    }
    fail(origin_, "starts like a pickle but not with torch.save's magic number: not a legacy torch checkpoint "
                  "(or a corrupted one)");
  }

  // The pickle at `start`. The head grows when the pickle goes on past it.
  Pickle parse(size_t start, const std::string& what, PersistentIds ids = PersistentIds::Zip) {
    for (;;) {
      try {
        return unpickle(source_.head(have_), have_, origin_ + ": " + what, ids, start);
      } catch (const PickleTruncated& truncated) {
        // Needing more than the file has: the file itself is cut short.
        if (truncated.needed > source_.size() || have_ == source_.size()) throw;
        if (have_ >= kMaxPickleSection)
          fail(origin_, "the pickles take more than " + std::to_string(kMaxPickleSection) + " bytes");
        const uint64_t want = std::max<uint64_t>(truncated.needed, uint64_t{have_} * 4);
        have_ = static_cast<size_t>(std::min({want, source_.size(), kMaxPickleSection}));
      }
    }
  }

  // What sys_info must say for the storages to be read as they are.
  void check_sys_info(const Value* info) {
    if (info->kind != Kind::Dict) fail(origin_, std::string("sys_info is a ") + kind_name(info->kind) + ", not a dict");
    const Value* version = entry(info, "protocol_version", "sys_info");
    if (version->kind != Kind::Int || version->integer != kProtocolVersion)
      fail(origin_, "sys_info protocol_version is not " + std::to_string(kProtocolVersion));
    const Value* little = entry(info, "little_endian", "sys_info");
    if (little->kind != Kind::Bool)
      fail(origin_, std::string("sys_info little_endian is a ") + kind_name(little->kind) + ", not a bool");
    if (!little->integer)
      fail(origin_, "big-endian checkpoint (sys_info little_endian is False) is not supported");
    const Value* sizes = entry(info, "type_sizes", "sys_info");
    if (sizes->kind != Kind::Dict)
      fail(origin_, std::string("sys_info type_sizes is a ") + kind_name(sizes->kind) + ", not a dict");
    // struct.Struct('=h' / '=i' / '=l').size, what torch writes on every platform.
    for (const auto& [type, expected] : {std::pair<const char*, int64_t>{"short", 2}, {"int", 4}, {"long", 4}}) {
      const Value* size = entry(sizes, type, "sys_info type_sizes");
      if (size->kind != Kind::Int || size->integer != expected)
        fail(origin_, std::string("sys_info type_sizes '") + type + "' is " +
                          (size->kind == Kind::Int ? std::to_string(size->integer) : std::string("not an int")) +
                          ", expected " + std::to_string(expected));
    }
  }

  const Value* entry(const Value* dict, const std::string& key, const std::string& what) {
    for (const auto& [k, v] : dict->entries)
      if (k->kind == Kind::String && k->text == key) return v;
    fail(origin_, what + " has no '" + key + "'");
  }

  // Every storage the object pickle refers to, by root key, and its views.
  void collect_storages(const Pickle& object, std::map<std::string, Root>& roots) {
    std::map<std::string, const Value*> views;
    for (const auto& value : object.arena) {  // creation order: the pickle's order
      if (value->kind != Kind::Storage) continue;
      const Value& s = *value;
      uint64_t bytes;
      if (__builtin_mul_overflow(static_cast<uint64_t>(s.storage_numel), dtype_size(s.dtype), &bytes))
        fail(origin_, storage_name(s.text) + " claims " + std::to_string(s.storage_numel) + " " + dtype_name(s.dtype) +
                          " elements, more than 2^64 bytes");
      Root& root = roots[s.text];
      if (!root.first) {
        root.first = &s;
        root.bytes = bytes;
      } else if (root.bytes != bytes) {
        fail(origin_, storage_name(s.text) + " is claimed as " + std::to_string(root.first->storage_numel) + " " +
                          dtype_name(root.first->dtype) + " and as " + std::to_string(s.storage_numel) + " " +
                          dtype_name(s.dtype) + " elements");
      }
      if (s.view_numel < 0) continue;
      const std::string view = "view '" + printable(s.view_key) + "' of " + storage_name(s.text);
      int64_t end;
      if (__builtin_add_overflow(s.view_offset, s.view_numel, &end) || end > s.storage_numel)
        fail(origin_, view + " (elements " + std::to_string(s.view_offset) + " + " + std::to_string(s.view_numel) +
                          ") reaches past its " + std::to_string(s.storage_numel) + " elements");
      // torch keeps the first view of a key for all later references to it.
      const Value*& known = views[s.view_key];
      if (!known) {
        known = &s;
      } else if (known->text != s.text || known->view_offset != s.view_offset || known->view_numel != s.view_numel ||
                 known->dtype != s.dtype) {
        fail(origin_, "storage view '" + printable(s.view_key) + "' is given twice, differently");
      }
    }
    for (const auto& [key, view] : views)
      if (roots.count(key)) fail(origin_, "storage view '" + printable(key) + "' has the key of a stored storage");
  }

  // The storage key list: each root exactly once. Returns it.
  std::vector<std::string> check_key_list(const Value* list, std::map<std::string, Root>& roots) {
    if (list->kind != Kind::List)
      fail(origin_, std::string("storage key list is a ") + kind_name(list->kind) + ", not a list");
    std::vector<std::string> keys;
    for (const Value* item : list->items) {
      if (item->kind != Kind::String)
        fail(origin_, std::string("storage key list holds a ") + kind_name(item->kind) + ", not a str");
      auto it = roots.find(item->text);
      if (it == roots.end())
        fail(origin_, "storage key list names " + storage_name(item->text) + ", which nothing in the object pickle uses");
      if (it->second.listed) fail(origin_, storage_name(item->text) + " is listed twice in the storage key list");
      it->second.listed = true;
      keys.push_back(item->text);
    }
    // torch.load would hand such a storage out uninitialized.
    for (const auto& [key, root] : roots)
      if (!root.listed) fail(origin_, storage_name(key) + " is not in the storage key list: its bytes are missing");
    return keys;
  }

  // The storage records from `at` on, in list order: each count must be its
  // persistent id's, the bytes must be in the file and nothing may follow.
  void locate_storages(uint64_t at, const std::vector<std::string>& order, std::map<std::string, Root>& roots) {
    const uint64_t size = source_.size();
    for (size_t i = 0; i < order.size(); ++i) {
      Root& root = roots.at(order[i]);
      const std::string name = storage_name(order[i]);
      if (size - at < 8)
        fail(origin_, "truncated in the storage section: no element count for " + name + " (" + std::to_string(i + 1) +
                          " of " + std::to_string(order.size()) + ") at byte " + std::to_string(at));
      uint8_t raw[8];
      source_.read(at, raw, sizeof raw);
      uint64_t count = 0;
      for (size_t b = sizeof raw; b-- > 0;) count = (count << 8) | raw[b];
      const DType dtype = root.first->dtype;
      uint64_t bytes;
      const uint64_t left = size - at - 8;
      if (__builtin_mul_overflow(count, dtype_size(dtype), &bytes) || bytes > left)
        fail(origin_, name + ": its element count at byte " + std::to_string(at) + " says " + std::to_string(count) +
                          " " + dtype_name(dtype) + " elements, but only " + std::to_string(left) +
                          " bytes of the file follow (truncated in the storage section, or a bad count)");
      if (count != static_cast<uint64_t>(root.first->storage_numel))
        fail(origin_, name + " holds " + std::to_string(count) + " elements in the file, its persistent id claims " +
                          std::to_string(root.first->storage_numel));
      root.data_at = at + 8;
      at = root.data_at + bytes;
    }
    if (at != size)
      fail(origin_, "trailing garbage: " + std::to_string(size - at) + " bytes after the last storage, from byte " +
                        std::to_string(at));
  }

  Source& source_;
  std::string origin_;
  size_t have_ = source_.first_head();  // bytes of the head the pickles are parsed from
};

}  // namespace

bool starts_like_legacy(const uint8_t* data, size_t size) { return size >= 1 && data[0] == 0x80; }  // PROTO

StateDict read_legacy_checkpoint(const std::string& path, uint64_t size) {
  FileSource source(path, size);
  return LegacyReader(source, path).read();
}

StateDict read_legacy_checkpoint(const uint8_t* data, size_t size, const std::string& origin) {
  MemorySource source(data, size);
  return LegacyReader(source, origin).read();
}

}  // namespace ruclip::detail
