// Which files make up a model folder, found in one place for Model::load,
// training and the CLI. A path names a folder (a ruclip-vit-* v2 folder:
// config.json, model.safetensors or pytorch_model.bin, bpe.model or
// sentencepiece.model; or a ruCLIP v1 folder: ViT-B32-small.pt or its only
// *.pt, vocab.json + merges.txt, config.json optional) or the weights file in
// one (its folder then holds the rest).
//
//   ruclip::ModelFolder f = ruclip::find_model_folder("ruclip-vit-base-patch32-384");
//   f.weights_file   // ".../pytorch_model.bin"
//
// Threads: the functions only read the file system; call them from any thread.
#pragma once
#include <optional>
#include <string>

#include "ruclip/config.h"

namespace ruclip {

enum class TokenizerKind { kYttm, kSentencePiece, kGpt2 };

struct TokenizerFiles {
  TokenizerKind kind = TokenizerKind::kYttm;
  std::string file;    // bpe.model, sentencepiece.model, or GPT-2's vocab.json
  std::string merges;  // GPT-2's merges.txt ("" otherwise)
};

struct ModelFolder {
  std::string directory;
  // config.json as stated (absent: a v1 folder without one; its geometry then
  // comes from the checkpoint's tensor shapes).
  std::optional<ModelConfig> stated;
  std::string weights_file;
  bool weights_named = false;  // the path was the weights file itself
  // The family the files say, before the weights are read: the stated one, v1 without config.json.
  ModelFamily family = ModelFamily::kV2;
  TokenizerFiles tokenizer;  // for that family and the stated config
};

// Throws ruclip::Error naming the path and what is missing or ambiguous
// (config.json, weights, tokenizer), before any weights are read.
ModelFolder find_model_folder(const std::string& path);

// The tokenizer `config` uses in `directory`: config.tokenizer when set, else
// by the files there (a v1 model reads vocab.json + merges.txt first). Throws
// ruclip::Error when there is none.
TokenizerFiles find_tokenizer_files(const std::string& directory, const ModelConfig& config);

}  // namespace ruclip
