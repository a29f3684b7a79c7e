// Reading torch.save checkpoints without LibTorch and without running Python.
//
// A pytorch_model.bin is a zip archive: <archive>/data.pkl is a pickle of the
// state dict in which every tensor refers, by key, to a raw little-endian
// storage <archive>/data/<key>. A pickle is a small program for a stack
// machine that may import and call anything, so instead of a general
// unpickler we interpret only the opcodes a state dict uses and know only the
// handful of globals it needs (OrderedDict, the tensor rebuild functions and
// the storage types); everything else is refused by name, never executed.
// Every tensor view is then checked against the bytes its storage really has.
#include "ruclip/checkpoint.h"

#include <zip.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "ruclip/error.h"

namespace ruclip {
namespace {

// ---------------------------------------------------------------------------
// Limits. A real state dict stays far below each of them; they exist so that
// a hostile file is refused before it makes us allocate or work much.

constexpr uint64_t kMaxPickleBytes = 256ull << 20;  // size of data.pkl
constexpr size_t kMaxPickleValues = 1u << 21;       // objects the unpickler may create
constexpr size_t kMaxStackDepth = 1u << 20;
constexpr size_t kMaxMarkDepth = 1u << 12;           // MARKs open at once
constexpr size_t kMaxMemoEntries = 1u << 21;
constexpr size_t kMaxGlobalLine = 256;               // "module\n" or "name\n" of GLOBAL
constexpr size_t kMaxDims = 64;
// Deflate cannot expand data by more than about 1032:1, so an entry declaring
// a larger ratio lies about its size (the zip bomb trick).
constexpr uint64_t kMaxDeflateRatio = 1032;

[[noreturn]] void fail(const std::string& origin, const std::string& reason) {
  throw Error(origin + ": " + reason);
}

// Names and keys come from the file: quote them with non-printable bytes
// escaped and a bounded length, so a message stays one readable line.
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

// Why the view (shape, strides, offset, all in elements) does not fit a
// storage of `storage_elements` elements; empty when it fits. The arithmetic
// is overflow-checked so that a hostile shape cannot wrap around into an
// in-bounds index.
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

// ---------------------------------------------------------------------------
// The restricted unpickler.

// Pickle opcodes, named as in Python's pickletools so that its disassembly
// can be read side by side with this file.
namespace op {
enum : uint8_t {
  MARK = '(',
  STOP = '.',
  POP = '0',
  POP_MARK = '1',
  BINFLOAT = 'G',
  BININT = 'J',
  BININT1 = 'K',
  BININT2 = 'M',
  NONE = 'N',
  PERSID = 'P',
  BINPERSID = 'Q',
  REDUCE = 'R',
  BINUNICODE = 'X',
  EMPTY_LIST = ']',
  APPEND = 'a',
  BUILD = 'b',
  GLOBAL = 'c',
  APPENDS = 'e',
  BINGET = 'h',
  INST = 'i',
  LONG_BINGET = 'j',
  OBJ = 'o',
  BINPUT = 'q',
  LONG_BINPUT = 'r',
  SETITEM = 's',
  TUPLE = 't',
  SETITEMS = 'u',
  EMPTY_TUPLE = ')',
  EMPTY_DICT = '}',
  PROTO = 0x80,
  NEWOBJ = 0x81,
  EXT1 = 0x82,
  EXT2 = 0x83,
  EXT4 = 0x84,
  TUPLE1 = 0x85,
  TUPLE2 = 0x86,
  TUPLE3 = 0x87,
  NEWTRUE = 0x88,
  NEWFALSE = 0x89,
  LONG1 = 0x8a,
  LONG4 = 0x8b,
  SHORT_BINUNICODE = 0x8c,
  BINUNICODE8 = 0x8d,
  NEWOBJ_EX = 0x92,
  STACK_GLOBAL = 0x93,
  MEMOIZE = 0x94,
  FRAME = 0x95,
};
}  // namespace op

// The globals a state dict may name. Anything else is refused.
enum class Callable { OrderedDict, RebuildTensor, RebuildParameter, StorageType };

struct AllowedGlobal {
  const char* module;
  const char* name;
  Callable callable;
  DType dtype;  // for storage types
};

const AllowedGlobal kAllowedGlobals[] = {
    {"collections", "OrderedDict", Callable::OrderedDict, DType::F32},
    {"torch._utils", "_rebuild_tensor_v2", Callable::RebuildTensor, DType::F32},
    {"torch._utils", "_rebuild_parameter", Callable::RebuildParameter, DType::F32},
    {"torch", "FloatStorage", Callable::StorageType, DType::F32},
    {"torch", "HalfStorage", Callable::StorageType, DType::F16},
    {"torch", "BFloat16Storage", Callable::StorageType, DType::BF16},
    {"torch", "DoubleStorage", Callable::StorageType, DType::F64},
    {"torch", "LongStorage", Callable::StorageType, DType::I64},
    {"torch", "IntStorage", Callable::StorageType, DType::I32},
    {"torch", "ShortStorage", Callable::StorageType, DType::I16},
    {"torch", "CharStorage", Callable::StorageType, DType::I8},
    {"torch", "ByteStorage", Callable::StorageType, DType::U8},
    {"torch", "BoolStorage", Callable::StorageType, DType::Bool},
};

// What a pickle can build here. One struct for all kinds keeps the
// interpreter simple; only the fields of its kind are used.
enum class Kind { None, Bool, Int, Float, String, Tuple, List, Dict, Global, Storage, Tensor };

const char* kind_name(Kind kind) {
  switch (kind) {
    case Kind::None: return "None";
    case Kind::Bool: return "bool";
    case Kind::Int: return "int";
    case Kind::Float: return "float";
    case Kind::String: return "str";
    case Kind::Tuple: return "tuple";
    case Kind::List: return "list";
    case Kind::Dict: return "dict";
    case Kind::Global: return "global";
    case Kind::Storage: return "storage";
    case Kind::Tensor: return "tensor";
  }
  return "?";
}

struct Value {
  Kind kind = Kind::None;
  int64_t integer = 0;  // Int, Bool
  double real = 0;      // Float
  std::string text;     // String; Global: "module.name"; Storage: its key
  std::vector<Value*> items;                        // Tuple, List
  std::vector<std::pair<Value*, Value*>> entries;   // Dict (dict and OrderedDict alike, insertion order)
  Callable callable = Callable::OrderedDict;        // Global
  DType dtype = DType::F32;                         // Global of a storage type, Storage
  int64_t storage_numel = 0;                        // Storage: elements it claims to hold
  Value* storage = nullptr;                         // Tensor: its Storage value
  int64_t offset = 0;                               // Tensor
  std::vector<int64_t> shape, strides;              // Tensor
};

// Interprets data.pkl. Values live in an arena owned by the unpickler and
// refer to each other by plain pointers, so shared and even cyclic
// references (which a pickle can build through the memo) are harmless.
class Unpickler {
 public:
  Unpickler(const uint8_t* data, size_t size, std::string where)
      : data_(data), size_(size), where_(std::move(where)) {}

