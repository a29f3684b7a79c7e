// Zero-shot evaluation: a labelled image set in, accuracy and confusion out.
#include "ruclip/tools/evaluation.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <future>
#include <set>
#include <sstream>
#include <system_error>
#include <unordered_map>

#include "ruclip/tools/dataset.h"
#include "ruclip/error.h"
#include "ruclip/tools/image_files.h"
#include "ruclip/zero_shot.h"

namespace ruclip {
namespace {
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

std::string lower_ascii(std::string s) {
  for (char& c : s)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return s;
}

bool is_image_name(const fs::path& p) {
  static const std::set<std::string> exts = {".png", ".jpg", ".jpeg", ".bmp", ".webp"};
  return exts.count(lower_ascii(p.extension().string())) > 0;
}

bool hidden(const fs::path& p) {
  const std::string name = p.filename().string();
  return !name.empty() && name[0] == '.';
}

// Sorted entries of a folder, directories or image files.
std::vector<fs::path> list(const fs::path& dir, bool directories) {
  std::error_code ec;
  fs::directory_iterator it(dir, ec), end;
  if (ec) throw Error("cannot list folder '" + dir.string() + "': " + ec.message());
  std::vector<fs::path> out;
  for (; it != end; it.increment(ec)) {
    if (ec) break;
    const fs::path p = it->path();
    if (hidden(p)) continue;
    std::error_code type_ec;
    if (directories ? fs::is_directory(p, type_ec) : (fs::is_regular_file(p, type_ec) && is_image_name(p)))
      out.push_back(p);
  }
  if (ec) throw Error("cannot list folder '" + dir.string() + "': " + ec.message());
  std::sort(out.begin(), out.end(), [](const fs::path& a, const fs::path& b) { return a.native() < b.native(); });
  return out;
}

// Code points, as a terminal shows them: combining diacritics (U+0300..U+036F,
// e.g. a decomposed "ё") take no column.
size_t display_width(const std::string& s) {
  size_t w = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if ((c & 0xC0) == 0x80) continue;
    const bool combining = (c == 0xCC) || (c == 0xCD && i + 1 < s.size() &&
                                           static_cast<unsigned char>(s[i + 1]) < 0xB0);
    if (!combining) ++w;
  }
  return w;
}

// At most `width` columns: longer texts end in "…".
std::string fit(const std::string& s, size_t width) {
  if (display_width(s) <= width) return s;
  if (width == 0) return "";
  std::string out;
  size_t i = 0;
  while (i < s.size()) {
    size_t j = i + 1;
    while (j < s.size() && (static_cast<unsigned char>(s[j]) & 0xC0) == 0x80) ++j;
    const std::string next = out + s.substr(i, j - i);
    if (display_width(next) > width - 1) break;
    out = next;
    i = j;
  }
  return out + "…";
}

std::string pad_right(const std::string& s, size_t width) {
  const size_t w = display_width(s);
  return w >= width ? s : s + std::string(width - w, ' ');
}

std::string pad_left(const std::string& s, size_t width) {
  const size_t w = display_width(s);
  return w >= width ? s : std::string(width - w, ' ') + s;
}

std::string percent(double fraction) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f%%", 100.0 * fraction);
  return buf;
}

std::string fixed(double v, int digits) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

double ratio(size_t a, size_t b) { return b == 0 ? 0.0 : static_cast<double>(a) / static_cast<double>(b); }

}  // namespace

LabelMap load_label_map(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("label map '" + path + "': cannot open");
  LabelMap map;
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    const std::string where = "label map '" + path + "': line " + std::to_string(number);
    if (number == 1 && line.rfind("\xEF\xBB\xBF", 0) == 0) line.erase(0, 3);  // UTF-8 BOM
    if (line.empty() || line == "\r") continue;
    std::vector<std::string> fields;
    try {
      fields = split_csv_line(line);
    } catch (const Error& e) {
      throw Error(where + ": " + e.what());
    }
    if (number == 1 && fields.size() == 2 && lower_ascii(fields[0]) == "folder" && lower_ascii(fields[1]) == "label")
      continue;
    if (fields.size() != 2 || fields[0].empty() || fields[1].empty())
      throw Error(where + ": expected two fields, folder,label");
    if (!map.emplace(fields[0], fields[1]).second) throw Error(where + ": '" + fields[0] + "' is mapped twice");
  }
  if (map.empty()) throw Error("label map '" + path + "': no entries");
  return map;
}

