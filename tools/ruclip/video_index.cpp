#include "video_index.h"

#include <sqlite3.h>

#include <cstring>
#include <filesystem>

#include "ruclip/error.h"

namespace ruclip_cli {
namespace {

constexpr const char* kFormat = "ruclip-index 1";

constexpr const char* kSchema = R"sql(
CREATE TABLE index_info(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE files(
  id INTEGER PRIMARY KEY,
  path TEXT NOT NULL UNIQUE,
  size INTEGER NOT NULL,
  mtime_ns INTEGER NOT NULL,
  every REAL NOT NULL,
  duration REAL NOT NULL,
  samples INTEGER NOT NULL);
CREATE TABLE samples(
  id INTEGER PRIMARY KEY,
  file_id INTEGER NOT NULL REFERENCES files(id),
  time REAL NOT NULL,
  embedding BLOB NOT NULL,
  thumbnail BLOB NOT NULL);
CREATE INDEX samples_by_file ON samples(file_id, time);
)sql";

// A prepared statement, finalized when it goes out of scope.
class Statement {
 public:
  Statement(sqlite3* db, const char* sql, const std::string& origin) : db_(db) {
    if (sqlite3_prepare_v2(db, sql, -1, &st_, nullptr) != SQLITE_OK)
      throw ruclip::Error(origin + ": " + sqlite3_errmsg(db));
  }
  ~Statement() { sqlite3_finalize(st_); }
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;
  sqlite3_stmt* get() { return st_; }
  // SQLITE_ROW or SQLITE_DONE; anything else throws.
  int step(const std::string& origin) {
    const int rc = sqlite3_step(st_);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) throw ruclip::Error(origin + ": " + sqlite3_errmsg(db_));
    return rc;
  }
  void text(int i, const std::string& v) { sqlite3_bind_text(st_, i, v.c_str(), -1, SQLITE_TRANSIENT); }
  std::string column_text(int i) {
    const unsigned char* t = sqlite3_column_text(st_, i);
    return t ? reinterpret_cast<const char*>(t) : "";
  }

 private:
  sqlite3* db_;
  sqlite3_stmt* st_ = nullptr;
};

IndexedFile read_file_row(Statement& st) {
  IndexedFile f;
  f.id = sqlite3_column_int64(st.get(), 0);
  f.path = st.column_text(1);
  f.size = sqlite3_column_int64(st.get(), 2);
  f.mtime_ns = sqlite3_column_int64(st.get(), 3);
  f.every = sqlite3_column_double(st.get(), 4);
  f.duration = sqlite3_column_double(st.get(), 5);
  f.samples = sqlite3_column_int64(st.get(), 6);
  return f;
}

constexpr const char* kFileColumns = "id, path, size, mtime_ns, every, duration, samples";

}  // namespace