  // Runs the pickle to its STOP and returns the value it built.
  Value* load() {
    for (;;) {
      op_pos_ = pos_;
      if (pos_ >= size_) fail("truncated pickle (no STOP opcode)");
      const uint8_t code = data_[pos_++];
      switch (code) {
        // --- framing and end ---
        case op::PROTO: {  // protocol version; we read up to 5
          const uint8_t version = read_u8();
          if (version > 5) fail("unsupported pickle protocol " + std::to_string(version));
          break;
        }
        case op::FRAME: {  // protocol 4 groups opcodes into frames for buffered reading; we hold it all
          const uint64_t length = read_u64();
          if (length > size_ - pos_) fail("truncated pickle (frame of " + std::to_string(length) + " bytes)");
          break;
        }
        case op::STOP: {  // the value on the stack is the result
          Value* result = pop();
          if (!stack_.empty() || !marks_.empty()) fail("malformed pickle: values left on the stack at STOP");
          return result;
        }

        // --- stack structure ---
        case op::MARK:  // remembers where a variable-length group of values starts
          if (marks_.size() >= kMaxMarkDepth) fail("MARKs nested too deeply");
          marks_.push_back(stack_.size());
          break;
        case op::POP:
          pop();
          break;
        case op::POP_MARK:
          pop_to_mark();
          break;

        // --- scalars ---
        case op::NONE:
          push(make(Kind::None));
          break;
        case op::NEWTRUE:
        case op::NEWFALSE: {
          Value* v = make(Kind::Bool);
          v->integer = code == op::NEWTRUE;
          push(v);
          break;
        }
        case op::BININT:  // 4-byte signed
          push(make_int(static_cast<int32_t>(read_u32())));
          break;
        case op::BININT1:  // 1-byte unsigned
          push(make_int(read_u8()));
          break;
        case op::BININT2:  // 2-byte unsigned
          push(make_int(read_u16()));
          break;
        case op::LONG1:  // n-byte two's complement, n in one byte
          push(make_int(read_long(read_u8())));
          break;
        case op::LONG4:  // n-byte two's complement, n in four bytes
          push(make_int(read_long(read_u32())));
          break;
        case op::BINFLOAT: {  // 8-byte big-endian double
          uint64_t bits = 0;
          for (const uint8_t* p = take(8), *end = p + 8; p != end; ++p) bits = (bits << 8) | *p;
          Value* v = make(Kind::Float);
          std::memcpy(&v->real, &bits, sizeof bits);
          push(v);
          break;
        }
        case op::BINUNICODE:  // UTF-8 string, 4-byte length
          push(make_string(read_u32()));
          break;
        case op::SHORT_BINUNICODE:  // 1-byte length
          push(make_string(read_u8()));
          break;
        case op::BINUNICODE8:  // 8-byte length
          push(make_string(read_u64()));
          break;

        // --- containers ---
        case op::EMPTY_TUPLE:
          push(make(Kind::Tuple));
          break;
        case op::TUPLE: {  // everything since the last MARK
          Value* t = make(Kind::Tuple);
          t->items = pop_to_mark();
          push(t);
          break;
        }
        case op::TUPLE1:
        case op::TUPLE2:
        case op::TUPLE3: {  // the top 1, 2 or 3 values
          Value* t = make(Kind::Tuple);
          t->items = pop_n(code - op::TUPLE1 + 1);
          push(t);
          break;
        }
        case op::EMPTY_LIST:
          push(make(Kind::List));
          break;
        case op::APPEND: {  // list.append(top)
          Value* item = pop();
          container(Kind::List, "APPEND")->items.push_back(item);
          break;
        }
        case op::APPENDS: {  // list.extend(everything since the last MARK)
          std::vector<Value*> items = pop_to_mark();
          Value* list = container(Kind::List, "APPENDS");
          list->items.insert(list->items.end(), items.begin(), items.end());
          break;
        }
        case op::EMPTY_DICT:
          push(make(Kind::Dict));
          break;
        case op::SETITEM: {  // dict[key] = value
          Value* value = pop();
          Value* key = pop();
          container(Kind::Dict, "SETITEM")->entries.emplace_back(key, value);
          break;
        }
        case op::SETITEMS: {  // key, value pairs since the last MARK
          std::vector<Value*> pairs = pop_to_mark();
          if (pairs.size() % 2) fail("SETITEMS with an odd number of values");
          Value* dict = container(Kind::Dict, "SETITEMS");
          for (size_t i = 0; i < pairs.size(); i += 2) dict->entries.emplace_back(pairs[i], pairs[i + 1]);
          break;
        }

        // --- memo: the pickle's own back-references ---
        case op::BINPUT:
          memo_put(read_u8());
          break;
        case op::LONG_BINPUT:
          memo_put(read_u32());
          break;
        case op::MEMOIZE:  // protocol 4: the next free index
          memo_put(memo_.size());
          break;
        case op::BINGET:
          push(memo_get(read_u8()));
          break;
        case op::LONG_BINGET:
          push(memo_get(read_u32()));
          break;

        // --- the dangerous part: names, calls and objects ---
        case op::GLOBAL: {  // "module\nname\n": looked up in the allow list, never imported
          const std::string module = read_line();
          const std::string name = read_line();
          push(resolve_global(module, name));
          break;
        }
        case op::STACK_GLOBAL: {  // protocol 4: module and name from the stack
          Value* name = pop();
          Value* module = pop();
          if (module->kind != Kind::String || name->kind != Kind::String)
            fail("STACK_GLOBAL needs two strings, got " + std::string(kind_name(module->kind)) + " and " +
                 kind_name(name->kind));
          push(resolve_global(module->text, name->text));
          break;
        }
        case op::REDUCE: {  // callable(*args), for allowed callables only
          Value* args = pop();
          Value* callable = pop();
          push(call(callable, args));
          break;
        }
        case op::BUILD: {  // obj.__setstate__(state)
          Value* state = pop();
          Value* object = top();
          // torch attaches `_metadata` (module versions) to the state dict as an
          // OrderedDict attribute; we have no use for it, so it is dropped.
          if (object->kind == Kind::Dict && (state->kind == Kind::Dict || state->kind == Kind::None)) break;
          fail(std::string("BUILD on a ") + kind_name(object->kind) + " with a " + kind_name(state->kind) +
               " state is not supported");
        }
        case op::BINPERSID:  // a reference to data outside the pickle: a storage
          push(persistent_load(pop()));
          break;

        case op::INST:
        case op::OBJ:
        case op::NEWOBJ:
        case op::NEWOBJ_EX:
        case op::PERSID:
        case op::EXT1:
        case op::EXT2:
        case op::EXT4:
          fail("opcode " + opcode_name(code) + " is not allowed");
        default:
          fail("unknown opcode " + opcode_name(code));
      }
    }
  }

