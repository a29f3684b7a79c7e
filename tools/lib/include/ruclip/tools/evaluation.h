// Zero-shot evaluation on a labelled image set, as CLIP papers report it:
// top-1 / top-k accuracy, per-class accuracy and a confusion matrix.
// Used by `ruclip eval`.
// Library: ruclip_tools (for the `ruclip` command and the tests), not the inference library.
#pragma once
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "ruclip/model.h"

namespace ruclip {

struct LabeledImage {
  std::string file;   // as it is opened: relative paths of a table are joined to its folder
  std::string label;  // after the label map
};

struct LabeledDataset {
  std::string source;                // the path it was read from
  std::vector<LabeledImage> items;   // folder: classes in sorted order, files sorted within each
  std::vector<std::string> labels;   // distinct labels: sorted class folders, or first appearance in a table
  std::vector<std::string> unmapped; // labels a non-empty label map had no entry for (kept as they are)
};

// folder name (or label of a table) -> label used in the prompts.
using LabelMap = std::map<std::string, std::string>;

// A CSV `folder,label` (an optional header row `folder,label` is skipped).
// Throws ruclip::Error naming the file and line.
LabelMap load_label_map(const std::string& path);

// `path` is one of:
//   - a folder: every immediate subfolder (not hidden) is a class named after it,
//     holding images (.png .jpg .jpeg .bmp .webp, any case); other files and deeper
//     folders are ignored;
//   - a .csv with a header row and columns file (or image) and label (or caption);
//   - a .jsonl / .json of one object per line with file/image and label/caption.
// Throws ruclip::Error when the path is missing, holds no images, or a table is malformed.
LabeledDataset load_labeled_dataset(const std::string& path, const LabelMap& label_map = {});

// The labels to score against: `requested` when given (every item's label must be
// among them; no duplicates), else the dataset's. Throws ruclip::Error naming an
// item label missing from `requested`.
std::vector<std::string> evaluation_labels(const LabeledDataset& data, const std::vector<std::string>& requested);

struct EvalOptions {
  std::vector<std::string> labels;     // empty: the dataset's labels
  std::vector<std::string> templates;  // empty: default_templates()
  int batch = 32;                      // images per encode_pixels call
  // Also score every label alone as a query (presence.h) and keep every
  // image x label score: presence, softmax over all labels, cosine.
  bool presence = false;
  std::vector<std::string> background;  // empty: the model's own, else default_background()
  std::function<void(size_t done, size_t total)> progress;  // after each batch (optional)
};

struct EvalResult {
  std::string model, device, data;
  std::vector<std::string> labels, templates;
  int k = 1;  // the "top-5" of the report: min(5, number of labels)
  int batch = 0;

  // Per image, in dataset order.
  std::vector<std::string> files;
  std::vector<int> truth;                // label index
  std::vector<std::vector<int>> ranked;  // the k best label indices, best first
  std::vector<float> top_probability;    // softmax probability of ranked[i][0]
  // options.presence: [image][label], in label order.
  std::vector<std::vector<float>> presence, probability, cosine;

  // Derived from the above.
  size_t top1_correct = 0, topk_correct = 0;
  std::vector<size_t> class_count, class_top1, class_topk;  // per label
  std::vector<std::vector<size_t>> confusion;               // [true][predicted]

  double load_seconds = 0;   // model load (filled in by the caller, if it wants it reported)
  double label_seconds = 0;  // text tower: labels x templates
  double image_seconds = 0;  // image loading, preprocessing, image tower and scoring

  size_t images() const { return truth.size(); }
  double top1() const;
  double topk() const;
  double mean_per_class_top1() const;  // over labels with at least one image
  double images_per_second() const;
};

// Encodes the labels (x templates) once, then the images in batches (loading and
// preprocessing the next batch while the model runs on this one), and scores each
// image as ruclip::score_image does. Throws ruclip::Error naming an unreadable image.
EvalResult evaluate(Model& model, const LabeledDataset& data, const EvalOptions& options = {});

// One score used as a detector ("is label j in image i?") over every image x
// label pair of an evaluation: positives are the images of label j.
struct DetectionMetrics {
  double auroc = 0;       // pooled over all pairs (ties count half)
  double mean_label_auroc = 0;  // over labels with images and non-images
  double threshold = 0;   // the score at or above which a pair counts as detected
  double precision = 0, recall = 0, f1 = 0;
  size_t positives = 0, pairs = 0;
};
// `scores` and `truth` row by row ([image][label]).
DetectionMetrics detection_metrics(const std::vector<std::vector<float>>& scores, const std::vector<int>& truth,
                                   double threshold);
// The threshold with the highest F1 on these pairs (an oracle: tuned on the data it is measured on).
double best_f1_threshold(const std::vector<std::vector<float>>& scores, const std::vector<int>& truth);

// The human-readable report: accuracy, per-class table, and the confusion matrix
// (for more than 20 labels: the 20 most confused pairs instead).
std::string format_eval_report(const EvalResult& result);

}  // namespace ruclip
