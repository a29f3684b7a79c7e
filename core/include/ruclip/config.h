// config.json of a ruCLIP model folder, as the published checkpoints ship it.
#pragma once
#include <array>
#include <cstdint>
#include <map>
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

// The fields as v2's config.json names them; for v1 (in brackets: upstream's
// names) the text tower is GPT-2 and both towers end in a Projection head.
struct ModelConfig {
  ModelFamily family = ModelFamily::kV2;
  int embed_dim = 0;  // the latents' width (v1: projection_dim, the Projection heads' output)
  int image_resolution = 0;
  int vision_layers = 0;
  int vision_width = 0;
  int vision_patch_size = 0;
  int vision_heads = 0;  // v2: not in config.json, upstream derives it as vision_width / 64
  int context_length = 0;  // token ids per text (v1: seq_length)
  int vocab_size = 0;
  int transformer_width = 0;   // (v1: GPT-2 n_embd)
  int transformer_heads = 0;   // (v1: n_head)
  int transformer_layers = 0;  // (v1: n_layer)
  // v1 only (0 for v2, where they follow from the fields above):
  int vision_output_dim = 0;   // VisualTransformer's output_dim (its proj's columns): the image Projection's input
  int text_positions = 0;      // GPT-2 n_positions: rows of wpe, at least context_length
  int transformer_inner = 0;   // GPT-2 n_inner: the MLP's width
  std::string weights_file;    // the checkpoint's file name in the folder (config.json "checkpoint"; "": found)
  std::array<float, 3> mean{0.48145466f, 0.4578275f, 0.40821073f};
  std::array<float, 3> std{0.26862954f, 0.26130258f, 0.27577711f};
  // Special token ids of the processor (upstream RuCLIPProcessor's constants;
  // v1: <pad> 0, <s> 1, </s> 2 of ruGPT3-small's vocabulary, unk unused).
  int pad_id = 0, unk_id = 1, bos_id = 2, eos_id = 3;
  // "yttm", "sentencepiece", "gpt2" or "" (decided by the files in the folder).
  std::string tokenizer;
  // Prompt templates this model was trained with ("{}" = the label); empty:
  // upstream's six defaults. Not in the published configs; ours set it.
  std::vector<std::string> templates;
  // Descriptions a label must beat to count as present (presence.h), in this
  // model's words; empty: default_background(). Ours set it.
  std::vector<std::string> background;
};

// Parses config.json text; `origin` names the file in error messages.
//  - v2: the published ruclip-vit-* format (flat; every geometry field required).
//  - v1: {"architecture": "ruclip-v1", "vision": {...}, "text": {...},
//    "projection_dim", "seq_length", ...} (tests/data/ruclip-v1-tiny/config.json).
//    A published v1 folder has no config.json: every field is optional and
//    what is absent is left 0 for v1_config_from_shapes to derive; what is
//    given overrides the shapes (the vision heads, say). Statements about
//    the arithmetic (activations, LayerNorm eps, mask values) are checked
//    against what this implementation computes.
ModelConfig parse_config(const std::string& json_text, const std::string& origin);
// Reads DIR/config.json.
ModelConfig load_config(const std::string& model_dir);
// config.json text for `c`: the published fields, plus the tokenizer and
// special ids where they differ from upstream's defaults (v1: its own format).
std::string config_to_json(const ModelConfig& c);

// Upstream v1's sequence length when nothing says otherwise:
// deprecated/clip/evaluate/utils.py load_weights_only(seq_length=128).
constexpr int kV1DefaultSeqLength = 128;

// ruCLIP v1's geometry from its state dict (tensor name -> shape), as
// OpenAI's build_model and transformers' GPT2Config give it: widths, patch
// size, vocabulary and the Projection width from the tensors' shapes, layers
// by counting blocks, the resolution from the positional embedding, heads =
// width / 64 on both towers, context_length = kV1DefaultSeqLength (at most
// n_positions). `stated` (a v1 parse_config, or nullptr) overrides every
// field it gives. Throws ruclip::Error naming `origin` when a tensor the
// geometry is read from is missing or of the wrong rank, or the result is
// inconsistent (heads not dividing the width, ...).
ModelConfig v1_config_from_shapes(const std::map<std::string, std::vector<int64_t>>& shapes,
                                  const ModelConfig* stated, const std::string& origin);

// The geometries of the published models with random weights, for
// benchmarks, by short name: ai-forever/ruclip-vit-* (vit-b32-224,
// vit-b32-384, vit-b16-224, vit-b16-384, vit-l14-224, vit-l14-336: what
// published_geometry_names lists) and "v1", the article's ruCLIP
// (ViT-B/32 + ruGPT3-small, ai-forever/ru-clip ViT-B32-small.pt). Throws on
// an unknown name.
ModelConfig published_geometry(const std::string& name);
std::vector<std::string> published_geometry_names();

}  // namespace ruclip
