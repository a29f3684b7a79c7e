// The SQLite engine: one file, the embedded default.
#include <sqlite3.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>

#include "ruclip/error.h"
#include "stores.h"

namespace ruclip::index {
namespace {

constexpr const char* kSchema = R"sql(
CREATE TABLE index_info(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE sources(
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  kind TEXT NOT NULL,
  name TEXT NOT NULL,
  size INTEGER NOT NULL DEFAULT 0,
  mtime_ns INTEGER NOT NULL DEFAULT 0,
  every REAL NOT NULL DEFAULT 0,
  duration REAL NOT NULL DEFAULT -1,
  samples INTEGER NOT NULL DEFAULT 0,
  UNIQUE(kind, name));
CREATE TABLE samples(
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  source_id INTEGER NOT NULL REFERENCES sources(id),
  time REAL NOT NULL,
  wall_time INTEGER,
  labels TEXT NOT NULL DEFAULT '',
  embedding BLOB NOT NULL,
  thumbnail BLOB NOT NULL,
  frame BLOB NOT NULL DEFAULT x'');
CREATE INDEX samples_by_source ON samples(source_id, time);
CREATE INDEX samples_by_wall_time ON samples(wall_time);
)sql";

// Version 1 -> 2: files become sources of kind 'file', their samples keep
// their ids (AUTOINCREMENT tables are rebuilt, SQLite can't alter them).
constexpr const char* kMigrateV1 = R"sql(
ALTER TABLE samples RENAME TO samples_v1;
ALTER TABLE files RENAME TO files_v1;
DROP INDEX IF EXISTS samples_by_file;
)sql";

// A prepared statement, finalized when it goes out of scope.
class Statement {
 public:
  Statement(sqlite3* db, const std::string& sql, const std::string& origin) : db_(db), origin_(origin) {
    if (sqlite3_prepare_v2(db, sql.c_str(), -1, &st_, nullptr) != SQLITE_OK)
      throw Error(origin + ": " + sqlite3_errmsg(db));
  }
  ~Statement() { sqlite3_finalize(st_); }
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;
  sqlite3_stmt* get() { return st_; }
  // SQLITE_ROW or SQLITE_DONE; anything else throws.
  int step() {
    const int rc = sqlite3_step(st_);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) throw Error(origin_ + ": " + sqlite3_errmsg(db_));
    return rc;
  }
  void reset() { sqlite3_reset(st_); }
  void text(int i, const std::string& v) { sqlite3_bind_text(st_, i, v.c_str(), -1, SQLITE_TRANSIENT); }
  void integer(int i, int64_t v) { sqlite3_bind_int64(st_, i, v); }
  void real(int i, double v) { sqlite3_bind_double(st_, i, v); }
  void blob(int i, const void* data, size_t size) {
    if (size == 0)
      sqlite3_bind_zeroblob(st_, i, 0);  // (a null pointer would bind NULL)
    else
      sqlite3_bind_blob(st_, i, data, static_cast<int>(size), SQLITE_STATIC);
  }
  std::string column_text(int i) {
    const unsigned char* t = sqlite3_column_text(st_, i);
    return t ? reinterpret_cast<const char*>(t) : "";
  }
  int64_t column_integer(int i) { return sqlite3_column_int64(st_, i); }

 private:
  sqlite3* db_;
  std::string origin_;
  sqlite3_stmt* st_ = nullptr;
};

