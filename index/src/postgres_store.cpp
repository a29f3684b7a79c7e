// The PostgreSQL engine (libpq): one index shared by the writers of many
// machines. Vectors are bytea (Debian 12 has no pgvector): search keeps its
// own copy of them and syncs the rows it has not seen by id.
#include <endian.h>
#include <libpq-fe.h>

#include <cstdio>
#include <cstring>
#include <deque>
#include <vector>

#include "ruclip/error.h"
#include "stores.h"

namespace ruclip::index {
namespace {

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS index_info(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sources(
  id BIGSERIAL PRIMARY KEY,
  kind TEXT NOT NULL,
  name TEXT NOT NULL,
  size BIGINT NOT NULL DEFAULT 0,
  mtime_ns BIGINT NOT NULL DEFAULT 0,
  every DOUBLE PRECISION NOT NULL DEFAULT 0,
  duration DOUBLE PRECISION NOT NULL DEFAULT -1,
  samples BIGINT NOT NULL DEFAULT 0,
  UNIQUE(kind, name));
CREATE TABLE IF NOT EXISTS samples(
  id BIGSERIAL PRIMARY KEY,
  source_id BIGINT NOT NULL REFERENCES sources(id),
  time DOUBLE PRECISION NOT NULL,
  wall_time BIGINT,
  labels TEXT NOT NULL DEFAULT '',
  embedding BYTEA NOT NULL,
  thumbnail BYTEA NOT NULL,
  frame BYTEA NOT NULL DEFAULT '');
CREATE INDEX IF NOT EXISTS samples_by_source ON samples(source_id, time);
CREATE INDEX IF NOT EXISTS samples_by_wall_time ON samples(wall_time);
)sql";

// Writers that create the schema at the same moment take turns on this
// advisory lock (CREATE ... IF NOT EXISTS alone races).
constexpr const char* kCreateLock = "SELECT pg_advisory_xact_lock(7405315220311203)";

// A result, cleared when it goes out of scope.
class Result {
 public:
  explicit Result(PGresult* r) : r_(r) {}
  Result(Result&& other) noexcept : r_(other.r_) { other.r_ = nullptr; }
  ~Result() { PQclear(r_); }
  Result(const Result&) = delete;
  Result& operator=(const Result&) = delete;
  PGresult* get() const { return r_; }
  int rows() const { return PQntuples(r_); }
  std::string text(int row, int col) const { return PQgetvalue(r_, row, col); }
  bool null(int row, int col) const { return PQgetisnull(r_, row, col); }
  int64_t integer(int row, int col) const { return std::stoll(PQgetvalue(r_, row, col)); }
  double real(int row, int col) const { return std::stod(PQgetvalue(r_, row, col)); }
  // Binary results.
  int64_t binary_integer(int row, int col) const {
    uint64_t v;
    std::memcpy(&v, PQgetvalue(r_, row, col), 8);
    return static_cast<int64_t>(be64toh(v));
  }
  double binary_real(int row, int col) const {
    const int64_t bits = binary_integer(row, col);
    double d;
    std::memcpy(&d, &bits, 8);
    return d;
  }

 private:
  PGresult* r_;
};

// Query parameters: text or binary values, kept alive until the call.
class Params {
 public:
  Params& text(std::string v) {
    owned_.push_back(std::move(v));
    values_.push_back(nullptr);
    lengths_.push_back(0);
    formats_.push_back(0);
    return *this;
  }
  Params& integer(int64_t v) { return text(std::to_string(v)); }
  Params& real(double v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.17g", v);
    return text(buf);
  }
  Params& null() {
    owned_.emplace_back();
    values_.push_back(nullptr);
    lengths_.push_back(-1);
    formats_.push_back(0);
    return *this;
  }
  Params& binary(const void* data, size_t size) {
    owned_.emplace_back(static_cast<const char*>(data), size);
    values_.push_back(nullptr);
    lengths_.push_back(static_cast<int>(size));
    formats_.push_back(1);
    return *this;
  }
  int count() const { return static_cast<int>(values_.size()); }
  const char* const* values() {
    for (size_t i = 0; i < values_.size(); ++i) values_[i] = lengths_[i] < 0 ? nullptr : owned_[i].data();
    return values_.data();
  }
  const int* lengths() const { return lengths_.data(); }
  const int* formats() const { return formats_.data(); }

