// Text side of the processor: tokenizers and the exact text preparation of
// upstream RuCLIPProcessor.encode_text.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "ruclip/config.h"

namespace ruclip {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  // Ids of a UTF-8 text, no bos/eos, no lower-casing (like yttm's encode with
  // dropout 0). Throws ruclip::Error on invalid UTF-8.
  virtual std::vector<int> encode(std::string_view utf8) const = 0;
  virtual int vocab_size() const = 0;
};

// YouTokenToMe BPE model (bpe.model, text format).
std::unique_ptr<Tokenizer> load_yttm_tokenizer(const std::string& path);
// Same, from the file's contents; `origin` names it in error messages.
std::unique_ptr<Tokenizer> parse_yttm_tokenizer(std::string_view text, const std::string& origin);
// SentencePiece model (libsentencepiece).
std::unique_ptr<Tokenizer> load_sentencepiece_tokenizer(const std::string& path);

// The tokenizer a model folder ships: config.tokenizer when set, otherwise
// bpe.model (YouTokenToMe) or sentencepiece.model, whichever is there.
std::unique_ptr<Tokenizer> load_tokenizer(const std::string& model_dir, const ModelConfig& config);

// Code points of a UTF-8 text (strict: no overlong forms, surrogates or
// values above U+10FFFF). Throws ruclip::Error naming the byte offset and
// the problem. Shared by the tokenizers and to_lower.
std::u32string decode_utf8(std::string_view utf8);

// Unicode lower-casing as Python's str.lower(). Throws on invalid UTF-8.
std::string to_lower(std::string_view utf8);

// RuCLIPProcessor.encode_text: lower-case, tokenize, keep context_length - 2
// ids, bos + ids + eos, zero padding to context_length.
std::vector<int64_t> prepare_text(const Tokenizer& tokenizer, const ModelConfig& config,
                                  std::string_view text);

}  // namespace ruclip
