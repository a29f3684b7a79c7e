// The search index's store (ruclip/index/store.h) on SQLite and, where
// tests/with_postgres.py started a server (RUCLIP_TEST_POSTGRES), on
// PostgreSQL: the same behaviour from both. And its writer
// (ruclip/index/writer.h) against a stand-in store that the test blocks and
// fails at will: queueing, dropping the oldest, resending after a failure.
#include <gtest/gtest.h>
#include <libpq-fe.h>
#include <sqlite3.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <thread>

#include "ruclip/error.h"
#include "ruclip/index/store.h"
#include "ruclip/index/writer.h"

namespace {

namespace fs = std::filesystem;
using ruclip::index::kNoWallTime;
using ruclip::index::Sample;
using ruclip::index::SampleRow;
using ruclip::index::Source;
using ruclip::index::Store;

constexpr int kDim = 8;

Sample make_sample(int n, int64_t wall_time = kNoWallTime) {
  Sample s;
  s.time = n * 0.5;
  s.wall_time = wall_time;
  s.labels = "кадр " + std::to_string(n);
  s.embedding.assign(kDim, 0.0f);
  s.embedding[n % kDim] = 1.0f;
  s.embedding[(n + 1) % kDim] = static_cast<float>(n);  // tells samples apart
  s.thumbnail = {0xFF, 0xD8, static_cast<uint8_t>(n)};
  if (n % 2 == 0) s.frame = {0xFF, 0xD8, 0xFF, static_cast<uint8_t>(n)};  // some with a larger frame
  return s;
}

struct ReadRow {
  SampleRow row;
  std::vector<float> embedding;
};

std::vector<ReadRow> read_all(Store& db, int64_t after = 0) {
  std::vector<ReadRow> out;
  db.read_since(after, kDim, [&](const SampleRow& r, const float* e) { out.push_back({r, {e, e + kDim}}); });
  return out;
}

// Each engine the test can reach: SQLite always, PostgreSQL where a server runs.
class Engines : public testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (GetParam() == "sqlite") {
      dir_ = fs::temp_directory_path() / ("ruclip-store-" + std::to_string(getpid()) + "-" +
                                          testing::UnitTest::GetInstance()->current_test_info()->name());
      fs::remove_all(dir_);
      fs::create_directories(dir_);
      location_ = (dir_ / "index.db").string();
    } else {
      const char* uri = std::getenv("RUCLIP_TEST_POSTGRES");
      ASSERT_TRUE(uri && *uri) << "RUCLIP_TEST_POSTGRES: tests/with_postgres.py sets it";
      // A database of its own per test.
      std::string name = "t_" + std::string(testing::UnitTest::GetInstance()->current_test_info()->name());
      for (char& c : name) c = isalnum(static_cast<unsigned char>(c)) ? static_cast<char>(tolower(c)) : '_';
      PGconn* admin = PQconnectdb(uri);
      ASSERT_EQ(PQstatus(admin), CONNECTION_OK) << PQerrorMessage(admin);
      PQclear(PQexec(admin, ("DROP DATABASE IF EXISTS " + name).c_str()));
      PGresult* r = PQexec(admin, ("CREATE DATABASE " + name).c_str());
      ASSERT_EQ(PQresultStatus(r), PGRES_COMMAND_OK) << PQerrorMessage(admin);
      PQclear(r);
      PQfinish(admin);
      location_ = std::string(uri);
      location_ = location_.substr(0, location_.rfind('/') + 1) + name;
    }
  }
  void TearDown() override {
    if (!dir_.empty()) fs::remove_all(dir_);
  }
  std::unique_ptr<Store> open(bool create = true) { return Store::open(location_, create); }

  fs::path dir_;
  std::string location_;
};

TEST_P(Engines, MissingIndexIsRefusedUnlessCreated) {
  try {
    open(/*create=*/false);
    FAIL() << "opened an index that is not there";
  } catch (const ruclip::Error& e) {
    EXPECT_NE(std::string(e.what()).find(Store::printable(location_)), std::string::npos) << e.what();
  }
  auto db = open();
  EXPECT_EQ(db->info("format").value_or(""), "ruclip-index 2");
  EXPECT_EQ(db->sample_count(), 0);
  EXPECT_EQ(db->last_id(), 0);
  EXPECT_EQ(db->generation(), 0);
}