 private:
  std::deque<std::string> owned_;
  std::vector<const char*> values_;
  std::vector<int> lengths_, formats_;
};

class PostgresStore final : public Store {
 public:
  PostgresStore(const std::string& uri, const std::string& printable, bool create)
      : Store(printable), origin_("index '" + printable + "'") {
    // A server that doesn't answer: give up in seconds, not minutes. A peer
    // that vanished mid-batch (its machine off the network) must not hold
    // the samples lock for hours: keepalives and a TCP timeout end its
    // connection, and the server ends a transaction left idle or a lock
    // waited on too long (the batch goes back to the writer's queue).
    // Settings in the URI win: it comes last.
    const char* keys[] = {"connect_timeout", "keepalives", "keepalives_idle", "tcp_user_timeout", "options",
                          "dbname", nullptr};
    const char* values[] = {"5", "1", "10", "30000",
                            "-c lock_timeout=30s -c idle_in_transaction_session_timeout=60s", uri.c_str(), nullptr};
    conn_ = PQconnectdbParams(keys, values, /*expand_dbname=*/1);
    if (!conn_ || PQstatus(conn_) != CONNECTION_OK) {
      const std::string msg = conn_ ? first_line(PQerrorMessage(conn_)) : "out of memory";
      PQfinish(conn_);
      conn_ = nullptr;
      throw Error(origin_ + ": cannot connect: " + msg);
    }
    try {
      Result quiet(PQexec(conn_, "SET client_min_messages = warning"));
      const bool exists = query("SELECT to_regclass('index_info') IS NOT NULL").text(0, 0) == "t";
      if (!exists && !create) throw Error(origin_ + ": not a ruclip index (no index_info table)");
      if (!exists) {
        begin();
        query(kCreateLock);
        command(kSchema);
        query("INSERT INTO index_info(key, value) VALUES ('format', $1), ('generation', '0') ON CONFLICT DO NOTHING",
              Params().text(kFormat));
        commit();
      }
      const auto format = info("format");
      if (!format) throw Error(origin_ + ": not a ruclip index (no format in index_info)");
      if (*format != kFormat)
        throw Error(origin_ + ": index format '" + *format + "', this ruclip reads '" + kFormat + "'");
    } catch (...) {
      PQfinish(conn_);
      conn_ = nullptr;
      throw;
    }
  }
  ~PostgresStore() override { PQfinish(conn_); }

  std::optional<std::string> info(const std::string& key) override {
    Result r = query("SELECT value FROM index_info WHERE key = $1", Params().text(key));
    if (r.rows() == 0) return std::nullopt;
    return r.text(0, 0);
  }
  void set_info(const std::string& key, const std::string& value) override {
    query("INSERT INTO index_info(key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = $2",
          Params().text(key).text(value));
  }
  std::string info_or_set(const std::string& key, const std::string& value) override {
    query("INSERT INTO index_info(key, value) VALUES ($1, $2) ON CONFLICT DO NOTHING", Params().text(key).text(value));
    return info(key).value_or(value);
  }

  std::vector<Source> sources() override {
    Result r = query("SELECT id, kind, name, size, mtime_ns, every, duration, samples FROM sources ORDER BY id");
    std::vector<Source> out;
    for (int i = 0; i < r.rows(); ++i) {
      Source s;
      s.id = r.integer(i, 0);
      s.kind = r.text(i, 1) == "camera" ? Source::Kind::kCamera : Source::Kind::kFile;
      s.name = r.text(i, 2);
      s.size = r.integer(i, 3);
      s.mtime_ns = r.integer(i, 4);
      s.every = r.real(i, 5);
      s.duration = r.real(i, 6);
      s.samples = r.integer(i, 7);
      out.push_back(std::move(s));
    }
    return out;
  }

