// `ruclip bench-index`: what the index costs on an engine (a SQLite file or
// a PostgreSQL database), with synthetic unit embeddings and 6 KiB thumbnails:
//   ingest  --streams writers (ruclip/index/writer.h, as ruclipindex runs
//           them), each fed as fast as its queue takes rows, for --seconds:
//           committed rows per second;
//   search  the index filled to --rows samples (files of 1000, no
//           thumbnails), then: the first sync from the engine with no cache;
//           a query of a searcher that keeps the synced rows (`ruclip serve`;
//           p50 of 20) and of a new searcher each time (a `ruclip search`
//           process, its model aside; p50 of 10); --add new camera rows and
//           the incremental sync that reads them, a query after it.
// One JSON line per phase on stdout. bench/index.sh runs it on both engines.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <iostream>
#include <random>
#include <thread>

#include "cli.h"
#include "index_search.h"
#include "ruclip/error.h"
#include "ruclip/index/store.h"
#include "ruclip/index/writer.h"
#include "synced_rows.h"

namespace ruclip_cli {
namespace {

using Clock = std::chrono::steady_clock;
using ruclip::index::Sample;

double ms_since(Clock::time_point t) { return std::chrono::duration<double, std::milli>(Clock::now() - t).count(); }

std::vector<float> unit_vector(std::mt19937_64& rng, int dim) {
  std::normal_distribution<float> normal(0.f, 1.f);
  std::vector<float> v(dim);
  double n = 0;
  for (auto& x : v) {
    x = normal(rng);
    n += static_cast<double>(x) * x;
  }
  for (auto& x : v) x = static_cast<float>(x / std::sqrt(n));
  return v;
}

json ingest(const std::string& db, int streams, double seconds, int dim) {
  std::vector<std::unique_ptr<ruclip::index::Writer>> writers;
  for (int i = 0; i < streams; ++i) {
    ruclip::index::WriterOptions o;
    o.location = db;
    o.camera = "bench-" + std::to_string(i);
    o.dim = dim;
    o.model = "bench";
    o.on_error = [](const std::string& m, bool) { std::cerr << "ruclip bench-index: " << m << "\n"; };
    writers.push_back(std::make_unique<ruclip::index::Writer>(o));
  }
  std::atomic<bool> stop{false};
  std::vector<std::thread> feeders;
  for (int i = 0; i < streams; ++i)
    feeders.emplace_back([&, i] {
      std::mt19937_64 rng(1000 + i);
      const std::vector<uint8_t> thumbnail(6 * 1024, 0x5A);
      int n = 0;
      while (!stop) {
        if (writers[i]->stats().pending >= 128) {
          std::this_thread::sleep_for(std::chrono::milliseconds(1));
          continue;
        }
        Sample s;
        s.time = n * 0.2;
        s.wall_time = ruclip::index::wall_clock_now();
        s.labels = "человек;машина";
        s.embedding = unit_vector(rng, dim);
        s.thumbnail = thumbnail;
        writers[i]->add(std::move(s));
        ++n;
      }
    });
  // Rows committed during the measured seconds (the writers warm up first).
  std::this_thread::sleep_for(std::chrono::seconds(1));
  uint64_t before = 0, after = 0;
  for (auto& w : writers) before += w->stats().stored;
  const auto t = Clock::now();
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  for (auto& w : writers) after += w->stats().stored;
  const double elapsed = ms_since(t) / 1000;
  stop = true;
  for (auto& f : feeders) f.join();
  uint64_t dropped = 0;
  for (auto& w : writers) dropped += w->stats().dropped;
  writers.clear();
  return {{"phase", "ingest"}, {"streams", streams}, {"seconds", elapsed},
          {"rows_per_second", (after - before) / elapsed}, {"dropped", dropped}};
}

int bench_index(const Args& args) {
  const std::string db = args.required("db");
  const int dim = args.integer("dim", 512);
  const int streams = args.integer("streams", 16);
  const double seconds = args.number("seconds", 10);
  const int64_t rows = args.integer("rows", 1000000);
  const int add = args.integer("add", 1000);
  std::cout << ingest(db, streams, seconds, dim).dump() << std::endl;

  auto store = ruclip::index::Store::open(db, true);
  std::mt19937_64 rng(7);
  const auto fill = Clock::now();
  int64_t have = store->sample_count();
  for (int64_t file = 0; have < rows; ++file) {
    std::vector<Sample> samples;
    for (int64_t i = 0; i < 1000 && have + i < rows; ++i) {
      Sample s;
      s.time = i;
      s.embedding = unit_vector(rng, dim);
      samples.push_back(std::move(s));
    }
    ruclip::index::Source f;
    f.name = "/bench/" + std::to_string(have) + ".mp4";
    f.every = 1;
    have += static_cast<int64_t>(samples.size());
    store->put_file(f, samples);
  }
  const double fill_s = ms_since(fill) / 1000;

  // The first sync: no cache.
  IndexSearcher probe(db, dim, ruclip::VectorStorage::kFloat16);
  const std::string base = rows_cache_base(db, probe.store());
  for (const char* ext : {".rows", ".f16.vectors"}) std::filesystem::remove(base + ext);
  SearchFilters f;
  f.top = 10;
  const auto query = [&]() { return unit_vector(rng, dim); };
  auto t = Clock::now();
  json first = probe.search(query(), f);
  const double first_ms = ms_since(t);
  std::vector<double> ms;
  for (int q = 0; q < 20; ++q) {
    t = Clock::now();
    probe.search(query(), f);
    ms.push_back(ms_since(t));
  }
  std::sort(ms.begin(), ms.end());
  const double query_ms = ms[ms.size() / 2];
  // What each `ruclip search` process pays (its model aside): the cache's
  // files read and mapped again.
  std::vector<double> cold;
  for (int q = 0; q < 10; ++q) {
    t = Clock::now();
    IndexSearcher fresh_process(db, dim, ruclip::VectorStorage::kFloat16);
    fresh_process.search(query(), f);
    cold.push_back(ms_since(t));
  }
  std::sort(cold.begin(), cold.end());
  // New rows from a camera, then the sync that reads only them.
  std::vector<Sample> fresh;
  for (int i = 0; i < add; ++i) {
    Sample s;
    s.time = i * 0.2;
    s.wall_time = ruclip::index::wall_clock_now();
    s.embedding = unit_vector(rng, dim);
    fresh.push_back(std::move(s));
  }
  store->add_samples(store->camera("bench-new"), fresh);
  t = Clock::now();
  json after = probe.search(query(), f);
  const double incremental_ms = ms_since(t);
  t = Clock::now();
  probe.search(query(), f);
  const double query_after_ms = ms_since(t);
  std::cout << json{{"phase", "search"}, {"engine", ruclip::index::Store::is_postgresql(db) ? "postgresql" : "sqlite"},
                    {"rows", first["samples"]}, {"dim", dim}, {"storage", "float16"}, {"fill_seconds", fill_s},
                    {"first_sync_and_query_ms", first_ms}, {"query_p50_ms", query_ms},
                    {"query_new_process_p50_ms", cold[cold.size() / 2]},
                    {"incremental_rows", after["synced"]}, {"incremental_sync_and_query_ms", incremental_ms},
                    {"query_after_ms", query_after_ms}}
                   .dump()
            << std::endl;
  return 0;
}

}  // namespace

const Command kBenchIndex{"bench-index",
                          "ruclip bench-index --db FILE|URI [--streams 16] [--seconds 10] [--rows 1000000] "
                          "[--dim 512] [--add 1000]",
                          {"db", "streams", "seconds", "rows", "dim", "add"},
                          bench_index};

}  // namespace ruclip_cli