TEST_P(Engines, CameraSamplesComeBackInCommitOrder) {
  auto db = open();
  const int64_t gate = db->camera("gate");
  EXPECT_EQ(db->camera("gate"), gate);  // made once
  const int64_t yard = db->camera("yard");
  EXPECT_NE(yard, gate);
  db->add_samples(gate, {make_sample(0, 1000), make_sample(1, 2000)});
  db->add_samples(yard, {make_sample(2, 1500)});
  const auto rows = read_all(*db);
  ASSERT_EQ(rows.size(), 3u);
  for (size_t i = 0; i < rows.size(); ++i) {
    const Sample want = make_sample(static_cast<int>(i));
    EXPECT_EQ(rows[i].embedding, want.embedding) << i;
    EXPECT_DOUBLE_EQ(rows[i].row.time, want.time);
    if (i > 0) EXPECT_GT(rows[i].row.id, rows[i - 1].row.id);
  }
  EXPECT_EQ(rows[0].row.source_id, gate);
  EXPECT_EQ(rows[2].row.source_id, yard);
  EXPECT_EQ(rows[1].row.wall_time, 2000);
  EXPECT_EQ(db->last_id(), rows[2].row.id);
  // Incremental: only what came after.
  const auto later = read_all(*db, rows[1].row.id);
  ASSERT_EQ(later.size(), 1u);
  EXPECT_EQ(later[0].row.id, rows[2].row.id);
  EXPECT_EQ(db->thumbnail(rows[2].row.id), make_sample(2).thumbnail);
  EXPECT_EQ(db->frame(rows[2].row.id), make_sample(2).frame);
  EXPECT_EQ(db->labels(rows[0].row.id), "кадр 0");
  int cameras = 0;
  for (const Source& s : db->sources())
    if (s.kind == Source::Kind::kCamera) {
      ++cameras;
      EXPECT_EQ(s.samples, s.name == "gate" ? 2 : 1) << s.name;
    }
  EXPECT_EQ(cameras, 2);
}

TEST_P(Engines, PruneRemovesOldCameraRowsAndChangesTheGeneration) {
  auto db = open();
  const int64_t gate = db->camera("gate"), yard = db->camera("yard");
  Source file;
  file.name = "/video/a.mp4";
  file.every = 1;
  db->put_file(file, {make_sample(9)});  // no wall time: never pruned
  db->add_samples(gate, {make_sample(0, 100), make_sample(1, 200), make_sample(2, 300)});
  db->add_samples(yard, {make_sample(3, 100), make_sample(4, 300)});
  const int64_t generation = db->generation();
  EXPECT_EQ(db->prune(250, "gate"), 2);
  EXPECT_EQ(db->generation(), generation + 1);
  EXPECT_EQ(db->sample_count(), 4);
  EXPECT_EQ(db->prune(250), 1);  // yard's first
  std::vector<double> left;
  for (const auto& r : read_all(*db)) left.push_back(r.row.time);
  EXPECT_EQ(left, (std::vector<double>{make_sample(9).time, make_sample(2).time, make_sample(4).time}));
  EXPECT_EQ(db->prune(250), 0);
  EXPECT_EQ(db->generation(), generation + 2);  // nothing removed: unchanged
  for (const Source& s : db->sources())
    if (s.kind == Source::Kind::kCamera) EXPECT_EQ(s.samples, 1) << s.name;
}

TEST_P(Engines, FileIndexedAgainReplacesItsSamples) {
  auto db = open();
  Source file;
  file.name = "/video/a.mp4";
  file.size = 10;
  file.every = 0.5;
  db->put_file(file, {make_sample(0), make_sample(1)});
  const int64_t generation = db->generation();
  file.size = 11;
  const int64_t id = db->put_file(file, {make_sample(5)});
  EXPECT_EQ(db->generation(), generation + 1);
  const auto rows = read_all(*db);
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].row.source_id, id);
  EXPECT_EQ(rows[0].embedding, make_sample(5).embedding);
  ASSERT_TRUE(db->file("/video/a.mp4"));
  EXPECT_EQ(db->file("/video/a.mp4")->size, 11);
  EXPECT_EQ(db->file("/video/a.mp4")->samples, 1);
}

TEST_P(Engines, InfoOrSetKeepsTheFirstValue) {
  auto db = open();
  EXPECT_EQ(db->info_or_set("dim", "512"), "512");
  EXPECT_EQ(db->info_or_set("dim", "768"), "512");
  db->set_info("dim", "768");
  EXPECT_EQ(db->info("dim").value_or(""), "768");
}

