#include "approximate_index.h"

#include <faiss/IndexFlat.h>
#include <faiss/IndexIVFFlat.h>
#include <faiss/impl/FaissException.h>
#include <faiss/index_io.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <random>

#include "ruclip/error.h"
#include "vector_cache.h"

namespace ruclip_cli {
namespace {

constexpr const char* kMagic = "ruclip-faiss 1\n";

// k-means wants ~40-256 points per centroid; more only slows training.
constexpr size_t kTrainPerList = 40;

}  // namespace

ApproximateIndex::ApproximateIndex(faiss::Index* index, int nprobe) : index_(index), nprobe_(nprobe) {}
ApproximateIndex::~ApproximateIndex() = default;

std::unique_ptr<ApproximateIndex> ApproximateIndex::build(const float* rows, const int64_t* ids, size_t count,
                                                          int dim, int nprobe) {
  if (count == 0) throw ruclip::Error("an approximate index needs at least one row");
  // sqrt(rows) lists (k-means time grows with the lists: more would make a large
  // index slow to build), with no fewer than 39 training rows per list (FAISS's minimum).
  const double lists = std::min(std::sqrt(static_cast<double>(count)), static_cast<double>(count) / 39);
  const int nlist = static_cast<int>(std::clamp<double>(std::round(lists), 1, 65536));
  if (nprobe <= 0) nprobe = std::min(nlist, std::max(8, nlist / 32));
  try {
    auto* quantizer = new faiss::IndexFlatIP(dim);
    auto index = std::make_unique<faiss::IndexIVFFlat>(quantizer, dim, nlist, faiss::METRIC_INNER_PRODUCT);
    index->own_fields = true;
    // Training on an evenly spread sample (a fixed seed: the same rows give the same index).
    const size_t train = std::min(count, static_cast<size_t>(nlist) * kTrainPerList);
    std::vector<float> sample(train * dim);
    for (size_t i = 0; i < train; ++i) {
      const size_t row = i * count / train;
      std::copy(rows + row * dim, rows + (row + 1) * dim, sample.begin() + i * dim);
    }
    index->cp.seed = 1234;
    index->train(static_cast<faiss::Index::idx_t>(train), sample.data());
    index->add_with_ids(static_cast<faiss::Index::idx_t>(count), rows, ids);
    return std::unique_ptr<ApproximateIndex>(new ApproximateIndex(index.release(), nprobe));
  } catch (const faiss::FaissException& e) {
    throw ruclip::Error(std::string("FAISS: ") + e.what());
  }
}

std::unique_ptr<ApproximateIndex> ApproximateIndex::load(const std::string& path, const std::string& key) {
  FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) return nullptr;
  std::unique_ptr<FILE, int (*)(FILE*)> closer(f, std::fclose);
  // Header: the magic line, then the key line.
  std::string header;
  for (int lines = 0; lines < 2;) {
    const int c = std::fgetc(f);
    if (c == EOF || header.size() > 4096) return nullptr;
    header += static_cast<char>(c);
    if (c == '\n') ++lines;
  }
  if (header != std::string(kMagic) + key + "\n") return nullptr;
  int nprobe = 0;
  if (std::fread(&nprobe, sizeof nprobe, 1, f) != 1) return nullptr;
  try {
    faiss::Index* index = faiss::read_index(f);
    if (!dynamic_cast<faiss::IndexIVFFlat*>(index)) {
      delete index;
      throw ruclip::Error(path + ": not an IVF-Flat index");
    }
    return std::unique_ptr<ApproximateIndex>(new ApproximateIndex(index, nprobe));
  } catch (const faiss::FaissException& e) {
    throw ruclip::Error(path + ": unreadable approximate index (delete it to rebuild): " + e.what());
  }
}

void ApproximateIndex::save(const std::string& path, const std::string& key) const {
  write_file_atomically(path, "the approximate index", [&](std::FILE* f) {
    if (std::fputs(kMagic, f) < 0 || std::fputs((key + "\n").c_str(), f) < 0 ||
        std::fwrite(&nprobe_, sizeof nprobe_, 1, f) != 1)
      return false;
    try {
      faiss::write_index(index_.get(), f);
    } catch (const faiss::FaissException&) {
      return false;
    }
    return true;
  });
}

std::vector<ApproximateIndex::Hit> ApproximateIndex::top(const float* query, size_t n) const {
  auto* ivf = static_cast<faiss::IndexIVFFlat*>(index_.get());
  n = std::min(n, static_cast<size_t>(ivf->ntotal));
  std::vector<float> scores(n);
  std::vector<faiss::Index::idx_t> ids(n);
  faiss::SearchParametersIVF params;
  params.nprobe = static_cast<size_t>(nprobe_);
  ivf->search(1, query, static_cast<faiss::Index::idx_t>(n), scores.data(), ids.data(), &params);
  std::vector<Hit> out;
  for (size_t i = 0; i < n; ++i)
    if (ids[i] >= 0) out.push_back({ids[i], scores[i]});
  return out;
}

int ApproximateIndex::nlist() const { return static_cast<int>(static_cast<faiss::IndexIVFFlat*>(index_.get())->nlist); }

size_t ApproximateIndex::bytes() const {
  const auto* ivf = static_cast<const faiss::IndexIVFFlat*>(index_.get());
  return static_cast<size_t>(ivf->ntotal) * (ivf->code_size + sizeof(faiss::Index::idx_t)) +
         static_cast<size_t>(ivf->nlist) * ivf->d * sizeof(float);
}

}  // namespace ruclip_cli