 private:
  [[noreturn]] void fail(const std::string& reason) const {
    throw Error(where_ + ": " + reason + " at byte " + std::to_string(op_pos_));
  }

  static std::string opcode_name(uint8_t code) {
    const char* name = nullptr;
    switch (code) {
      case op::INST: name = "INST"; break;
      case op::OBJ: name = "OBJ"; break;
      case op::NEWOBJ: name = "NEWOBJ"; break;
      case op::NEWOBJ_EX: name = "NEWOBJ_EX"; break;
      case op::PERSID: name = "PERSID"; break;
      case op::EXT1: name = "EXT1"; break;
      case op::EXT2: name = "EXT2"; break;
      case op::EXT4: name = "EXT4"; break;
      default: break;
    }
    char hex[8];
    std::snprintf(hex, sizeof hex, "0x%02x", code);
    return name ? std::string(name) + " (" + hex + ")" : std::string(hex);
  }

  // --- reading the byte stream, bounds-checked ---

  const uint8_t* take(uint64_t n) {
    if (n > size_ - pos_) fail("truncated pickle");
    const uint8_t* p = data_ + pos_;
    pos_ += static_cast<size_t>(n);
    return p;
  }
  uint8_t read_u8() { return *take(1); }
  uint64_t read_le(size_t n) {
    const uint8_t* p = take(n);
    uint64_t v = 0;
    for (size_t i = n; i-- > 0;) v = (v << 8) | p[i];
    return v;
  }
  uint16_t read_u16() { return static_cast<uint16_t>(read_le(2)); }
  uint32_t read_u32() { return static_cast<uint32_t>(read_le(4)); }
  uint64_t read_u64() { return read_le(8); }