TEST_P(Engines, WrongEmbeddingLengthNamesTheRow) {
  auto db = open();
  Sample bad = make_sample(0, 5);
  bad.embedding.resize(kDim - 1);
  db->add_samples(db->camera("gate"), {bad});
  try {
    read_all(*db);
    FAIL() << "a short embedding was read";
  } catch (const ruclip::Error& e) {
    EXPECT_NE(std::string(e.what()).find("28-byte embedding"), std::string::npos) << e.what();
  }
}

std::vector<std::string> engines() {
  std::vector<std::string> out{"sqlite"};
  if (std::getenv("RUCLIP_TEST_POSTGRES")) out.push_back("postgresql");
  return out;
}
INSTANTIATE_TEST_SUITE_P(Store, Engines, testing::ValuesIn(engines()),
                         [](const testing::TestParamInfo<std::string>& p) { return p.param; });

TEST(Store, PasswordsNeverReachMessages) {
  EXPECT_EQ(Store::printable("postgresql://ruclip:s3cret@db.local:5432/index"), "postgresql://ruclip:***@db.local:5432/index");
  EXPECT_EQ(Store::printable("postgres://db/index?user=a&password=s3cret"), "postgres://db/index?user=a&password=***");
  EXPECT_EQ(Store::printable("/var/lib/index.db"), "/var/lib/index.db");
  try {
    // Nothing listens on port 1 of loopback: refused at once.
    Store::open("postgresql://ruclip:s3cret@127.0.0.1:1/index", false);
    FAIL();
  } catch (const ruclip::Error& e) {
    const std::string m = e.what();
    EXPECT_EQ(m.find("s3cret"), std::string::npos) << m;
    EXPECT_NE(m.find("cannot connect"), std::string::npos) << m;
  }
}

TEST(Store, FormatOneIsMigratedWithItsIds) {
  const fs::path dir = fs::temp_directory_path() / ("ruclip-v1-" + std::to_string(getpid()));
  fs::create_directories(dir);
  const std::string path = (dir / "v1.db").string();
  fs::remove(path);
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  const std::vector<float> e = make_sample(3).embedding;
  std::string blob(reinterpret_cast<const char*>(e.data()), e.size() * sizeof(float));
  // The format-1 schema as `ruclip index` wrote it.
  const std::string sql =
      "CREATE TABLE index_info(key TEXT PRIMARY KEY, value TEXT NOT NULL);"
      "CREATE TABLE files(id INTEGER PRIMARY KEY, path TEXT NOT NULL UNIQUE, size INTEGER NOT NULL, mtime_ns "
      "INTEGER NOT NULL, every REAL NOT NULL, duration REAL NOT NULL, samples INTEGER NOT NULL);"
      "CREATE TABLE samples(id INTEGER PRIMARY KEY, file_id INTEGER NOT NULL REFERENCES files(id), time REAL NOT "
      "NULL, embedding BLOB NOT NULL, thumbnail BLOB NOT NULL);"
      "CREATE INDEX samples_by_file ON samples(file_id, time);"
      "INSERT INTO index_info VALUES ('format', 'ruclip-index 1'), ('dim', '8');"
      "INSERT INTO files VALUES (7, '/video/old.mp4', 100, 5, 0.5, 10.0, 1);";
  ASSERT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr), SQLITE_OK) << sqlite3_errmsg(db);
  sqlite3_stmt* st = nullptr;
  sqlite3_prepare_v2(db, "INSERT INTO samples VALUES (41, 7, 2.5, ?, x'FFD8')", -1, &st, nullptr);
  sqlite3_bind_blob(st, 1, blob.data(), static_cast<int>(blob.size()), SQLITE_STATIC);
  ASSERT_EQ(sqlite3_step(st), SQLITE_DONE);
  sqlite3_finalize(st);
  sqlite3_close(db);

  auto store = Store::open(path, false);
  EXPECT_EQ(store->info("format").value_or(""), "ruclip-index 2");
  EXPECT_EQ(store->info("dim").value_or(""), "8");
  const auto rows = read_all(*store);
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].row.id, 41);
  EXPECT_EQ(rows[0].row.source_id, 7);
  EXPECT_DOUBLE_EQ(rows[0].row.time, 2.5);
  EXPECT_EQ(rows[0].row.wall_time, kNoWallTime);
  EXPECT_EQ(rows[0].embedding, e);
  ASSERT_TRUE(store->file("/video/old.mp4"));
  EXPECT_EQ(store->file("/video/old.mp4")->duration, 10.0);
  // New rows get ids above the old ones.
  store->add_samples(store->camera("gate"), {make_sample(1, 10)});
  EXPECT_GT(read_all(*store, 41).at(0).row.id, 41);
  fs::remove_all(dir);
}

