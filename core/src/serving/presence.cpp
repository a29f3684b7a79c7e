#include "ruclip/presence.h"

#include <algorithm>
#include <cmath>

#include "ruclip/error.h"

namespace ruclip {

const std::vector<std::string>& default_background() {
  // Descriptions that fit almost any frame without naming what is in it; a
  // label has to describe the picture better than these do.
  static const std::vector<std::string> background = {
      "фото",   "изображение", "картинка", "кадр",  "снимок",       "пустая сцена", "фон",
      "вид",    "сцена",       "место",    "объект", "предмет",     "что-то",       "текстура",
      "обычный вид", "ничего особенного",
  };
  return background;
}

namespace {

double sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }

double median(std::vector<double> v) {
  const size_t mid = v.size() / 2;
  std::nth_element(v.begin(), v.begin() + mid, v.end());
  const double upper = v[mid];
  if (v.size() % 2) return upper;
  return (*std::max_element(v.begin(), v.begin() + mid) + upper) / 2;
}

}  // namespace

PresenceCalibrator::PresenceCalibrator(PresenceOptions options) : options_(options) {
  if (!std::isfinite(options_.margin)) throw Error("presence margin: not a number");
  if (options_.baseline_warmup < 0) throw Error("presence baseline: the warm-up can't be negative");
  if (options_.baseline_window < 1) throw Error("presence baseline: the window must hold at least one analysis");
  if (!(options_.baseline_deviations >= 0) || !(options_.baseline_min_spread >= 0))
    throw Error("presence baseline: deviations and spread can't be negative");
}

double PresenceCalibrator::baseline_bar(const Baseline& b) const {
  if (options_.baseline_warmup == 0 || b.absent.empty()) return options_.margin;
  std::vector<double> values(b.absent.begin(), b.absent.end());
  const double m = median(values);
  for (double& v : values) v = std::abs(v - m);
  const double spread = std::max(1.4826 * median(values), options_.baseline_min_spread);
  return std::max(options_.margin, m + options_.baseline_deviations * spread);
}

double PresenceCalibrator::bar(const std::string& label) const {
  auto it = labels_.find(label);
  return it == labels_.end() ? options_.margin : baseline_bar(it->second);
}

void PresenceCalibrator::apply(std::vector<LabelScore>* scores, float logit_scale) {
  for (LabelScore& s : *scores) {
    const double logit = double(logit_scale) * (double(s.cosine) - double(s.background));
    if (options_.baseline_warmup == 0) {
      s.presence = static_cast<float>(sigmoid(logit - options_.margin));
      continue;
    }
    Baseline& b = labels_[s.label];
    auto learn = [&] {
      b.absent.push_back(logit);
      if (b.absent.size() > static_cast<size_t>(options_.baseline_window)) b.absent.pop_front();
    };
    // During the warm-up every analysis is the scene without the label, learned
    // before it is scored (so nothing holds then); afterwards only those below
    // the bar are learned, so a presence doesn't teach the baseline that it is normal.
    const bool warming = b.seen < options_.baseline_warmup;
    if (warming) {
      learn();
      b.seen++;
      // Nothing holds during the warm-up, however the scene varies.
      const double below = std::max(1.0, options_.baseline_deviations * options_.baseline_min_spread);
      s.presence = static_cast<float>(sigmoid(logit - std::max(baseline_bar(b), logit + below)));
      continue;
    }
    const double bar = baseline_bar(b);
    s.presence = static_cast<float>(sigmoid(logit - bar));
    if (logit < bar) learn();
  }
  rank_scores(scores, Scoring::kPresence);
}

void PresenceCalibrator::reset() { labels_.clear(); }

}  // namespace ruclip
