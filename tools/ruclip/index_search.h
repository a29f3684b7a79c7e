// Search over an index (ruclip/index/store.h), for `ruclip search` and
// `ruclip serve`: the query's normalized embedding (a text through the
// templates, as a label is; or a picture) against the stored samples by an
// exact SIMD scan (vector_search.h) or FAISS candidates (--approximate);
// from the best sample down, each hit grows over the neighbouring samples of
// its source (a file; a camera, in wall-clock time) that score above the cut.
// Filters (cameras, a wall-clock range) restrict the rows scanned.
//
// The index's model: the one recorded in it unless another folder is given;
// a model whose probe embeddings differ from the recorded ones is refused.
//
// Thread rule: one IndexSearcher per thread.
#pragma once
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "ruclip/image.h"
#include "ruclip/index/store.h"
#include "ruclip/model.h"
#include "ruclip/options.h"
#include "ruclip/zero_shot.h"
#include "ruclip/tools/vector_search.h"
#include "synced_rows.h"

namespace ruclip_cli {

struct SearchFilters {
  std::vector<std::string> cameras;  // empty: every source
  std::string since, until;          // ISO 8601 or an age ("2h"); empty: unbounded
  int top = 10;
  float cut = -2;                    // below -1: halfway between the best and the mean sample
  bool approximate = false;
  int nprobe = 0;
  // Keep only hits whose samples score at least this (below 0: no threshold),
  // as the presence of the last text query (presence.h) or as a cosine.
  double threshold = -1;
  bool presence = true;
  double presence_margin = 0;
};

class IndexSearcher {
 public:
  // Throws ruclip::Error naming --db or --model.
  IndexSearcher(const std::string& db, const std::string& model_dir, const ruclip::ModelOptions& options,
                ruclip::VectorStorage storage, std::vector<std::string> templates,
                std::vector<std::string> background = {});

  // Vectors only, no model (benchmarks): queries come from the caller, and
  // text_query/image_query throw.
  IndexSearcher(const std::string& db, int dim, ruclip::VectorStorage storage);

  std::vector<float> text_query(const std::string& text);
  std::vector<float> image_query(const ruclip::FrameView& picture);
  // {"samples", "synced", "storage", "hits": [...]}: a file's hits with
  // "file", "start", "end", "time"; a camera's with "camera", "wall_time",
  // "start_wall_time", "end_wall_time", "labels"; both "score", "samples",
  // "sample" (the best sample's id); after a text query, "presence" (the
  // best sample's). Throws ruclip::Error naming the filter for an unknown
  // camera or a bad time, or for a presence threshold after a picture query.
  nlohmann::json search(const std::vector<float>& query, const SearchFilters& filters);
  // [{"name", "kind": "camera"|"file", "samples"}], cameras first.
  nlohmann::json sources();
  // Up to `n` samples of the same source on each side of `sample` in time,
  // the sample itself among them: [{"sample", "time" or "wall_time"}] in
  // time order. Throws ruclip::Error for an unknown sample.
  nlohmann::json neighbours(int64_t sample, int n);

  // Opens the index again (a server whose PostgreSQL connection was lost).
  void reopen();
  ruclip::index::Store& store() { return *store_; }
  ruclip::Model& model() { return *model_; }
  const std::string& model_dir() const { return model_dir_; }

 private:
  std::string db_path_;
  std::unique_ptr<ruclip::index::Store> store_;
  std::string model_dir_;
  std::unique_ptr<ruclip::Model> model_;
  int dim_ = 0;
  ruclip::VectorStorage storage_;
  std::vector<std::string> templates_;
  std::vector<std::string> background_;  // a text query's presence background (empty: the model's)
  std::shared_ptr<const ruclip::Background> background_built_;  // encoded at the first text query
  // The last text query with its background (presence); null after a picture query.
  std::shared_ptr<const ruclip::LabelSet> query_set_;
  // Brings synced_ up to date with the store.
  const SyncedRows& sync();

  // The rows as of the last search: the next one reads only what came since.
  SyncedRows synced_;
};

// Throws ruclip::Error naming --camera for a name that is not one of the
// index's cameras.
void require_cameras(const std::vector<ruclip::index::Source>& sources, const std::vector<std::string>& names,
                     const std::string& location);

// The model an index is built with: its probe embeddings (a fixed text and a
// fixed picture), checked against the recorded ones and recorded by the
// first writer that has a model.
void check_model(ruclip::index::Store& db, ruclip::Model& model, const std::string& model_dir);
void record_model(ruclip::index::Store& db, ruclip::Model& model, const std::string& model_dir);

}  // namespace ruclip_cli