VideoIndex::VideoIndex(const std::string& path, bool create) : path_(path) {
  std::error_code ec;
  const bool exists = std::filesystem::exists(path, ec);
  if (!exists && !create) throw ruclip::Error("--db '" + path + "': no such file (make it with ruclip index)");
  const int flags = create ? SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE : SQLITE_OPEN_READONLY;
  if (sqlite3_open_v2(path.c_str(), &db_, flags, nullptr) != SQLITE_OK) {
    const std::string msg = db_ ? sqlite3_errmsg(db_) : "out of memory";
    sqlite3_close(db_);
    db_ = nullptr;
    throw ruclip::Error("--db '" + path + "': cannot open: " + msg);
  }
  sqlite3_busy_timeout(db_, 5000);
  try {
    // The first read is where SQLite finds a file that is not a database.
    int tables = 0;
    {
      Statement st(db_, "SELECT count(*) FROM sqlite_master WHERE type = 'table'", "--db '" + path + "'");
      st.step("--db '" + path + "'");
      tables = sqlite3_column_int(st.get(), 0);
    }
    if (tables == 0 && create) {
      // 64 KiB pages: a sample's row (a 2 KiB embedding at 512 floats, a
      // few-KiB thumbnail) shares its page with others instead of leaving
      // half of a 4 KiB page empty, and a search reads the file in long runs.
      exec("PRAGMA page_size = 65536");
      exec("BEGIN");
      exec(kSchema);
      set_info("format", kFormat);
      exec("COMMIT");
    }
    const auto format = [&]() -> std::optional<std::string> {
      try {
        return info("format");
      } catch (const ruclip::Error&) {
        return std::nullopt;
      }
    }();
    if (!format) throw ruclip::Error("--db '" + path + "': not a ruclip index (no index_info table)");
    if (*format != kFormat)
      throw ruclip::Error("--db '" + path + "': index format '" + *format + "', this ruclip reads '" + kFormat + "'");
    // Integrity of the schema itself: each table this code reads.
    exec("SELECT id, file_id, time, embedding, thumbnail FROM samples LIMIT 0");
    exec(std::string("SELECT ") + kFileColumns + " FROM files LIMIT 0");
  } catch (const ruclip::Error& e) {
    sqlite3_close(db_);
    db_ = nullptr;
    std::string msg = e.what();
    if (msg.rfind("--db", 0) != 0) msg = "--db '" + path + "': " + msg;
    throw ruclip::Error(msg);
  }
}

VideoIndex::~VideoIndex() { sqlite3_close(db_); }

void VideoIndex::exec(const std::string& sql) const {
  char* error = nullptr;
  if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &error) != SQLITE_OK) {
    const std::string msg = error ? error : sqlite3_errmsg(db_);
    sqlite3_free(error);
    throw ruclip::Error("--db '" + path_ + "': " + msg);
  }
}

std::optional<std::string> VideoIndex::info(const std::string& key) const {
  Statement st(db_, "SELECT value FROM index_info WHERE key = ?", "--db '" + path_ + "'");
  st.text(1, key);
  if (st.step("--db '" + path_ + "'") != SQLITE_ROW) return std::nullopt;
  return st.column_text(0);
}

void VideoIndex::set_info(const std::string& key, const std::string& value) {
  Statement st(db_, "INSERT OR REPLACE INTO index_info(key, value) VALUES (?, ?)", "--db '" + path_ + "'");
  st.text(1, key);
  st.text(2, value);
  st.step("--db '" + path_ + "'");
}

std::optional<IndexedFile> VideoIndex::file(const std::string& path) const {
  Statement st(db_, (std::string("SELECT ") + kFileColumns + " FROM files WHERE path = ?").c_str(),
               "--db '" + path_ + "'");
  st.text(1, path);
  if (st.step("--db '" + path_ + "'") != SQLITE_ROW) return std::nullopt;
  return read_file_row(st);
}

std::vector<IndexedFile> VideoIndex::files() const {
  Statement st(db_, (std::string("SELECT ") + kFileColumns + " FROM files ORDER BY id").c_str(),
               "--db '" + path_ + "'");
  std::vector<IndexedFile> out;
  while (st.step("--db '" + path_ + "'") == SQLITE_ROW) out.push_back(read_file_row(st));
  return out;
}

