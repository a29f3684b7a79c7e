// GPT-2 byte-level BPE, written to give the same ids as Hugging Face
// transformers 3.x GPT2Tokenizer.encode (the Python tokenizer) as ruCLIP v1
// sets it up (upstream deprecated/clip/evaluate/utils.py get_tokenizer:
// from_pretrained, then bos "<s>", eos "</s>" and pad "<pad>" as special
// tokens, all already in the vocabulary).
//
// encode(text), step by step as upstream:
//  1. A text of whitespace only gives no ids (tokenize: `if not text.strip()`).
//  2. The no-split tokens are cut out and kept whole: <s>, </s>, <pad>
//     (given to add_special_tokens as plain strings, so the whitespace next
//     to them is stripped) and GPT2Tokenizer's default unk <|endoftext|> (an
//     AddedToken without lstrip/rstrip: nothing is stripped around it).
//  3. Every other piece is split by GPT-2's pattern, each match's UTF-8 bytes
//     are mapped through bytes_to_unicode(), merged by merges.txt rank (all
//     occurrences of the best pair at once, left to right, as GPT2Tokenizer.bpe)
//     and looked up in vocab.json.
// Both files are untrusted: every failure is a ruclip::Error naming the file
// and the line or token.
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <climits>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "ruclip/error.h"
#include "ruclip/tokenizer.h"
#include "text/text_internal.h"

namespace ruclip {
namespace {

using detail::append_utf8;
using detail::is_python_space;

// GPT2Tokenizer.pat, with \s written as \p{White_Space}: that is what the
// Python regex module's \s is, while PCRE2's UCP \s also takes U+180E.
constexpr const char* kPattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\p{White_Space}\p{L}\p{N}]+)"
    R"(|\p{White_Space}+(?!\P{White_Space})|\p{White_Space}+)";

// The special tokens of ruCLIP v1's tokenizer; see the top of the file.
struct SpecialToken {
  const char* text;
  bool strips_whitespace;  // added as a plain string (not an AddedToken)
  bool required;           // upstream get_tokenizer asserts it is in the vocabulary
};
constexpr SpecialToken kSpecialTokens[] = {
    {"<s>", true, true},
    {"</s>", true, true},
    {"<pad>", true, true},
    {"<|endoftext|>", false, false},
};
constexpr const char* kUnkToken = "<|endoftext|>";

// bytes_to_unicode(): printable Latin-1 bytes stand for themselves, the
// other 68 (controls, space, 0x7F..0xA0, 0xAD) for U+0100.. in byte order.
std::array<std::string, 256> byte_symbols() {
  std::array<std::string, 256> symbols;
  char32_t next = 0x100;
  for (int b = 0; b < 256; ++b) {
    const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    append_utf8(symbols[b], printable ? static_cast<char32_t>(b) : next++);
  }
  return symbols;
}

// A token as it may appear in a message: quoted, long ones shortened,
// control characters escaped.
std::string quote_token(std::string_view token) {
  std::string out = "\"";
  size_t i = 0;
  for (; i < token.size() && i < 48; ++i) {
    const auto byte = static_cast<unsigned char>(token[i]);
    if (byte < 0x20 || byte == 0x7F || byte == '"' || byte == '\\') {
      char escaped[8];
      std::snprintf(escaped, sizeof escaped, "\\x%02X", byte);
      out += escaped;
    } else {
      out += static_cast<char>(byte);
    }
  }
  // Don't cut inside a UTF-8 sequence.
  while (i < token.size() && (static_cast<unsigned char>(token[i]) & 0xC0) == 0x80) out += token[i++];
  if (i < token.size()) out += "...";
  return out + "\"";
}

