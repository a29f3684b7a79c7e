// A live camera's samples into an index (store.h), on a thread of their own:
// what the ruclipindex element runs, free of GStreamer.
//
//   ruclip::index::WriterOptions o;
//   o.location = "postgresql://indexer@db/ruclip";
//   o.camera = "gate";
//   ruclip::index::Writer writer(o);
//   if (writer.changed(embedding, wall_time)) writer.add(std::move(sample));  // never waits for the database
//   writer.flush(std::chrono::seconds(5));                                   // at the end of the stream
//
// The caller never waits for the database: add() puts the sample in a
// bounded queue (when it is full the oldest waiting sample is dropped and
// counted), and the thread stores batches of them, each in one transaction.
// A failed batch (the connection lost, the server restarting) goes back to
// the front of the queue; the thread connects again with backoff (0.25 s
// doubling to 8 s) and resends it. A sample counts as stored only once its
// transaction committed: what stats() reports stored is in the index. (A
// commit whose answer is lost with the connection is sent again: a sample
// can be stored twice, never lost.)
//
// changed() skips a frame whose embedding is within min_change (1 - cosine)
// of the last one taken, unless keep_every has passed since: a static scene
// costs one row per keep_every.
//
// Thread rule: changed(), add(), flush() and stats() may be called from any
// thread; the callbacks run on the writer's thread.
#pragma once
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "ruclip/index/store.h"

namespace ruclip::index {

struct WriterOptions {
  std::string location;  // a SQLite path or a postgresql:// URI
  std::string camera;
  size_t queue_size = 256;
  size_t batch_size = 32;
  double min_change = 0;                    // 1 - cosine; 0 stores every frame
  int64_t keep_every = 3600LL * 1000000;    // us: a frame is taken at least this often
  int64_t max_age = 0;                      // us: the camera's older samples are pruned; 0 keeps them
  std::string model;                        // recorded in the index when it has none
  int dim = 0;                              // the embeddings' length; an index of another refuses
  // Makes a JPEG of what the caller left in a sample's `thumbnail` and
  // `frame` (each, when not empty), once. Runs on the writer thread.
  std::function<std::vector<uint8_t>(const std::vector<uint8_t>&)> encode_jpeg;
  // Hears every failure (connecting, storing, pruning), with `fatal` where
  // the writer gave up (an index of another dimension). Writer thread.
  std::function<void(const std::string& message, bool fatal)> on_error;
  // Opens the store (tests put a stand-in here). Default: Store::open(location, true).
  std::function<std::unique_ptr<Store>(const std::string&)> open;
};

struct WriterStats {
  uint64_t stored = 0;     // committed to the index
  uint64_t unchanged = 0;  // skipped by changed()
  uint64_t dropped = 0;    // pushed out of the full queue
  uint64_t pending = 0;    // queued or being written
  uint64_t failures = 0;   // failed connections and batches
  bool connected = false;
};

class Writer {
 public:
  explicit Writer(WriterOptions options);
  // Stops the thread; samples not stored by then are given up (call flush()
  // first to wait for them).
  ~Writer();
  Writer(const Writer&) = delete;
  Writer& operator=(const Writer&) = delete;

  // Whether a frame with this embedding at this time should be stored (and,
  // when it should, it becomes the one later frames are compared with).
  bool changed(const std::vector<float>& embedding, int64_t wall_time);
  void add(Sample sample);
  // Waits until every sample added so far is stored, or `timeout` passed.
  // True when all were stored.
  bool flush(std::chrono::milliseconds timeout);
  WriterStats stats() const;

 private:
  void run();
  bool connect();
  void prune_old(std::chrono::steady_clock::time_point* last_prune);
  void fail(const std::string& message, bool fatal);
  // Waits `delay` or until stopped; false when stopped.
  bool wait_for(std::chrono::milliseconds delay);

  const WriterOptions options_;
  mutable std::mutex lock_;
  std::condition_variable wake_, flushed_;
  struct Pending {
    Sample sample;
    bool encoded = false;  // its thumbnail and frame are JPEGs
  };
  std::deque<Pending> queue_;
  size_t in_flight_ = 0;
  bool stop_ = false;
  bool gave_up_ = false;
  WriterStats stats_;
  std::vector<float> last_embedding_;
  int64_t last_wall_time_ = kNoWallTime;

  // Writer thread only.
  std::unique_ptr<Store> store_;
  int64_t camera_id_ = 0;
  std::thread thread_;
};

}  // namespace ruclip::index
