// The tensors a reader hands out (TensorData): dtypes, element conversion
// and the checks that keep every view inside its storage.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <new>
#include <string>
#include <utility>
#include <vector>

#include "io/checkpoint_internal.h"
#include "ruclip/checkpoint.h"
#include "ruclip/error.h"

namespace ruclip {
namespace detail {

void fail(const std::string& origin, const std::string& reason) { throw Error(origin + ": " + reason); }

std::string printable(const std::string& text) {
  std::string out;
  for (size_t i = 0; i < text.size() && i < 120; ++i) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    if (c >= 0x20 && c != 0x7f) {
      out += static_cast<char>(c);
    } else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    }
  }
  if (text.size() > 120) out += "...";
  return out;
}

std::string view_problem(const std::vector<int64_t>& shape, const std::vector<int64_t>& strides,
                         int64_t offset, int64_t storage_elements, const std::string& storage_name) {
  if (shape.size() != strides.size())
    return "has " + std::to_string(shape.size()) + " sizes but " + std::to_string(strides.size()) + " strides";
  if (shape.size() > kMaxDims) return "has " + std::to_string(shape.size()) + " dimensions";
  if (offset < 0) return "has a negative storage offset (" + std::to_string(offset) + ")";
  int64_t numel = 1;
  for (size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] < 0) return "has a negative size (" + std::to_string(shape[d]) + ") in dimension " + std::to_string(d);
    if (strides[d] < 0)
      return "has a negative stride (" + std::to_string(strides[d]) + ") in dimension " + std::to_string(d);
    if (__builtin_mul_overflow(numel, shape[d], &numel)) return "has more than 2^63 elements";
  }
  if (numel == 0) {
    if (offset > storage_elements)
      return "starts at element " + std::to_string(offset) + " of " + storage_name + " which holds " +
             std::to_string(storage_elements);
    return "";
  }
  // The furthest element the view reaches: offset + sum((size - 1) * stride).
  int64_t last = offset;
  for (size_t d = 0; d < shape.size(); ++d) {
    int64_t step;
    if (__builtin_mul_overflow(shape[d] - 1, strides[d], &step) || __builtin_add_overflow(last, step, &last))
      return "reaches beyond element 2^63 of " + storage_name;
  }
  if (last >= storage_elements)
    return "reaches element " + std::to_string(last) + " of " + storage_name + " which holds " +
           std::to_string(storage_elements);
  // Only zero or overlapping strides give more elements than the storage has;
  // state dicts never need that, and refusing it bounds what to_float() allocates.
  if (numel > storage_elements)
    return "has " + std::to_string(numel) + " elements, more than the " + std::to_string(storage_elements) +
           " of " + storage_name + " (overlapping views are not supported)";
  return "";
}

}  // namespace detail