// Code point stepping over text that decode_utf8 has already accepted.
char32_t code_point_at(std::string_view s, size_t i, size_t* length) {
  const auto lead = static_cast<unsigned char>(s[i]);
  const size_t n = lead < 0x80 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4;
  char32_t c = n == 1 ? lead : lead & (0x7F >> n);
  for (size_t k = 1; k < n; ++k) c = (c << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
  *length = n;
  return c;
}

// Python's str.lstrip() / str.rstrip() on valid UTF-8.
std::string_view lstrip(std::string_view s) {
  size_t i = 0, length = 0;
  while (i < s.size() && is_python_space(code_point_at(s, i, &length))) i += length;
  return s.substr(i);
}
std::string_view rstrip(std::string_view s) {
  size_t end = s.size(), length = 0;
  while (end > 0) {
    size_t start = end - 1;
    while (start > 0 && (static_cast<unsigned char>(s[start]) & 0xC0) == 0x80) --start;
    if (!is_python_space(code_point_at(s, start, &length))) break;
    end = start;
  }
  return s.substr(0, end);
}

uint64_t pair_key(int left, int right) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
}

struct PcreCodeDeleter {
  void operator()(pcre2_code* code) const { pcre2_code_free(code); }
};
struct PcreMatchDataDeleter {
  void operator()(pcre2_match_data* data) const { pcre2_match_data_free(data); }
};

std::string pcre_message(int code) {
  PCRE2_UCHAR buffer[256];
  if (pcre2_get_error_message(code, buffer, sizeof buffer) < 0) return "PCRE2 error " + std::to_string(code);
  return reinterpret_cast<const char*>(buffer);
}

std::unique_ptr<pcre2_code, PcreCodeDeleter> compile_pattern() {
  int error = 0;
  PCRE2_SIZE offset = 0;
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(kPattern), PCRE2_ZERO_TERMINATED,
                                   PCRE2_UTF | PCRE2_UCP, &error, &offset, nullptr);
  // Only a PCRE2 without Unicode support (or older than 10.40, without
  // \p{White_Space}) gets here.
  if (!code)
    throw Error("GPT-2 tokenizer: PCRE2 cannot compile the pre-tokenizer pattern (" + pcre_message(error) +
                " at offset " + std::to_string(offset) + ")");
  return std::unique_ptr<pcre2_code, PcreCodeDeleter>(code);
}

struct MergeRule {
  int left, right, merged;
};

class Gpt2Tokenizer : public Tokenizer {
 public:
  struct Special {
    std::string text;
    int id;  // -1: not in the vocabulary
    bool strips_whitespace;
  };

  Gpt2Tokenizer(std::array<int, 256> byte_ids, std::vector<MergeRule> rules, std::vector<Special> specials,
                int unk_id, int vocab_size, std::string origin)
      : pattern_(compile_pattern()),
        byte_ids_(byte_ids),
        rules_(std::move(rules)),
        specials_(std::move(specials)),
        unk_id_(unk_id),
        vocab_size_(vocab_size),
        origin_(std::move(origin)) {
    rank_of_pair_.reserve(rules_.size());
    for (size_t rank = 0; rank < rules_.size(); ++rank)
      rank_of_pair_.emplace(pair_key(rules_[rank].left, rules_[rank].right), static_cast<int>(rank));
  }

  std::vector<int> encode(std::string_view utf8) const override {
    decode_utf8(utf8);  // throws, naming the offset, before anything else looks at the bytes
    std::vector<int> ids;
    if (lstrip(utf8).empty()) return ids;

    std::unique_ptr<pcre2_match_data, PcreMatchDataDeleter> match(
        pcre2_match_data_create_from_pattern(pattern_.get(), nullptr));
    if (!match) throw Error("GPT-2 tokenizer: out of memory for PCRE2 match data");
    Scratch scratch;

    // The no-split tokens can't overlap (each starts with '<', ends with
    // the first '>' after it and has no '<' inside), so one left-to-right
    // scan finds what upstream's split-by-each-token-in-turn finds.
    const Special* before = nullptr;
    size_t piece_start = 0;
    for (size_t i = 0; i <= utf8.size(); ++i) {
      const Special* found = nullptr;
      if (i < utf8.size()) {
        if (utf8[i] != '<') continue;
        for (const Special& special : specials_)
          if (utf8.compare(i, special.text.size(), special.text) == 0) found = &special;
        if (!found) continue;
      }
      std::string_view piece = utf8.substr(piece_start, i - piece_start);
      if (before && before->strips_whitespace) piece = lstrip(piece);
      if (found && found->strips_whitespace) piece = rstrip(piece);
      if (!piece.empty()) encode_piece(piece, match.get(), scratch, ids);
      if (!found) break;
      if (found->id < 0)
        throw Error("the text holds " + quote_token(found->text) +
                    " (GPT-2's unk token, kept whole by the tokenizer), which " + origin_ +
                    " has no id for: upstream GPT2Tokenizer gives it none either");
      ids.push_back(found->id);
      before = found;
      i += found->text.size() - 1;
      piece_start = i + 1;
    }
    return ids;
  }

