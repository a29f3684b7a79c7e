#include "index_search.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <map>
#include <unordered_map>

#include "ruclip/error.h"
#include "ruclip/zero_shot.h"
#include "synced_rows.h"
#ifdef RUCLIP_HAVE_FAISS
#include "approximate_index.h"
#endif

namespace ruclip_cli {

using json = nlohmann::json;
using ruclip::index::SampleRow;
using ruclip::index::Store;
namespace fs = std::filesystem;

namespace {

// A stored probe and the model's own agree to this cosine or better when the
// model is the same (whatever its precision: bf16 keeps >= 0.99); another
// model lands far below.
constexpr float kSameModelCosine = 0.98f;

// A hit: a run of neighbouring samples of one source (a file, or a camera
// in time) above the cut, around its best one.
struct Hit {
  int64_t source_id = 0;
  size_t first = 0, last = 0, peak = 0;  // rows
  float score = 0;
  size_t samples = 1;
};


// Embeddings of a fixed text and a fixed picture: what identifies the model
// (its folder may move, its file names differ between families).
std::vector<float> model_probe(ruclip::Model& model) {
  ruclip::Embeddings text = model.encode_text({"проверка модели: красный круг на синем фоне"});
  text.normalize_rows();
  const int w = 64, h = 48;
  std::vector<uint8_t> rgb(w * h * 3);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      uint8_t* p = &rgb[(y * w + x) * 3];
      p[0] = static_cast<uint8_t>(x * 4);
      p[1] = static_cast<uint8_t>(y * 5);
      p[2] = static_cast<uint8_t>((x * y) & 0xFF);
    }
  ruclip::FrameView view;
  view.format = ruclip::PixelFormat::RGB;
  view.width = w;
  view.height = h;
  view.planes[0] = rgb.data();
  view.strides[0] = w * 3;
  ruclip::Embeddings image = model.encode_frames({view});
  image.normalize_rows();
  std::vector<float> out(text.data);
  out.insert(out.end(), image.data.begin(), image.data.end());
  return out;
}

// The best `n` rows by the approximate index next to the database (built,
// and saved for the next search, when missing or made for other rows).
std::vector<ruclip::VectorHit> approximate_candidates(const std::string& path, const std::vector<SampleRow>& rows,
                                                      const ruclip::VectorMatrix& matrix, const std::vector<float>& query,
                                                      size_t n, int nprobe, const std::string& key) {
#ifdef RUCLIP_HAVE_FAISS
  if (rows.empty()) return {};
  const int dim = matrix.dim();
  std::unique_ptr<ApproximateIndex> index = ApproximateIndex::load(path, key);
  if (!index) {
    std::cerr << "ruclip search: building the approximate index of " << rows.size() << " samples (" << path << ")\n";
    std::vector<int64_t> ids;
    for (const auto& r : rows) ids.push_back(r.id);
    std::vector<float> values(rows.size() * dim);  // FAISS takes float32
    if (matrix.storage() == ruclip::VectorStorage::kFloat32) {
      std::memcpy(values.data(), matrix.data(), values.size() * sizeof(float));
    } else {
      const auto* halves = static_cast<const uint16_t*>(matrix.data());
      for (size_t i = 0; i < values.size(); ++i) values[i] = ruclip::half_to_float(halves[i]);
    }
    index = ApproximateIndex::build(values.data(), ids.data(), rows.size(), dim);
    try {
      index->save(path, key);
    } catch (const ruclip::Error& e) {
      std::cerr << "ruclip search: warning: " << e.what() << " (it is built again next time)\n";
    }
  }
  if (nprobe > 0) index->set_nprobe(nprobe);
  std::unordered_map<int64_t, size_t> row_of;
  for (size_t i = 0; i < rows.size(); ++i) row_of[rows[i].id] = i;
  // Scored again by the exact scan's kernel and put in its order (ties: lower
  // row first), so that where the candidates are the same, so are the hits.
  std::vector<ruclip::VectorHit> out;
  for (const auto& h : index->top(query.data(), n)) {
    const size_t row = row_of.at(h.id);
    out.push_back({row, matrix.dot(row, query.data())});
  }
  std::sort(out.begin(), out.end(), [](const ruclip::VectorHit& a, const ruclip::VectorHit& b) {
    return a.score > b.score || (a.score == b.score && a.row < b.row);
  });
  return out;
#else
  (void)path, (void)rows, (void)matrix, (void)query, (void)n, (void)nprobe, (void)key;
  throw ruclip::Error("--approximate: this ruclip was built without FAISS (Debian libfaiss-dev)");
#endif
}


}  // namespace

