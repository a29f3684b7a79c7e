#include "ruclip/segments.h"

#include <cmath>
#include <cstdlib>
#include <set>

#include "ruclip/error.h"
#include "ruclip/labels.h"

namespace ruclip {

std::map<std::string, Thresholds> parse_label_thresholds(std::string_view text, const Thresholds& defaults) {
  std::map<std::string, Thresholds> out;
  auto number = [](const std::string& item, const std::string& s) {
    char* end = nullptr;
    const double v = std::strtod(s.c_str(), &end);
    if (s.empty() || *end != '\0' || !(v >= 0 && v <= 1))
      throw Error("label-thresholds '" + item + "': '" + s + "' is not a score between 0 and 1");
    return v;
  };
  for (const std::string& item : split_list(text)) {
    // label:start[:end]; the label may itself hold ':' (the numbers are the last fields).
    std::vector<std::string> fields;
    size_t from = 0;
    for (size_t colon; (colon = item.find(':', from)) != std::string::npos; from = colon + 1)
      fields.push_back(item.substr(from, colon - from));
    fields.push_back(item.substr(from));
    if (fields.size() < 2) throw Error("label-thresholds '" + item + "': expected label:start or label:start:end");
    auto is_number = [](const std::string& f) {
      char* end = nullptr;
      const std::string t = trim(f);
      std::strtod(t.c_str(), &end);
      return !t.empty() && *end == '\0';
    };
    const bool has_end = fields.size() >= 3 && is_number(fields[fields.size() - 2]);
    Thresholds t;
    std::string label;
    if (has_end) {
      t.start = number(item, trim(fields[fields.size() - 2]));
      t.end = number(item, trim(fields.back()));
      fields.resize(fields.size() - 2);
    } else {
      t.start = number(item, trim(fields.back()));
      t.end = std::max(0.0, t.start - (defaults.start - defaults.end));
      fields.pop_back();
    }
    for (size_t i = 0; i < fields.size(); ++i) label += (i ? ":" : "") + fields[i];
    label = trim(label);
    if (label.empty()) throw Error("label-thresholds '" + item + "': no label");
    if (t.end > t.start) throw Error("label-thresholds '" + item + "': the end score is above the start score");
    out[label] = t;
  }
  return out;
}

SegmentTracker::SegmentTracker(SegmentOptions options) : options_(std::move(options)) {
  auto check = [](const Thresholds& t, const std::string& what) {
    if (!(t.start >= 0 && t.start <= 1 && t.end >= 0 && t.end <= 1) || t.end > t.start)
      throw Error(what + ": start and end scores must be within [0, 1], end <= start");
  };
  check(options_.thresholds, "segment thresholds");
  for (const auto& [label, t] : options_.per_label) check(t, "label-thresholds '" + label + "'");
}

Thresholds SegmentTracker::thresholds_for(const std::string& label) const {
  auto it = options_.per_label.find(label);
  return it == options_.per_label.end() ? options_.thresholds : it->second;
}

void SegmentTracker::close(LabelState& s, uint64_t pts, uint64_t running_time, std::vector<SegmentEvent>* events) {
  if (s.holding && s.reported) {
    Segment seg = s.open;
    seg.end = pts;
    seg.end_running_time = running_time;
    seg.mean_score = seg.frames ? s.score_sum / seg.frames : 0;
    events->push_back({SegmentEvent::Kind::kEnd, seg});
  }
  s.holding = false;
  s.reported = false;
}

std::vector<double> SegmentTracker::add(uint64_t pts, uint64_t running_time, const std::vector<LabelScore>& scores,
                                        std::vector<SegmentEvent>* events, Scoring scoring) {
  // Exponential smoothing over PTS: alpha = 1 - exp(-dt / tau).
  double alpha = 1.0;
  if (options_.smoothing > 0 && last_pts_ != kNoTime && pts != kNoTime && pts > last_pts_)
    alpha = 1.0 - std::exp(-static_cast<double>(pts - last_pts_) / static_cast<double>(options_.smoothing));
  else if (options_.smoothing > 0 && last_pts_ != kNoTime)
    alpha = 0.0;  // no time passed (or none known): keep the running value
  std::vector<double> smoothed;
  smoothed.reserve(scores.size());
  std::set<std::string> seen;
  for (const LabelScore& score : scores) {
    seen.insert(score.label);
    auto [it, fresh] = labels_.try_emplace(score.label);
    LabelState& s = it->second;
    const double value = score.score(scoring);
    s.smoothed = fresh ? value : s.smoothed + alpha * (value - s.smoothed);
    smoothed.push_back(s.smoothed);
    const Thresholds t = thresholds_for(score.label);
    if (!s.holding && s.smoothed >= t.start) {
      s.holding = true;
      s.reported = false;
      s.open = Segment{score.label, pts, kNoTime, running_time, kNoTime, 0, 0, 0};
      s.score_sum = 0;
    } else if (s.holding && s.smoothed < t.end) {
      close(s, pts, running_time, events);
    }
    if (s.holding) {
      s.open.frames++;
      s.score_sum += value;
      s.open.peak_score = std::max(s.open.peak_score, value);
      const bool long_enough = options_.min_duration == 0 ||
                               (pts != kNoTime && s.open.start != kNoTime && pts - s.open.start >= options_.min_duration);
      if (!s.reported && long_enough) {
        s.reported = true;
        Segment seg = s.open;
        seg.mean_score = s.score_sum / seg.frames;
        events->push_back({SegmentEvent::Kind::kStart, seg});
      }
    }
  }
  // Labels no longer scored (the label set changed) end here.
  for (auto it = labels_.begin(); it != labels_.end();) {
    if (seen.count(it->first)) {
      ++it;
      continue;
    }
    close(it->second, pts, running_time, events);
    it = labels_.erase(it);
  }
  if (pts != kNoTime) last_pts_ = pts;
  return smoothed;
}

void SegmentTracker::finish(uint64_t pts, uint64_t running_time, std::vector<SegmentEvent>* events) {
  for (auto& [label, s] : labels_) {
    // A segment that never held min_duration is dropped even at the end, unless the stream itself was that long.
    if (s.holding && !s.reported && options_.min_duration > 0 && pts != kNoTime && s.open.start != kNoTime &&
        pts - s.open.start >= options_.min_duration) {
      s.reported = true;
      Segment seg = s.open;
      seg.mean_score = seg.frames ? s.score_sum / seg.frames : 0;
      events->push_back({SegmentEvent::Kind::kStart, seg});
    }
    close(s, pts, running_time, events);
  }
  labels_.clear();
  last_pts_ = kNoTime;
}

void SegmentTracker::reset() {
  labels_.clear();
  last_pts_ = kNoTime;
}

}  // namespace ruclip