  // Python ints of any width; ours must fit 64 bits.
  int64_t read_long(uint64_t n) {
    if (n > 8) fail("integer of " + std::to_string(n) + " bytes does not fit 64 bits");
    if (n == 0) return 0;
    uint64_t v = read_le(static_cast<size_t>(n));
    if (n < 8 && (v >> (8 * n - 1)) & 1) v |= ~uint64_t{0} << (8 * n);  // sign-extend
    int64_t result;
    std::memcpy(&result, &v, sizeof result);
    return result;
  }

  std::string read_line() {
    const size_t limit = std::min(size_ - pos_, kMaxGlobalLine + 1);
    const void* newline = std::memchr(data_ + pos_, '\n', limit);
    if (!newline) fail(limit <= kMaxGlobalLine ? "truncated pickle" : "GLOBAL name too long");
    const size_t length = static_cast<const uint8_t*>(newline) - (data_ + pos_);
    std::string line(reinterpret_cast<const char*>(data_ + pos_), length);
    pos_ += length + 1;
    return line;
  }

  // --- values ---

  Value* make(Kind kind) {
    if (arena_.size() >= kMaxPickleValues) fail("pickle builds too many objects");
    arena_.push_back(std::make_unique<Value>());
    arena_.back()->kind = kind;
    return arena_.back().get();
  }
  Value* make_int(int64_t n) {
    Value* v = make(Kind::Int);
    v->integer = n;
    return v;
  }
  Value* make_string(uint64_t length) {
    const uint8_t* p = take(length);  // checks the length against the bytes left first
    Value* v = make(Kind::String);
    v->text.assign(reinterpret_cast<const char*>(p), static_cast<size_t>(length));
    return v;
  }