int64_t VideoIndex::put_file(const IndexedFile& file, const std::vector<IndexedSample>& samples) {
  const std::string origin = "--db '" + path_ + "'";
  exec("BEGIN IMMEDIATE");
  try {
    if (auto old = this->file(file.path)) {
      Statement del(db_, "DELETE FROM samples WHERE file_id = ?", origin);
      sqlite3_bind_int64(del.get(), 1, old->id);
      del.step(origin);
      Statement del_file(db_, "DELETE FROM files WHERE id = ?", origin);
      sqlite3_bind_int64(del_file.get(), 1, old->id);
      del_file.step(origin);
    }
    Statement ins(db_, "INSERT INTO files(path, size, mtime_ns, every, duration, samples) VALUES (?, ?, ?, ?, ?, ?)",
                  origin);
    ins.text(1, file.path);
    sqlite3_bind_int64(ins.get(), 2, file.size);
    sqlite3_bind_int64(ins.get(), 3, file.mtime_ns);
    sqlite3_bind_double(ins.get(), 4, file.every);
    sqlite3_bind_double(ins.get(), 5, file.duration);
    sqlite3_bind_int64(ins.get(), 6, static_cast<int64_t>(samples.size()));
    ins.step(origin);
    const int64_t id = sqlite3_last_insert_rowid(db_);
    Statement put(db_, "INSERT INTO samples(file_id, time, embedding, thumbnail) VALUES (?, ?, ?, ?)", origin);
    for (const auto& s : samples) {
      sqlite3_reset(put.get());
      sqlite3_bind_int64(put.get(), 1, id);
      sqlite3_bind_double(put.get(), 2, s.time);
      sqlite3_bind_blob(put.get(), 3, s.embedding.data(), static_cast<int>(s.embedding.size() * sizeof(float)),
                        SQLITE_STATIC);
      if (s.thumbnail.empty())
        sqlite3_bind_zeroblob(put.get(), 4, 0);  // (a null pointer would bind NULL)
      else
        sqlite3_bind_blob(put.get(), 4, s.thumbnail.data(), static_cast<int>(s.thumbnail.size()), SQLITE_STATIC);
      put.step(origin);
    }
    exec("COMMIT");
    return id;
  } catch (...) {
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    throw;
  }
}

void VideoIndex::each_embedding(int dim, void (*row)(void*, const SampleRef&, const float*), void* context) const {
  const std::string origin = "--db '" + path_ + "'";
  Statement st(db_, "SELECT id, file_id, time, embedding FROM samples ORDER BY file_id, time, id", origin);
  std::vector<float> embedding(dim);
  while (st.step(origin) == SQLITE_ROW) {
    SampleRef ref{sqlite3_column_int64(st.get(), 0), sqlite3_column_int64(st.get(), 1),
                  sqlite3_column_double(st.get(), 2)};
    const int bytes = sqlite3_column_bytes(st.get(), 3);
    if (bytes != dim * static_cast<int>(sizeof(float)))
      throw ruclip::Error(origin + ": sample " + std::to_string(ref.id) + " has a " + std::to_string(bytes) +
                          "-byte embedding, the index's dimension " + std::to_string(dim) + " needs " +
                          std::to_string(dim * sizeof(float)));
    std::memcpy(embedding.data(), sqlite3_column_blob(st.get(), 3), bytes);
    row(context, ref, embedding.data());
  }
}

std::vector<SampleRef> VideoIndex::read_refs() const {
  const std::string origin = "--db '" + path_ + "'";
  Statement st(db_, "SELECT id, file_id, time FROM samples ORDER BY file_id, time, id", origin);
  std::vector<SampleRef> out;
  while (st.step(origin) == SQLITE_ROW)
    out.push_back({sqlite3_column_int64(st.get(), 0), sqlite3_column_int64(st.get(), 1),
                   sqlite3_column_double(st.get(), 2)});
  return out;
}

std::vector<uint8_t> VideoIndex::thumbnail(int64_t sample_id) const {
  const std::string origin = "--db '" + path_ + "'";
  Statement st(db_, "SELECT thumbnail FROM samples WHERE id = ?", origin);
  sqlite3_bind_int64(st.get(), 1, sample_id);
  if (st.step(origin) != SQLITE_ROW) throw ruclip::Error(origin + ": no sample " + std::to_string(sample_id));
  const auto* data = static_cast<const uint8_t*>(sqlite3_column_blob(st.get(), 0));
  return std::vector<uint8_t>(data, data + sqlite3_column_bytes(st.get(), 0));
}

int64_t VideoIndex::sample_count() const {
  const std::string origin = "--db '" + path_ + "'";
  Statement st(db_, "SELECT count(*) FROM samples", origin);
  st.step(origin);
  return sqlite3_column_int64(st.get(), 0);
}

}  // namespace ruclip_cli
