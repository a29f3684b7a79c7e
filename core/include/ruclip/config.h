// config.json of a ruCLIP model folder, as the published checkpoints ship it.
#pragma once
#include <array>
#include <string>
#include <vector>

namespace ruclip {

// Which ruCLIP a folder holds.
//  - kV2: the ruclip-vit-* family (config.json + pytorch_model.bin + bpe.model):
//    OpenAI CLIP's two towers, YouTokenToMe BPE.
//  - kV1: the model of the ruCLIP article (ai-forever/ru-clip ViT-B32-small.pt +
//    vocab.json/merges.txt): OpenAI's ViT-B/32 and ruGPT3-small (GPT-2), each
//    followed by a Projection head; GPT-2 byte-level BPE.
enum class ModelFamily { kV2, kV1 };

struct ModelConfig {
  ModelFamily family = ModelFamily::kV2;
  int embed_dim = 0;
  int image_resolution = 0;
  int vision_layers = 0;
  int vision_width = 0;
  int vision_patch_size = 0;
  int vision_heads = 0;  // not in config.json: upstream derives it as vision_width / 64
  int context_length = 0;
  int vocab_size = 0;
  int transformer_width = 0;
  int transformer_heads = 0;
  int transformer_layers = 0;
  std::array<float, 3> mean{0.48145466f, 0.4578275f, 0.40821073f};
  std::array<float, 3> std{0.26862954f, 0.26130258f, 0.27577711f};
  // Special token ids of the processor (upstream RuCLIPProcessor's constants).
  int pad_id = 0, unk_id = 1, bos_id = 2, eos_id = 3;
  // "yttm", "sentencepiece", "gpt2" or "" (decided by the files in the folder).
  std::string tokenizer;
  // Prompt templates this model was trained with ("{}" = the label); empty:
  // upstream's six defaults. Not in the published configs; ours set it.
  std::vector<std::string> templates;
};

// Parses config.json text; `origin` names the file in error messages.
ModelConfig parse_config(const std::string& json_text, const std::string& origin);
// Reads DIR/config.json.
ModelConfig load_config(const std::string& model_dir);
// config.json text for `c`: the published fields, plus the tokenizer and
// special ids where they differ from upstream's defaults.
std::string config_to_json(const ModelConfig& c);

// The geometries of the published ai-forever/ruclip-vit-* models, by short
// name (vit-b32-224, vit-b32-384, vit-b16-224, vit-b16-384, vit-l14-224,
// vit-l14-336), for benchmarks with random weights. Throws on an unknown name.
ModelConfig published_geometry(const std::string& name);
std::vector<std::string> published_geometry_names();

}  // namespace ruclip
