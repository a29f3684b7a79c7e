// Text helpers shared by the tokenizers: strict UTF-8 decoding, Python-style
// lower-casing and whitespace, the processors' id layouts (v2 and v1), and
// picking a model's tokenizer.
#include <glib.h>

#include <algorithm>
#include <filesystem>
#include <string>
#include <system_error>
#include <tuple>
#include <utility>

#include "ruclip/error.h"
#include "ruclip/tokenizer.h"
#include "text/text_internal.h"

namespace ruclip {

namespace detail {

bool is_python_space(char32_t c) {
  // The list has been the same since Unicode 6.3 (U+180E left Zs then).
  return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

void append_utf8(std::string& out, char32_t c) {
  if (c < 0x80) {
    out += static_cast<char>(c);
  } else if (c < 0x800) {
    out += static_cast<char>(0xC0 | (c >> 6));
    out += static_cast<char>(0x80 | (c & 0x3F));
  } else if (c < 0x10000) {
    out += static_cast<char>(0xE0 | (c >> 12));
    out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (c & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (c >> 18));
    out += static_cast<char>(0x80 | ((c >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (c & 0x3F));
  }
}

}  // namespace detail

namespace {

using detail::append_utf8;

std::string hex_byte(unsigned char byte) {
  static const char digits[] = "0123456789ABCDEF";
  return std::string("0x") + digits[byte >> 4] + digits[byte & 0xF];
}

[[noreturn]] void throw_invalid_utf8(size_t offset, const std::string& problem) {
  throw Error("invalid UTF-8 in text at byte " + std::to_string(offset) + ": " + problem);
}

// Unicode's Case_Ignorable property (DerivedCoreProperties.txt), which
// Python's final-sigma rule uses: the general categories Mn, Me, Cf, Lm, Sk
// plus the Word_Break classes MidLetter, MidNumLet and Single_Quote.
bool is_case_ignorable(char32_t c) {
  switch (g_unichar_type(c)) {
    case G_UNICODE_NON_SPACING_MARK:
    case G_UNICODE_ENCLOSING_MARK:
    case G_UNICODE_FORMAT:
    case G_UNICODE_MODIFIER_LETTER:
    case G_UNICODE_MODIFIER_SYMBOL:
      return true;
    default:
      break;
  }
  switch (c) {
    case 0x0027:  // '
    case 0x002E:  // .
    case 0x003A:  // :
    case 0x00B7:  // middle dot
    case 0x0387:  // Greek ano teleia
    case 0x055F:  // Armenian abbreviation mark
    case 0x05F4:  // Hebrew gershayim
    case 0x2018:
    case 0x2019:
    case 0x2024:
    case 0x2027:
    case 0xFE13:
    case 0xFE52:
    case 0xFE55:
    case 0xFF07:
    case 0xFF0E:
    case 0xFF1A:
      return true;
    default:
      return false;
  }
}

// Lower-case mappings of UnicodeData.txt that GLib leaves out because the
// characters are not letters: Roman numerals (Nl) and circled letters (So).
char32_t simple_lower(char32_t c) {
  if (c >= 0x2160 && c <= 0x216F) return c + 0x10;  // Ⅰ..Ⅿ -> ⅰ..ⅿ
  if (c >= 0x24B6 && c <= 0x24CF) return c + 0x1A;  // Ⓐ..Ⓩ -> ⓐ..ⓩ
  return g_unichar_tolower(c);
}

// Cased characters (Other_Lowercase / Other_Uppercase) that are not Lu, Ll
// or Lt and that GLib gives no case mapping: ordinal indicators, modifier
// and superscript small letters, Roman numerals, circled, squared and
// negative-circled Latin letters.
bool is_other_cased(char32_t c) {
  static constexpr std::pair<char32_t, char32_t> kRanges[] = {
      {0x00AA, 0x00AA},   {0x00BA, 0x00BA},   {0x02B0, 0x02B8},   {0x02C0, 0x02C1},   {0x02E0, 0x02E4},
      {0x0345, 0x0345},   {0x037A, 0x037A},   {0x10FC, 0x10FC},   {0x1D2C, 0x1D6A},   {0x1D78, 0x1D78},
      {0x1D9B, 0x1DBF},   {0x2071, 0x2071},   {0x207F, 0x207F},   {0x2090, 0x209C},   {0x2160, 0x217F},
      {0x24B6, 0x24E9},   {0x2C7C, 0x2C7D},   {0xA69C, 0xA69D},   {0xA770, 0xA770},   {0xA7F2, 0xA7F4},
      {0xA7F8, 0xA7F9},   {0xAB5C, 0xAB5F},   {0xAB69, 0xAB69},   {0x10780, 0x10780}, {0x10783, 0x10785},
      {0x10787, 0x107B0}, {0x107B2, 0x107BA}, {0x1F130, 0x1F149}, {0x1F150, 0x1F169}, {0x1F170, 0x1F189},
  };
  for (const auto& [first, last] : kRanges)
    if (c >= first && c <= last) return true;
  return false;
}

// Unicode's Cased property: upper-, lower- or titlecase letters and the
// other characters that take part in case mapping.
bool is_cased(char32_t c) {
  switch (g_unichar_type(c)) {
    case G_UNICODE_LOWERCASE_LETTER:
    case G_UNICODE_UPPERCASE_LETTER:
    case G_UNICODE_TITLECASE_LETTER:
      return true;
    default:
      break;
  }
  return g_unichar_tolower(c) != c || g_unichar_toupper(c) != c || is_other_cased(c);
}

// Python's Final_Sigma context for the capital sigma at `i`:
// \p{cased} \p{case-ignorable}* Σ, not followed by \p{case-ignorable}* \p{cased}.
bool is_final_sigma(const std::u32string& text, size_t i) {
  size_t j = i;
  while (j > 0 && is_case_ignorable(text[j - 1])) --j;
  if (j == 0 || !is_cased(text[j - 1])) return false;
  size_t k = i + 1;
  while (k < text.size() && is_case_ignorable(text[k])) ++k;
  return k == text.size() || !is_cased(text[k]);
}

}  // namespace

std::u32string decode_utf8(std::string_view utf8) {
  std::u32string out;
  out.reserve(utf8.size());
  size_t i = 0;
  while (i < utf8.size()) {
    const auto lead = static_cast<unsigned char>(utf8[i]);
    if (lead < 0x80) {
      out += static_cast<char32_t>(lead);
      ++i;
      continue;
    }
    size_t length;
    char32_t c;
    char32_t smallest;  // below it the sequence is an overlong form
    if (lead >= 0xC2 && lead <= 0xDF) {
      length = 2, c = lead & 0x1F, smallest = 0x80;
    } else if (lead >= 0xE0 && lead <= 0xEF) {
      length = 3, c = lead & 0x0F, smallest = 0x800;
    } else if (lead >= 0xF0 && lead <= 0xF4) {
      length = 4, c = lead & 0x07, smallest = 0x10000;
    } else if (lead >= 0x80 && lead <= 0xBF) {
      throw_invalid_utf8(i, "unexpected continuation byte " + hex_byte(lead));
    } else {
      // 0xC0, 0xC1 only start overlong forms; 0xF5.. would exceed U+10FFFF.
      throw_invalid_utf8(i, "byte " + hex_byte(lead) + " never occurs in UTF-8");
    }
    if (utf8.size() - i < length) throw_invalid_utf8(i, "truncated sequence at the end of the text");
    for (size_t k = 1; k < length; ++k) {
      const auto next = static_cast<unsigned char>(utf8[i + k]);
      if ((next & 0xC0) != 0x80)
        throw_invalid_utf8(i, "sequence starting with " + hex_byte(lead) + " is cut short by byte " +
                                  hex_byte(next));
      c = (c << 6) | (next & 0x3F);
    }
    if (c < smallest) throw_invalid_utf8(i, "overlong encoding");
    if (c >= 0xD800 && c <= 0xDFFF) throw_invalid_utf8(i, "encoded UTF-16 surrogate");
    if (c > 0x10FFFF) throw_invalid_utf8(i, "code point above U+10FFFF");
    out += c;
    i += length;
  }
  return out;
}

std::string to_lower(std::string_view utf8) {
  const std::u32string text = decode_utf8(utf8);
  std::string out;
  out.reserve(utf8.size());
  for (size_t i = 0; i < text.size(); ++i) {
    const char32_t c = text[i];
    if (c == 0x0130) {
      // The one unconditional multi-character lower-case mapping
      // (SpecialCasing.txt) Python applies: İ -> i + combining dot above.
      append_utf8(out, U'i');
      append_utf8(out, 0x0307);
    } else if (c == 0x03A3) {
      append_utf8(out, is_final_sigma(text, i) ? 0x03C2 : 0x03C3);
    } else {
      // The locale-independent simple mapping (g_utf8_strdown would follow
      // a Turkish locale and misses the non-letters above).
      append_utf8(out, simple_lower(c));
    }
  }
  return out;
}

std::string fold_whitespace(std::string_view utf8) {
  const std::u32string text = decode_utf8(utf8);
  std::string out;
  out.reserve(utf8.size());
  bool pending_space = false;
  for (char32_t c : text) {
    if (detail::is_python_space(c)) {
      pending_space = !out.empty();
      continue;
    }
    if (pending_space) out += ' ';
    pending_space = false;
    append_utf8(out, c);
  }
  return out;
}

namespace {

// RuCLIPProcessor.encode_text.
std::vector<int64_t> prepare_text_v2(const Tokenizer& tokenizer, const ModelConfig& config, std::string_view text) {
  std::vector<int> ids = tokenizer.encode(to_lower(text));
  const size_t room = static_cast<size_t>(config.context_length) - 2;
  if (ids.size() > room) ids.resize(room);

  std::vector<int64_t> out;
  out.reserve(config.context_length);
  out.push_back(config.bos_id);
  out.insert(out.end(), ids.begin(), ids.end());
  out.push_back(config.eos_id);
  out.resize(config.context_length, config.pad_id);
  return out;
}

// deprecated/clip/evaluate/utils.py get_text_batch, one text, step by step.
std::vector<int64_t> prepare_text_v1(const Tokenizer& tokenizer, const ModelConfig& config, std::string_view text) {
  const size_t length = static_cast<size_t>(config.context_length);
  // prc_text: '\n', '\t' -> ' ', then ' '.join(text.split()).
  const std::string folded = fold_whitespace(text);
  const std::vector<int> bpe = folded.empty() ? std::vector<int>() : tokenizer.encode(folded);
  // Upstream's tokenizer gives an empty text an unpadded empty row, which
  // becomes the 1-token row [eos] and breaks the batch it is in.
  if (bpe.empty())
    throw Error("the text is empty or only whitespace: ruCLIP v1 can't encode it "
                "(upstream get_text_batch makes a 1-token row of it, which no batch takes)");

  // tokenizer(text, padding='max_length', max_length=n, truncation=True).
  std::vector<int64_t> ids(bpe.begin(), bpe.begin() + std::min(bpe.size(), length));
  ids.resize(length, config.pad_id);
  // bos first, cut back to n, then eos at the first pad id (or, when the
  // text fills the row, over the last token).
  ids.insert(ids.begin(), config.bos_id);
  ids.resize(length);
  auto eos = std::find(ids.begin(), ids.end(), static_cast<int64_t>(config.pad_id));
  if (eos == ids.end()) eos = ids.end() - 1;
  *eos = config.eos_id;

  // A text holding "</s>" itself: upstream's TextEncoder takes the hidden
  // state at every eos, i.e. two rows for one text, and the batch falls apart.
  for (auto it = ids.begin(); it != ids.end(); ++it)
    if (*it == config.eos_id && it != eos)
      throw Error("the text holds the eos token (id " + std::to_string(config.eos_id) + ", \"</s>\") itself, at " +
                  "position " + std::to_string(it - ids.begin()) +
                  ": ruCLIP v1 can't encode it (upstream's TextEncoder would read two rows for this one text)");
  return ids;
}

}  // namespace

std::vector<int64_t> prepare_text(const Tokenizer& tokenizer, const ModelConfig& config, std::string_view text) {
  if (config.context_length < 2)
    throw Error("context_length = " + std::to_string(config.context_length) +
                " leaves no room for the bos and eos tokens (must be at least 2)");
  return config.family == ModelFamily::kV1 ? prepare_text_v1(tokenizer, config, text)
                                            : prepare_text_v2(tokenizer, config, text);
}

std::vector<int64_t> attention_mask(const std::vector<int64_t>& ids, const ModelConfig& config) {
  std::vector<int64_t> mask(ids.size(), 1);
  auto eos = std::find(ids.begin(), ids.end(), static_cast<int64_t>(config.eos_id));
  if (eos != ids.end()) std::fill(mask.begin() + (eos - ids.begin()) + 1, mask.end(), 0);
  return mask;
}

std::unique_ptr<Tokenizer> load_tokenizer(const std::string& model_dir, const ModelConfig& config) {
  return load_tokenizer(find_tokenizer_files(model_dir, config), config);
}

std::unique_ptr<Tokenizer> load_tokenizer(const TokenizerFiles& files, const ModelConfig& config) {
  const std::string& path = files.file;
  const bool gpt2 = files.kind == TokenizerKind::kGpt2;
  std::unique_ptr<Tokenizer> tokenizer;
  switch (files.kind) {
    case TokenizerKind::kGpt2: tokenizer = load_gpt2_tokenizer(files.file, files.merges); break;
    case TokenizerKind::kYttm: tokenizer = load_yttm_tokenizer(path); break;
    case TokenizerKind::kSentencePiece: tokenizer = load_sentencepiece_tokenizer(path); break;
  }

  // Ids at or above the embedding table's size would index past it.
  if (tokenizer->vocab_size() > config.vocab_size)
    throw Error(path + ": the tokenizer has " + std::to_string(tokenizer->vocab_size()) +
                " tokens, more than the model's vocab_size = " + std::to_string(config.vocab_size));

  // Upstream v1's rows hold the tokenizer's bos, eos and pad (<s>, </s>,
  // <pad>), and its TextEncoder looks for eos id 2 (its MODELS table): the
  // config must agree with the vocabulary, or the rows would hold other
  // tokens than the model was trained on.
  if (gpt2 && config.family == ModelFamily::kV1) {
    for (const auto& [token, name, id] : {std::tuple<const char*, const char*, int>{"<s>", "bos_id", config.bos_id},
                                          {"</s>", "eos_id", config.eos_id},
                                          {"<pad>", "pad_id", config.pad_id}}) {
      const std::vector<int> ids = tokenizer->encode(token);
      if (ids.size() != 1 || ids[0] != id)
        throw Error(path + ": " + token + " is token " + (ids.size() == 1 ? std::to_string(ids[0]) : "?") +
                    ", but the model's config has " + name + " = " + std::to_string(id));
    }
  }
  return tokenizer;
}

}  // namespace ruclip