// Throws when the index was built with another model than `model`.
void check_model(Store& db, ruclip::Model& model, const std::string& model_dir) {
  const auto stored = db.info("model_probe");
  if (!stored) return;
  const std::string built_with = db.info("model").value_or("?");
  const std::vector<float> want = json::parse(*stored).get<std::vector<float>>();
  const std::vector<float> got = model_probe(model);
  const int dim = model.config().embed_dim;
  bool same = want.size() == got.size() && static_cast<int>(got.size()) == 2 * dim;
  for (int part = 0; same && part < 2; ++part) {
    float cos = 0;
    for (int i = 0; i < dim; ++i) cos += want[part * dim + i] * got[part * dim + i];
    same = cos >= kSameModelCosine;
  }
  if (!same)
    throw ruclip::Error("--db '" + db.location() + "' was built with the model '" + built_with + "'; --model '" +
                        model_dir + "' is another model (its embeddings differ): index into a new --db");
}

// The first writer's model is the index's (ruclipindex elements record the
// folder and dimension only: they have no model of their own to probe).
void record_model(Store& db, ruclip::Model& model, const std::string& model_dir) {
  db.info_or_set("model", fs::absolute(model_dir).lexically_normal().string());
  const std::string dim = db.info_or_set("dim", std::to_string(model.config().embed_dim));
  if (dim != std::to_string(model.config().embed_dim))
    throw ruclip::Error("--db '" + db.location() + "' holds " + dim + "-dimensional embeddings; --model '" +
                        model_dir + "' makes " + std::to_string(model.config().embed_dim) + ": index into a new --db");
  db.info_or_set("model_probe", json(model_probe(model)).dump());
}


IndexSearcher::IndexSearcher(const std::string& db, const std::string& model_dir, const ruclip::ModelOptions& options,
                             ruclip::VectorStorage storage, std::vector<std::string> templates,
                             std::vector<std::string> background)
    : db_path_(db),
      store_(Store::open(db, /*create=*/false)),
      storage_(storage),
      templates_(std::move(templates)),
      background_(std::move(background)) {
  const auto stored_model = store_->info("model");
  if (!stored_model)
    throw ruclip::Error("--db '" + store_->location() + "' holds no samples yet (ruclip index or ruclipindex add them)");
  model_dir_ = model_dir.empty() ? *stored_model : model_dir;
  model_ = ruclip::Model::load(model_dir_, options);
  dim_ = model_->config().embed_dim;
  check_model(*store_, *model_, model_dir_);
}

void require_cameras(const std::vector<ruclip::index::Source>& sources, const std::vector<std::string>& names,
                     const std::string& location) {
  for (const std::string& name : names)
    if (std::none_of(sources.begin(), sources.end(), [&](const ruclip::index::Source& s) {
          return s.kind == ruclip::index::Source::Kind::kCamera && s.name == name;
        }))
      throw ruclip::Error("--camera '" + name + "': no such camera in --db '" + location + "'");
}

void IndexSearcher::reopen() { store_ = Store::open(db_path_, /*create=*/false); }

IndexSearcher::IndexSearcher(const std::string& db, int dim, ruclip::VectorStorage storage)
    : db_path_(db), store_(Store::open(db, /*create=*/false)), dim_(dim), storage_(storage) {}

std::vector<float> IndexSearcher::text_query(const std::string& text) {
  if (!model_) throw ruclip::Error("this search has no model");
  if (!background_built_) background_built_ = ruclip::build_background(*model_, templates_, background_, "--background-file");
  query_set_ = ruclip::build_label_set(*model_, {text}, templates_, background_built_);
  return std::vector<float>(query_set_->text.row(0), query_set_->text.row(0) + model_->config().embed_dim);
}

std::vector<float> IndexSearcher::image_query(const ruclip::FrameView& picture) {
  if (!model_) throw ruclip::Error("this search has no model");
  ruclip::Embeddings e = model_->encode_frames({picture});
  e.normalize_rows();
  query_set_.reset();
  return std::vector<float>(e.row(0), e.row(0) + e.dim);
}