LabeledDataset load_labeled_dataset(const std::string& path, const LabelMap& label_map) {
  LabeledDataset data;
  data.source = path;
  std::error_code ec;
  const fs::file_status st = fs::status(path, ec);
  if (ec || !fs::exists(st))
    throw Error("data '" + path + "': " + (ec && ec != std::errc::no_such_file_or_directory ? ec.message()
                                                                                               : "no such file or folder"));
  std::set<std::string> unmapped;
  auto map_label = [&](const std::string& raw) {
    if (label_map.empty()) return raw;
    auto it = label_map.find(raw);
    if (it != label_map.end()) return it->second;
    unmapped.insert(raw);
    return raw;
  };
  auto add_label = [&](const std::string& label) {
    if (std::find(data.labels.begin(), data.labels.end(), label) == data.labels.end()) data.labels.push_back(label);
  };

  if (fs::is_directory(st)) {
    const std::vector<fs::path> classes = list(path, true);
    if (classes.empty())
      throw Error("data folder '" + path + "' has no class subfolders (expected one folder of images per class)");
    for (const auto& dir : classes) {
      const std::string label = map_label(dir.filename().string());
      add_label(label);
      for (const auto& file : list(dir, false)) data.items.push_back({file.string(), label});
    }
    if (data.items.empty())
      throw Error("data folder '" + path + "' has no images in its class folders (.png .jpg .jpeg .bmp .webp)");
  } else {
    const std::string ext = lower_ascii(fs::path(path).extension().string());
    if (ext != ".csv" && ext != ".jsonl" && ext != ".json")
      throw Error("data '" + path + "': not a folder, .csv or .jsonl file");
    for (auto& row : read_image_texts(path, {"file", "image"}, {"label", "caption"})) {
      if (row.text.empty()) throw Error("data '" + path + "': empty label for '" + row.file + "'");
      std::error_code file_ec;  // every file checked now, not halfway through the evaluation
      if (!fs::is_regular_file(row.file, file_ec))
        throw Error("data '" + path + "': no such image file '" + row.file + "'");
      const std::string label = map_label(row.text);
      add_label(label);
      data.items.push_back({std::move(row.file), label});
    }
  }
  data.unmapped.assign(unmapped.begin(), unmapped.end());
  return data;
}

std::vector<std::string> evaluation_labels(const LabeledDataset& data, const std::vector<std::string>& requested) {
  if (requested.empty()) return data.labels;
  std::set<std::string> given;
  for (const auto& l : requested)
    if (!given.insert(l).second) throw Error("labels: '" + l + "' is given twice");
  std::vector<std::string> missing;
  std::map<std::string, std::pair<size_t, std::string>> seen;  // count, first file
  for (const auto& item : data.items) {
    if (given.count(item.label)) continue;
    auto& s = seen[item.label];
    if (s.first++ == 0) {
      s.second = item.file;
      missing.push_back(item.label);
    }
  }
  if (!missing.empty()) {
    std::string msg = "the data has labels that are not among the given labels:";
    for (const auto& l : missing)
      msg += " '" + l + "' (" + std::to_string(seen[l].first) + " image" + (seen[l].first == 1 ? "" : "s") +
             ", e.g. " + seen[l].second + ")";
    throw Error(msg);
  }
  return requested;
}

double EvalResult::top1() const { return ratio(top1_correct, images()); }
double EvalResult::topk() const { return ratio(topk_correct, images()); }
double EvalResult::mean_per_class_top1() const {
  double sum = 0;
  size_t n = 0;
  for (size_t c = 0; c < class_count.size(); ++c)
    if (class_count[c] > 0) {
      sum += ratio(class_top1[c], class_count[c]);
      ++n;
    }
  return n == 0 ? 0.0 : sum / static_cast<double>(n);
}
double EvalResult::images_per_second() const {
  return image_seconds > 0 ? static_cast<double>(images()) / image_seconds : 0.0;
}