  int vocab_size() const override { return vocab_size_; }

 private:
  // Placeholders besides real ids: a byte whose symbol is not in the
  // vocabulary (no merge can use it), and a node merged into its left
  // neighbour.
  static constexpr int kUnknownByte = -1;
  static constexpr int kMergedAway = -2;
  // Pieces longer than this are not cached (the cache holds words).
  static constexpr size_t kMaxCachedBytes = 256;
  static constexpr size_t kMaxCacheEntries = 1 << 16;

  using Node = detail::BpeNode;
  using Candidate = detail::BpeCandidate;
  struct Scratch {
    std::vector<Node> nodes;
    std::vector<Candidate> heap;
    std::vector<int> round;
    std::vector<int> word;
  };

  void encode_piece(std::string_view piece, pcre2_match_data* match, Scratch& scratch,
                    std::vector<int>& ids) const {
    const auto* subject = reinterpret_cast<PCRE2_SPTR>(piece.data());
    PCRE2_SIZE offset = 0;
    while (offset < piece.size()) {
      const int rc = pcre2_match(pattern_.get(), subject, piece.size(), offset, PCRE2_NO_UTF_CHECK, match, nullptr);
      if (rc == PCRE2_ERROR_NOMATCH) break;  // can't happen: every character matches one alternative
      if (rc < 0) throw Error("GPT-2 tokenizer: PCRE2 failed on the text (" + pcre_message(rc) + ")");
      const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(match);
      if (ovector[1] <= ovector[0]) throw Error("GPT-2 tokenizer: the pre-tokenizer matched nothing");
      encode_word(piece.substr(ovector[0], ovector[1] - ovector[0]), scratch, ids);
      offset = ovector[1];
    }
  }

  void encode_word(std::string_view word, Scratch& scratch, std::vector<int>& ids) const {
    const bool cacheable = word.size() <= kMaxCachedBytes;
    if (cacheable) {
      std::lock_guard<std::mutex> lock(cache_mutex_);
      auto it = cache_.find(std::string(word));
      if (it != cache_.end()) {
        ids.insert(ids.end(), it->second.begin(), it->second.end());
        return;
      }
    }
    bpe(word, scratch);
    if (std::count(scratch.word.begin(), scratch.word.end(), kUnknownByte) > 0) unknown_token(word, scratch);
    ids.insert(ids.end(), scratch.word.begin(), scratch.word.end());
    if (cacheable) {
      std::lock_guard<std::mutex> lock(cache_mutex_);
      if (cache_.size() >= kMaxCacheEntries) cache_.clear();
      cache_.emplace(std::string(word), scratch.word);
    }
  }

