// bench-search: what `ruclip search` costs as an index grows. Synthetic
// embeddings shaped like video samples (videos of scenes; a scene's samples
// near each other; unit rows of --dim floats) at each --rows count:
//  - the exact scan (float32 and float16 storage): query ms, memory;
//  - FAISS IVF-Flat (approximate_index.h): build s, query ms, memory, and
//    recall@10 against the exact float32 scan at several nprobe;
//  - reading the embeddings back from an SQLite index of that size, and
//    mapping the vector file later searches use instead (--sqlite).
// Queries are like text queries: near a scene (cosine ~0.3-0.5 to its
// samples), not copies of stored rows, which would flatter the approximation.
// One JSON object per line, with the CPU model and its features.
#include <algorithm>
#include <chrono>
#include <filesystem>
#include <iostream>
#include <random>
#include <set>
#include <sstream>

#include "cli.h"
#include "ruclip/cpu.h"
#include "ruclip/tools/vector_search.h"
#include "vector_cache.h"
#include "ruclip/index/store.h"
#ifdef RUCLIP_HAVE_FAISS
#include "approximate_index.h"
#endif

namespace ruclip_cli {
namespace {

using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point t) { return std::chrono::duration<double, std::milli>(Clock::now() - t).count(); }

void normalize(float* v, int dim) {
  double n = 0;
  for (int i = 0; i < dim; ++i) n += static_cast<double>(v[i]) * v[i];
  const float inv = n > 0 ? static_cast<float>(1 / std::sqrt(n)) : 0.f;
  for (int i = 0; i < dim; ++i) v[i] *= inv;
}

struct Synthetic {
  std::vector<float> rows, queries;
};

// Videos of 600 samples, scenes of 20; a sample is its scene plus noise of
// norm 0.3 (consecutive samples at cosine ~0.9); a query is a scene plus
// noise of norm 3 (cosine ~0.3, as a text query to its pictures).
Synthetic make_data(size_t count, int dim, int queries, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.f, 1.f);
  Synthetic d;
  d.rows.resize(count * dim);
  std::vector<float> video(dim), scene(dim);
  std::vector<std::vector<float>> scenes;
  for (size_t r = 0; r < count; ++r) {
    if (r % 600 == 0)
      for (auto& x : video) x = normal(rng);
    if (r % 20 == 0) {
      for (int i = 0; i < dim; ++i) scene[i] = video[i] + 1.2f * normal(rng);
      normalize(scene.data(), dim);
      if (scenes.size() < 100000) scenes.push_back(scene);
    }
    float* row = &d.rows[r * dim];
    for (int i = 0; i < dim; ++i) row[i] = scene[i] + 0.3f * normal(rng) / std::sqrt(static_cast<float>(dim));
    normalize(row, dim);
  }
  d.queries.resize(static_cast<size_t>(queries) * dim);
  std::uniform_int_distribution<size_t> pick(0, scenes.size() - 1);
  for (int q = 0; q < queries; ++q) {
    const auto& s = scenes[pick(rng)];
    float* v = &d.queries[static_cast<size_t>(q) * dim];
    for (int i = 0; i < dim; ++i) v[i] = s[i] + 3.0f * normal(rng) / std::sqrt(static_cast<float>(dim));
    normalize(v, dim);
  }
  return d;
}

json percentiles(std::vector<double> ms) {
  std::sort(ms.begin(), ms.end());
  auto at = [&](double q) { return ms[std::min(ms.size() - 1, static_cast<size_t>(q * ms.size()))]; };
  return {{"p50", at(0.5)}, {"p95", at(0.95)}};
}

std::vector<size_t> parse_counts(const std::string& text) {
  std::vector<size_t> out;
  std::stringstream ss(text);
  for (std::string item; std::getline(ss, item, ',');) {
    char* end = nullptr;
    const double v = std::strtod(item.c_str(), &end);
    if (*end != '\0' || v < 1 || v > 1e8) throw UsageError("option --rows: not a list of counts: " + text);
    out.push_back(static_cast<size_t>(v));
  }
  return out;
}

