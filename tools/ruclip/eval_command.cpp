// eval: zero-shot accuracy of a model on a labelled image set, as CLIP papers
// report it. JSON on stdout; the readable report on stderr (unless --json-only).
//
// --data FOLDER: one subfolder per class, named after its label, of images
//   (.png .jpg .jpeg .bmp .webp); labels are the sorted folder names.
// --data X.csv: header row with columns file (or image) and label (or caption);
//   X.jsonl: one object per line with the same keys. Relative paths are taken
//   from the table's folder; labels in order of first appearance.
// --label-map M.csv: lines `folder,label` (optional header `folder,label`) that
//   rename the data's labels for the prompts, e.g. CIFAR-10's `airplane,самолёт`;
//   labels it does not name are kept, with a warning.
// --label L (repeated): the labels to score against, in this order; every label
//   of the data must be among them (more are allowed).
// --template T (repeated): default, upstream Predictor's six.
// JSON: model, device, data, images, labels, templates, k (= min(5, labels)),
//   top1, top5 (top-k accuracy), top1_correct, top5_correct, mean_per_class_top1,
//   per_class [{label, count, top1, top5}] (null for labels without images),
//   confusion {labels, matrix [true][predicted]}, predictions [{file, label,
//   predicted, probability, top}], batch, seconds (images: load, preprocess,
//   encode, score), images_per_second, label_seconds, load_seconds.
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <fstream>
#include <iostream>

#include "cli.h"
#include "ruclip/error.h"
#include "ruclip/labels.h"
#include "ruclip/presence.h"
#include "ruclip/tools/evaluation.h"

namespace ruclip_cli {
namespace {

json to_json(const ruclip::EvalResult& r, const std::string& model_arg, const std::string& data_arg) {
  const size_t n = r.labels.size();
  json per_class = json::array();
  for (size_t c = 0; c < n; ++c) {
    const size_t count = r.class_count[c];
    per_class.push_back({{"label", r.labels[c]},
                         {"count", count},
                         {"top1", count ? json(double(r.class_top1[c]) / double(count)) : json(nullptr)},
                         {"top5", count ? json(double(r.class_topk[c]) / double(count)) : json(nullptr)}});
  }
  json predictions = json::array();
  for (size_t i = 0; i < r.images(); ++i) {
    json top = json::array();
    for (int j : r.ranked[i]) top.push_back(r.labels[j]);
    predictions.push_back({{"file", r.files[i]},
                           {"label", r.labels[r.truth[i]]},
                           {"predicted", r.labels[r.ranked[i][0]]},
                           {"probability", r.top_probability[i]},
                           {"top", top}});
  }
  return {{"model", model_arg},
          {"device", r.device},
          {"data", data_arg},
          {"images", r.images()},
          {"labels", r.labels},
          {"templates", r.templates},
          {"k", r.k},
          {"top1", r.top1()},
          {"top5", r.topk()},
          {"top1_correct", r.top1_correct},
          {"top5_correct", r.topk_correct},
          {"mean_per_class_top1", r.mean_per_class_top1()},
          {"per_class", per_class},
          {"confusion", {{"labels", r.labels}, {"matrix", r.confusion}}},
          {"predictions", predictions},
          {"batch", r.batch},
          {"seconds", r.image_seconds},
          {"images_per_second", r.images_per_second()},
          {"label_seconds", r.label_seconds},
          {"load_seconds", r.load_seconds}};
}

int eval(const Args& args) {
  const bool quiet = args.flag("json-only");
  if (!args.positional.empty()) throw UsageError("unexpected argument '" + args.positional[0] + "'");
  const std::string model_dir = args.required("model");
  const std::string data_path = args.required("data");
  ruclip::EvalOptions options;
  options.batch = args.integer("batch", 32);
  if (options.batch < 1) throw UsageError("option --batch: must be at least 1");
  options.labels = args.all("label");
  options.templates = args.all("template");
  options.presence = args.flag("presence");
  if (args.flag("builtin-background") && !args.one("background-file").empty())
    throw UsageError("give --background-file or --builtin-background, not both");
  if (args.flag("builtin-background")) options.background = ruclip::default_background();
  if (!args.one("background-file").empty()) options.background = background_file(args);
  const double presence_threshold = args.number("presence-threshold", 0.5);
  const double cosine_threshold = args.signed_number("cosine-threshold", -2);
  if (!args.one("cosine-threshold").empty() && std::abs(cosine_threshold) > 1)
    throw UsageError("option --cosine-threshold: a cosine between -1 and 1");
  const std::string scores_path = args.one("scores");
  if (!options.presence && (!args.one("presence-threshold").empty() || !args.one("cosine-threshold").empty() ||
                            !scores_path.empty() || !options.background.empty()))
    throw UsageError("--presence-threshold, --cosine-threshold, --scores and the background options need --presence");
  args.integer("threads", 0);  // usage errors before anything is read
  args.one("device");

  // The data first: its mistakes show before a large model has been loaded.
  ruclip::LabelMap label_map;
  if (const std::string map_path = args.one("label-map"); !map_path.empty())
    label_map = ruclip::load_label_map(map_path);
  const ruclip::LabeledDataset data = ruclip::load_labeled_dataset(data_path, label_map);
  for (const auto& l : data.unmapped)
    std::cerr << "ruclip eval: warning: the label map has no entry for '" << l << "'; using it as it is\n";
  ruclip::evaluation_labels(data, options.labels);

  const auto load_start = std::chrono::steady_clock::now();
  auto model = load_model(args);
  const double load_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - load_start).count();