  // GPT2Tokenizer.bpe: while some adjacent pair has a rank, take the pair
  // with the lowest and merge every occurrence of it, left to right, in one
  // pass. Leaves the ids in scratch.word.
  void bpe(std::string_view word, Scratch& scratch) const {
    auto& nodes = scratch.nodes;
    auto& heap = scratch.heap;
    nodes.clear();
    heap.clear();
    for (size_t i = 0; i < word.size(); ++i) {
      const int index = static_cast<int>(i);
      nodes.push_back({byte_ids_[static_cast<unsigned char>(word[i])], index - 1, -1});
      if (index > 0) nodes[index - 1].next = index;
    }

    const auto greater = std::greater<Candidate>();
    auto push_candidate = [&](int pos) {
      const int next = nodes[pos].next;
      if (next < 0 || nodes[pos].token < 0 || nodes[next].token < 0) return;
      auto it = rank_of_pair_.find(pair_key(nodes[pos].token, nodes[next].token));
      if (it == rank_of_pair_.end()) return;
      heap.push_back({it->second, pos});
      std::push_heap(heap.begin(), heap.end(), greater);
    };
    for (int pos = 0; pos + 1 < static_cast<int>(nodes.size()); ++pos) push_candidate(pos);

    while (!heap.empty()) {
      // One pass of upstream's loop: every candidate of the lowest rank, in
      // position order. A merge never makes a new pair of the same rank (the
      // merged token is longer than either half), so the pass is complete;
      // pairs it makes wait in the heap for later passes. Candidates whose
      // nodes changed since they were pushed are skipped.
      const int rank = heap.front().rank;
      scratch.round.clear();
      while (!heap.empty() && heap.front().rank == rank) {
        std::pop_heap(heap.begin(), heap.end(), greater);
        scratch.round.push_back(heap.back().pos);
        heap.pop_back();
      }
      const MergeRule& rule = rules_[rank];
      for (int pos : scratch.round) {
        Node& left = nodes[pos];
        if (left.token != rule.left || left.next < 0) continue;
        Node& right = nodes[left.next];
        if (right.token != rule.right) continue;
        left.token = rule.merged;
        left.next = right.next;
        if (right.next >= 0) nodes[right.next].prev = pos;
        right = {kMergedAway, -1, -1};
        if (left.prev >= 0) push_candidate(left.prev);
        if (left.next >= 0) push_candidate(pos);
      }
    }

    // Node 0 is never merged away: merges keep the left node.
    scratch.word.clear();
    for (int pos = nodes.empty() ? -1 : 0; pos >= 0; pos = nodes[pos].next) scratch.word.push_back(nodes[pos].token);
  }

  // A byte whose symbol the vocabulary lacks: upstream looks the symbol up,
  // falls back on the unk token's id, and has none when the vocabulary lacks
  // <|endoftext|> too. Such a byte is never merged, so its node's index is
  // its offset in the word.
  void unknown_token(std::string_view word, Scratch& scratch) const {
    if (unk_id_ < 0) {
      for (int pos = 0; pos >= 0; pos = scratch.nodes[pos].next) {
        if (scratch.nodes[pos].token != kUnknownByte) continue;
        char byte[8];
        std::snprintf(byte, sizeof byte, "0x%02X", static_cast<unsigned char>(word[pos]));
        throw Error("the text's byte " + std::string(byte) + " (in " + quote_token(word) + ") has no token in " +
                    origin_ + ", which has no " + kUnkToken + " to stand for it either");
      }
    }
    for (int& token : scratch.word)
      if (token == kUnknownByte) token = unk_id_;
  }

  std::unique_ptr<pcre2_code, PcreCodeDeleter> pattern_;
  std::array<int, 256> byte_ids_;
  std::vector<MergeRule> rules_;                  // by rank
  std::unordered_map<uint64_t, int> rank_of_pair_;  // (left, right) -> rank
  std::vector<Special> specials_;
  int unk_id_;
  int vocab_size_;
  std::string origin_;  // names the vocabulary in encode's errors

  // Many threads encode at once (the scheduler, the element's streams).
  mutable std::mutex cache_mutex_;
  mutable std::unordered_map<std::string, std::vector<int>> cache_;
};

