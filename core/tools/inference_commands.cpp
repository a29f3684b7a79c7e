// tokenize, embed, classify: the model as upstream ruCLIP's processor,
// encoders and Predictor expose it.
#include <iostream>

#include "cli.h"
#include "ruclip/config.h"
#include "ruclip/error.h"
#include "ruclip/image.h"
#include "ruclip/tokenizer.h"
#include "ruclip/zero_shot.h"

namespace ruclip_cli {
namespace {

int tokenize(const Args& args) {
  const std::string dir = args.required("model");
  const ruclip::ModelConfig config = ruclip::load_config(dir);
  const auto tokenizer = ruclip::load_tokenizer(dir, config);
  std::vector<std::string> texts = args.positional;
  if (texts.empty())
    for (std::string line; std::getline(std::cin, line);) texts.push_back(line);
  json ids = json::array();
  for (const auto& text : texts) ids.push_back(ruclip::prepare_text(*tokenizer, config, text));
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

int classify(const Args& args) {
  if (args.positional.empty()) throw UsageError("classify needs at least one IMAGE");
  if (args.all("label").empty()) throw UsageError("classify needs at least one --label");
  const int top_k = args.integer("top-k", 0);
  auto model = load_model(args);
  const auto set = ruclip::build_label_set(*model, args.all("label"), args.all("template"));
  json images = json::array();
  for (const auto& path : args.positional) {
    const ruclip::Image image = ruclip::load_image(path);
    const ruclip::Embeddings e = model->encode_frames({image.view()});
    json labels = json::array();
    for (const auto& s : ruclip::score_image(*set, e.row(0), e.dim, model->logit_scale(), top_k))
      labels.push_back({{"label", s.label}, {"probability", s.probability}, {"cosine", s.cosine}});
    images.push_back({{"file", path}, {"labels", labels}});
  }
  std::cout << json{{"images", images}}.dump() << "\n";
  return 0;
}

}  // namespace

const Command kTokenize{"tokenize", "ruclip tokenize --model DIR [TEXT...]   (no TEXT: one text per line of stdin)",
                        {"model"}, tokenize};
const Command kEmbed{"embed", "ruclip embed --model DIR [--text T]... [--image FILE]...",
                     {"model", "text", "image", "device", "threads", "precision"}, embed};
const Command kClassify{"classify",
                        "ruclip classify --model DIR --label L [--label L]... [--template T]... [--top-k K] IMAGE...",
                        {"model", "label", "template", "top-k", "device", "threads", "precision"}, classify};

}  // namespace ruclip_cli
