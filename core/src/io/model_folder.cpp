// A model folder's files (model_folder.h).
#include "ruclip/model_folder.h"

#include <algorithm>
#include <filesystem>
#include <vector>

#include "ruclip/error.h"

namespace ruclip {
namespace {

namespace fs = std::filesystem;

bool is_file(const std::string& path) {
  std::error_code ec;
  return fs::is_regular_file(path, ec);
}

// A v2 folder's weights: model.safetensors, else pytorch_model.bin.
std::string find_v2_weights(const std::string& dir) {
  for (const char* name : {"model.safetensors", "pytorch_model.bin"})
    if (is_file(dir + "/" + name)) return dir + "/" + name;
  throw Error(dir + ": no weights (looked for model.safetensors and pytorch_model.bin)");
}

// A v1 folder's checkpoint: config.json's "checkpoint", else upstream's file
// name, else the folder's only *.pt. "" when there is none.
std::string find_v1_checkpoint(const std::string& dir, const ModelConfig* stated) {
  if (stated && !stated->weights_file.empty()) {
    const std::string path = dir + "/" + stated->weights_file;
    if (!is_file(path))
      throw Error(dir + "/config.json: names the checkpoint \"" + stated->weights_file + "\", which is not in the folder");
    return path;
  }
  // MODELS["ViT-B/32-small"]["cpt_name"] in upstream's deprecated/clip/evaluate/utils.py.
  if (is_file(dir + "/ViT-B32-small.pt")) return dir + "/ViT-B32-small.pt";
  std::vector<std::string> found;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec))
    if (entry.path().extension() == ".pt" && entry.is_regular_file(ec)) found.push_back(entry.path().string());
  if (found.size() > 1) {
    std::sort(found.begin(), found.end());
    std::string names;
    for (const auto& f : found) names += (names.empty() ? "" : ", ") + fs::path(f).filename().string();
    throw Error(dir + ": several checkpoints (" + names +
                "): give the path of the one to load instead of the folder, or name it as \"checkpoint\" in config.json");
  }
  return found.empty() ? "" : found[0];
}

}  // namespace

ModelFolder find_model_folder(const std::string& path) {
  ModelFolder f;
  std::error_code ec;
  f.directory = path;
  if (fs::is_regular_file(path, ec)) {
    f.weights_file = path;
    f.weights_named = true;
    f.directory = fs::path(path).parent_path().string();
    if (f.directory.empty()) f.directory = ".";
  } else if (!fs::is_directory(path, ec)) {
    throw Error(path + ": not a folder (expected a ruCLIP model folder, or the weights file in one)");
  }
  if (fs::exists(f.directory + "/config.json", ec)) f.stated = load_config(f.directory);
  f.family = f.stated ? f.stated->family : ModelFamily::kV1;
  if (f.weights_file.empty() && f.family == ModelFamily::kV2) {
    f.weights_file = find_v2_weights(f.directory);
  } else if (f.weights_file.empty()) {
    f.weights_file = find_v1_checkpoint(f.directory, f.stated ? &*f.stated : nullptr);
    if (f.weights_file.empty()) {
      if (!f.stated)
        throw Error(f.directory + "/config.json: cannot open (is " + f.directory +
                    " a ruCLIP model folder? a ruCLIP v1 folder holds ViT-B32-small.pt, or a single *.pt, instead)");
      throw Error(f.directory + ": no weights (looked for ViT-B32-small.pt and *.pt, the ruCLIP v1 checkpoint)");
    }
  }
  ModelConfig for_tokenizer = f.stated ? *f.stated : ModelConfig{};
  for_tokenizer.family = f.family;
  if (f.family == ModelFamily::kV1 && for_tokenizer.tokenizer.empty()) for_tokenizer.tokenizer = "gpt2";  // as v1's config
  f.tokenizer = find_tokenizer_files(f.directory, for_tokenizer);
  return f;
}

TokenizerFiles find_tokenizer_files(const std::string& dir, const ModelConfig& config) {
  const std::string yttm = dir + "/bpe.model", spm = dir + "/sentencepiece.model";
  const std::string vocab = dir + "/vocab.json", merges = dir + "/merges.txt";
  const bool has_gpt2_files = is_file(vocab) && is_file(merges);
  // A v1 folder is read as GPT-2 first: its tokenizer is ruGPT3-small's.
  if (config.tokenizer == "gpt2" ||
      (config.tokenizer.empty() && has_gpt2_files &&
       (config.family == ModelFamily::kV1 || (!is_file(yttm) && !is_file(spm)))))
    return {TokenizerKind::kGpt2, vocab, merges};
  if (config.tokenizer == "yttm" || (config.tokenizer.empty() && is_file(yttm))) return {TokenizerKind::kYttm, yttm, ""};
  if (config.tokenizer == "sentencepiece" || (config.tokenizer.empty() && is_file(spm)))
    return {TokenizerKind::kSentencePiece, spm, ""};
  if (config.tokenizer.empty())
    throw Error(dir + ": no tokenizer found (looked for bpe.model, sentencepiece.model, and vocab.json with merges.txt)");
  throw Error(dir + ": unknown tokenizer \"" + config.tokenizer +
              "\" in the config (expected \"yttm\", \"sentencepiece\" or \"gpt2\")");
}

}  // namespace ruclip