json IndexSearcher::sources() {
  json out = json::array();
  std::vector<ruclip::index::Source> all = store_->sources();
  std::stable_partition(all.begin(), all.end(),
                        [](const auto& s) { return s.kind == ruclip::index::Source::Kind::kCamera; });
  for (const auto& s : all)
    out.push_back({{"name", s.name},
                   {"kind", s.kind == ruclip::index::Source::Kind::kCamera ? "camera" : "file"},
                   {"samples", s.samples}});
  return out;
}

const SyncedRows& IndexSearcher::sync() {
  synced_ = sync_rows(*store_, rows_cache_base(db_path_, *store_), dim_, storage_, std::move(synced_));
  return synced_;
}

json IndexSearcher::neighbours(int64_t sample, int n) {
  const SyncedRows& synced = sync();
  const auto found = std::find_if(synced.rows.begin(), synced.rows.end(),
                                  [&](const SampleRow& r) { return r.id == sample; });
  if (found == synced.rows.end()) throw ruclip::Error("no sample " + std::to_string(sample));
  const int64_t at = found - synced.rows.begin();
  int64_t first = at;
  for (int i = 0; i < n && synced.previous[first] != kNoRow; ++i) first = synced.previous[first];
  json out = json::array();
  int after = -1;  // rows taken from the sample on
  for (int64_t r = first; r != kNoRow && after < n; r = synced.next[r]) {
    const SampleRow& row = synced.rows[r];
    if (row.wall_time != ruclip::index::kNoWallTime)
      out.push_back({{"sample", row.id}, {"wall_time", ruclip::index::iso8601(row.wall_time)}});
    else
      out.push_back({{"sample", row.id}, {"time", row.time}});
    if (after >= 0 || r == at) ++after;
  }
  return out;
}

