// The embeddings of a search index as one contiguous matrix file beside it
// (FILE.f32.vectors / FILE.f16.vectors), memory-mapped by later searches:
// reading the embeddings row by row out of SQLite costs time per row, mapping
// them almost none (the page cache keeps them between searches).
//
// The file is derived data: made for one set of samples (`key`, the
// caller's description of them) and remade when they change; a missing,
// stale, truncated or foreign file is simply not used. Layout: a 4096-byte
// text header (magic, key, storage, rows, dim), the per-dimension sum of the
// rows (dim doubles, for the search's mean score), the rows (64-byte aligned).
#pragma once
#include <cstdio>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "ruclip/tools/vector_search.h"

namespace ruclip_cli {

struct MappedVectors {
  ruclip::VectorMatrix matrix{1, ruclip::VectorStorage::kFloat32};  // a view of the mapping (none yet: empty)
  std::vector<double> column_sum;  // dim values
};

// The mapped file, or nullopt when it is missing or not made for exactly
// this key, storage, row count and dimension.
std::optional<MappedVectors> map_vectors(const std::string& path, const std::string& key, ruclip::VectorStorage storage,
                                         size_t rows, int dim);
// Writes atomically (a temporary file renamed over `path`); throws
// ruclip::Error naming the file when it can't.
void write_vectors(const std::string& path, const std::string& key, const ruclip::VectorMatrix& matrix,
                   const std::vector<double>& column_sum);

// Appends `added` (with the column sums of all rows now) to the file made
// for `old_key` with `old_rows` rows, in place, and gives it `new_key`.
// False, with the file untouched, when it is not that file.
bool append_vectors(const std::string& path, const std::string& old_key, size_t old_rows, const std::string& new_key,
                    const ruclip::VectorMatrix& added, const std::vector<double>& column_sum);

// Writes `path` through `write` (true: all written) into PATH.part, renamed
// over `path` when complete: a reader sees the old file or the new one, never
// half of one. Throws ruclip::Error "PATH: cannot write WHAT" otherwise.
void write_file_atomically(const std::string& path, const std::string& what,
                           const std::function<bool(std::FILE*)>& write);

}  // namespace ruclip_cli