EvalResult evaluate(Model& model, const LabeledDataset& data, const EvalOptions& options) {
  if (options.batch < 1) throw Error("evaluation: the batch size must be at least 1");
  if (data.items.empty()) throw Error("data '" + data.source + "': no images");
  EvalResult r;
  r.model = model.directory();
  r.device = model.device();
  r.data = data.source;
  r.batch = options.batch;
  r.labels = evaluation_labels(data, options.labels);
  const size_t n_labels = r.labels.size();
  r.k = static_cast<int>(std::min<size_t>(5, n_labels));

  std::unordered_map<std::string, int> index;
  for (size_t i = 0; i < n_labels; ++i) index[r.labels[i]] = static_cast<int>(i);
  for (const auto& item : data.items) {
    r.files.push_back(item.file);
    r.truth.push_back(index.at(item.label));
  }

  const Clock::time_point label_start = Clock::now();
  const std::shared_ptr<const Background> background =
      build_background(model, options.templates, options.background, "background-file");
  // A label's presence is the same in this set as asked alone (only its own
  // background entry is left out), so one set gives every single-label query.
  const std::shared_ptr<const LabelSet> set = build_label_set(model, r.labels, options.templates, background);
  r.templates = set->templates;
  r.label_seconds = seconds_since(label_start);

  const Clock::time_point image_start = Clock::now();
  const Normalization norm = model.normalization();
  const float logit_scale = model.logit_scale();
  const size_t per_image = 3 * static_cast<size_t>(norm.resolution) * norm.resolution;
  const size_t total = data.items.size();
  const size_t batch = static_cast<size_t>(options.batch);
  // Decoded and preprocessed off the model's thread: pixels of [begin, begin + batch).
  auto load = [&data, &norm, per_image, total, batch](size_t begin) {
    const size_t end = std::min(total, begin + batch);
    std::vector<float> pixels(per_image * (end - begin));
    for (size_t i = begin; i < end; ++i)
      preprocess(load_image(data.items[i].file).view(), norm, pixels.data() + (i - begin) * per_image);
    return pixels;
  };
  std::future<std::vector<float>> next = std::async(std::launch::async, load, size_t{0});
  for (size_t begin = 0; begin < total; begin += batch) {
    const std::vector<float> pixels = next.get();
    if (begin + batch < total) next = std::async(std::launch::async, load, begin + batch);
    const int rows = static_cast<int>(pixels.size() / per_image);
    const Embeddings e = model.encode_pixels(pixels.data(), rows);
    for (int i = 0; i < e.rows; ++i) {
      // With presence every label's scores are kept, so all are ranked; the best k are the same.
      const std::vector<LabelScore> scores =
          score_image(*set, e.row(i), e.dim, logit_scale, options.presence ? 0 : r.k);
      std::vector<int> ranked;
      for (int j = 0; j < r.k; ++j) ranked.push_back(index.at(scores[j].label));
      r.ranked.push_back(std::move(ranked));
      r.top_probability.push_back(scores.empty() ? 0.0f : scores[0].probability);
      if (!options.presence) continue;
      std::vector<float> presence(n_labels), probability(n_labels), cosine(n_labels);
      for (const auto& s : scores) {
        presence[index.at(s.label)] = s.presence;
        probability[index.at(s.label)] = s.probability;
        cosine[index.at(s.label)] = s.cosine;
      }
      r.presence.push_back(std::move(presence));
      r.probability.push_back(std::move(probability));
      r.cosine.push_back(std::move(cosine));
    }
    if (options.progress) options.progress(begin + static_cast<size_t>(rows), total);
  }
  r.image_seconds = seconds_since(image_start);

  r.class_count.assign(n_labels, 0);
  r.class_top1.assign(n_labels, 0);
  r.class_topk.assign(n_labels, 0);
  r.confusion.assign(n_labels, std::vector<size_t>(n_labels, 0));
  for (size_t i = 0; i < total; ++i) {
    const int t = r.truth[i];
    const std::vector<int>& ranked = r.ranked[i];
    ++r.class_count[t];
    ++r.confusion[t][ranked[0]];
    if (ranked[0] == t) {
      ++r.class_top1[t];
      ++r.top1_correct;
    }
    if (std::find(ranked.begin(), ranked.end(), t) != ranked.end()) {
      ++r.class_topk[t];
      ++r.topk_correct;
    }
  }
  return r;
}