  const bool show_progress = !quiet && isatty(STDERR_FILENO);
  if (show_progress)
    options.progress = [](size_t done, size_t total) {
      std::cerr << "\r  " << done << "/" << total << " images" << (done == total ? "\r\033[K" : "") << std::flush;
    };
  ruclip::EvalResult result = ruclip::evaluate(*model, data, options);
  result.load_seconds = load_seconds;

  if (!quiet) std::cerr << ruclip::format_eval_report(result);
  json out = to_json(result, model_dir, data_path);
  if (options.presence) {
    auto metrics = [&](const std::vector<std::vector<float>>& scores, double threshold) {
      const ruclip::DetectionMetrics m = ruclip::detection_metrics(scores, result.truth, threshold);
      return json{{"auroc", m.auroc}, {"mean_label_auroc", m.mean_label_auroc}, {"threshold", m.threshold},
                  {"precision", m.precision}, {"recall", m.recall}, {"f1", m.f1}, {"positives", m.positives},
                  {"pairs", m.pairs}};
    };
    // Each label alone as a query: presence at its threshold; the softmax over
    // all labels at 0.5; the raw cosine at the given threshold, else at its
    // best one on this very data (an oracle).
    const double best_cosine = ruclip::best_f1_threshold(result.cosine, result.truth);
    const double cosine_at = cosine_threshold >= -1 ? cosine_threshold : best_cosine;
    out["detection"] = {{"presence", metrics(result.presence, presence_threshold)},
                        {"softmax_all_labels", metrics(result.probability, 0.5)},
                        {"cosine", metrics(result.cosine, cosine_at)},
                        {"cosine_threshold_given", cosine_threshold >= -1},
                        {"cosine_best_threshold", best_cosine}};
    if (!scores_path.empty()) {
      std::ofstream f(scores_path);
      for (size_t i = 0; i < result.images(); ++i)
        f << json{{"file", result.files[i]}, {"label", result.labels[result.truth[i]]},
                  {"presence", result.presence[i]}, {"probability", result.probability[i]},
                  {"cosine", result.cosine[i]}}.dump() << "\n";
      if (!f) throw ruclip::Error("--scores '" + scores_path + "': cannot write");
    }
    if (!quiet) {
      const auto& d = out["detection"];
      std::cerr << "\neach label alone as a query (" << result.images() << " images x " << result.labels.size()
                << " labels):\n";
      for (const char* name : {"presence", "softmax_all_labels", "cosine"})
        std::cerr << "  " << name << ": AUROC " << d[name]["auroc"].get<double>() << ", F1 "
                  << d[name]["f1"].get<double>() << " at " << d[name]["threshold"].get<double>() << "\n";
    }
  }
  std::cout << out.dump(-1, ' ', false, json::error_handler_t::replace) << "\n";
  return 0;
}

}  // namespace

const Command kEval{"eval",
                    "ruclip eval --model DIR --data FOLDER|CSV|JSONL [--label L]... [--template T]... "
                    "[--label-map CSV] [--batch N] [--presence [--presence-threshold P] [--cosine-threshold C] "
                    "[--scores OUT.jsonl] [--background-file F | --builtin-background]]] [--json-only]",
                    {"model", "data", "label", "template", "label-map", "batch", "device", "threads", "precision",
                     "presence-threshold", "cosine-threshold", "scores", "background-file"},
                    eval,
                    {"json-only", "presence", "builtin-background"}};

}  // namespace ruclip_cli
