// From per-frame scores to time segments: "where in these 40 hours is
// «человек с собакой»?". Each analysis's label scores (softmax probabilities
// or presences, zero_shot.h) are smoothed
// over time (optional), a label starts holding when its score reaches a start
// threshold and stops when it falls below a lower end threshold
// (hysteresis), and segments shorter than a minimum are not reported.
// GStreamer-free: ruclipfilter (segments=true) and `ruclip tag` use it.
//
// Times are nanoseconds (GstClockTime's unit); kNoTime where there is none.
// Not thread-safe: one tracker per stream, fed in stream order.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "ruclip/zero_shot.h"

namespace ruclip {

constexpr uint64_t kNoTime = UINT64_MAX;

struct Thresholds {
  double start = 0.5;  // a label starts holding at (smoothed) probability >= start
  double end = 0.4;    // and stops below end (end <= start)
};

struct SegmentOptions {
  // Exponential smoothing of each label's probability over analyses, with
  // this time constant (ns of PTS; 0: raw scores). Analyses need not be evenly spaced.
  uint64_t smoothing = 0;
  Thresholds thresholds;
  std::map<std::string, Thresholds> per_label;  // overrides, by label
  // A label must hold this long (ns) before its segment is reported; shorter
  // ones are dropped. Its start event comes then, with the start it had.
  uint64_t min_duration = 0;
};

// "человек:0.6:0.3;собака:0.7" -> per-label thresholds (end defaults to
// start - (default start - default end), at least 0). Throws ruclip::Error
// naming the item for a malformed one or values outside [0, 1] / end > start.
std::map<std::string, Thresholds> parse_label_thresholds(std::string_view text, const Thresholds& defaults = {});

struct Segment {
  std::string label;
  uint64_t start = kNoTime, end = kNoTime;  // PTS: first analysis holding, first one not (or the stream's end)
  uint64_t start_running_time = kNoTime, end_running_time = kNoTime;
  double mean_score = 0, peak_score = 0;  // of the raw probability over the segment's analyses
  uint64_t frames = 0;                    // analyses in it
};

struct SegmentEvent {
  enum class Kind { kStart, kEnd };
  Kind kind = Kind::kStart;
  Segment segment;  // on kStart: end is kNoTime, scores/frames so far
};

class SegmentTracker {
 public:
  explicit SegmentTracker(SegmentOptions options = {});

  // One analysis (every label's score of `scoring`, any order). Returns each
  // label's smoothed score, in the order given; appends the segments
  // that start or end here to `events`. A label missing from a later
  // analysis (the label set changed) ends its segment there.
  std::vector<double> add(uint64_t pts, uint64_t running_time, const std::vector<LabelScore>& scores,
                          std::vector<SegmentEvent>* events, Scoring scoring = Scoring::kSoftmax);
  // The stream ended at `pts`: every reported segment still open ends there.
  void finish(uint64_t pts, uint64_t running_time, std::vector<SegmentEvent>* events);
  // A flush: forget everything, no events.
  void reset();

  const SegmentOptions& options() const { return options_; }

 private:
  struct LabelState {
    double smoothed = 0;
    bool holding = false;
    bool reported = false;  // its start event went out (held min_duration)
    Segment open;
    double score_sum = 0;
  };
  Thresholds thresholds_for(const std::string& label) const;
  void close(LabelState& s, uint64_t pts, uint64_t running_time, std::vector<SegmentEvent>* events);

  SegmentOptions options_;
  std::map<std::string, LabelState> labels_;
  uint64_t last_pts_ = kNoTime;
};

}  // namespace ruclip
