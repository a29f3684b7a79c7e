// The database of `ruclip index` / `ruclip search`: one SQLite file holding,
// per sample of each indexed video, its time, the normalized image embedding
// and a small JPEG thumbnail.
//
// Consistency: a file's samples and its `files` row are written in one
// transaction, so a file is either wholly indexed or absent (an interrupted
// run leaves the database as it was before that file; the next run redoes
// only that file and the ones after it). `index_info` records the model the
// embeddings came from (its folder, dimension, and the embeddings of a fixed
// probe text and picture) so that another model is refused.
//
//   index_info(key TEXT PRIMARY KEY, value TEXT)     format, model, dim, model_probe
//   files(id, path UNIQUE, size, mtime_ns, every, duration, samples)
//   samples(id, file_id -> files.id, time, embedding BLOB float32[dim], thumbnail BLOB JPEG)
//
// Not thread-safe: one VideoIndex per thread.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

struct sqlite3;

namespace ruclip_cli {

struct IndexedFile {
  int64_t id = 0;
  std::string path;  // absolute
  int64_t size = 0, mtime_ns = 0;
  double every = 0, duration = -1;
  int64_t samples = 0;
};

struct IndexedSample {
  double time = 0;
  std::vector<float> embedding;
  std::vector<uint8_t> thumbnail;  // JPEG
};

// One stored sample, as search reads them: in (file, time) order.
struct SampleRef {
  int64_t id = 0;
  int64_t file_id = 0;
  double time = 0;
};

class VideoIndex {
 public:
  // Opens `path` (creating it when `create`). Throws ruclip::Error naming
  // --db and the file for one that is missing, not a database, corrupt, or
  // not a ruclip index.
  VideoIndex(const std::string& path, bool create);
  ~VideoIndex();
  VideoIndex(const VideoIndex&) = delete;
  VideoIndex& operator=(const VideoIndex&) = delete;

  std::optional<std::string> info(const std::string& key) const;
  void set_info(const std::string& key, const std::string& value);

  std::optional<IndexedFile> file(const std::string& path) const;
  std::vector<IndexedFile> files() const;
  // Replaces whatever was stored for `file.path` with these samples, in one
  // transaction. Returns the file's id.
  int64_t put_file(const IndexedFile& file, const std::vector<IndexedSample>& samples);

  // Every sample's embedding, in (file, time) order, through `add` (dim
  // floats each), and their references.
  template <typename Add>
  std::vector<SampleRef> read_embeddings(int dim, Add&& add) const;
  // The same references without the embeddings (the (file, time) index
  // alone: no embedding is read).
  std::vector<SampleRef> read_refs() const;
  std::vector<uint8_t> thumbnail(int64_t sample_id) const;
  int64_t sample_count() const;

  const std::string& path() const { return path_; }

 private:
  void exec(const std::string& sql) const;
  // Rows of `select id, file_id, time, embedding from samples order by file_id, time, id`.
  void each_embedding(int dim, void (*row)(void*, const SampleRef&, const float*), void* context) const;

  std::string path_;
  sqlite3* db_ = nullptr;
};

template <typename Add>
std::vector<SampleRef> VideoIndex::read_embeddings(int dim, Add&& add) const {
  struct Context {
    Add* add;
    std::vector<SampleRef> refs;
  } context{&add, {}};
  each_embedding(
      dim,
      [](void* c, const SampleRef& ref, const float* embedding) {
        auto* ctx = static_cast<Context*>(c);
        ctx->refs.push_back(ref);
        (*ctx->add)(embedding);
      },
      &context);
  return std::move(context.refs);
}

}  // namespace ruclip_cli
