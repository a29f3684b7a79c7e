// What `ruclip search` scans: every row of an index (ruclip/index/store.h)
// with its vector, kept in files of its own (CACHE.rows, CACHE.f32.vectors or
// .f16.vectors; vector_cache.h) and brought up to date by reading only the
// rows the store has added since (by id), appended to both files in place.
// A deletion in the store (prune, a file indexed again) changes its
// generation, and the cache starts again.
//
// Each row is linked to the previous and next row of its source (a file, a
// camera) in id order, which is time order: a file's samples are stored in
// time order at once, a camera's as they are taken. Hits grow along these
// links.
//
// The cache of a SQLite index lies beside it; of a PostgreSQL index, in
// $RUCLIP_CACHE_DIR, else $XDG_CACHE_HOME/ruclip, else ~/.cache/ruclip.
// Syncs of one cache take turns (a lock file, CACHE.lock).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "ruclip/index/store.h"
#include "vector_cache.h"

namespace ruclip_cli {

constexpr int64_t kNoRow = -1;

struct SyncedRows {
  std::vector<ruclip::index::SampleRow> rows;  // ascending id; rows[i] is the matrix's row i
  std::vector<int64_t> previous, next;         // the same source's neighbouring row, or kNoRow
  MappedVectors vectors;
  size_t read_from_store = 0;  // rows this sync read from the store
  int64_t generation = -1;     // the store's, when synced
};

// What the cache files derived from these rows are made for (the vector
// file, search --approximate's FAISS index): a change of rows changes it.
std::string rows_key(const SyncedRows& synced, int dim);

// Where the cache of `location` lives, without the extensions.
std::string rows_cache_base(const std::string& location, const ruclip::index::Store& db);

// `previous`: what an earlier sync of this process returned (a server keeps
// it between requests), used instead of the files while the store's
// generation is the same.
SyncedRows sync_rows(ruclip::index::Store& db, const std::string& cache_base, int dim, ruclip::VectorStorage storage,
                     SyncedRows previous = {});

}  // namespace ruclip_cli
