// The restricted unpickler (checkpoint_pickle.h): data.pkl of a torch.save
// checkpoint (or a pickle of the legacy format) to a tree of Values, refusing
// every global and opcode a state dict does not need.
#include "io/checkpoint_pickle.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "io/checkpoint_internal.h"
#include "ruclip/error.h"

namespace ruclip::detail {
namespace {

// Limits. A real state dict stays far below each of them; they exist so that
// a hostile pickle is refused before it makes us allocate or work much.
constexpr size_t kMaxPickleValues = 1u << 21;       // objects the unpickler may create
constexpr size_t kMaxStackDepth = 1u << 20;
constexpr size_t kMaxMarkDepth = 1u << 12;           // MARKs open at once
constexpr size_t kMaxMemoEntries = 1u << 21;
constexpr size_t kMaxGlobalLine = 256;               // "module\n" or "name\n" of GLOBAL

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

// Interprets data.pkl. Values live in an arena owned by the unpickler until
// take_arena() hands it over.
class Unpickler {
 public:
  Unpickler(const uint8_t* data, size_t size, std::string where, PersistentIds ids, size_t start)
      : data_(data), size_(size), pos_(std::min(start, size)), where_(std::move(where)), ids_(ids) {}

  // Runs the pickle to its STOP and returns the value it built.
  Value* load() {
    for (;;) {
      op_pos_ = pos_;
      if (pos_ >= size_) fail_truncated("truncated pickle (no STOP opcode)", size_ + 1);
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
          if (length > size_ - pos_)
            fail_truncated("truncated pickle (frame of " + std::to_string(length) + " bytes)", needed(length));
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


  std::vector<std::unique_ptr<Value>> take_arena() { return std::move(arena_); }
  size_t position() const { return pos_; }

 private:
  [[noreturn]] void fail(const std::string& reason) const {
    throw Error(where_ + ": " + reason + " at byte " + std::to_string(op_pos_));
  }
  // The pickle goes on past the bytes we have: it would need `needed_size`.
  [[noreturn]] void fail_truncated(const std::string& reason, size_t needed_size) const {
    throw PickleTruncated(where_ + ": " + reason + " at byte " + std::to_string(op_pos_), needed_size);
  }
  // The buffer size that `n` more bytes from here need, saturating.
  size_t needed(uint64_t n) const {
    return n > SIZE_MAX - pos_ ? SIZE_MAX : pos_ + static_cast<size_t>(n);
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
    if (n > size_ - pos_) fail_truncated("truncated pickle", needed(n));
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
    if (!newline) {
      if (limit > kMaxGlobalLine) fail("GLOBAL name too long");
      fail_truncated("truncated pickle", needed(kMaxGlobalLine + 1));
    }
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

  // torch writes ('storage', storage_type, key, location, numel) per storage,
  // the legacy format ('storage', storage_type, root_key, location, numel,
  // view_metadata).
  Value* persistent_load(const Value* pid) {
    const std::vector<Value*>& a = pid->items;
    const bool legacy = ids_ == PersistentIds::Legacy;
    if (pid->kind != Kind::Tuple || a.size() != (legacy ? 6u : 5u) || a[0]->kind != Kind::String ||
        a[0]->text != "storage")
      fail(legacy ? "unsupported persistent id (expected ('storage', type, root_key, location, numel, view))"
                  : "unsupported persistent id (expected ('storage', type, key, location, numel))");
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
    if (legacy && a[5]->kind != Kind::None) {
      // (view_key, offset, numel), in elements: torch < 0.4 saved views of a storage this way.
      const std::vector<Value*>& v = a[5]->items;
      if (a[5]->kind != Kind::Tuple || v.size() != 3 || v[0]->kind != Kind::String || v[0]->text.empty() ||
          v[0]->text.find('\0') != std::string::npos || v[1]->kind != Kind::Int || v[1]->integer < 0 ||
          v[2]->kind != Kind::Int || v[2]->integer < 0)
        fail("persistent id has a bad storage view (expected None or (key, offset, numel))");
      s->view_key = v[0]->text;
      s->view_offset = v[1]->integer;
      s->view_numel = v[2]->integer;
    }
    return s;
  }

  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
  size_t op_pos_ = 0;  // where the current opcode starts, for messages
  std::string where_;
  PersistentIds ids_;
  std::vector<std::unique_ptr<Value>> arena_;
  std::vector<Value*> stack_;
  std::vector<size_t> marks_;  // stack sizes at each open MARK
  std::unordered_map<uint64_t, Value*> memo_;
};

}  // namespace

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

Pickle unpickle(const uint8_t* data, size_t size, const std::string& where, PersistentIds ids, size_t start) {
  Unpickler unpickler(data, size, where, ids, start);
  Pickle pickle;
  pickle.root = unpickler.load();
  pickle.end = unpickler.position();
  pickle.arena = unpickler.take_arena();
  return pickle;
}

}  // namespace ruclip::detail
