// Reading model weights without LibTorch and without executing anything:
// torch.save zip archives through a restricted unpickler, and safetensors.
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace ruclip {

enum class DType { F32, F16, BF16, F64, I64, I32, I16, I8, U8, Bool };

size_t dtype_size(DType dtype);
const char* dtype_name(DType dtype);

// One tensor of a state dict: a view (shape, strides, offset in elements)
// into a storage that several tensors may share. The reader has checked that
// every element the view reaches lies inside the storage.
struct TensorData {
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  std::vector<int64_t> strides;  // in elements
  int64_t offset = 0;            // in elements
  std::shared_ptr<const std::vector<uint8_t>> storage;

  int64_t numel() const;
  // Row-major contiguous copy of the elements, converted to float.
  std::vector<float> to_float() const;
  // Row-major contiguous copy of the elements in their own dtype (for writers).
  std::vector<uint8_t> contiguous_bytes() const;
};

using StateDict = std::map<std::string, TensorData>;

// pytorch_model.bin as torch.save writes it (zip: <name>/data.pkl + <name>/data/<key>).
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