  // --- the stack; values below the last MARK belong to an enclosing group ---

  size_t frame_start() const { return marks_.empty() ? 0 : marks_.back(); }
  void push(Value* v) {
    if (stack_.size() >= kMaxStackDepth) fail("pickle stack too deep");
    stack_.push_back(v);
  }
  Value* top() {
    if (stack_.size() <= frame_start()) fail("stack underflow");
    return stack_.back();
  }
  Value* pop() {
    Value* v = top();
    stack_.pop_back();
    return v;
  }
  std::vector<Value*> pop_n(size_t n) {
    if (stack_.size() - frame_start() < n) fail("stack underflow");
    std::vector<Value*> items(stack_.end() - static_cast<std::ptrdiff_t>(n), stack_.end());
    stack_.resize(stack_.size() - n);
    return items;
  }
  std::vector<Value*> pop_to_mark() {
    if (marks_.empty()) fail("no MARK to pop to");
    const size_t start = marks_.back();
    marks_.pop_back();
    std::vector<Value*> items(stack_.begin() + static_cast<std::ptrdiff_t>(start), stack_.end());
    stack_.resize(start);
    return items;
  }
  // The list or dict on top of the stack that `opcode` adds to.
  Value* container(Kind kind, const char* opcode) {
    Value* v = top();
    if (v->kind != kind)
      fail(std::string(opcode) + " on a " + kind_name(v->kind) + ", expected a " + kind_name(kind));
    return v;
  }

  void memo_put(uint64_t index) {
    if (memo_.size() >= kMaxMemoEntries && !memo_.count(index)) fail("memo too large");
    memo_[index] = top();
  }
  Value* memo_get(uint64_t index) {
    auto it = memo_.find(index);
    if (it == memo_.end()) fail("memo index " + std::to_string(index) + " is not defined");
    return it->second;
  }

  // --- globals and calls ---