  int64_t put_file(const Source& file, const std::vector<Sample>& samples) override {
    begin();
    try {
      lock_samples();
      Result old = query("SELECT id FROM sources WHERE kind = 'file' AND name = $1", Params().text(file.name));
      if (old.rows() > 0) {
        const std::string id = old.text(0, 0);
        query("DELETE FROM samples WHERE source_id = $1", Params().text(id));
        query("DELETE FROM sources WHERE id = $1", Params().text(id));
        bump_generation();
      }
      const int64_t id =
          query("INSERT INTO sources(kind, name, size, mtime_ns, every, duration, samples) "
                "VALUES ('file', $1, $2, $3, $4, $5, $6) RETURNING id",
                Params().text(file.name).integer(file.size).integer(file.mtime_ns).real(file.every).real(file.duration)
                    .integer(static_cast<int64_t>(samples.size())))
              .integer(0, 0);
      insert_samples(id, samples);
      commit();
      return id;
    } catch (...) {
      rollback();
      throw;
    }
  }

  int64_t camera(const std::string& name) override {
    query("INSERT INTO sources(kind, name) VALUES ('camera', $1) ON CONFLICT DO NOTHING", Params().text(name));
    return query("SELECT id FROM sources WHERE kind = 'camera' AND name = $1", Params().text(name)).integer(0, 0);
  }

  void add_samples(int64_t camera_id, const std::vector<Sample>& samples) override {
    begin();
    try {
      lock_samples();
      insert_samples(camera_id, samples);
      query("UPDATE sources SET samples = samples + $1 WHERE id = $2",
            Params().integer(static_cast<int64_t>(samples.size())).integer(camera_id));
      commit();
    } catch (...) {
      rollback();
      throw;
    }
  }

  void read_since(int64_t after_id, int dim, const std::function<void(const SampleRow&, const float*)>& row) override {
    // A cursor: the rows come in pages, never all at once into memory.
    begin();
    try {
      query("DECLARE ruclip_rows NO SCROLL CURSOR FOR SELECT id, source_id, time, wall_time, embedding "
            "FROM samples WHERE id > $1 ORDER BY id",
            Params().integer(after_id));
      std::vector<float> embedding(dim);
      const size_t bytes = dim * sizeof(float);
      for (;;) {
        Result page(PQexecParams(conn_, "FETCH 4096 FROM ruclip_rows", 0, nullptr, nullptr, nullptr, nullptr,
                                 /*binary results*/ 1));
        check(page, PGRES_TUPLES_OK);
        if (page.rows() == 0) break;
        for (int i = 0; i < page.rows(); ++i) {
          SampleRow r;
          r.id = page.binary_integer(i, 0);
          r.source_id = page.binary_integer(i, 1);
          r.time = page.binary_real(i, 2);
          r.wall_time = page.null(i, 3) ? kNoWallTime : page.binary_integer(i, 3);
          if (static_cast<size_t>(PQgetlength(page.get(), i, 4)) != bytes)
            throw Error(origin_ + ": sample " + std::to_string(r.id) + " has a " +
                        std::to_string(PQgetlength(page.get(), i, 4)) + "-byte embedding, the index's dimension " +
                        std::to_string(dim) + " needs " + std::to_string(bytes));
          std::memcpy(embedding.data(), PQgetvalue(page.get(), i, 4), bytes);
          row(r, embedding.data());
        }
      }
      commit();
    } catch (...) {
      rollback();
      throw;
    }
  }

  std::vector<uint8_t> thumbnail(int64_t sample_id) override { return column("thumbnail", sample_id); }
  std::vector<uint8_t> frame(int64_t sample_id) override { return column("frame", sample_id); }

  // A bytea column of one sample, in binary.
  std::vector<uint8_t> column(const char* name, int64_t sample_id) {
    const std::string sql = std::string("SELECT ") + name + " FROM samples WHERE id = $1::bigint";
    Result r(PQexecParams(conn_, sql.c_str(), 1, nullptr, Params().integer(sample_id).values(), nullptr, nullptr, 1));
    check(r, PGRES_TUPLES_OK);
    if (r.rows() == 0) throw Error(origin_ + ": no sample " + std::to_string(sample_id));
    const auto* data = reinterpret_cast<const uint8_t*>(PQgetvalue(r.get(), 0, 0));
    return std::vector<uint8_t>(data, data + PQgetlength(r.get(), 0, 0));
  }

