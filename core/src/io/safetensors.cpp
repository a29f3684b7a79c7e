// model.safetensors: an 8-byte little-endian header length N, N bytes of JSON
//   {"name": {"dtype": "F32", "shape": [...], "data_offsets": [begin, end]},
//    "__metadata__": {"key": "value"}}
// then the data buffer the offsets point into. Nothing in the file is
// trusted: every number is checked against the bytes that are really there
// before anything is allocated.
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include "io/checkpoint_internal.h"
#include "ruclip/checkpoint.h"
#include "ruclip/error.h"

namespace ruclip {
namespace {

using detail::fail;
using detail::kMaxDims;

// The reference implementation refuses headers over 100 MB as well.
constexpr uint64_t kMaxHeaderBytes = 100'000'000;

// Reads `n` bytes at `offset` into `dst`; the caller has checked the range.
using ReadAt = std::function<void(uint64_t offset, uint64_t n, uint8_t* dst)>;

bool parse_dtype(const std::string& name, DType* dtype) {
  for (DType d : {DType::F32, DType::F16, DType::BF16, DType::F64, DType::I64, DType::I32, DType::I16, DType::I8,
                  DType::U8, DType::Bool}) {
    if (name == dtype_name(d)) {
      *dtype = d;
      return true;
    }
  }
  return false;
}

struct Entry {
  std::string name;
  TensorData tensor;
  uint64_t begin = 0, end = 0;
};

// Validates one tensor's header entry; `buffer_bytes` is the size of the data buffer.
Entry parse_entry(const std::string& name, const nlohmann::json& spec, uint64_t buffer_bytes,
                  const std::string& origin) {
  const std::string where = "tensor '" + name + "'";
  if (!spec.is_object()) fail(origin, where + ": header entry is not an object");
  Entry e;
  e.name = name;

  const auto dtype = spec.find("dtype");
  if (dtype == spec.end() || !dtype->is_string()) fail(origin, where + ": no dtype");
  if (!parse_dtype(dtype->get<std::string>(), &e.tensor.dtype))
    fail(origin, where + ": unknown dtype '" + dtype->get<std::string>() + "'");

  const auto shape = spec.find("shape");
  if (shape == spec.end() || !shape->is_array()) fail(origin, where + ": no shape");
  if (shape->size() > kMaxDims) fail(origin, where + ": shape has " + std::to_string(shape->size()) + " dimensions");
  uint64_t numel = 1;
  for (const auto& dim : *shape) {
    // is_number_unsigned: a non-negative integer; refuses -1, 2.5 and "3".
    if (!dim.is_number_unsigned()) fail(origin, where + ": shape " + shape->dump() + " is not a list of sizes");
    const uint64_t size = dim.get<uint64_t>();
    if (size > static_cast<uint64_t>(INT64_MAX) || __builtin_mul_overflow(numel, size, &numel) ||
        numel > static_cast<uint64_t>(INT64_MAX))
      fail(origin, where + ": shape " + shape->dump() + " is too large");
    e.tensor.shape.push_back(static_cast<int64_t>(size));
  }

  const auto offsets = spec.find("data_offsets");
  if (offsets == spec.end() || !offsets->is_array() || offsets->size() != 2 || !(*offsets)[0].is_number_unsigned() ||
      !(*offsets)[1].is_number_unsigned())
    fail(origin, where + ": data_offsets is not a pair of offsets");
  e.begin = (*offsets)[0].get<uint64_t>();
  e.end = (*offsets)[1].get<uint64_t>();
  if (e.begin > e.end) fail(origin, where + ": data_offsets " + offsets->dump() + " end before they begin");
  if (e.end > buffer_bytes)
    fail(origin, where + ": data_offsets " + offsets->dump() + " reach past the data buffer of " +
                     std::to_string(buffer_bytes) + " bytes");
  uint64_t nbytes;
  if (__builtin_mul_overflow(numel, static_cast<uint64_t>(dtype_size(e.tensor.dtype)), &nbytes))
    fail(origin, where + ": shape " + shape->dump() + " is too large");
  if (nbytes != e.end - e.begin)
    fail(origin, where + ": shape " + shape->dump() + " of " + dtype_name(e.tensor.dtype) + " needs " +
                     std::to_string(nbytes) + " bytes, data_offsets " + offsets->dump() + " give " +
                     std::to_string(e.end - e.begin));

  // Row-major strides over its own storage.
  e.tensor.strides.assign(e.tensor.shape.size(), 1);
  for (size_t d = e.tensor.shape.size(); d-- > 1;)
    e.tensor.strides[d - 1] = e.tensor.strides[d] * std::max<int64_t>(e.tensor.shape[d], 1);
  return e;
}

StateDict parse_safetensors(uint64_t file_bytes, const ReadAt& read_at, const std::string& origin) {
  if (file_bytes < 8) fail(origin, "too short for a safetensors file (" + std::to_string(file_bytes) + " bytes)");
  uint8_t length_bytes[8];
  read_at(0, 8, length_bytes);
  uint64_t header_bytes = 0;
  for (int i = 7; i >= 0; --i) header_bytes = (header_bytes << 8) | length_bytes[i];
  if (header_bytes > file_bytes - 8)
    fail(origin, "header length " + std::to_string(header_bytes) + " exceeds the file size (" +
                     std::to_string(file_bytes) + " bytes)");
  if (header_bytes > kMaxHeaderBytes)
    fail(origin, "header length " + std::to_string(header_bytes) + " is over the 100 MB limit");

  std::string text(static_cast<size_t>(header_bytes), '\0');
  read_at(8, header_bytes, reinterpret_cast<uint8_t*>(text.data()));
  const nlohmann::json header = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (header.is_discarded()) fail(origin, "header is not valid JSON");
  if (!header.is_object()) fail(origin, "header is not a JSON object");

  const uint64_t data_start = 8 + header_bytes;
  const uint64_t buffer_bytes = file_bytes - data_start;
  std::vector<Entry> entries;
  for (const auto& [name, spec] : header.items()) {
    if (name == "__metadata__") {
      if (!spec.is_object()) fail(origin, "__metadata__ is not an object");
      for (const auto& [key, value] : spec.items())
        if (!value.is_string()) fail(origin, "__metadata__ value of '" + key + "' is not a string");
      continue;
    }
    entries.push_back(parse_entry(name, spec, buffer_bytes, origin));
  }

  // No two tensors may claim the same bytes.
  std::vector<const Entry*> by_offset;
  for (const Entry& e : entries)
    if (e.end > e.begin) by_offset.push_back(&e);
  std::sort(by_offset.begin(), by_offset.end(),
            [](const Entry* a, const Entry* b) { return std::tie(a->begin, a->end) < std::tie(b->begin, b->end); });
  for (size_t i = 1; i < by_offset.size(); ++i)
    if (by_offset[i]->begin < by_offset[i - 1]->end)
      fail(origin, "tensors '" + by_offset[i - 1]->name + "' and '" + by_offset[i]->name + "' overlap");

  StateDict dict;
  for (Entry& e : entries) {
    // Each tensor read once into a buffer of its own, which it keeps (no copy later).
    std::shared_ptr<Storage> bytes = Storage::allocate(static_cast<size_t>(e.end - e.begin));
    if (bytes->size() > 0) read_at(data_start + e.begin, e.end - e.begin, bytes->writable_data());
    e.tensor.storage = std::move(bytes);
    dict[e.name] = std::move(e.tensor);
  }
  return dict;
}

}  // namespace

StateDict read_safetensors(const std::string& path) {
  // Tensors are read straight from the file, so a large model is never held twice.
  std::ifstream in(path, std::ios::binary);
  std::error_code ec;
  const uintmax_t size = std::filesystem::file_size(path, ec);
  if (!in || ec) fail(path, "cannot open (" + (ec ? ec.message() : std::string(std::strerror(errno))) + ")");
  return parse_safetensors(size, [&](uint64_t offset, uint64_t n, uint8_t* dst) {
    in.seekg(static_cast<std::streamoff>(offset));
    in.read(reinterpret_cast<char*>(dst), static_cast<std::streamsize>(n));
    if (!in) fail(path, "read error at byte " + std::to_string(offset));
  }, path);
}

StateDict read_safetensors(const uint8_t* data, size_t size, const std::string& origin) {
  return parse_safetensors(size, [&](uint64_t offset, uint64_t n, uint8_t* dst) {
    std::memcpy(dst, data + offset, static_cast<size_t>(n));
  }, origin);
}

void write_safetensors(const std::string& path, const StateDict& tensors,
                       const std::map<std::string, std::string>& metadata) {
  // Header first: offsets follow from shapes, so every tensor is checked here.
  nlohmann::json header = nlohmann::json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (const auto& [name, t] : tensors) {  // std::map: name-sorted
    if (name.empty() || name == "__metadata__") fail(path, "cannot write a tensor named '" + name + "'");
    uint64_t nbytes = dtype_size(t.dtype);
    for (int64_t size : t.shape)
      if (size < 0 || __builtin_mul_overflow(nbytes, static_cast<uint64_t>(size), &nbytes))
        fail(path, "tensor '" + name + "' has a bad shape");
    uint64_t end;
    if (__builtin_add_overflow(offset, nbytes, &end)) fail(path, "tensor '" + name + "' is too large");
    header[name] = {{"dtype", dtype_name(t.dtype)}, {"shape", t.shape}, {"data_offsets", {offset, end}}};
    offset = end;
  }
  // Padded with spaces to a multiple of 8, as the reference writer does, so
  // that the data buffer starts 8-byte aligned.
  std::string text;
  try {
    text = header.dump();
  } catch (const nlohmann::json::exception&) {
    // Names from a checkpoint are arbitrary bytes; JSON needs UTF-8.
    fail(path, "a tensor name or metadata entry is not valid UTF-8");
  }
  text.append((8 - text.size() % 8) % 8, ' ');

  // Written next to the target and renamed over it: a failure half-way never
  // leaves a truncated file under the real name.
  const std::string temp = path + ".partial";
  try {
    std::ofstream out(temp, std::ios::binary | std::ios::trunc);
    if (!out) fail(path, "cannot write (" + std::string(std::strerror(errno)) + ")");
    uint8_t length[8];
    for (int i = 0; i < 8; ++i) length[i] = static_cast<uint8_t>(static_cast<uint64_t>(text.size()) >> (8 * i));
    out.write(reinterpret_cast<const char*>(length), 8);
    out.write(text.data(), static_cast<std::streamsize>(text.size()));
    for (const auto& [name, t] : tensors) {
      std::vector<uint8_t> bytes;
      try {
        bytes = t.contiguous_bytes();
      } catch (const Error& e) {
        fail(path, "tensor '" + name + "': " + e.what());
      }
      out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
    }
    out.close();
    if (!out) fail(path, "write error");
  } catch (...) {
    std::remove(temp.c_str());
    throw;
  }
  std::error_code ec;
  std::filesystem::rename(temp, path, ec);
  if (ec) {
    std::remove(temp.c_str());
    fail(path, "cannot write (" + ec.message() + ")");
  }
}

}  // namespace ruclip