TEST(Times, Iso8601AndAges) {
  const int64_t t = ruclip::index::parse_time("2026-12-07T05:01:02.25Z", 0, "--since");
  EXPECT_EQ(ruclip::index::iso8601(t), "2026-12-07T05:01:02.250Z");
  EXPECT_EQ(ruclip::index::parse_time("2026-12-07T08:01:02.25+03:00", 0, "--since"), t);
  EXPECT_EQ(ruclip::index::parse_time("2026-12-07", 0, "--since"),
            ruclip::index::parse_time("2026-12-07T00:00:00Z", 0, "--since"));
  const int64_t now = t;
  EXPECT_EQ(ruclip::index::parse_time("2h", now, "--since"), now - 7200LL * 1000000);
  EXPECT_EQ(ruclip::index::parse_time("7d", now, "--since"), now - 7LL * 86400 * 1000000);
  EXPECT_EQ(ruclip::index::parse_time("90s", now, "--since"), now - 90LL * 1000000);
  for (const char* bad : {"yesterday", "2026-13-01", "5w", ""}) {
    try {
      ruclip::index::parse_time(bad, now, "--until");
      FAIL() << bad;
    } catch (const ruclip::Error& e) {
      EXPECT_NE(std::string(e.what()).find("--until"), std::string::npos) << e.what();
    }
  }
}

// ---- the writer against a stand-in store ---------------------------------------

// What the test controls: whether add_samples blocks (until released) or
// fails, and what was stored.
struct Backend {
  std::mutex lock;
  std::condition_variable changed;
  bool blocked = false;
  int entered = 0;       // add_samples calls begun
  int fail_next = 0;     // add_samples calls to fail
  int opens = 0;
  std::string dim = "";  // what info_or_set("dim") answers; "" keeps the writer's
  std::vector<Sample> stored;

  void wait_until(const std::function<bool()>& done) {
    std::unique_lock<std::mutex> guard(lock);
    // A hang guard only: the writer is released by the test, not by time.
    ASSERT_TRUE(changed.wait_for(guard, std::chrono::seconds(30), done)) << "hang guard";
  }
};

class StandInStore : public Store {
 public:
  explicit StandInStore(Backend* b) : Store("stand-in"), b_(b) {}
  std::optional<std::string> info(const std::string&) override { return std::nullopt; }
  void set_info(const std::string&, const std::string&) override {}
  std::string info_or_set(const std::string& key, const std::string& value) override {
    std::lock_guard<std::mutex> guard(b_->lock);
    return key == "dim" && !b_->dim.empty() ? b_->dim : value;
  }
  std::vector<Source> sources() override { return {}; }
  int64_t put_file(const Source&, const std::vector<Sample>&) override { return 0; }
  int64_t camera(const std::string&) override { return 1; }
  void add_samples(int64_t, const std::vector<Sample>& samples) override {
    std::unique_lock<std::mutex> guard(b_->lock);
    ++b_->entered;
    b_->changed.notify_all();
    b_->changed.wait(guard, [&] { return !b_->blocked; });
    if (b_->fail_next > 0) {
      --b_->fail_next;
      throw ruclip::Error("index 'stand-in': connection lost");
    }
    b_->stored.insert(b_->stored.end(), samples.begin(), samples.end());
    b_->changed.notify_all();
  }
  void read_since(int64_t, int, const std::function<void(const SampleRow&, const float*)>&) override {}
  std::vector<uint8_t> thumbnail(int64_t) override { return {}; }
  std::vector<uint8_t> frame(int64_t) override { return {}; }
  std::string labels(int64_t) override { return ""; }
  int64_t sample_count() override { return 0; }
  int64_t last_id() override { return 0; }
  int64_t generation() override { return 0; }
  int64_t prune(int64_t, const std::string&) override { return 0; }

 private:
  Backend* b_;
};

ruclip::index::WriterOptions stand_in_options(Backend* b) {
  ruclip::index::WriterOptions o;
  o.location = "stand-in";
  o.camera = "gate";
  o.dim = kDim;
  o.open = [b](const std::string&) {
    std::lock_guard<std::mutex> guard(b->lock);
    ++b->opens;
    return std::unique_ptr<Store>(new StandInStore(b));
  };
  return o;
}

std::vector<double> times(const std::vector<Sample>& samples) {
  std::vector<double> out;
  for (const Sample& s : samples) out.push_back(s.time);
  return out;
}

