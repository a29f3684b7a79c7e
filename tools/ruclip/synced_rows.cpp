#include "synced_rows.h"

#include <fcntl.h>
#include <pwd.h>
#include <sys/file.h>
#include <unistd.h>

#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <optional>
#include <unordered_map>

#include "ruclip/error.h"

namespace ruclip_cli {
namespace {

namespace fs = std::filesystem;
using ruclip::index::SampleRow;

constexpr char kMagic[16] = "ruclip-rows 2";

struct RowsHeader {
  char magic[16];
  int64_t generation;
  int64_t count;
  int64_t dim;
};

// A row as the rows file stores it.
struct StoredRow {
  SampleRow row;
  int64_t previous, next;
};
static_assert(sizeof(StoredRow) == 48, "rows are stored as they are in memory");

struct RowsFile {
  std::vector<SampleRow> rows;
  std::vector<int64_t> previous, next;
};

std::optional<RowsFile> read_rows(const std::string& path, int64_t generation, int dim) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) return std::nullopt;
  RowsHeader h{};
  std::vector<StoredRow> stored;
  bool ok = std::fread(&h, sizeof h, 1, f) == 1 && std::memcmp(h.magic, kMagic, sizeof kMagic) == 0 &&
            h.generation == generation && h.dim == dim && h.count >= 0;
  if (ok) {
    stored.resize(static_cast<size_t>(h.count));
    ok = std::fread(stored.data(), sizeof(StoredRow), stored.size(), f) == stored.size() && std::fgetc(f) == EOF;
  }
  std::fclose(f);
  if (!ok) return std::nullopt;
  // Links to rows that are not there: not this cache's file.
  for (const StoredRow& r : stored)
    for (const int64_t link : {r.previous, r.next})
      if (link != kNoRow && (link < 0 || link >= h.count)) return std::nullopt;
  RowsFile out;
  out.rows.reserve(stored.size());
  out.previous.reserve(stored.size());
  out.next.reserve(stored.size());
  for (const StoredRow& s : stored) {
    out.rows.push_back(s.row);
    out.previous.push_back(s.previous);
    out.next.push_back(s.next);
  }
  return out;
}

RowsHeader header_of(int64_t generation, size_t count, int dim) {
  RowsHeader h{};
  std::memcpy(h.magic, kMagic, sizeof kMagic);
  h.generation = generation;
  h.count = static_cast<int64_t>(count);
  h.dim = dim;
  return h;
}

void write_rows(const std::string& path, int64_t generation, const SyncedRows& s, int dim) {
  write_file_atomically(path, "the rows of the index", [&](std::FILE* f) {
    const RowsHeader h = header_of(generation, s.rows.size(), dim);
    if (std::fwrite(&h, sizeof h, 1, f) != 1) return false;
    for (size_t i = 0; i < s.rows.size(); ++i) {
      const StoredRow r{s.rows[i], s.previous[i], s.next[i]};
      if (std::fwrite(&r, sizeof r, 1, f) != 1) return false;
    }
    return true;
  });
}

// Appends rows [old_count, end) in place, with the `next` links of the
// older rows they follow; the header's count last. False: write it whole.
bool append_rows(const std::string& path, int64_t generation, const SyncedRows& s, size_t old_count, int dim) {
  const int fd = open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) return false;
  RowsHeader h{};
  const RowsHeader want = header_of(generation, old_count, dim);
  bool ok = pread(fd, &h, sizeof h, 0) == sizeof h && std::memcmp(&h, &want, sizeof h) == 0;
  for (size_t i = old_count; ok && i < s.rows.size(); ++i) {
    const StoredRow r{s.rows[i], s.previous[i], s.next[i]};
    ok = pwrite(fd, &r, sizeof r, sizeof h + i * sizeof r) == sizeof r;
    const int64_t before = s.previous[i];
    if (ok && before != kNoRow && static_cast<size_t>(before) < old_count)
      ok = pwrite(fd, &s.next[before], sizeof(int64_t),
                  sizeof h + before * sizeof(StoredRow) + offsetof(StoredRow, next)) == sizeof(int64_t);
  }
  const RowsHeader now = header_of(generation, s.rows.size(), dim);
  ok = ok && pwrite(fd, &now, sizeof now, 0) == sizeof now;
  close(fd);
  return ok;
}

std::string vectors_key(int64_t generation, const std::vector<SampleRow>& rows, int dim) {
  return "generation " + std::to_string(generation) + " rows " + std::to_string(rows.size()) + " last " +
         std::to_string(rows.empty() ? 0 : rows.back().id) + " dim " + std::to_string(dim);
}

uint64_t fnv1a(const std::string& s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return h;
}

// Syncs of one cache take turns: an exclusive lock on CACHE.lock.
class CacheLock {
 public:
  explicit CacheLock(const std::string& path) : fd_(open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644)) {
    if (fd_ >= 0) flock(fd_, LOCK_EX);
  }
  ~CacheLock() {
    if (fd_ >= 0) close(fd_);  // releases the lock
  }
  CacheLock(const CacheLock&) = delete;
  CacheLock& operator=(const CacheLock&) = delete;

 private:
  int fd_;
};

}  // namespace

std::string rows_key(const SyncedRows& synced, int dim) { return vectors_key(synced.generation, synced.rows, dim); }