int bench_search(const Args& args) {
  const std::vector<size_t> counts = parse_counts(args.one("rows", "10000,100000,1000000"));
  const int dim = args.integer("dim", 512);
  const int queries = std::max(1, args.integer("queries", 50));
  const int top = 10;
  const bool sqlite = args.flag("sqlite");
  const ruclip::CpuFeatures& cpu = ruclip::cpu_features();
  const json machine{{"cpu_model", cpu.model}, {"cpu_features", cpu.names()}};

  for (size_t count : counts) {
    std::cerr << "bench-search: " << count << " rows of " << dim << "\n";
    const Synthetic data = make_data(count, dim, queries, 1234 + count);
    json line{{"rows", count}, {"dim", dim}, {"queries", queries}, {"machine", machine}};
    std::vector<std::set<size_t>> truth(queries);
    for (const auto storage : {ruclip::VectorStorage::kFloat32, ruclip::VectorStorage::kFloat16}) {
      ruclip::VectorMatrix m(dim, storage);
      m.reserve(count);
      for (size_t r = 0; r < count; ++r) m.add(&data.rows[r * dim]);
      std::vector<double> ms;
      size_t agree = 0;
      for (int q = 0; q < queries; ++q) {
        const auto t = Clock::now();
        const auto hits = m.top(&data.queries[static_cast<size_t>(q) * dim], top);
        ms.push_back(ms_since(t));
        for (const auto& h : hits) {
          if (storage == ruclip::VectorStorage::kFloat32)
            truth[q].insert(h.row);
          else
            agree += truth[q].count(h.row);
        }
      }
      json result{{"query_ms", percentiles(ms)}, {"memory_mib", m.bytes() / 1048576.0}, {"kernel", m.kernel()}};
      if (storage == ruclip::VectorStorage::kFloat16) result["recall_at_10"] = agree / double(queries * top);
      line["exact"][ruclip::vector_storage_name(storage)] = result;
    }
#ifdef RUCLIP_HAVE_FAISS
    {
      std::vector<int64_t> ids(count);
      for (size_t i = 0; i < count; ++i) ids[i] = static_cast<int64_t>(i);
      const auto t = Clock::now();
      auto index = ApproximateIndex::build(data.rows.data(), ids.data(), count, dim);
      json ivf{{"build_s", ms_since(t) / 1000}, {"nlist", index->nlist()}, {"memory_mib", index->bytes() / 1048576.0},
               {"runs", json::array()}};
      const int default_nprobe = index->nprobe();
      std::set<int> probes = {std::max(1, default_nprobe / 4), default_nprobe, std::min(index->nlist(), default_nprobe * 4)};
      for (int nprobe : probes) {
        index->set_nprobe(nprobe);
        std::vector<double> ms;
        size_t found = 0;
        for (int q = 0; q < queries; ++q) {
          const auto tq = Clock::now();
          const auto hits = index->top(&data.queries[static_cast<size_t>(q) * dim], top);
          ms.push_back(ms_since(tq));
          for (const auto& h : hits) found += truth[q].count(static_cast<size_t>(h.id));
        }
        ivf["runs"].push_back({{"nprobe", nprobe}, {"default", nprobe == default_nprobe},
                               {"query_ms", percentiles(ms)}, {"recall_at_10", found / double(queries * top)}});
      }
      line["faiss_ivf_flat"] = ivf;
    }
#endif
    if (sqlite) {
      // An index of that many samples (empty thumbnails), then read back as search reads it.
      const std::string path = (std::filesystem::temp_directory_path() / "ruclip-bench-search.db").string();
      std::filesystem::remove(path);
      {
        std::unique_ptr<ruclip::index::Store> db = ruclip::index::Store::open(path, true);
        std::vector<ruclip::index::Sample> samples;
        for (size_t r = 0; r < count; ++r) {
          ruclip::index::Sample s;
          s.time = static_cast<double>(r % 600);
          s.embedding.assign(&data.rows[r * dim], &data.rows[(r + 1) * dim]);
          samples.push_back(std::move(s));
          if (samples.size() == 600 || r + 1 == count) {
            ruclip::index::Source f;
            f.name = "/video/" + std::to_string(r / 600) + ".mp4";
            f.every = 1;
            db->put_file(f, samples);
            samples.clear();
          }
        }
      }
      std::unique_ptr<ruclip::index::Store> db = ruclip::index::Store::open(path, false);
      const auto t = Clock::now();
      ruclip::VectorMatrix m(dim, ruclip::VectorStorage::kFloat16);
      m.reserve(count);
      std::vector<double> sum(dim, 0.0);
      std::vector<ruclip::index::SampleRow> refs;
      db->read_since(0, dim, [&](const ruclip::index::SampleRow& row, const float* e) {
        refs.push_back(row);
        m.add(e);
        for (int i = 0; i < dim; ++i) sum[i] += e[i];
      });
      const double sqlite_ms = ms_since(t);
      // What later searches do: the vector file beside the index, mapped (a warm page cache).
      const std::string vectors = path + ".f16.vectors";
      write_vectors(vectors, "bench", m, sum);
      const auto tm = Clock::now();
      const auto mapped = map_vectors(vectors, "bench", ruclip::VectorStorage::kFloat16, refs.size(), dim);
      const double map_ms = ms_since(tm);
      const auto tq = Clock::now();
      mapped->matrix.top(data.queries.data(), top);
      line["sqlite"] = {{"load_ms", sqlite_ms},
                        {"file_mib", std::filesystem::file_size(path) / 1048576.0},
                        {"mapped_vectors_ms", map_ms},
                        {"first_query_on_mapped_ms", ms_since(tq)}};
      std::filesystem::remove(path);
      std::filesystem::remove(vectors);
    }
    std::cout << line.dump() << std::endl;
  }
  return 0;
}

}  // namespace

const Command kBenchSearch{"bench-search",
                           "ruclip bench-search [--rows 10000,100000,1000000] [--dim 512] [--queries 50] [--sqlite]",
                           {"rows", "dim", "queries"},
                           bench_search,
                           {"sqlite"}};

}  // namespace ruclip_cli
