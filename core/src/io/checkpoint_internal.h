// Internal to the weight readers (checkpoint*.cpp, safetensors.cpp): what
// their parts share. No LibTorch; not installed.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "ruclip/checkpoint.h"

namespace ruclip::detail {

struct Value;  // checkpoint_pickle.h

// No tensor needs more dimensions; a hostile file may claim millions.
constexpr size_t kMaxDims = 64;

// Throws ruclip::Error("<origin>: <reason>").
[[noreturn]] void fail(const std::string& origin, const std::string& reason);

// Names and keys come from the file: quoted with non-printable bytes escaped
// and a bounded length, so that a message stays one readable line.
std::string printable(const std::string& text);

// Why the view (shape, strides, offset, all in elements) does not fit a
// storage of `storage_elements` elements; empty when it fits. The arithmetic
// is overflow-checked so that a hostile shape cannot wrap around into an
// in-bounds index.
std::string view_problem(const std::vector<int64_t>& shape, const std::vector<int64_t>& strides,
                         int64_t offset, int64_t storage_elements, const std::string& storage_name);

// The tensors of the state dict that a torch checkpoint's pickle built, in
// its order: the root dict, or the one dict under a lone "state_dict" or
// "model" key. Every key must be a string and every value a tensor, else
// "<origin>: ..." (`pickle_name` names the pickle: "data.pkl", ...).
// Shared by the zip (checkpoint.cpp) and legacy (checkpoint_legacy.cpp) readers.
std::vector<std::pair<std::string, const Value*>> state_dict_tensors(const Value* root, const std::string& origin,
                                                                     const std::string& pickle_name);

// The legacy format (torch < 1.6, checkpoint_legacy.cpp): a file that starts
// with a pickle's PROTO opcode, where a zip archive starts with "PK".
bool starts_like_legacy(const uint8_t* data, size_t size);
// A legacy checkpoint of `size` bytes on disk, or in memory.
StateDict read_legacy_checkpoint(const std::string& path, uint64_t size);
StateDict read_legacy_checkpoint(const uint8_t* data, size_t size, const std::string& origin);

}  // namespace ruclip::detail