std::string rows_cache_base(const std::string& location, const ruclip::index::Store& db) {
  if (!ruclip::index::Store::is_postgresql(location)) return location;
  fs::path dir;
  if (const char* d = std::getenv("RUCLIP_CACHE_DIR"); d && *d) {
    dir = d;
  } else if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x) {
    dir = fs::path(x) / "ruclip";
  } else {
    // The user's own home, never a shared folder (/tmp) another user could
    // prepare: without HOME, the password database's.
    const char* home = std::getenv("HOME");
    const passwd* pw = home && *home ? nullptr : getpwuid(getuid());
    dir = fs::path(home && *home ? home : pw ? pw->pw_dir : "/nonexistent") / ".cache" / "ruclip";
  }
  std::error_code ec;
  fs::create_directories(dir, ec);
  fs::permissions(dir, fs::perms::owner_all, fs::perm_options::replace, ec);
  char name[40];
  std::snprintf(name, sizeof name, "pg-%016llx", static_cast<unsigned long long>(fnv1a(db.location())));
  return (dir / name).string();
}

SyncedRows sync_rows(ruclip::index::Store& db, const std::string& cache_base, int dim, ruclip::VectorStorage storage,
                     SyncedRows previous) {
  const int64_t generation = db.generation();
  // Nothing new since this process's last sync: no file read at all.
  if (previous.generation == generation && previous.vectors.matrix.dim() == dim &&
      previous.vectors.matrix.storage() == storage && previous.vectors.matrix.rows() == previous.rows.size()) {
    if (db.last_id() == (previous.rows.empty() ? 0 : previous.rows.back().id)) {
      previous.read_from_store = 0;
      return previous;
    }
  }
  CacheLock lock(cache_base + ".lock");
  const std::string rows_path = cache_base + ".rows";
  const std::string vectors_path =
      cache_base + (storage == ruclip::VectorStorage::kFloat16 ? ".f16.vectors" : ".f32.vectors");
  SyncedRows out{{}, {}, {}, {ruclip::VectorMatrix(dim, storage), std::vector<double>(dim, 0.0)}, 0, generation};
  if (auto cached = read_rows(rows_path, generation, dim)) {
    if (auto mapped = map_vectors(vectors_path, vectors_key(generation, cached->rows, dim), storage,
                                  cached->rows.size(), dim)) {
      out.rows = std::move(cached->rows);
      out.previous = std::move(cached->previous);
      out.next = std::move(cached->next);
      out.vectors = std::move(*mapped);
    }
  }
  const size_t old_count = out.rows.size();
  const std::string old_key = vectors_key(generation, out.rows, dim);
  // The rows added since, linked to their source's last row.
  std::unordered_map<int64_t, int64_t> last_of_source;
  if (old_count > 0)
    for (size_t i = 0; i < old_count; ++i)
      if (out.next[i] == kNoRow) last_of_source[out.rows[i].source_id] = static_cast<int64_t>(i);
  const int64_t after = out.rows.empty() ? 0 : out.rows.back().id;
  ruclip::VectorMatrix fresh(dim, storage);
  std::vector<double> sum = out.vectors.column_sum;
  db.read_since(after, dim, [&](const SampleRow& row, const float* e) {
    const int64_t index = static_cast<int64_t>(out.rows.size());
    const auto last = last_of_source.find(row.source_id);
    const int64_t before = last == last_of_source.end() ? kNoRow : last->second;
    if (before != kNoRow) out.next[before] = index;
    out.rows.push_back(row);
    out.previous.push_back(before);
    out.next.push_back(kNoRow);
    last_of_source[row.source_id] = index;
    fresh.add(e);
    for (int i = 0; i < dim; ++i) sum[i] += e[i];
  });
  out.read_from_store = out.rows.size() - old_count;
  if (out.read_from_store == 0) return out;
  const std::string new_key = vectors_key(generation, out.rows, dim);
  try {
    // In place where the cache was whole; else both files anew.
    if (old_count > 0 && append_vectors(vectors_path, old_key, old_count, new_key, fresh, sum) &&
        append_rows(rows_path, generation, out, old_count, dim)) {
      if (auto mapped = map_vectors(vectors_path, new_key, storage, out.rows.size(), dim)) {
        out.vectors = std::move(*mapped);
        return out;
      }
    }
    ruclip::VectorMatrix all(dim, storage);
    all.reserve(out.rows.size());
    all.add_rows(out.vectors.matrix);
    all.add_rows(fresh);
    out.vectors = MappedVectors{std::move(all), std::move(sum)};
    // The vectors first: rows naming a vector file that doesn't match are
    // not used (the key), so a reader never pairs the wrong two.
    write_vectors(vectors_path, new_key, out.vectors.matrix, out.vectors.column_sum);
    write_rows(rows_path, generation, out, dim);
    // Scanned from the file as every later search is (the same bytes, laid
    // out alike: the same scores to the last bit).
    if (auto mapped = map_vectors(vectors_path, new_key, storage, out.rows.size(), dim))
      out.vectors = std::move(*mapped);
  } catch (const ruclip::Error& e) {
    std::cerr << "ruclip search: warning: " << e.what() << " (the next search reads the index again)\n";
    if (out.vectors.matrix.rows() != out.rows.size()) {  // the in-place path failed midway
      ruclip::VectorMatrix all(dim, storage);
      all.add_rows(out.vectors.matrix);
      all.add_rows(fresh);
      out.vectors = MappedVectors{std::move(all), std::move(sum)};
    }
  }
  return out;
}

}  // namespace ruclip_cli
