// The search index's store: per sample of a video file or of a live camera,
// its time, the normalized image embedding, a JPEG thumbnail and the labels
// it got; written by `ruclip index` and the ruclipindex element, read by
// `ruclip search`, `ruclip prune` and `ruclip serve`.
//
// One schema, two engines: a SQLite file (the embedded default) or a
// PostgreSQL database ("postgresql://..." or "postgres://..."), which many
// writers on many machines share. The schema is versioned (index_info
// "format") and older versions are migrated when opened for writing.
//
//   std::unique_ptr<ruclip::index::Store> db = ruclip::index::Store::open("idx.db", /*create=*/true);
//   const int64_t gate = db->camera("gate");
//   db->add_samples(gate, samples);           // stored once it returns
//   db->read_since(0, dim, [&](const ruclip::index::SampleRow& row, const float* embedding) { ... });
//
// Consistency: a file's samples and its source row are written in one
// transaction (a file is wholly indexed or absent); a batch of camera samples
// is one transaction, and once add_samples returns it is stored. Rows are
// read in the order they were committed (ascending id): writers take turns
// (PostgreSQL: a table lock per batch), so a reader that has seen every id up
// to N will never later find a new row below N. Every deletion (prune, a
// file indexed again) changes generation(), so caches of the rows know to
// start again.
//
// Thread rule: a Store is used by one thread at a time.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace ruclip::index {

constexpr int64_t kNoWallTime = INT64_MIN;

// A file or a camera: where samples come from.
struct Source {
  enum class Kind { kFile, kCamera };
  int64_t id = 0;
  Kind kind = Kind::kFile;
  std::string name;  // a file's absolute path; a camera's name
  // Files only: what was indexed (a changed file is indexed again).
  int64_t size = 0, mtime_ns = 0;
  double every = 0, duration = -1;
  int64_t samples = 0;
};

// A sample to store.
struct Sample {
  double time = 0;                   // seconds into the file; a camera's: its PTS in seconds
  int64_t wall_time = kNoWallTime;   // cameras: microseconds since 1970-01-01 UTC
  std::string labels;                // the frame's labels, best first, ';'-separated ("" when none)
  std::vector<float> embedding;      // normalized, the index's dimension
  std::vector<uint8_t> thumbnail;    // JPEG, 192 pixels wide
  std::vector<uint8_t> frame;        // JPEG, the frame larger (cameras; empty when not kept)
};

// A stored sample as search reads it.
struct SampleRow {
  int64_t id = 0;
  int64_t source_id = 0;
  double time = 0;
  int64_t wall_time = kNoWallTime;
};

class Store {
 public:
  // A path (SQLite) or a postgresql:// URI. Throws ruclip::Error naming the
  // location (passwords left out) for one that is missing (unless `create`),
  // unreachable, not a ruclip index, or of a newer format.
  static std::unique_ptr<Store> open(const std::string& location, bool create);
  static bool is_postgresql(const std::string& location);
  // The location with any password replaced by "***", for messages and logs.
  static std::string printable(const std::string& location);

  virtual ~Store() = default;
  const std::string& location() const { return printable_; }

  virtual std::optional<std::string> info(const std::string& key) = 0;
  virtual void set_info(const std::string& key, const std::string& value) = 0;
  // Sets `key` unless it is set, and returns the stored value: of several
  // writers starting at once, one's value wins and all see it.
  virtual std::string info_or_set(const std::string& key, const std::string& value) = 0;

  virtual std::vector<Source> sources() = 0;
  std::optional<Source> file(const std::string& path);
  // Replaces whatever was stored for `file.name` with these samples, in one
  // transaction. Returns the file's id.
  virtual int64_t put_file(const Source& file, const std::vector<Sample>& samples) = 0;
  // The camera's source id, made when new.
  virtual int64_t camera(const std::string& name) = 0;
  // Appends samples of a camera in one transaction.
  virtual void add_samples(int64_t camera_id, const std::vector<Sample>& samples) = 0;

  // Every row with id > after_id, in ascending id, each with its embedding
  // (`dim` floats; another length throws naming the row).
  virtual void read_since(int64_t after_id, int dim,
                          const std::function<void(const SampleRow&, const float*)>& row) = 0;
  virtual std::vector<uint8_t> thumbnail(int64_t sample_id) = 0;
  // The larger frame's JPEG; empty when none was kept.
  virtual std::vector<uint8_t> frame(int64_t sample_id) = 0;
  virtual std::string labels(int64_t sample_id) = 0;
  virtual int64_t sample_count() = 0;
  // The highest sample id (0 when there is none): what a reader that has
  // synced up to it has all of.
  virtual int64_t last_id() = 0;
  // Changes with every deletion of rows.
  virtual int64_t generation() = 0;
  // Removes the camera samples taken before `wall_time`, of the camera
  // named or of all cameras when it is empty (files stay: they are indexed
  // again or not at all). Returns the number of samples removed.
  virtual int64_t prune(int64_t wall_time, const std::string& camera = "") = 0;

 protected:
  explicit Store(std::string printable) : printable_(std::move(printable)) {}

 private:
  std::string printable_;
};

// "2026-12-07T05:01:02.250Z" for microseconds since 1970 UTC.
std::string iso8601(int64_t wall_time);
// The inverse, for "2026-12-07T05:01:02Z", "2026-12-07T05:01:02.25+03:00",
// "2026-12-07"; and a time before `now` for an age: "90s", "15m", "2h", "7d".
// Throws ruclip::Error naming `what` for anything else.
int64_t parse_time(const std::string& text, int64_t now, const std::string& what);
// Microseconds since 1970 UTC, now.
int64_t wall_clock_now();

}  // namespace ruclip::index
