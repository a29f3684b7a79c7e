// The approximate search of `ruclip search --approximate`: FAISS's IVF-Flat
// over inner products (Debian libfaiss-dev). The rows are clustered into
// nlist ~ sqrt(rows) lists (at most rows / 39) by k-means; a query scans the `nprobe` lists
// whose centroids are closest, so it reads ~nprobe/nlist of the matrix
// instead of all of it. Results are exact scores of the rows it reaches;
// what it can miss are rows in lists it didn't probe (recall, measured by
// `ruclip bench-search` against the exact scan).
//
// Concurrency: a built or loaded index is immutable; top() may run
// concurrently.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace faiss {
struct Index;
}

namespace ruclip_cli {

class ApproximateIndex {
 public:
  // `rows` x `dim` floats (unit rows), `ids` the caller's id of each row.
  // `nprobe` 0: the default (nlist / 32, at least 8).
  static std::unique_ptr<ApproximateIndex> build(const float* rows, const int64_t* ids, size_t count, int dim,
                                                 int nprobe = 0);
  // The file `save` wrote; nullptr when it is missing or was made for
  // another `key` (the caller's description of the rows: it rebuilds then).
  static std::unique_ptr<ApproximateIndex> load(const std::string& path, const std::string& key);
  // Writes atomically (a temporary file renamed over `path`).
  void save(const std::string& path, const std::string& key) const;
  ~ApproximateIndex();

  struct Hit {
    int64_t id;
    float score;
  };
  std::vector<Hit> top(const float* query, size_t n) const;
  int nlist() const;
  int nprobe() const { return nprobe_; }
  void set_nprobe(int nprobe) { nprobe_ = nprobe; }
  size_t bytes() const;  // the index's memory (the vectors and the centroids)

 private:
  ApproximateIndex(faiss::Index* index, int nprobe);
  std::unique_ptr<faiss::Index> index_;
  int nprobe_;
};

}  // namespace ruclip_cli
