#include "synced_rows.h"

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <optional>

#include "ruclip/error.h"

namespace ruclip_cli {
namespace {

namespace fs = std::filesystem;
using ruclip::index::SampleRow;

constexpr char kMagic[16] = "ruclip-rows 1";

struct RowsHeader {
  char magic[16];
  int64_t generation;
  int64_t count;
  int64_t dim;
};
static_assert(sizeof(SampleRow) == 32, "rows are stored as they are in memory");

std::optional<std::vector<SampleRow>> read_rows(const std::string& path, int64_t generation, int dim) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) return std::nullopt;
  RowsHeader h{};
  std::vector<SampleRow> rows;
  bool ok = std::fread(&h, sizeof h, 1, f) == 1 && std::memcmp(h.magic, kMagic, sizeof kMagic) == 0 &&
            h.generation == generation && h.dim == dim && h.count >= 0;
  if (ok) {
    rows.resize(static_cast<size_t>(h.count));
    ok = std::fread(rows.data(), sizeof(SampleRow), rows.size(), f) == rows.size();
  }
  std::fclose(f);
  if (!ok) return std::nullopt;
  return rows;
}

// What the vector file was made for: these very rows.
std::string vectors_key(int64_t generation, const std::vector<SampleRow>& rows, int dim) {
  return "generation " + std::to_string(generation) + " rows " + std::to_string(rows.size()) + " last " +
         std::to_string(rows.empty() ? 0 : rows.back().id) + " dim " + std::to_string(dim);
}

uint64_t fnv1a(const std::string& s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return h;
}

}  // namespace

std::string rows_cache_base(const std::string& location, const ruclip::index::Store& db) {
  if (!ruclip::index::Store::is_postgresql(location)) return location;
  fs::path dir;
  if (const char* d = std::getenv("RUCLIP_CACHE_DIR"); d && *d)
    dir = d;
  else if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x)
    dir = fs::path(x) / "ruclip";
  else
    dir = fs::path(std::getenv("HOME") ? std::getenv("HOME") : "/tmp") / ".cache" / "ruclip";
  std::error_code ec;
  fs::create_directories(dir, ec);
  char name[40];
  std::snprintf(name, sizeof name, "pg-%016llx", static_cast<unsigned long long>(fnv1a(db.location())));
  return (dir / name).string();
}

SyncedRows sync_rows(ruclip::index::Store& db, const std::string& cache_base, int dim, ruclip::VectorStorage storage) {
  const int64_t generation = db.generation();
  const std::string rows_path = cache_base + ".rows";
  const std::string vectors_path =
      cache_base + (storage == ruclip::VectorStorage::kFloat16 ? ".f16.vectors" : ".f32.vectors");
  SyncedRows out{{}, {ruclip::VectorMatrix(dim, storage), std::vector<double>(dim, 0.0)}, 0};
  if (auto rows = read_rows(rows_path, generation, dim)) {
    if (auto mapped = map_vectors(vectors_path, vectors_key(generation, *rows, dim), storage, rows->size(), dim)) {
      out.rows = std::move(*rows);
      out.vectors = std::move(*mapped);
    }
  }
  // The rows added since: appended to a copy of the cached ones.
  const int64_t after = out.rows.empty() ? 0 : out.rows.back().id;
  std::vector<SampleRow> added;
  ruclip::VectorMatrix fresh(dim, storage);
  std::vector<double> sum = out.vectors.column_sum;
  db.read_since(after, dim, [&](const SampleRow& row, const float* e) {
    added.push_back(row);
    fresh.add(e);
    for (int i = 0; i < dim; ++i) sum[i] += e[i];
  });
  out.read_from_store = added.size();
  if (added.empty()) return out;
  ruclip::VectorMatrix all(dim, storage);
  all.reserve(out.rows.size() + added.size());
  all.add_rows(out.vectors.matrix);
  all.add_rows(fresh);
  out.rows.insert(out.rows.end(), added.begin(), added.end());
  out.vectors = MappedVectors{std::move(all), std::move(sum)};
  try {
    // The vectors first: rows naming a vector file that doesn't match are
    // not used (the key), so a reader never pairs the wrong two.
    write_vectors(vectors_path, vectors_key(generation, out.rows, dim), out.vectors.matrix, out.vectors.column_sum);
    write_file_atomically(rows_path, "the rows of the index", [&](std::FILE* f) {
      RowsHeader h{};
      std::memcpy(h.magic, kMagic, sizeof kMagic);
      h.generation = generation;
      h.count = static_cast<int64_t>(out.rows.size());
      h.dim = dim;
      return std::fwrite(&h, sizeof h, 1, f) == 1 &&
             std::fwrite(out.rows.data(), sizeof(SampleRow), out.rows.size(), f) == out.rows.size();
    });
  } catch (const ruclip::Error& e) {
    std::cerr << "ruclip search: warning: " << e.what() << " (the next search reads the index again)\n";
  }
  return out;
}

}  // namespace ruclip_cli