// vocab.json: one JSON object, token -> id, ids distinct non-negative integers.
std::unordered_map<std::string, int> parse_vocab(std::string_view text, const std::string& name) {
  using json = nlohmann::json;
  std::unordered_set<std::string> keys;
  std::string duplicate_key;
  const json::parser_callback_t note_keys = [&](int depth, json::parse_event_t event, json& parsed) {
    if (event == json::parse_event_t::key && depth == 1 && parsed.is_string() &&
        !keys.insert(parsed.get_ref<const std::string&>()).second && duplicate_key.empty())
      duplicate_key = parsed.get<std::string>();
    return true;
  };
  json root;
  try {
    root = json::parse(text.begin(), text.end(), note_keys);
  } catch (const json::exception& e) {
    throw Error(name + ": not valid JSON: " + e.what());
  }
  if (!root.is_object()) throw Error(name + ": expected a JSON object of token -> id, found a " + root.type_name());
  if (!duplicate_key.empty())
    throw Error(name + ": token " + quote_token(duplicate_key) + " is listed twice (which id would it have?)");
  if (root.empty()) throw Error(name + ": the vocabulary is empty");

  std::unordered_map<std::string, int> vocab;
  vocab.reserve(root.size());
  std::unordered_map<int64_t, const std::string*> token_of_id;
  token_of_id.reserve(root.size());
  for (auto it = root.begin(); it != root.end(); ++it) {
    const json& value = it.value();
    if (!value.is_number_integer())
      throw Error(name + ": the id of token " + quote_token(it.key()) + " is " + value.dump() +
                  ", expected a non-negative integer");
    const int64_t id = value.is_number_unsigned() && value.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX)
                           ? INT64_MAX
                           : value.get<int64_t>();
    if (id < 0 || id >= INT_MAX)
      throw Error(name + ": the id of token " + quote_token(it.key()) + " is " + value.dump() + ", out of range 0.." +
                  std::to_string(INT_MAX - 1));
    auto [previous, inserted] = token_of_id.emplace(id, &it.key());
    if (!inserted)
      throw Error(name + ": tokens " + quote_token(*previous->second) + " and " + quote_token(it.key()) + " have the same id " +
                  std::to_string(id));
    vocab.emplace(it.key(), static_cast<int>(id));
  }
  return vocab;
}

// merges.txt as GPT2Tokenizer reads it: text.split("\n")[1:-1] after
// universal-newline translation, i.e. the first line (the "#version" header)
// and whatever follows the last newline are not merges; each merge is two
// whitespace-separated tokens, rank = order.
std::vector<MergeRule> parse_merges(std::string_view text, const std::string& name,
                                    const std::unordered_map<std::string, int>& vocab, const std::string& vocab_name) {
  try {
    decode_utf8(text);
  } catch (const Error& e) {
    throw Error(name + ": " + e.what());
  }
  std::vector<std::string_view> lines;
  size_t start = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '\n' && text[i] != '\r') continue;
    lines.push_back(text.substr(start, i - start));
    if (text[i] == '\r' && i + 1 < text.size() && text[i + 1] == '\n') ++i;
    start = i + 1;
  }
  // The text after the last newline (usually nothing) is dropped by upstream.
  std::string_view header = lines.empty() ? std::string_view() : lines[0];
  if (header.substr(0, 3) == "\xEF\xBB\xBF") header.remove_prefix(3);  // a byte-order mark
  if (header.empty() || header[0] != '#')
    throw Error(name + ": line 1: expected the \"#version: ...\" header (GPT2Tokenizer skips the first line, "
                       "whatever it holds)");

  std::vector<MergeRule> rules;
  rules.reserve(lines.size() - 1);
  std::unordered_map<uint64_t, size_t> line_of_pair;
  line_of_pair.reserve(lines.size() - 1);
  for (size_t index = 1; index < lines.size(); ++index) {
    const std::string where = name + ": line " + std::to_string(index + 1) + ": ";
    std::vector<std::string_view> fields;
    std::string_view rest = lines[index];
    while (true) {
      rest = lstrip(rest);
      if (rest.empty()) break;
      size_t end = 0, length = 0;
      while (end < rest.size() && !is_python_space(code_point_at(rest, end, &length))) end += length;
      fields.push_back(rest.substr(0, end));
      rest = rest.substr(end);
    }
    if (fields.empty()) continue;  // a blank line merges nothing (upstream: an empty tuple)
    if (fields.size() != 2)
      throw Error(where + "expected a merge of two tokens separated by a space, found " +
                  std::to_string(fields.size()) + (fields.size() == 1 ? " field" : " fields"));
    int operand_ids[2];
    for (int k = 0; k < 2; ++k) {
      auto it = vocab.find(std::string(fields[k]));
      if (it == vocab.end())
        throw Error(where + "the merge uses token " + quote_token(fields[k]) + ", which " + vocab_name + " lacks");
      operand_ids[k] = it->second;
    }
    const std::string merged = std::string(fields[0]) + std::string(fields[1]);
    auto it = vocab.find(merged);
    if (it == vocab.end())
      throw Error(where + "the merge makes token " + quote_token(merged) + ", which " + vocab_name + " lacks");
    auto [previous, inserted] = line_of_pair.emplace(pair_key(operand_ids[0], operand_ids[1]), index + 1);
    if (!inserted)
      throw Error(where + "the merge of " + quote_token(fields[0]) + " and " + quote_token(fields[1]) + " repeats line " +
                  std::to_string(previous->second));
    rules.push_back({operand_ids[0], operand_ids[1], it->second});
  }
  return rules;
}