TEST(Writer, FullQueueDropsTheOldestWaitingSample) {
  Backend b;
  b.blocked = true;
  auto o = stand_in_options(&b);
  o.queue_size = 3;
  o.batch_size = 1;
  ruclip::index::Writer w(o);
  w.add(make_sample(0));
  b.wait_until([&] { return b.entered == 1; });  // sample 0 is being written
  for (int n = 1; n <= 5; ++n) w.add(make_sample(n));  // 1 and 2 are pushed out
  EXPECT_EQ(w.stats().dropped, 2u);
  EXPECT_EQ(w.stats().pending, 4u);
  {
    std::lock_guard<std::mutex> guard(b.lock);
    b.blocked = false;
  }
  b.changed.notify_all();
  EXPECT_TRUE(w.flush(std::chrono::seconds(30)));
  EXPECT_EQ(times(b.stored), times({make_sample(0), make_sample(3), make_sample(4), make_sample(5)}));
  EXPECT_EQ(w.stats().stored, 4u);
  EXPECT_EQ(w.stats().pending, 0u);
}

TEST(Writer, FailedBatchesAreSentAgainInOrder) {
  Backend b;
  b.blocked = true;
  b.fail_next = 2;
  auto o = stand_in_options(&b);
  o.batch_size = 2;
  ruclip::index::Writer w(o);
  for (int n = 0; n < 5; ++n) w.add(make_sample(n));
  {
    std::lock_guard<std::mutex> guard(b.lock);
    b.blocked = false;
  }
  b.changed.notify_all();
  EXPECT_TRUE(w.flush(std::chrono::seconds(30)));
  std::vector<Sample> want;
  for (int n = 0; n < 5; ++n) want.push_back(make_sample(n));
  EXPECT_EQ(times(b.stored), times(want));  // all, once each, in order
  EXPECT_EQ(w.stats().failures, 2u);
  EXPECT_EQ(w.stats().stored, 5u);
  EXPECT_EQ(w.stats().dropped, 0u);
  std::lock_guard<std::mutex> guard(b.lock);
  EXPECT_EQ(b.opens, 3);  // connected again after each failure
}

TEST(Writer, FlushReturnsFalseWhileTheIndexIsStuck) {
  Backend b;
  b.blocked = true;
  ruclip::index::Writer w(stand_in_options(&b));
  w.add(make_sample(0));
  b.wait_until([&] { return b.entered == 1; });
  EXPECT_FALSE(w.flush(std::chrono::milliseconds(1)));
  EXPECT_EQ(w.stats().stored, 0u);
  {
    std::lock_guard<std::mutex> guard(b.lock);
    b.blocked = false;
  }
  b.changed.notify_all();
  EXPECT_TRUE(w.flush(std::chrono::seconds(30)));
  EXPECT_EQ(w.stats().stored, 1u);
}

TEST(Writer, IndexOfAnotherDimensionIsFatal) {
  Backend b;
  b.dim = "512";
  auto o = stand_in_options(&b);
  std::mutex lock;
  std::vector<std::pair<std::string, bool>> errors;
  o.on_error = [&](const std::string& m, bool fatal) {
    std::lock_guard<std::mutex> guard(lock);
    errors.push_back({m, fatal});
  };
  ruclip::index::Writer w(o);
  w.add(make_sample(0));
  EXPECT_FALSE(w.flush(std::chrono::seconds(30)));
  std::lock_guard<std::mutex> guard(lock);
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_TRUE(errors[0].second);
  EXPECT_NE(errors[0].first.find("512-dimensional"), std::string::npos) << errors[0].first;
  EXPECT_TRUE(b.stored.empty());
}

TEST(Writer, UnchangedFramesAreSkippedUntilKeepEvery) {
  Backend b;
  auto o = stand_in_options(&b);
  o.min_change = 0.05;
  o.keep_every = 1000;
  ruclip::index::Writer w(o);
  std::vector<float> a(kDim, 0.0f), near(kDim, 0.0f), far(kDim, 0.0f);
  a[0] = 1;
  near[0] = 0.99f, near[1] = 0.141f;  // 1 - cos ~ 0.0001
  far[1] = 1;
  EXPECT_TRUE(w.changed(a, 0));        // the first frame
  EXPECT_FALSE(w.changed(near, 10));   // within min-change
  EXPECT_TRUE(w.changed(far, 20));     // changed
  EXPECT_FALSE(w.changed(far, 999));
  EXPECT_TRUE(w.changed(far, 1020));   // keep-every passed since the last taken (20)
  EXPECT_EQ(w.stats().unchanged, 2u);
}

}  // namespace
