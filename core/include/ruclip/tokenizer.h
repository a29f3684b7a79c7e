// Text side of the processor: tokenizers and the exact text preparation of
// upstream RuCLIPProcessor.encode_text (v2) and get_text_batch (v1).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "ruclip/config.h"
#include "ruclip/model_folder.h"

namespace ruclip {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  // Ids of a UTF-8 text, no bos/eos, no lower-casing (like yttm's encode with
  // dropout 0, or GPT2Tokenizer.encode). Throws ruclip::Error on invalid
  // UTF-8. Safe to call from many threads at once.
  virtual std::vector<int> encode(std::string_view utf8) const = 0;
  virtual int vocab_size() const = 0;
};

// YouTokenToMe BPE model (bpe.model, text format).
std::unique_ptr<Tokenizer> load_yttm_tokenizer(const std::string& path);
// Same, from the file's contents; `origin` names it in error messages.
std::unique_ptr<Tokenizer> parse_yttm_tokenizer(std::string_view text, const std::string& origin);
// SentencePiece model (libsentencepiece).
std::unique_ptr<Tokenizer> load_sentencepiece_tokenizer(const std::string& path);

// GPT-2 byte-level BPE (vocab.json + merges.txt), exactly as transformers
// 3.x GPT2Tokenizer.encode with ruCLIP v1's special tokens (ruGPT3-small's
// tokenizer): <s>, </s>, <pad> (all three must be in vocab.json) written in
// a text are single tokens, the whitespace next to them dropped; so is
// <|endoftext|> (an error when vocab.json lacks it: upstream has no id for
// it). A whitespace-only text has no ids. vocab_size() is the largest id + 1.
// See core/src/text/gpt2_tokenizer.cpp.
std::unique_ptr<Tokenizer> load_gpt2_tokenizer(const std::string& vocab_json_path,
                                               const std::string& merges_path);
// Same, from the files' contents; error messages name them
// ORIGIN/vocab.json and ORIGIN/merges.txt.
std::unique_ptr<Tokenizer> parse_gpt2_tokenizer(std::string_view vocab_json, std::string_view merges,
                                                const std::string& origin);

// The tokenizer a model folder ships: config.tokenizer ("yttm",
// "sentencepiece", "gpt2") when set, otherwise bpe.model (YouTokenToMe),
// sentencepiece.model or vocab.json + merges.txt (GPT-2), whichever is there
// (GPT-2 first for a v1 config). For v1 the config's bos, eos and pad ids
// must be those of <s>, </s> and <pad> in vocab.json.
std::unique_ptr<Tokenizer> load_tokenizer(const std::string& model_dir, const ModelConfig& config);
// The same from the files found already (model_folder.h).
std::unique_ptr<Tokenizer> load_tokenizer(const TokenizerFiles& files, const ModelConfig& config);

// Code points of a UTF-8 text (strict: no overlong forms, surrogates or
// values above U+10FFFF). Throws ruclip::Error naming the byte offset and
// the problem. Shared by the tokenizers and to_lower.
std::u32string decode_utf8(std::string_view utf8);

// Unicode lower-casing as Python's str.lower(). Throws on invalid UTF-8.
std::string to_lower(std::string_view utf8);

// Upstream v1's prc_text: ' '.join(text.split()), i.e. every run of Python
// whitespace (str.isspace) becomes one space, none at either end. Throws on
// invalid UTF-8.
std::string fold_whitespace(std::string_view utf8);

// The ids a text enters the text tower with (context_length of them).
//  - v2 (RuCLIPProcessor.encode_text): lower-case, tokenize, keep
//    context_length - 2 ids, bos + ids + eos, zero padding to context_length.
//  - v1 (config.family kV1; upstream deprecated/clip get_text_batch):
//    fold_whitespace, GPT-2 BPE (no lower-casing), the first context_length
//    ids padded with pad_id, bos prepended and the row cut back to
//    context_length, then eos over the first pad id (or over the last
//    position when there is none): at most context_length - 2 BPE ids are
//    kept. Throws for an empty or whitespace-only text (upstream fails on it
//    in a batch) and for a text holding the eos token "</s>" itself
//    (upstream's TextEncoder would read two rows for it).
std::vector<int64_t> prepare_text(const Tokenizer& tokenizer, const ModelConfig& config,
                                  std::string_view text);

// The attention mask of prepare_text's ids: 1 up to and including the first
// eos, 0 after (all 1 without an eos). For v1 this is upstream's mask, except
// after a "<pad>" written in the text itself (upstream puts its eos there and
// keeps 1 for the tokens after it), where the two differ only after the eos,
// which the causal text tower never lets the eos position see.
std::vector<int64_t> attention_mask(const std::vector<int64_t>& ids, const ModelConfig& config);

}  // namespace ruclip
