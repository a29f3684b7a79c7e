// Reading model weights without LibTorch and without executing anything:
// torch.save files (zip archives and the legacy format of torch < 1.6)
// through a restricted unpickler, and safetensors.
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace ruclip {

enum class DType { F32, F16, BF16, F64, I64, I32, I16, I8, U8, Bool };

size_t dtype_size(DType dtype);
const char* dtype_name(DType dtype);

// The bytes of one storage, shared by the tensors that view it: a buffer a
// reader allocated (64-byte aligned) and filled straight from the file, or
// memory something else owns (a std::vector, ...), kept alive with it.
class Storage {
 public:
  // `size` bytes for a reader to fill, uninitialized.
  static std::shared_ptr<Storage> allocate(size_t size);
  // `size` bytes at `data`, kept alive by `owner`.
  Storage(const uint8_t* data, size_t size, std::shared_ptr<const void> owner);
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  // allocate()'s buffer, for the reader to fill and for detail::to_tensor to
  // hand to LibTorch without a copy; nullptr for memory owned elsewhere.
  uint8_t* writable_data() const { return writable_; }
  // The same bytes.
  bool operator==(const Storage& other) const;
  bool operator!=(const Storage& other) const { return !(*this == other); }

 private:
  const uint8_t* data_;
  size_t size_;
  std::shared_ptr<const void> owner_;
  uint8_t* writable_ = nullptr;
};

// How a TensorData holds its storage: a shared pointer to it. Also made from a
// std::vector of bytes, which it then keeps alive (no copy).
class StoragePtr {
 public:
  StoragePtr() = default;
  StoragePtr(std::nullptr_t) {}
  StoragePtr(std::shared_ptr<const Storage> storage) : storage_(std::move(storage)) {}
  StoragePtr(std::shared_ptr<Storage> storage) : storage_(std::move(storage)) {}
  StoragePtr(std::shared_ptr<const std::vector<uint8_t>> bytes);
  StoragePtr(std::shared_ptr<std::vector<uint8_t>> bytes)
      : StoragePtr(std::shared_ptr<const std::vector<uint8_t>>(std::move(bytes))) {}

  const Storage* get() const { return storage_.get(); }
  const Storage& operator*() const { return *storage_; }
  const Storage* operator->() const { return storage_.get(); }
  explicit operator bool() const { return storage_ != nullptr; }
  const std::shared_ptr<const Storage>& shared() const { return storage_; }
  // The same storage (not: equal bytes).
  friend bool operator==(const StoragePtr& a, const StoragePtr& b) { return a.storage_ == b.storage_; }
  friend bool operator!=(const StoragePtr& a, const StoragePtr& b) { return a.storage_ != b.storage_; }

 private:
  std::shared_ptr<const Storage> storage_;
};

// One tensor of a state dict: a view (shape, strides, offset in elements)
// into a storage that several tensors may share. The reader has checked that
// every element the view reaches lies inside the storage.
struct TensorData {
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  std::vector<int64_t> strides;  // in elements
  int64_t offset = 0;            // in elements
  StoragePtr storage;

  int64_t numel() const;
  // The first element when the view is row-major contiguous: its elements are
  // then the storage's bytes from there on, as they are. nullptr for other
  // views. Throws ruclip::Error for a view outside its storage.
  const uint8_t* contiguous_data() const;
  // Row-major contiguous copy of the elements, converted to float.
  std::vector<float> to_float() const;
  // Row-major contiguous copy of the elements in their own dtype (for writers).
  std::vector<uint8_t> contiguous_bytes() const;
};

using StateDict = std::map<std::string, TensorData>;

// pytorch_model.bin, *.pt as torch.save writes them, in either format, told
// apart by the first bytes: a zip archive (<name>/data.pkl + <name>/data/<key>,
// torch >= 1.6), or the legacy format (pickles followed by the raw storages:
// torch < 1.6, or _use_new_zipfile_serialization=False). Each storage is read
// once, straight into the buffer its tensors share.
StateDict read_torch_checkpoint(const std::string& path);
// Same from memory; `origin` names the source in error messages.
StateDict read_torch_checkpoint(const uint8_t* data, size_t size, const std::string& origin);

// model.safetensors.
StateDict read_safetensors(const std::string& path);
StateDict read_safetensors(const uint8_t* data, size_t size, const std::string& origin);
// Writes tensors (converted to contiguous) with optional string metadata.
void write_safetensors(const std::string& path, const StateDict& tensors,
                       const std::map<std::string, std::string>& metadata = {});

}  // namespace ruclip
