// Internal to the weight readers (checkpoint*.cpp, safetensors.cpp): what
// their parts share. No LibTorch; not installed.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace ruclip::detail {

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

}  // namespace ruclip::detail