class SqliteStore final : public Store {
 public:
  SqliteStore(const std::string& path, bool create) : Store(path), origin_("index '" + path + "'") {
    std::error_code ec;
    const bool exists = std::filesystem::exists(path, ec);
    if (!exists && !create) throw Error(origin_ + ": no such file (ruclip index or ruclipindex make one)");
    const bool writable = !exists || access(path.c_str(), W_OK) == 0;
    const int flags = writable ? SQLITE_OPEN_READWRITE | (create ? SQLITE_OPEN_CREATE : 0) : SQLITE_OPEN_READONLY;
    if (sqlite3_open_v2(path.c_str(), &db_, flags, nullptr) != SQLITE_OK) {
      const std::string msg = db_ ? sqlite3_errmsg(db_) : "out of memory";
      sqlite3_close(db_);
      db_ = nullptr;
      throw Error(origin_ + ": cannot open: " + msg);
    }
    // Writers (several ruclipindex elements, ruclip index) wait for each other.
    sqlite3_busy_timeout(db_, 10000);
    try {
      // The first read is where SQLite finds a file that is not a database.
      int64_t tables = 0;
      {
        Statement st(db_, "SELECT count(*) FROM sqlite_master WHERE type = 'table'", origin_);
        st.step();
        tables = st.column_integer(0);
      }
      if (tables == 0 && writable) {
        // 64 KiB pages: a sample's row (a 2 KiB embedding at 512 floats, a
        // few-KiB thumbnail) shares its page with others instead of leaving
        // half of a 4 KiB page empty, and a search reads the file in long runs.
        exec("PRAGMA page_size = 65536");
        Transaction t(this);
        // Counted again under the write lock: another writer may have made it.
        int64_t now = 0;
        {
          Statement again(db_, "SELECT count(*) FROM sqlite_master WHERE type = 'table'", origin_);
          again.step();
          now = again.column_integer(0);
        }
        if (now == 0) {
          exec(kSchema);
          set_info("format", kFormat);
          set_info("generation", "0");
        }
        t.commit();
      }
      std::optional<std::string> format;
      try {
        format = info("format");
      } catch (const Error&) {
      }
      if (!format) throw Error(origin_ + ": not a ruclip index (no index_info table)");
      if (*format == kFormatV1) {
        if (!writable) throw Error(origin_ + ": index format 1 needs migrating, and the file is read-only");
        migrate_v1();
      } else if (*format != kFormat) {
        throw Error(origin_ + ": index format '" + *format + "', this ruclip reads '" + kFormat + "'");
      }
      // Integrity of the schema itself: each table this code reads.
      exec("SELECT id, source_id, time, wall_time, labels, embedding, thumbnail, frame FROM samples LIMIT 0");
      exec("SELECT id, kind, name, size, mtime_ns, every, duration, samples FROM sources LIMIT 0");
    } catch (const Error& e) {
      sqlite3_close(db_);
      db_ = nullptr;
      throw;
    }
  }
  ~SqliteStore() override { sqlite3_close(db_); }

  std::optional<std::string> info(const std::string& key) override {
    Statement st(db_, "SELECT value FROM index_info WHERE key = ?", origin_);
    st.text(1, key);
    if (st.step() != SQLITE_ROW) return std::nullopt;
    return st.column_text(0);
  }
  void set_info(const std::string& key, const std::string& value) override {
    Statement st(db_, "INSERT OR REPLACE INTO index_info(key, value) VALUES (?, ?)", origin_);
    st.text(1, key);
    st.text(2, value);
    st.step();
  }
  std::string info_or_set(const std::string& key, const std::string& value) override {
    Statement st(db_, "INSERT OR IGNORE INTO index_info(key, value) VALUES (?, ?)", origin_);
    st.text(1, key);
    st.text(2, value);
    st.step();
    return info(key).value_or(value);
  }

  std::vector<Source> sources() override {
    Statement st(db_, "SELECT id, kind, name, size, mtime_ns, every, duration, samples FROM sources ORDER BY id",
                 origin_);
    std::vector<Source> out;
    while (st.step() == SQLITE_ROW) {
      Source s;
      s.id = st.column_integer(0);
      s.kind = st.column_text(1) == "camera" ? Source::Kind::kCamera : Source::Kind::kFile;
      s.name = st.column_text(2);
      s.size = st.column_integer(3);
      s.mtime_ns = st.column_integer(4);
      s.every = sqlite3_column_double(st.get(), 5);
      s.duration = sqlite3_column_double(st.get(), 6);
      s.samples = st.column_integer(7);
      out.push_back(std::move(s));
    }
    return out;
  }

