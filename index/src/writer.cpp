#include "ruclip/index/writer.h"

#include <algorithm>

#include "ruclip/error.h"

namespace ruclip::index {
namespace {

constexpr auto kFirstBackoff = std::chrono::milliseconds(250);
constexpr auto kLastBackoff = std::chrono::milliseconds(8000);
constexpr auto kPruneEvery = std::chrono::seconds(60);

}  // namespace

Writer::Writer(WriterOptions options) : options_(std::move(options)) {
  if (options_.camera.empty()) throw Error("camera: empty (name the camera the samples come from)");
  if (options_.queue_size == 0) throw Error("queue-size: must be at least 1");
  thread_ = std::thread([this] { run(); });
}

Writer::~Writer() {
  {
    std::lock_guard<std::mutex> guard(lock_);
    stop_ = true;
  }
  wake_.notify_all();
  thread_.join();
}

bool Writer::changed(const std::vector<float>& embedding, int64_t wall_time) {
  std::lock_guard<std::mutex> guard(lock_);
  bool take = last_embedding_.size() != embedding.size() || options_.min_change <= 0 ||
              last_wall_time_ == kNoWallTime || wall_time == kNoWallTime ||
              wall_time - last_wall_time_ >= options_.keep_every ||
              wall_time < last_wall_time_;  // the clock stepped back: start again from this frame
  if (!take) {
    double cosine = 0;
    for (size_t i = 0; i < embedding.size(); ++i) cosine += static_cast<double>(embedding[i]) * last_embedding_[i];
    take = 1 - cosine >= options_.min_change;
  }
  if (!take) {
    ++stats_.unchanged;
    return false;
  }
  last_embedding_ = embedding;
  last_wall_time_ = wall_time;
  return true;
}

void Writer::add(Sample sample) {
  {
    std::lock_guard<std::mutex> guard(lock_);
    queue_.push_back({std::move(sample), !options_.encode_jpeg});
    while (queue_.size() > options_.queue_size) {
      queue_.pop_front();
      ++stats_.dropped;
    }
  }
  wake_.notify_all();
}

bool Writer::flush(std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> guard(lock_);
  return flushed_.wait_for(guard, timeout, [this] { return (queue_.empty() && in_flight_ == 0) || gave_up_; }) &&
         !gave_up_;
}

WriterStats Writer::stats() const {
  std::lock_guard<std::mutex> guard(lock_);
  WriterStats s = stats_;
  s.pending = queue_.size() + in_flight_;
  return s;
}

void Writer::fail(const std::string& message, bool fatal) {
  {
    std::lock_guard<std::mutex> guard(lock_);
    ++stats_.failures;
    stats_.connected = false;
  }
  if (options_.on_error) options_.on_error(message, fatal);
}

bool Writer::wait_for(std::chrono::milliseconds delay) {
  std::unique_lock<std::mutex> guard(lock_);
  return !wake_.wait_for(guard, delay, [this] { return stop_; });
}

bool Writer::connect() {
  try {
    store_ = options_.open ? options_.open(options_.location) : Store::open(options_.location, /*create=*/true);
    if (options_.dim > 0) {
      const std::string dim = store_->info_or_set("dim", std::to_string(options_.dim));
      if (dim != std::to_string(options_.dim)) {
        const std::string message = "index '" + store_->location() + "' holds " + dim +
                                    "-dimensional embeddings, the model makes " + std::to_string(options_.dim);
        store_.reset();
        fail(message, /*fatal=*/true);  // heard before flush() returns
        {
          std::lock_guard<std::mutex> guard(lock_);
          gave_up_ = true;
        }
        flushed_.notify_all();
        return false;
      }
    }
    if (!options_.model.empty()) store_->info_or_set("model", options_.model);
    camera_id_ = store_->camera(options_.camera);
    std::lock_guard<std::mutex> guard(lock_);
    stats_.connected = true;
    return true;
  } catch (const std::exception& e) {
    store_.reset();
    fail(e.what(), false);
    return false;
  }
}

void Writer::prune_old(std::chrono::steady_clock::time_point* last_prune) {
  if (options_.max_age <= 0 || !store_) return;
  const auto now = std::chrono::steady_clock::now();
  if (*last_prune != std::chrono::steady_clock::time_point() && now - *last_prune < kPruneEvery) return;
  *last_prune = now;
  try {
    store_->prune(wall_clock_now() - options_.max_age, options_.camera);
  } catch (const std::exception& e) {
    store_.reset();
    fail(e.what(), false);
  }
}

void Writer::run() {
  auto backoff = kFirstBackoff;
  std::chrono::steady_clock::time_point last_prune;
  for (;;) {
    {
      std::unique_lock<std::mutex> guard(lock_);
      wake_.wait_for(guard, std::chrono::seconds(1), [this] { return stop_ || (!queue_.empty() && !gave_up_); });
      if (stop_) return;
      if (gave_up_) {
        stats_.dropped += queue_.size();
        queue_.clear();
        flushed_.notify_all();
        continue;
      }
    }
    if (!store_ && !connect()) {
      bool gave_up;
      {
        std::lock_guard<std::mutex> guard(lock_);
        gave_up = gave_up_;
      }
      if (gave_up || !wait_for(backoff)) continue;
      backoff = std::min(backoff * 2, kLastBackoff);
      continue;
    }
    prune_old(&last_prune);
    if (!store_) continue;

    std::vector<Pending> batch;
    {
      std::lock_guard<std::mutex> guard(lock_);
      const size_t n = std::min(queue_.size(), std::max<size_t>(1, options_.batch_size));
      for (size_t i = 0; i < n; ++i) {
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
      in_flight_ = batch.size();
    }
    if (batch.empty()) continue;
    // The samples move into the batch the store takes, and back should it fail.
    std::vector<Sample> samples;
    samples.reserve(batch.size());
    for (Pending& p : batch) {
      if (!p.encoded) {
        for (std::vector<uint8_t>* picture : {&p.sample.thumbnail, &p.sample.frame}) {
          if (picture->empty()) continue;
          try {
            *picture = options_.encode_jpeg(*picture);
          } catch (const std::exception& e) {
            picture->clear();  // the sample is stored without it
            if (options_.on_error) options_.on_error(std::string("JPEG: ") + e.what(), false);
          }
        }
        p.encoded = true;
      }
      samples.push_back(std::move(p.sample));
    }
    try {
      store_->add_samples(camera_id_, samples);
      {
        std::lock_guard<std::mutex> guard(lock_);
        stats_.stored += batch.size();
        in_flight_ = 0;
      }
      backoff = kFirstBackoff;
      flushed_.notify_all();
    } catch (const std::exception& e) {
      // Back to the front, oldest first; what no longer fits is dropped.
      for (size_t i = 0; i < batch.size(); ++i) batch[i].sample = std::move(samples[i]);
      {
        std::lock_guard<std::mutex> guard(lock_);
        for (auto it = batch.rbegin(); it != batch.rend(); ++it) queue_.push_front(std::move(*it));
        in_flight_ = 0;
        while (queue_.size() > options_.queue_size) {
          queue_.pop_front();
          ++stats_.dropped;
        }
      }
      store_.reset();
      fail(e.what(), false);
      if (wait_for(backoff)) backoff = std::min(backoff * 2, kLastBackoff);
    }
  }
}

}  // namespace ruclip::index