  std::string labels(int64_t sample_id) override {
    Result r = query("SELECT labels FROM samples WHERE id = $1", Params().integer(sample_id));
    if (r.rows() == 0) throw Error(origin_ + ": no sample " + std::to_string(sample_id));
    return r.text(0, 0);
  }

  int64_t sample_count() override { return query("SELECT count(*) FROM samples").integer(0, 0); }

  int64_t last_id() override { return query("SELECT coalesce(max(id), 0) FROM samples").integer(0, 0); }

  int64_t generation() override { return std::stoll(info("generation").value_or("0")); }

  int64_t prune(int64_t wall_time, const std::string& camera) override {
    begin();
    try {
      lock_samples();
      Params p;
      p.integer(wall_time);
      std::string where = "wall_time IS NOT NULL AND wall_time < $1";
      if (!camera.empty()) {
        where += " AND source_id = (SELECT id FROM sources WHERE kind = 'camera' AND name = $2)";
        p.text(camera);
      }
      Result removed = query("WITH gone AS (DELETE FROM samples WHERE " + where +
                                 " RETURNING source_id), per AS (SELECT source_id, count(*) AS n FROM gone "
                                 "GROUP BY source_id), upd AS (UPDATE sources SET samples = samples - per.n FROM per "
                                 "WHERE sources.id = per.source_id) SELECT coalesce(sum(n), 0) FROM per",
                             std::move(p));
      const int64_t n = removed.integer(0, 0);
      if (n > 0) bump_generation();
      commit();
      return n;
    } catch (...) {
      rollback();
      throw;
    }
  }

 private:
  static std::string first_line(const char* message) {
    std::string s = message ? message : "";
    const size_t end = s.find('\n');
    if (end != std::string::npos) s.resize(end);
    return s;
  }

  void check(const Result& r, ExecStatusType want) {
    if (PQresultStatus(r.get()) == want) return;
    std::string msg = first_line(PQresultErrorMessage(r.get()));
    if (msg.empty()) msg = first_line(PQerrorMessage(conn_));
    if (PQstatus(conn_) != CONNECTION_OK) msg = "connection lost: " + msg;
    throw Error(origin_ + ": " + msg);
  }

  Result query(const std::string& sql, Params p = Params()) {
    Result r(PQexecParams(conn_, sql.c_str(), p.count(), nullptr, p.values(), p.lengths(), p.formats(), 0));
    const ExecStatusType status = PQresultStatus(r.get());
    if (status != PGRES_TUPLES_OK) check(r, PGRES_COMMAND_OK);
    return r;
  }
  // Several statements in one string (no parameters).
  void command(const char* sql) {
    Result r(PQexec(conn_, sql));
    check(r, PGRES_COMMAND_OK);
  }
  void begin() { command("BEGIN"); }
  void commit() { command("COMMIT"); }
  void rollback() {
    if (PQstatus(conn_) == CONNECTION_OK) Result r(PQexec(conn_, "ROLLBACK"));
  }
  // Writers take turns, so ids are committed in ascending order (store.h);
  // readers are not blocked.
  void lock_samples() { command("LOCK TABLE samples IN SHARE ROW EXCLUSIVE MODE"); }
  void bump_generation() {
    command("UPDATE index_info SET value = (value::bigint + 1)::text WHERE key = 'generation'");
  }

  void insert_samples(int64_t source_id, const std::vector<Sample>& samples) {
    for (const Sample& s : samples) {
      Params p;
      p.integer(source_id).real(s.time);
      if (s.wall_time == kNoWallTime)
        p.null();
      else
        p.integer(s.wall_time);
      p.text(s.labels).binary(s.embedding.data(), s.embedding.size() * sizeof(float));
      p.binary(s.thumbnail.data(), s.thumbnail.size());
      p.binary(s.frame.data(), s.frame.size());
      query("INSERT INTO samples(source_id, time, wall_time, labels, embedding, thumbnail, frame) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7)",
            std::move(p));
    }
  }

  std::string origin_;
  PGconn* conn_ = nullptr;
};

}  // namespace

std::unique_ptr<Store> open_postgresql(const std::string& uri, const std::string& printable, bool create) {
  return std::make_unique<PostgresStore>(uri, printable, create);
}

}  // namespace ruclip::index