  Value* resolve_global(const std::string& module, const std::string& name) {
    for (const AllowedGlobal& g : kAllowedGlobals) {
      if (module == g.module && name == g.name) {
        Value* v = make(Kind::Global);
        v->text = module + "." + name;
        v->callable = g.callable;
        v->dtype = g.dtype;
        return v;
      }
    }
    fail("forbidden global '" + printable(module + "." + name) + "'");
  }

  Value* call(Value* callable, Value* args) {
    if (callable->kind != Kind::Global)
      fail(std::string("REDUCE calls a ") + kind_name(callable->kind) + ", not an allowed global");
    if (args->kind != Kind::Tuple) fail("REDUCE arguments of '" + callable->text + "' are not a tuple");
    const std::vector<Value*>& a = args->items;
    switch (callable->callable) {
      case Callable::OrderedDict:
        if (!a.empty()) fail("OrderedDict called with arguments");
        return make(Kind::Dict);
      case Callable::RebuildTensor:
        return rebuild_tensor(a);
      case Callable::RebuildParameter:
        // _rebuild_parameter(data, requires_grad, backward_hooks): the tensor itself is all we need.
        if (a.size() != 3 || a[0]->kind != Kind::Tensor)
          fail("_rebuild_parameter expects (tensor, requires_grad, backward_hooks)");
        return a[0];
      case Callable::StorageType:
        break;
    }
    fail("'" + callable->text + "' cannot be called");
  }

  // _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad,
  // backward_hooks[, metadata]); only the view matters to us. It is checked
  // against the storage once the storage's zip entry is known.
  Value* rebuild_tensor(const std::vector<Value*>& a) {
    if (a.size() != 6 && a.size() != 7)
      fail("_rebuild_tensor_v2 expects 6 or 7 arguments, got " + std::to_string(a.size()));
    if (a[0]->kind != Kind::Storage)
      fail(std::string("_rebuild_tensor_v2: first argument is a ") + kind_name(a[0]->kind) + ", not a storage");
    if (a[1]->kind != Kind::Int) fail("_rebuild_tensor_v2: storage offset is not an int");
    Value* t = make(Kind::Tensor);
    t->storage = a[0];
    t->offset = a[1]->integer;
    t->shape = int_tuple(a[2], "size");
    t->strides = int_tuple(a[3], "stride");
    return t;
  }

  std::vector<int64_t> int_tuple(const Value* v, const char* what) {
    if (v->kind != Kind::Tuple) fail(std::string("_rebuild_tensor_v2: ") + what + " is not a tuple");
    if (v->items.size() > kMaxDims) fail(std::string("_rebuild_tensor_v2: ") + what + " has too many dimensions");
    std::vector<int64_t> out;
    for (const Value* item : v->items) {
      if (item->kind != Kind::Int) fail(std::string("_rebuild_tensor_v2: ") + what + " holds a non-int");
      out.push_back(item->integer);
    }
    return out;
  }

  // torch writes ('storage', storage_type, key, location, numel) per storage.
  Value* persistent_load(const Value* pid) {
    const std::vector<Value*>& a = pid->items;
    if (pid->kind != Kind::Tuple || a.size() != 5 || a[0]->kind != Kind::String || a[0]->text != "storage")
      fail("unsupported persistent id (expected ('storage', type, key, location, numel))");
    if (a[1]->kind != Kind::Global || a[1]->callable != Callable::StorageType)
      fail("persistent id names no storage type");
    if (a[2]->kind != Kind::String || a[2]->text.empty() || a[2]->text.find('\0') != std::string::npos)
      fail("persistent id has a bad storage key");
    if (a[3]->kind != Kind::String) fail("persistent id has a bad location");  // "cpu", "cuda:0": we load on the CPU
    if (a[4]->kind != Kind::Int || a[4]->integer < 0) fail("persistent id has a bad element count");
    Value* s = make(Kind::Storage);
    s->dtype = a[1]->dtype;
    s->text = a[2]->text;
    s->storage_numel = a[4]->integer;
    return s;
  }

  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
  size_t op_pos_ = 0;  // where the current opcode starts, for messages
  std::string where_;
  std::vector<std::unique_ptr<Value>> arena_;
  std::vector<Value*> stack_;
  std::vector<size_t> marks_;  // stack sizes at each open MARK
  std::unordered_map<uint64_t, Value*> memo_;
};

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
  if (code == ZIP_ER_NOZIP) return "not a zip archive" + detail;
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

