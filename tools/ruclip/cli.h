// Shared pieces of the `ruclip` subcommands: argument parsing and JSON helpers.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <vector>

#include "ruclip/error.h"
#include "ruclip/model.h"
#include "ruclip/zero_shot.h"

namespace ruclip_cli {

using nlohmann::json;

struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// --name VALUE options (repeatable) and positional arguments.
struct Args {
  std::map<std::string, std::vector<std::string>> options;
  std::vector<std::string> positional;

  // `flags` are options without a value (--resume); they read as "1".
  Args(int argc, char** argv, int first, const std::vector<std::string>& known,
       const std::vector<std::string>& flags = {}) {
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
      if (std::find(flags.begin(), flags.end(), name) != flags.end()) {
        options[name].push_back("1");
        continue;
      }
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
  bool flag(const std::string& name) const { return !all(name).empty(); }
  double number(const std::string& name, double fallback) const {
    const std::string v = one(name);
    if (v.empty()) return fallback;
    char* end = nullptr;
    double d = std::strtod(v.c_str(), &end);
    if (*end != '\0' || !(d >= 0)) throw UsageError("option --" + name + ": not a valid number: " + v);
    return d;
  }
  // A number that may be negative.
  double signed_number(const std::string& name, double fallback) const {
    const std::string v = one(name);
    if (v.empty()) return fallback;
    char* end = nullptr;
    double d = std::strtod(v.c_str(), &end);
    if (*end != '\0' || !std::isfinite(d)) throw UsageError("option --" + name + ": not a valid number: " + v);
    return d;
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

inline json rows(const ruclip::Embeddings& e) {
  json out = json::array();
  for (int i = 0; i < e.rows; ++i) out.push_back(std::vector<float>(e.row(i), e.row(i) + e.dim));
  return out;
}

// --device, --threads, --precision.
inline ruclip::ModelOptions model_options(const Args& args) {
  ruclip::ModelOptions options;
  try {
    options.device = ruclip::Device::parse(args.one("device", "auto"));
    options.precision = ruclip::parse_precision(args.one("precision", "fp32"));
  } catch (const ruclip::Error& e) {
    throw UsageError(std::string("option --") + e.what());
  }
  options.num_threads = args.integer("threads", 0);
  return options;
}

// Each kernel choice the model made that the user should know of (bf16 asked
// for on a CPU without it, ...), on stderr.
inline void print_warnings(const ruclip::Model& model) {
  for (const auto& w : model.kernels().warnings) std::cerr << "ruclip: warning: " << w << "\n";
}

inline std::unique_ptr<ruclip::Model> load_model(const Args& args) {
  auto model = ruclip::Model::load(args.required("model"), model_options(args));
  print_warnings(*model);
  return model;
}

// --scoring auto|softmax|presence for a set of `labels` labels: auto is
// presence for one label, softmax for several; softmax over one label is
// refused (it would always say 1.0).
inline ruclip::Scoring resolve_scoring(const std::string& text, size_t labels) {
  if (text == "auto") return ruclip::default_scoring(labels);
  ruclip::Scoring scoring;
  try {
    scoring = ruclip::parse_scoring(text, "option --scoring");
  } catch (const ruclip::Error& e) {
    throw UsageError(std::string(e.what()) + " (or auto)");
  }
  if (scoring == ruclip::Scoring::kSoftmax && labels == 1)
    throw UsageError("--scoring softmax with a single label: a softmax over one label is always 1.0; use --scoring "
                     "presence (the default for one label) to ask whether it is there, or give more labels");
  return scoring;
}

// --background-file's entries (empty when not given); a file without any is an error.
std::vector<std::string> background_file(const Args& args);

// The normalized image embeddings of image files, one model call per 16
// images (inference_commands.cpp).
ruclip::Embeddings image_embeddings(ruclip::Model& model, const std::vector<std::string>& paths);

// One subcommand: its name, options it knows, and what it does.
struct Command {
  const char* name;
  const char* usage;
  std::vector<std::string> options;
  int (*run)(const Args& args);
  std::vector<std::string> flags = {};
};

// Each command file defines one of these.
extern const Command kTokenize, kEmbed, kClassify, kRank, kSimilarity, kTrain, kEval, kSynth, kBench;
#ifdef RUCLIP_HAVE_GST
extern const Command kTag, kIndex, kSearch, kPrune, kServe, kBenchSearch, kBenchIndex;  // tag_command.cpp, index_command.cpp: built where GStreamer is
#endif

}  // namespace ruclip_cli
