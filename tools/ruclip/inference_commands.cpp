// tokenize, embed, classify: the model as upstream ruCLIP's processor,
// encoders and Predictor expose it.
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <iostream>
#include <numeric>

#include "cli.h"
#include "similarity_picture.h"
#include "ruclip/config.h"
#include "ruclip/error.h"
#include "ruclip/labels.h"
#include "ruclip/presence.h"
#include "ruclip/tools/image_files.h"
#include "ruclip/tokenizer.h"
#include "ruclip/zero_shot.h"

namespace ruclip_cli {

ruclip::Embeddings image_embeddings(ruclip::Model& model, const std::vector<std::string>& paths) {
  ruclip::Embeddings all;
  for (size_t first = 0; first < paths.size(); first += 16) {
    std::vector<ruclip::Image> images;
    for (size_t i = first; i < std::min(paths.size(), first + 16); ++i) images.push_back(ruclip::load_image(paths[i]));
    std::vector<ruclip::FrameView> views;
    for (const auto& image : images) views.push_back(image.view());
    ruclip::Embeddings e = model.encode_frames(views);
    all.dim = e.dim;
    all.rows += e.rows;
    all.data.insert(all.data.end(), e.data.begin(), e.data.end());
  }
  all.normalize_rows();
  return all;
}

namespace {

int tokenize(const Args& args) {
  const std::string dir = args.required("model");
  // config.json and the tokenizer are enough, except for a ruCLIP v1 folder
  // whose config.json (optional there) doesn't give the sequence length and
  // vocabulary: those are in the checkpoint, so the model is loaded for them.
  std::unique_ptr<ruclip::Model> model;
  ruclip::ModelConfig config;
  std::unique_ptr<ruclip::Tokenizer> tokenizer;
  if (std::filesystem::is_regular_file(dir + "/config.json")) config = ruclip::load_config(dir);
  if (!config.context_length || !config.vocab_size)
    model = ruclip::Model::load(dir);
  else
    tokenizer = ruclip::load_tokenizer(dir, config);
  std::vector<std::string> texts = args.positional;
  if (texts.empty())
    for (std::string line; std::getline(std::cin, line);) texts.push_back(line);
  json ids = json::array();
  for (const auto& text : texts)
    ids.push_back(model ? model->tokenize(text) : ruclip::prepare_text(*tokenizer, config, text));
  std::cout << json{{"input_ids", ids}}.dump() << "\n";
  return 0;
}

int embed(const Args& args) {
  if (!args.positional.empty()) throw UsageError("unexpected argument '" + args.positional[0] + "'");
  auto model = load_model(args);
  json out = json::object();
  if (!args.all("text").empty()) out["text"] = rows(model->encode_text(args.all("text")));
  if (!args.all("image").empty()) {
    std::vector<ruclip::Image> images;
    for (const auto& path : args.all("image")) images.push_back(ruclip::load_image(path));
    std::vector<ruclip::FrameView> views;
    for (const auto& image : images) views.push_back(image.view());
    out["image"] = rows(model->encode_frames(views));
  }
  std::cout << out.dump() << "\n";
  return 0;
}

}  // namespace

std::vector<std::string> background_file(const Args& args) {
  const std::string path = args.one("background-file");
  if (path.empty()) return {};
  std::vector<std::string> entries = ruclip::read_labels_file(path);
  if (entries.empty()) throw UsageError("option --background-file '" + path + "': no entries");
  return entries;
}

namespace {

int classify(const Args& args) {
  if (args.positional.empty()) throw UsageError("classify needs at least one IMAGE");
  if (args.all("label").empty()) throw UsageError("classify needs at least one --label");
  const int top_k = args.integer("top-k", 0);
  const ruclip::Scoring scoring = resolve_scoring(args.one("scoring", "auto"), args.all("label").size());
  ruclip::PresenceOptions presence_options;
  presence_options.margin = args.signed_number("presence-margin", 0);
  ruclip::PresenceCalibrator presence(presence_options);
  const std::vector<std::string> background = background_file(args);
  auto model = load_model(args);
  const auto set = ruclip::build_label_set(
      *model, args.all("label"), args.all("template"),
      ruclip::build_background(*model, args.all("template"), background, "--background-file"));
  json images = json::array();
  for (const auto& path : args.positional) {
    const ruclip::Image image = ruclip::load_image(path);
    const ruclip::Embeddings e = model->encode_frames({image.view()});
    std::vector<ruclip::LabelScore> scores = ruclip::score_image(*set, e.row(0), e.dim, model->logit_scale());
    presence.apply(&scores, model->logit_scale());
    ruclip::rank_scores(&scores, scoring, top_k);
    json labels = json::array();
    for (const auto& s : scores)
      labels.push_back({{"label", s.label}, {"score", s.score(scoring)}, {"probability", s.probability},
                        {"presence", s.presence}, {"cosine", s.cosine}});
    images.push_back({{"file", path}, {"labels", labels}});
  }
  std::cout << json{{"scoring", ruclip::scoring_name(scoring)}, {"images", images}}.dump() << "\n";
  return 0;
}

float dot(const float* a, const float* b, int n) {
  float d = 0;
  for (int i = 0; i < n; ++i) d += a[i] * b[i];
  return d;
}

// Images ranked by a free query, as the ruCLIP article ranks memes by «смешной мем».
int rank(const Args& args) {
  const std::string query = args.required("query");
  if (args.positional.empty()) throw UsageError("rank needs at least one IMAGE");
  auto model = load_model(args);
  // The query through the templates, like a label (default: the model's own, else upstream's six).
  const auto set = ruclip::build_label_set(*model, {query}, args.all("template"));
  const ruclip::Embeddings images = image_embeddings(*model, args.positional);
  std::vector<float> cos(images.rows);
  for (int i = 0; i < images.rows; ++i) cos[i] = dot(set->text.row(0), images.row(i), images.dim);
  // softmax(logit_scale * cosine) over the images: how sure the model is that each is the best match.
  const float top = *std::max_element(cos.begin(), cos.end());
  std::vector<double> p(cos.size());
  double sum = 0;
  for (size_t i = 0; i < cos.size(); ++i) sum += p[i] = std::exp(model->logit_scale() * (cos[i] - top));
  std::vector<size_t> order(cos.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return cos[a] > cos[b]; });
  json ranked = json::array();
  for (size_t i : order)
    ranked.push_back({{"file", args.positional[i]}, {"cosine", cos[i]}, {"probability", p[i] / sum}});
  std::cout << json{{"query", query}, {"images", ranked}}.dump() << "\n";
  return 0;
}

// The cosine matrix of texts against images (the article's similarity picture, as numbers)
// and, with --png, as the picture (similarity_picture.h).
int similarity(const Args& args) {
  if (!args.positional.empty()) throw UsageError("unexpected argument '" + args.positional[0] + "' (images go after --image)");
  const auto& texts = args.all("text");
  const auto& paths = args.all("image");
  if (texts.empty() || paths.empty()) throw UsageError("similarity needs at least one --text and one --image");
  const std::string png = args.one("png");
#ifndef RUCLIP_HAVE_PANGO
  if (!png.empty())
    throw ruclip::Error("option --png: this ruclip was built without Pango/Cairo (install libpango1.0-dev and "
                        "libcairo2-dev, then rebuild)");
#endif
  auto model = load_model(args);
  ruclip::Embeddings t = model->encode_text(texts);  // the texts as written, as upstream's notebook does
  t.normalize_rows();
  const ruclip::Embeddings images = image_embeddings(*model, paths);
  std::vector<std::vector<float>> matrix(t.rows, std::vector<float>(images.rows));
  for (int i = 0; i < t.rows; ++i)
    for (int j = 0; j < images.rows; ++j) matrix[i][j] = dot(t.row(i), images.row(j), t.dim);
#ifdef RUCLIP_HAVE_PANGO
  if (!png.empty())
    for (const auto& w : write_similarity_png(png, "Косинусное сходство текстов и изображений", texts, paths, matrix))
      std::cerr << "ruclip: warning: " << w << "\n";
#endif
  std::cout << json{{"texts", texts}, {"images", paths}, {"cosine", matrix}}.dump() << "\n";
  return 0;
}

}  // namespace

const Command kTokenize{"tokenize", "ruclip tokenize --model DIR [TEXT...]   (no TEXT: one text per line of stdin)",
                        {"model"}, tokenize};
const Command kEmbed{"embed", "ruclip embed --model DIR [--text T]... [--image FILE]...",
                     {"model", "text", "image", "device", "threads", "precision"}, embed};
const Command kClassify{"classify",
                        "ruclip classify --model DIR --label L [--label L]... [--template T]... [--top-k K] "
                        "[--scoring auto|softmax|presence] [--presence-margin LOGITS] [--background-file F] IMAGE...",
                        {"model", "label", "template", "top-k", "scoring", "presence-margin", "background-file",
                         "device", "threads", "precision"},
                        classify};

const Command kRank{"rank", "ruclip rank --model DIR --query TEXT [--template T]... IMAGE...",
                    {"model", "query", "template", "device", "threads", "precision"}, rank};
const Command kSimilarity{"similarity", "ruclip similarity --model DIR (--text T)... (--image FILE)... [--png OUT.png]",
                          {"model", "text", "image", "png", "device", "threads", "precision"}, similarity};

}  // namespace ruclip_cli