std::unique_ptr<Tokenizer> parse_files(std::string_view vocab_json, std::string_view merges,
                                       const std::string& vocab_name, const std::string& merges_name) {
  const std::unordered_map<std::string, int> vocab = parse_vocab(vocab_json, vocab_name);
  std::vector<MergeRule> rules = parse_merges(merges, merges_name, vocab, vocab_name);

  std::vector<Gpt2Tokenizer::Special> specials;
  for (const SpecialToken& special : kSpecialTokens) {
    auto it = vocab.find(special.text);
    if (it == vocab.end() && special.required)
      throw Error(vocab_name + ": no token " + quote_token(special.text) +
                  ": ruCLIP v1 uses <s>, </s> and <pad> of the vocabulary as bos, eos and pad "
                  "(upstream get_tokenizer asserts they are there)");
    specials.push_back({special.text, it == vocab.end() ? -1 : it->second, special.strips_whitespace});
  }
  auto unk = vocab.find(kUnkToken);

  const std::array<std::string, 256> symbols = byte_symbols();
  std::array<int, 256> byte_ids;
  for (int b = 0; b < 256; ++b) {
    auto it = vocab.find(symbols[b]);
    byte_ids[b] = it == vocab.end() ? -1 : it->second;
  }

  int max_id = 0;
  for (const auto& entry : vocab) max_id = std::max(max_id, entry.second);
  return std::make_unique<Gpt2Tokenizer>(byte_ids, std::move(rules), std::move(specials),
                                         unk == vocab.end() ? -1 : unk->second, max_id + 1, vocab_name);
}

std::string read_whole_file(const std::string& path, const char* what) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) throw Error(path + ": is a directory, expected " + what);
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path + ": cannot open " + what + " (" + std::strerror(errno) + ")");
  std::ostringstream contents;
  contents << in.rdbuf();
  if (in.bad()) throw Error(path + ": read error");
  return contents.str();
}

}  // namespace

std::unique_ptr<Tokenizer> parse_gpt2_tokenizer(std::string_view vocab_json, std::string_view merges,
                                                const std::string& origin) {
  return parse_files(vocab_json, merges, origin + "/vocab.json", origin + "/merges.txt");
}

std::unique_ptr<Tokenizer> load_gpt2_tokenizer(const std::string& vocab_json_path, const std::string& merges_path) {
  const std::string vocab = read_whole_file(vocab_json_path, "the GPT-2 vocabulary (vocab.json)");
  const std::string merges = read_whole_file(merges_path, "the GPT-2 merges (merges.txt)");
  return parse_files(vocab, merges, vocab_json_path, merges_path);
}

}  // namespace ruclip