  // The size an entry declares, once it is plausible: refused before anything
  // is allocated when it could not come from the bytes the archive holds.
  uint64_t checked_size(const std::string& name) const {
    zip_stat_t st;
    zip_stat_init(&st);
    if (zip_stat(zip_, name.c_str(), ZIP_FL_ENC_RAW, &st) != 0) fail(origin_, "no entry '" + printable(name) + "'");
    const zip_uint64_t need = ZIP_STAT_SIZE | ZIP_STAT_COMP_SIZE | ZIP_STAT_COMP_METHOD;
    if ((st.valid & need) != need) fail(origin_, "entry '" + printable(name) + "' has no size information");
    const std::string entry = "entry '" + printable(name) + "' ";
    if (st.comp_size > archive_bytes_)
      fail(origin_, entry + "claims " + std::to_string(st.comp_size) + " compressed bytes, the archive has " +
                        std::to_string(archive_bytes_));
    if (st.comp_method == ZIP_CM_STORE) {
      if (st.size != st.comp_size)
        fail(origin_, entry + "is stored uncompressed but declares " + std::to_string(st.size) + " bytes from " +
                          std::to_string(st.comp_size));
    } else if (st.comp_method == ZIP_CM_DEFLATE) {
      if (st.size / kMaxDeflateRatio > st.comp_size + 1)
        fail(origin_, entry + "declares " + std::to_string(st.size) + " bytes from " + std::to_string(st.comp_size) +
                          " compressed: more than deflate can expand (zip bomb?)");
    } else {
      fail(origin_, entry + "uses unsupported compression method " + std::to_string(st.comp_method));
    }
    return st.size;
  }

  std::vector<uint8_t> read(const std::string& name, uint64_t limit) const {
    const uint64_t size = checked_size(name);
    const std::string entry = "entry '" + printable(name) + "' ";
    if (size > limit)
      fail(origin_, entry + "declares " + std::to_string(size) + " bytes, more than the " + std::to_string(limit) +
                        " allowed");
    std::unique_ptr<zip_file_t, decltype(&zip_fclose)> file(zip_fopen(zip_, name.c_str(), ZIP_FL_ENC_RAW),
                                                           &zip_fclose);
    if (!file) fail(origin_, "cannot read " + entry + "(" + zip_strerror(zip_) + ")");
    std::vector<uint8_t> bytes(static_cast<size_t>(size));
    uint64_t got = 0;
    while (got < size) {
      const zip_int64_t n = zip_fread(file.get(), bytes.data() + got, size - got);
      if (n < 0) fail(origin_, "cannot read " + entry + "(" + zip_file_strerror(file.get()) + ")");
      if (n == 0) fail(origin_, entry + "is truncated (" + std::to_string(got) + " of " + std::to_string(size) + " bytes)");
      got += static_cast<uint64_t>(n);
    }
    // libzip checks the CRC when it reaches the end of the entry: read once more.
    uint8_t extra;
    const zip_int64_t n = zip_fread(file.get(), &extra, 1);
    if (n < 0) fail(origin_, "cannot read " + entry + "(" + zip_file_strerror(file.get()) + ")");
    if (n > 0) fail(origin_, entry + "is longer than it declares");
    return bytes;
  }

