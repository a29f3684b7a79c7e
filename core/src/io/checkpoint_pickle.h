// Internal: the restricted unpickler behind read_torch_checkpoint
// (checkpoint_pickle.cpp), for the zip format's data.pkl and the pickles of
// the legacy format (checkpoint_legacy.cpp). A pickle is a small program for a stack machine
// that may import and call anything, so instead of a general unpickler this
// interprets only the opcodes a state dict uses and knows only the handful of
// globals it needs (OrderedDict, the tensor rebuild functions and the storage
// types); everything else is refused by name, never executed.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "ruclip/checkpoint.h"
#include "ruclip/error.h"

namespace ruclip::detail {

// The globals a state dict may name.
enum class Callable { OrderedDict, RebuildTensor, RebuildParameter, StorageType };

// What a pickle can build here. One struct for all kinds keeps the
// interpreter simple; only the fields of its kind are used.
enum class Kind { None, Bool, Int, Float, String, Tuple, List, Dict, Global, Storage, Tensor };

const char* kind_name(Kind kind);

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
  // Storage, legacy format only: a view of elements [view_offset,
  // view_offset + view_numel) of the storage, named view_key; view_numel < 0
  // when the persistent id has no view (what torch >= 0.4 always writes).
  std::string view_key;
  int64_t view_offset = 0, view_numel = -1;
  Value* storage = nullptr;                         // Tensor: its Storage value
  int64_t offset = 0;                               // Tensor
  std::vector<int64_t> shape, strides;              // Tensor
};

// What a pickle built: `root` and every value it refers to live in `arena`.
// Values refer to each other by plain pointers, so shared and even cyclic
// references (which a pickle can build through the memo) are harmless.
struct Pickle {
  std::vector<std::unique_ptr<Value>> arena;
  const Value* root = nullptr;
  size_t end = 0;  // where the next byte after its STOP is
};

// How storages are referenced: the zip format's persistent ids are
// ('storage', type, key, location, numel); the legacy format's add a sixth
// item, the view (None, or (view_key, offset, numel)).
enum class PersistentIds { Zip, Legacy };

// Thrown instead of a plain Error when the pickle runs past `size`: it may
// go on in bytes not yet read (the legacy reader reads a file's pickles in
// growing pieces). `needed` is the size that would have let it go further
// (at most SIZE_MAX).
class PickleTruncated : public Error {
 public:
  PickleTruncated(const std::string& message, size_t needed) : Error(message), needed(needed) {}
  size_t needed;
};

// Runs the pickle that starts at byte `start` of `data` to its STOP. A
// tensor's view is not checked here (its storage's size is known only from
// the archive). Throws ruclip::Error "<where>: <reason> at byte N", N
// counted from `data`.
Pickle unpickle(const uint8_t* data, size_t size, const std::string& where,
                PersistentIds ids = PersistentIds::Zip, size_t start = 0);

}  // namespace ruclip::detail