DetectionMetrics detection_metrics(const std::vector<std::vector<float>>& scores, const std::vector<int>& truth,
                                   double threshold) {
  DetectionMetrics m;
  m.threshold = threshold;
  const size_t labels = scores.empty() ? 0 : scores[0].size();
  // AUROC as the Mann-Whitney statistic, over all pairs and per label.
  auto auroc = [](std::vector<std::pair<float, bool>> v) {
    std::sort(v.begin(), v.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    double rank_sum = 0;
    size_t pos = 0;
    for (size_t i = 0; i < v.size();) {
      size_t j = i;
      size_t hits = 0;
      while (j < v.size() && v[j].first == v[i].first) hits += v[j++].second;
      rank_sum += hits * (double(i + 1 + j) / 2);  // ties share their mean rank
      pos += hits;
      i = j;
    }
    const double neg = double(v.size() - pos);
    if (pos == 0 || neg == 0) return -1.0;
    return (rank_sum - double(pos) * (pos + 1) / 2) / (double(pos) * neg);
  };
  std::vector<std::pair<float, bool>> all;
  size_t tp = 0, fp = 0, fn = 0;
  double label_sum = 0;
  int label_count = 0;
  for (size_t j = 0; j < labels; ++j) {
    std::vector<std::pair<float, bool>> one;
    for (size_t i = 0; i < scores.size(); ++i) {
      const bool positive = truth[i] == static_cast<int>(j);
      const float score = scores[i][j];
      one.emplace_back(score, positive);
      all.emplace_back(score, positive);
      const bool detected = score >= threshold;
      tp += positive && detected;
      fp += !positive && detected;
      fn += positive && !detected;
      m.positives += positive;
    }
    const double a = auroc(std::move(one));
    if (a >= 0) label_sum += a, ++label_count;
  }
  m.pairs = all.size();
  m.auroc = std::max(0.0, auroc(std::move(all)));
  m.mean_label_auroc = label_count ? label_sum / label_count : 0;
  m.precision = tp + fp ? double(tp) / double(tp + fp) : 0;
  m.recall = tp + fn ? double(tp) / double(tp + fn) : 0;
  m.f1 = tp ? 2.0 * tp / double(2 * tp + fp + fn) : 0;
  return m;
}

double best_f1_threshold(const std::vector<std::vector<float>>& scores, const std::vector<int>& truth) {
  // Sweep every distinct score from the top: F1 of "score >= threshold".
  std::vector<std::pair<float, bool>> v;
  size_t positives = 0;
  for (size_t i = 0; i < scores.size(); ++i)
    for (size_t j = 0; j < scores[i].size(); ++j) {
      v.emplace_back(scores[i][j], truth[i] == static_cast<int>(j));
      positives += v.back().second;
    }
  std::sort(v.begin(), v.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
  double best_f1 = -1, best = v.empty() ? 0 : v[0].first;
  size_t tp = 0, taken = 0;
  for (size_t i = 0; i < v.size();) {
    size_t j = i;
    while (j < v.size() && v[j].first == v[i].first) tp += v[j++].second;
    taken = j;
    const double f1 = 2.0 * tp / double(taken + positives);
    if (f1 > best_f1) best_f1 = f1, best = v[i].first;
    i = j;
  }
  return best;
}

std::string format_eval_report(const EvalResult& r) {
  std::ostringstream out;
  const size_t n = r.labels.size();
  const std::string k = "top-" + std::to_string(r.k);
  out << "model    " << r.model << " (" << r.device << ")\n";
  out << "data     " << r.data << ": " << r.images() << " images, " << n << " labels, " << r.templates.size()
      << " template" << (r.templates.size() == 1 ? "" : "s") << "\n";
  out << "top-1    " << pad_left(percent(r.top1()), 7) << "  (" << r.top1_correct << "/" << r.images() << ")\n";
  out << pad_right(k, 9) << pad_left(percent(r.topk()), 7) << "  (" << r.topk_correct << "/" << r.images() << ")\n";
  out << "mean per-class top-1 " << percent(r.mean_per_class_top1()) << "\n";
  out << "time     " << r.images() << " images in " << fixed(r.image_seconds, 2) << " s ("
      << fixed(r.images_per_second(), 1) << " images/s, batch " << r.batch << "); labels "
      << fixed(r.label_seconds, 2) << " s";
  if (r.load_seconds > 0) out << "; model load " << fixed(r.load_seconds, 2) << " s";
  out << "\n\n";

  // Per-class table.
  size_t name_w = 5;
  for (const auto& l : r.labels) name_w = std::max(name_w, std::min<size_t>(display_width(l), 24));
  out << "  " << pad_right("label", name_w) << "  images    top-1  " << pad_left(k, 7) << "\n";
  for (size_t c = 0; c < n; ++c) {
    const size_t count = r.class_count[c];
    out << "  " << pad_right(fit(r.labels[c], name_w), name_w) << "  " << pad_left(std::to_string(count), 6) << "  "
        << pad_left(count ? percent(ratio(r.class_top1[c], count)) : "-", 7) << "  "
        << pad_left(count ? percent(ratio(r.class_topk[c], count)) : "-", 7) << "\n";
  }
  out << "\n";

  if (n <= 20) {
    // The full matrix: one row per true label, one column per predicted label.
    size_t row_w = 4;
    for (const auto& l : r.labels) row_w = std::max(row_w, std::min<size_t>(display_width(l), 16));
    std::vector<size_t> col_w(n);
    for (size_t c = 0; c < n; ++c) {
      size_t digits = 1;
      for (size_t t = 0; t < n; ++t) digits = std::max(digits, std::to_string(r.confusion[t][c]).size());
      col_w[c] = std::max(digits, std::min<size_t>(display_width(r.labels[c]), std::max<size_t>(digits, 8)));
    }
    out << "confusion (rows: true label, columns: predicted label)\n";
    out << "  " << pad_right("", row_w);
    for (size_t c = 0; c < n; ++c) out << "  " << pad_left(fit(r.labels[c], col_w[c]), col_w[c]);
    out << "\n";
    for (size_t t = 0; t < n; ++t) {
      out << "  " << pad_right(fit(r.labels[t], row_w), row_w);
      for (size_t c = 0; c < n; ++c) out << "  " << pad_left(std::to_string(r.confusion[t][c]), col_w[c]);
      out << "\n";
    }
  } else {
    struct Pair {
      size_t count, truth, predicted;
    };
    std::vector<Pair> pairs;
    for (size_t t = 0; t < n; ++t)
      for (size_t c = 0; c < n; ++c)
        if (t != c && r.confusion[t][c] > 0) pairs.push_back({r.confusion[t][c], t, c});
    std::stable_sort(pairs.begin(), pairs.end(), [](const Pair& a, const Pair& b) { return a.count > b.count; });
    const size_t shown = std::min<size_t>(20, pairs.size());
    out << "most confused pairs (" << shown << " of " << pairs.size()
        << " true -> predicted pairs with errors; the full matrix is in the JSON)\n";
    if (pairs.empty()) out << "  (none)\n";
    const size_t w = std::min<size_t>(name_w, 24);
    if (shown > 0)
      out << "  images  of class  " << pad_right("true label", w) << "      predicted label\n";
    for (size_t i = 0; i < shown; ++i) {
      const Pair& p = pairs[i];
      out << "  " << pad_left(std::to_string(p.count), 6) << "  " << pad_left(percent(ratio(p.count, r.class_count[p.truth])), 8)
          << "  " << pad_right(fit(r.labels[p.truth], w), w) << "  ->  " << fit(r.labels[p.predicted], 24) << "\n";
    }
  }
  return out.str();
}

}  // namespace ruclip
