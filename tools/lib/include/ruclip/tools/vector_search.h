// Exact nearest-neighbour search over stored embeddings (`ruclip search`):
// a contiguous row-major matrix of float32 or float16 rows, scanned with
// SIMD dot products chosen at run time (AVX-512, AVX2+FMA(+F16C), portable),
// split across threads for large matrices. The scan reads every stored byte
// once per query, so its time grows linearly with rows x dim x bytes per
// value; float16 halves the bytes (and the memory) at ~1e-3 of cosine.
//
// Concurrency: a filled VectorMatrix is immutable; top() and dot() may run
// concurrently from any number of threads. add()/reserve() are not
// concurrent with anything.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace ruclip {

enum class VectorStorage { kFloat32, kFloat16 };
VectorStorage parse_vector_storage(const std::string& name);  // "float32" | "float16"; throws naming the value
const char* vector_storage_name(VectorStorage storage);

struct VectorHit {
  size_t row = 0;
  float score = 0;  // inner product (cosine for unit rows and a unit query)
};

class VectorMatrix {
 public:
  VectorMatrix(int dim, VectorStorage storage);
  // `rows` x `dim` values of `storage`'s type at `data` (e.g. a memory-mapped
  // file), kept alive by `owner`; nothing is copied, add() refuses.
  static VectorMatrix view(const void* data, size_t rows, int dim, VectorStorage storage,
                           std::shared_ptr<const void> owner);

  void reserve(size_t rows);
  void add(const float* row);  // `dim` floats, converted to the storage type
  // Every row of `from` (same dim and storage), copied as stored.
  void add_rows(const VectorMatrix& from);
  const void* data() const;    // the rows, contiguous
  size_t rows() const { return rows_; }
  int dim() const { return dim_; }
  VectorStorage storage() const { return storage_; }
  size_t bytes() const;  // the matrix's own memory

  float dot(size_t row, const float* query) const;
  // The `n` rows with the largest inner product, best first (ties: lower
  // row first). threads 0: all online CPUs, used only when the matrix is
  // large enough for threads to pay off. `keep` (one byte per row, 0: skip
  // the row) restricts the scan to some rows.
  std::vector<VectorHit> top(const float* query, size_t n, int threads = 0, const uint8_t* keep = nullptr) const;
  // Name of the dot-product kernel this CPU runs ("avx512", "avx2", "portable").
  const char* kernel() const;

 private:
  const float* f32_rows() const { return view_ ? static_cast<const float*>(view_) : f32_.data(); }
  const uint16_t* f16_rows() const { return view_ ? static_cast<const uint16_t*>(view_) : f16_.data(); }

  int dim_;
  VectorStorage storage_;
  size_t rows_ = 0;
  std::vector<float> f32_;
  std::vector<uint16_t> f16_;
  const void* view_ = nullptr;  // view(): the rows live there
  std::shared_ptr<const void> owner_;
};

// IEEE half <-> float (round to nearest even), the storage's conversion.
uint16_t float_to_half(float f);
float half_to_float(uint16_t h);

}  // namespace ruclip