namespace {

using detail::view_problem;

// ---------------------------------------------------------------------------
// Element conversion.

float half_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exponent = (h >> 10) & 0x1fu;
  const uint32_t mantissa = h & 0x3ffu;
  uint32_t bits;
  if (exponent == 0x1f) {
    bits = sign | 0x7f800000u | (mantissa << 13);  // inf, nan
  } else if (exponent != 0) {
    bits = sign | ((exponent + 127 - 15) << 23) | (mantissa << 13);  // rebias 15 -> 127
  } else {
    // Zero or subnormal: mantissa * 2^-24 is exact in float.
    const float value = std::ldexp(static_cast<float>(mantissa), -24);
    return sign ? -value : value;
  }
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

// bfloat16 is the upper half of a float32.
float bfloat16_to_float(uint16_t b) {
  const uint32_t bits = static_cast<uint32_t>(b) << 16;
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

// Storages are little-endian and may sit at any address: memcpy, never cast.
template <class T>
T load(const uint8_t* p) {
  T value;
  std::memcpy(&value, p, sizeof value);
  return value;
}

float element_as_float(DType dtype, const uint8_t* p) {
  switch (dtype) {
    case DType::F32: return load<float>(p);
    case DType::F16: return half_to_float(load<uint16_t>(p));
    case DType::BF16: return bfloat16_to_float(load<uint16_t>(p));
    case DType::F64: return static_cast<float>(load<double>(p));
    case DType::I64: return static_cast<float>(load<int64_t>(p));
    case DType::I32: return static_cast<float>(load<int32_t>(p));
    case DType::I16: return static_cast<float>(load<int16_t>(p));
    case DType::I8: return static_cast<float>(load<int8_t>(p));
    case DType::U8: return static_cast<float>(load<uint8_t>(p));
    case DType::Bool: return load<uint8_t>(p) ? 1.0f : 0.0f;
  }
  return 0.0f;
}

// ---------------------------------------------------------------------------
// Tensor views.

void check_view(const TensorData& t) {
  const size_t bytes = t.storage ? t.storage->size() : 0;
  const auto elements = static_cast<int64_t>(bytes / dtype_size(t.dtype));
  const std::string problem = view_problem(t.shape, t.strides, t.offset, elements, "its storage");
  if (!problem.empty()) throw Error("tensor view " + problem);
}

// Visits a (checked) view row by row in row-major order, a row being the
// innermost dimension: fn(first element, element count, element stride).
template <class Fn>
void for_each_row(const TensorData& t, Fn&& fn) {
  if (t.numel() == 0) return;
  if (t.shape.empty()) {
    fn(t.offset, int64_t{1}, int64_t{1});
    return;
  }
  const size_t inner = t.shape.size() - 1;
  std::vector<int64_t> index(inner, 0);  // position in the outer dimensions
  const int64_t rows = t.numel() / t.shape[inner];
  for (int64_t row = 0; row < rows; ++row) {
    int64_t first = t.offset;
    for (size_t d = 0; d < inner; ++d) first += index[d] * t.strides[d];
    fn(first, t.shape[inner], t.strides[inner]);
    for (size_t d = inner; d-- > 0;) {  // odometer step
      if (++index[d] < t.shape[d]) break;
      index[d] = 0;
    }
  }
}

}  // namespace

size_t dtype_size(DType dtype) {
  switch (dtype) {
    case DType::F64:
    case DType::I64: return 8;
    case DType::F32:
    case DType::I32: return 4;
    case DType::F16:
    case DType::BF16:
    case DType::I16: return 2;
    case DType::I8:
    case DType::U8:
    case DType::Bool: return 1;
  }
  return 1;
}

// The safetensors spelling, which is also short enough for messages.
const char* dtype_name(DType dtype) {
  switch (dtype) {
    case DType::F32: return "F32";
    case DType::F16: return "F16";
    case DType::BF16: return "BF16";
    case DType::F64: return "F64";
    case DType::I64: return "I64";
    case DType::I32: return "I32";
    case DType::I16: return "I16";
    case DType::I8: return "I8";
    case DType::U8: return "U8";
    case DType::Bool: return "BOOL";
  }
  return "?";
}

std::shared_ptr<Storage> Storage::allocate(size_t size) {
  constexpr std::align_val_t kAlignment{64};
  void* buffer = ::operator new(std::max<size_t>(size, 1), kAlignment);
  auto storage = std::make_shared<Storage>(static_cast<const uint8_t*>(buffer), size,
                                           std::shared_ptr<void>(buffer, [](void* p) { ::operator delete(p, kAlignment); }));
  storage->writable_ = static_cast<uint8_t*>(buffer);
  return storage;
}

Storage::Storage(const uint8_t* data, size_t size, std::shared_ptr<const void> owner)
    : data_(data), size_(size), owner_(std::move(owner)) {}

bool Storage::operator==(const Storage& other) const {
  return size_ == other.size_ && (size_ == 0 || std::memcmp(data_, other.data_, size_) == 0);
}

StoragePtr::StoragePtr(std::shared_ptr<const std::vector<uint8_t>> bytes) {
  if (!bytes) return;
  const std::vector<uint8_t>& v = *bytes;
  storage_ = std::make_shared<const Storage>(v.data(), v.size(), std::move(bytes));
}

// Readers guarantee the product fits; to_float() and contiguous_bytes()
// re-check views built by hand before relying on it.
int64_t TensorData::numel() const {
  int64_t n = 1;
  for (int64_t size : shape) n *= size;
  return n;
}

const uint8_t* TensorData::contiguous_data() const {
  check_view(*this);
  if (!storage) return nullptr;  // an empty view of no storage
  int64_t expected = 1;
  for (size_t d = shape.size(); d-- > 0;) {
    if (shape[d] != 1 && strides[d] != expected) return nullptr;
    expected *= shape[d];
  }
  return storage->data() + static_cast<size_t>(offset) * dtype_size(dtype);
}

std::vector<float> TensorData::to_float() const {
  check_view(*this);
  std::vector<float> out(static_cast<size_t>(numel()));
  if (out.empty()) return out;
  const uint8_t* base = storage->data();
  const size_t element_size = dtype_size(dtype);
  float* dst = out.data();
  for_each_row(*this, [&](int64_t first, int64_t count, int64_t stride) {
    for (int64_t i = 0; i < count; ++i)
      *dst++ = element_as_float(dtype, base + static_cast<size_t>(first + i * stride) * element_size);
  });
  return out;
}

std::vector<uint8_t> TensorData::contiguous_bytes() const {
  check_view(*this);
  const size_t element_size = dtype_size(dtype);
  std::vector<uint8_t> out(static_cast<size_t>(numel()) * element_size);
  if (out.empty()) return out;
  const uint8_t* base = storage->data();
  uint8_t* dst = out.data();
  for_each_row(*this, [&](int64_t first, int64_t count, int64_t stride) {
    if (stride == 1) {
      std::memcpy(dst, base + static_cast<size_t>(first) * element_size, static_cast<size_t>(count) * element_size);
      dst += static_cast<size_t>(count) * element_size;
      return;
    }
    for (int64_t i = 0; i < count; ++i, dst += element_size)
      std::memcpy(dst, base + static_cast<size_t>(first + i * stride) * element_size, element_size);
  });
  return out;
}
}  // namespace ruclip