json IndexSearcher::search(const std::vector<float>& query, const SearchFilters& f) {
  Store& db = *store_;
  const int dim = dim_;
  const int64_t now = ruclip::index::wall_clock_now();
  const int64_t since = f.since.empty() ? INT64_MIN : ruclip::index::parse_time(f.since, now, "--since");
  const int64_t until = f.until.empty() ? INT64_MAX : ruclip::index::parse_time(f.until, now, "--until");
  const std::vector<std::string>& cameras = f.cameras;
  const SyncedRows& synced = sync();
  const std::vector<SampleRow>& rows = synced.rows;
  const ruclip::VectorMatrix& matrix = synced.vectors.matrix;
  const std::vector<double>& sum = synced.vectors.column_sum;
  const std::vector<ruclip::index::Source> listed = db.sources();
  require_cameras(listed, cameras, db.location());
  std::map<int64_t, ruclip::index::Source> sources;
  for (const auto& src : listed) sources[src.id] = src;

  // The rows the filters keep (--camera, --since/--until: cameras only).
  const bool timed = !f.since.empty() || !f.until.empty();
  const bool filtered = !cameras.empty() || timed;
  std::vector<uint8_t> keep;
  if (filtered) {
    keep.resize(rows.size());
    for (size_t i = 0; i < rows.size(); ++i) {
      const SampleRow& r = rows[i];
      const auto src = sources.find(r.source_id);  // absent: pruned since the sync
      bool k = cameras.empty() || (src != sources.end() && src->second.kind == ruclip::index::Source::Kind::kCamera &&
                                   std::find(cameras.begin(), cameras.end(), src->second.name) != cameras.end());
      if (timed)
        k = k && r.wall_time != ruclip::index::kNoWallTime && r.wall_time >= since && r.wall_time <= until;
      keep[i] = k;
    }
  }
  // Neighbours in time: each row's previous and next of its source (synced_rows.h).
  const std::vector<int64_t>& previous = synced.previous;
  const std::vector<int64_t>& next = synced.next;

  // The query's presence in a row (presence.h): its logit against the
  // background's log-sum-exp, less the margin.
  const bool by_presence = f.threshold >= 0 && f.presence;
  if (by_presence && !query_set_)
    throw ruclip::Error("--threshold with presence scoring needs a text query (a picture has no background to beat)");
  const float scale = model_ ? model_->logit_scale() : 1.0f;
  auto presence = [&](int64_t row) {
    // As score_image does: the query against the background less its own entry.
    const ruclip::Embeddings& bg = query_set_->background->text;
    std::vector<double> logits(bg.rows);
    for (int k = 0; k < bg.rows; ++k) logits[k] = scale * matrix.dot(row, bg.row(k));
    const double background = ruclip::background_soft_max(logits, query_set_->own_background[0], scale);
    const double logit = scale * (matrix.dot(row, query.data()) - background) - f.presence_margin;
    return 1.0 / (1.0 + std::exp(-logit));
  };
  auto passes = [&](int64_t row) {
    if (f.threshold < 0) return true;
    return by_presence ? presence(row) >= f.threshold : matrix.dot(row, query.data()) >= f.threshold;
  };

  const bool approximate = f.approximate;
  if (approximate && filtered) throw ruclip::Error("--approximate takes no --camera, --since or --until");
  // The cut: given, or halfway between the best sample and the average one
  // (the mean embedding's score), so that it adapts to how far apart a
  // model's matching and unrelated scores lie, for texts and images alike.
  const size_t wanted = std::max<size_t>(64, static_cast<size_t>(f.top) * 16);
  const std::vector<ruclip::VectorHit> candidates =
      approximate ? approximate_candidates(rows_cache_base(db_path_, db) + ".faiss", rows, matrix, query, wanted,
                                           f.nprobe, rows_key(synced, dim))
                  : matrix.top(query.data(), wanted, 0, filtered ? keep.data() : nullptr);
  float cut = f.cut;
  if (f.threshold >= 0 && !by_presence) cut = std::max(cut, static_cast<float>(f.threshold));
  if (by_presence && cut < -1) cut = -1;  // the presence threshold decides where a hit ends
  if (cut < -1 && !candidates.empty()) {
    double mean = 0;
    for (int i = 0; i < dim; ++i) mean += sum[i] / rows.size() * query[i];
    cut = static_cast<float>((candidates[0].score + mean) / 2);
  }
  // Peaks first; a peak above the cut grows over the neighbouring samples of
  // its source above it; a peak already inside an earlier hit is part of it.
  std::vector<Hit> hits;
  std::vector<bool> used(rows.size(), false);
  auto joins = [&](int64_t row) {
    return row != kNoRow && !used[row] && (!filtered || keep[row]) && matrix.dot(row, query.data()) >= cut &&
           passes(row);
  };
  for (const ruclip::VectorHit& c : candidates) {
    if (static_cast<int>(hits.size()) >= f.top) break;
    if (used[c.row] || !passes(c.row)) continue;
    Hit h{rows[c.row].source_id, c.row, c.row, c.row, c.score, 1};
    if (c.score >= cut) {
      while (joins(previous[h.first])) h.first = previous[h.first], ++h.samples;
      while (joins(next[h.last])) h.last = next[h.last], ++h.samples;
    }
    for (int64_t r = static_cast<int64_t>(h.first);; r = next[r]) {
      used[r] = true;
      if (r == static_cast<int64_t>(h.last)) break;
    }
    hits.push_back(h);
  }

  json out_hits = json::array();
  for (const Hit& h : hits) {
    // A source pruned or indexed again since the sync: its rows are gone.
    const auto found = sources.find(h.source_id);
    if (found == sources.end()) continue;
    const ruclip::index::Source& src = found->second;
    const SampleRow &first = rows[h.first], &last = rows[h.last], &peak = rows[h.peak];
    json hit{{"score", h.score}, {"samples", h.samples}, {"sample", peak.id}};
    if (query_set_) hit["presence"] = presence(static_cast<int64_t>(h.peak));
    if (src.kind == ruclip::index::Source::Kind::kCamera) {
      hit["camera"] = src.name;
      hit["wall_time"] = ruclip::index::iso8601(peak.wall_time);
      hit["start_wall_time"] = ruclip::index::iso8601(first.wall_time);
      hit["end_wall_time"] = ruclip::index::iso8601(last.wall_time);
      try {
        hit["labels"] = db.labels(peak.id);
      } catch (const ruclip::Error&) {
        continue;  // pruned since the sync
      }
    } else {
      // A hit lasts until the next sample would have been taken (or the end).
      double end = last.time + src.every;
      if (src.duration > 0) end = std::min(end, src.duration);
      hit["file"] = src.name;
      hit["start"] = first.time;
      hit["end"] = end;
      hit["time"] = peak.time;
    }
    out_hits.push_back(std::move(hit));
  }
  return json{{"samples", rows.size()}, {"storage", ruclip::vector_storage_name(storage_)},
              {"synced", synced.read_from_store}, {"hits", out_hits}};
}

}  // namespace ruclip_cli