  int64_t put_file(const Source& file, const std::vector<Sample>& samples) override {
    Transaction t(this);
    Statement old(db_, "SELECT id FROM sources WHERE kind = 'file' AND name = ?", origin_);
    old.text(1, file.name);
    if (old.step() == SQLITE_ROW) {
      const int64_t id = old.column_integer(0);
      for (const char* sql : {"DELETE FROM samples WHERE source_id = ?", "DELETE FROM sources WHERE id = ?"}) {
        Statement del(db_, sql, origin_);
        del.integer(1, id);
        del.step();
      }
      bump_generation();
    }
    Statement ins(db_,
                  "INSERT INTO sources(kind, name, size, mtime_ns, every, duration, samples) "
                  "VALUES ('file', ?, ?, ?, ?, ?, ?)",
                  origin_);
    ins.text(1, file.name);
    ins.integer(2, file.size);
    ins.integer(3, file.mtime_ns);
    ins.real(4, file.every);
    ins.real(5, file.duration);
    ins.integer(6, static_cast<int64_t>(samples.size()));
    ins.step();
    const int64_t id = sqlite3_last_insert_rowid(db_);
    insert_samples(id, samples);
    t.commit();
    return id;
  }

  int64_t camera(const std::string& name) override {
    Statement ins(db_, "INSERT OR IGNORE INTO sources(kind, name) VALUES ('camera', ?)", origin_);
    ins.text(1, name);
    ins.step();
    Statement st(db_, "SELECT id FROM sources WHERE kind = 'camera' AND name = ?", origin_);
    st.text(1, name);
    st.step();
    return st.column_integer(0);
  }

  void add_samples(int64_t camera_id, const std::vector<Sample>& samples) override {
    Transaction t(this);
    insert_samples(camera_id, samples);
    Statement count(db_, "UPDATE sources SET samples = samples + ? WHERE id = ?", origin_);
    count.integer(1, static_cast<int64_t>(samples.size()));
    count.integer(2, camera_id);
    count.step();
    t.commit();
  }

  void read_since(int64_t after_id, int dim, const std::function<void(const SampleRow&, const float*)>& row) override {
    Statement st(db_, "SELECT id, source_id, time, wall_time, embedding FROM samples WHERE id > ? ORDER BY id", origin_);
    st.integer(1, after_id);
    std::vector<float> embedding(dim);
    while (st.step() == SQLITE_ROW) {
      SampleRow r;
      r.id = st.column_integer(0);
      r.source_id = st.column_integer(1);
      r.time = sqlite3_column_double(st.get(), 2);
      r.wall_time = sqlite3_column_type(st.get(), 3) == SQLITE_NULL ? kNoWallTime : st.column_integer(3);
      const int bytes = sqlite3_column_bytes(st.get(), 4);
      if (bytes != dim * static_cast<int>(sizeof(float)))
        throw Error(origin_ + ": sample " + std::to_string(r.id) + " has a " + std::to_string(bytes) +
                    "-byte embedding, the index's dimension " + std::to_string(dim) + " needs " +
                    std::to_string(dim * sizeof(float)));
      std::memcpy(embedding.data(), sqlite3_column_blob(st.get(), 4), bytes);
      row(r, embedding.data());
    }
  }

  std::vector<uint8_t> thumbnail(int64_t sample_id) override { return blob_column("thumbnail", sample_id); }
  std::vector<uint8_t> frame(int64_t sample_id) override { return blob_column("frame", sample_id); }

  std::string labels(int64_t sample_id) override {
    Statement st(db_, "SELECT labels FROM samples WHERE id = ?", origin_);
    st.integer(1, sample_id);
    if (st.step() != SQLITE_ROW) throw Error(origin_ + ": no sample " + std::to_string(sample_id));
    return st.column_text(0);
  }

  int64_t sample_count() override {
    Statement st(db_, "SELECT count(*) FROM samples", origin_);
    st.step();
    return st.column_integer(0);
  }

  int64_t last_id() override {
    Statement st(db_, "SELECT coalesce(max(id), 0) FROM samples", origin_);
    st.step();
    return st.column_integer(0);
  }

  int64_t generation() override { return std::stoll(info("generation").value_or("0")); }