 private:
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
  Unpickler unpickler(pickle.data(), pickle.size(), origin + ": data.pkl");
  const Value* root = unpickler.load();
  if (root->kind != Kind::Dict)
    fail(origin, std::string("data.pkl holds a ") + kind_name(root->kind) + ", not a state dict");
  // Training scripts sometimes save {"state_dict": {...}} or {"model": {...}}.
  if (root->entries.size() == 1) {
    const auto& [key, value] = root->entries.front();
    if (key->kind == Kind::String && (key->text == "state_dict" || key->text == "model") && value->kind == Kind::Dict)
      root = value;
  }

  StateDict dict;
  std::map<std::string, std::shared_ptr<const std::vector<uint8_t>>> storages;  // by key: each read once
  for (const auto& [key, value] : root->entries) {
    if (key->kind != Kind::String) fail(origin, std::string("state dict has a ") + kind_name(key->kind) + " key");
    const std::string tensor_name = "tensor '" + printable(key->text) + "'";
    if (value->kind != Kind::Tensor)
      fail(origin, "state dict entry '" + printable(key->text) + "' is a " + kind_name(value->kind) + ", not a tensor");
    const Value& storage = *value->storage;
    const std::string storage_name = "storage '" + printable(storage.text) + "'";
    const std::string entry = prefix + "data/" + storage.text;
    if (!zip.has(entry)) fail(origin, tensor_name + ": " + storage_name + " has no entry '" + printable(entry) + "'");

    // The storage's claim against its entry, before anything is read.
    const size_t element_size = dtype_size(storage.dtype);
    int64_t claimed_bytes;
    const uint64_t entry_bytes = zip.checked_size(entry);
    if (__builtin_mul_overflow(storage.storage_numel, static_cast<int64_t>(element_size), &claimed_bytes) ||
        static_cast<uint64_t>(claimed_bytes) > entry_bytes)
      fail(origin, storage_name + " claims " + std::to_string(storage.storage_numel) + " " +
                       dtype_name(storage.dtype) + " elements but its entry holds " + std::to_string(entry_bytes) +
                       " bytes");
    const std::string problem =
        view_problem(value->shape, value->strides, value->offset, storage.storage_numel, storage_name);
    if (!problem.empty()) fail(origin, tensor_name + " " + problem);

    std::shared_ptr<const std::vector<uint8_t>>& bytes = storages[storage.text];
    if (!bytes) bytes = std::make_shared<const std::vector<uint8_t>>(zip.read(entry, entry_bytes));

    TensorData t;
    t.dtype = storage.dtype;
    t.shape = value->shape;
    t.strides = value->strides;
    t.offset = value->offset;
    t.storage = bytes;
    dict[key->text] = std::move(t);
  }
  return dict;
}

}  // namespace

// ---------------------------------------------------------------------------
// Public API.

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

// Readers guarantee the product fits; to_float() and contiguous_bytes()
// re-check views built by hand before relying on it.
int64_t TensorData::numel() const {
  int64_t n = 1;
  for (int64_t size : shape) n *= size;
  return n;
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

StateDict read_torch_checkpoint(const std::string& path) {
  std::error_code ec;
  const uintmax_t size = std::filesystem::file_size(path, ec);
  if (ec) fail(path, "cannot open (" + ec.message() + ")");
  if (size == 0) fail(path, "empty file, not a zip archive");
  int code = 0;
  // ZIP_CHECKCONS: compare local and central headers, which catches more corruption.
  zip_t* archive = zip_open(path.c_str(), ZIP_RDONLY | ZIP_CHECKCONS, &code);
  if (!archive) {
    uint8_t head[4] = {};
    std::ifstream(path, std::ios::binary).read(reinterpret_cast<char*>(head), sizeof head);
    fail(path, open_failure(code, starts_like_zip(head, sizeof head)));
  }
  ZipReader zip(archive, size, path);
  return load_checkpoint(zip, path);
}

StateDict read_torch_checkpoint(const uint8_t* data, size_t size, const std::string& origin) {
  if (size == 0) fail(origin, "empty file, not a zip archive");
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
