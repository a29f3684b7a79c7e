// ruclip: the command-line face of the core. JSON on stdout, errors on stderr
// with a non-zero exit.
//
//   ruclip tokenize --model DIR [TEXT...]            (no TEXT: one per line of stdin)
//   ruclip embed    --model DIR [--text T]... [--image FILE]...
//   ruclip classify --model DIR --label L... [--template T]... [--top-k K] IMAGE...
#include <cstdlib>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "ruclip/config.h"
#include "ruclip/error.h"
#include "ruclip/image.h"
#include "ruclip/model.h"
#include "ruclip/tokenizer.h"
#include "ruclip/zero_shot.h"

namespace {

using nlohmann::json;

constexpr const char* kUsage =
    "usage:\n"
    "  ruclip tokenize --model DIR [TEXT...]\n"
    "  ruclip embed    --model DIR [--text T]... [--image FILE]...\n"
    "  ruclip classify --model DIR --label L [--label L]... [--template T]... [--top-k K] IMAGE...\n"
    "common options: --device cpu|cuda|cuda:N|auto (default cpu), --threads N (default: all CPUs)\n";

struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// --name VALUE options (repeatable) and positional arguments.
struct Args {
  std::map<std::string, std::vector<std::string>> options;
  std::vector<std::string> positional;

  Args(int argc, char** argv, int first, const std::vector<std::string>& known) {
    for (int i = first; i < argc; ++i) {
      std::string a = argv[i];
      if (a == "--") {
        for (++i; i < argc; ++i) positional.push_back(argv[i]);
        break;
      }
      if (a.rfind("--", 0) != 0) {
        positional.push_back(a);
        continue;
      }
      std::string name = a.substr(2), value;
      if (auto eq = name.find('='); eq != std::string::npos) {
        value = name.substr(eq + 1);
        name = name.substr(0, eq);
      } else {
        if (i + 1 >= argc) throw UsageError("option --" + name + " needs a value");
        value = argv[++i];
      }
      if (std::find(known.begin(), known.end(), name) == known.end())
        throw UsageError("unknown option --" + name);
      options[name].push_back(value);
    }
  }
  const std::vector<std::string>& all(const std::string& name) const {
    static const std::vector<std::string> none;
    auto it = options.find(name);
    return it == options.end() ? none : it->second;
  }
  std::string one(const std::string& name, const std::string& fallback = "") const {
    const auto& v = all(name);
    if (v.size() > 1) throw UsageError("option --" + name + " given more than once");
    return v.empty() ? fallback : v[0];
  }
  std::string required(const std::string& name) const {
    std::string v = one(name);
    if (v.empty()) throw UsageError("option --" + name + " is required");
    return v;
  }
  int integer(const std::string& name, int fallback) const {
    const std::string v = one(name);
    if (v.empty()) return fallback;
    char* end = nullptr;
    long n = std::strtol(v.c_str(), &end, 10);
    if (*end != '\0' || n < 0 || n > 1 << 20) throw UsageError("option --" + name + ": not a valid number: " + v);
    return static_cast<int>(n);
  }
};

json rows(const ruclip::Embeddings& e) {
  json out = json::array();
  for (int i = 0; i < e.rows; ++i) out.push_back(std::vector<float>(e.row(i), e.row(i) + e.dim));
  return out;
}

std::unique_ptr<ruclip::Model> load_model(const Args& args) {
  ruclip::ModelOptions options;
  options.device = args.one("device", "cpu");
  options.num_threads = args.integer("threads", 0);
  return ruclip::Model::load(args.required("model"), options);
}

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

int main(int argc, char** argv) {
  if (argc < 2 || std::string(argv[1]) == "--help" || std::string(argv[1]) == "-h") {
    std::cerr << kUsage;
    return argc < 2 ? 2 : 0;
  }
  const std::string command = argv[1];
  try {
    if (command == "tokenize") return tokenize(Args(argc, argv, 2, {"model"}));
    if (command == "embed") return embed(Args(argc, argv, 2, {"model", "text", "image", "device", "threads"}));
    if (command == "classify")
      return classify(Args(argc, argv, 2, {"model", "label", "template", "top-k", "device", "threads"}));
    std::cerr << "ruclip: unknown command '" << command << "'\n" << kUsage;
    return 2;
  } catch (const UsageError& e) {
    std::cerr << "ruclip " << command << ": " << e.what() << "\n" << kUsage;
    return 2;
  } catch (const ruclip::Error& e) {
    std::cerr << "ruclip " << command << ": " << e.what() << "\n";
    return 1;
  } catch (const std::exception& e) {
    // LibTorch (c10::Error) or the standard library: still a message, never an abort.
    std::cerr << "ruclip " << command << ": internal error: " << e.what() << "\n";
    return 1;
  }
}