  int64_t prune(int64_t wall_time, const std::string& camera) override {
    Transaction t(this);
    std::string where = "wall_time IS NOT NULL AND wall_time < ?";
    if (!camera.empty()) where += " AND source_id = (SELECT id FROM sources WHERE kind = 'camera' AND name = ?)";
    // The per-camera counts first, from the rows about to go.
    Statement counts(db_,
                     "UPDATE sources SET samples = samples - (SELECT count(*) FROM samples s WHERE s.source_id = "
                     "sources.id AND s." + where + ") WHERE kind = 'camera'",
                     origin_);
    counts.integer(1, wall_time);
    if (!camera.empty()) counts.text(2, camera);
    counts.step();
    Statement del(db_, "DELETE FROM samples WHERE " + where, origin_);
    del.integer(1, wall_time);
    if (!camera.empty()) del.text(2, camera);
    del.step();
    const int64_t removed = sqlite3_changes(db_);
    if (removed > 0) bump_generation();
    t.commit();
    return removed;
  }

 private:
  // BEGIN IMMEDIATE .. COMMIT, rolled back when left by an exception.
  class Transaction {
   public:
    explicit Transaction(SqliteStore* s) : s_(s) { s_->exec("BEGIN IMMEDIATE"); }
    ~Transaction() {
      if (!done_) sqlite3_exec(s_->db_, "ROLLBACK", nullptr, nullptr, nullptr);
    }
    void commit() {
      s_->exec("COMMIT");
      done_ = true;
    }

   private:
    SqliteStore* s_;
    bool done_ = false;
  };

  // A blob column of one sample.
  std::vector<uint8_t> blob_column(const char* name, int64_t sample_id) {
    Statement st(db_, std::string("SELECT ") + name + " FROM samples WHERE id = ?", origin_);
    st.integer(1, sample_id);
    if (st.step() != SQLITE_ROW) throw Error(origin_ + ": no sample " + std::to_string(sample_id));
    const auto* data = static_cast<const uint8_t*>(sqlite3_column_blob(st.get(), 0));
    return std::vector<uint8_t>(data, data + sqlite3_column_bytes(st.get(), 0));
  }

  void exec(const std::string& sql) {
    char* error = nullptr;
    if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &error) != SQLITE_OK) {
      const std::string msg = error ? error : sqlite3_errmsg(db_);
      sqlite3_free(error);
      throw Error(origin_ + ": " + msg);
    }
  }

  void bump_generation() {
    exec("UPDATE index_info SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT) WHERE key = 'generation'");
  }

  void insert_samples(int64_t source_id, const std::vector<Sample>& samples) {
    Statement put(db_,
                  "INSERT INTO samples(source_id, time, wall_time, labels, embedding, thumbnail, frame) "
                  "VALUES (?, ?, ?, ?, ?, ?, ?)",
                  origin_);
    for (const Sample& s : samples) {
      put.reset();
      put.integer(1, source_id);
      put.real(2, s.time);
      if (s.wall_time == kNoWallTime)
        sqlite3_bind_null(put.get(), 3);
      else
        put.integer(3, s.wall_time);
      put.text(4, s.labels);
      put.blob(5, s.embedding.data(), s.embedding.size() * sizeof(float));
      put.blob(6, s.thumbnail.data(), s.thumbnail.size());
      put.blob(7, s.frame.data(), s.frame.size());
      put.step();
    }
  }

  void migrate_v1() {
    Transaction t(this);
    exec(kMigrateV1);
    exec(std::string(kSchema).substr(std::string(kSchema).find("CREATE TABLE sources")));
    exec("INSERT INTO sources(id, kind, name, size, mtime_ns, every, duration, samples) "
         "SELECT id, 'file', path, size, mtime_ns, every, duration, samples FROM files_v1");
    exec("INSERT INTO samples(id, source_id, time, wall_time, labels, embedding, thumbnail) "
         "SELECT id, file_id, time, NULL, '', embedding, thumbnail FROM samples_v1");
    exec("DROP TABLE samples_v1");
    exec("DROP TABLE files_v1");
    set_info("format", kFormat);
    info_or_set("generation", "0");
    t.commit();
  }

  std::string origin_;
  sqlite3* db_ = nullptr;
};

}  // namespace

std::unique_ptr<Store> open_sqlite(const std::string& path, bool create) {
  return std::make_unique<SqliteStore>(path, create);
}

}  // namespace ruclip::index
