// YouTokenToMe BPE encoder, written to give the same ids as upstream's
// BaseEncoder::encode_sentence (dropout 0, OutputType.ID, no bos/eos).
//
// bpe.model is a stream of whitespace-separated integers:
//   n_chars n_rules
//   n_chars x "code_point id"       the alphabet; U+2581 "▁" starts every word
//   n_rules x "left right merged"   merges, in priority order (first = highest)
//   unk pad bos eos                 special ids, -1 for an absent pad/bos/eos
// The file is untrusted: every count, id and code point is checked before it
// is used, and every failure is a ruclip::Error naming the file and the line.
#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <unordered_map>
#include <vector>

#include "ruclip/error.h"
#include "ruclip/tokenizer.h"
#include "text/text_internal.h"

namespace ruclip {
namespace {

constexpr char32_t kWordStart = 0x2581;  // "▁"

// Upstream's is_space: C-locale isspace for code points below 256, plus "▁"
// itself, so a "▁" in the input separates words like a blank does.
bool is_space(char32_t c) { return c == U' ' || (c >= U'\t' && c <= U'\r') || c == kWordStart; }

bool is_unicode_scalar(int64_t c) { return c >= 0 && c <= 0x10FFFF && !(c >= 0xD800 && c <= 0xDFFF); }

std::string code_point_name(char32_t c) {
  char buffer[16];
  std::snprintf(buffer, sizeof buffer, "U+%04X", static_cast<unsigned>(c));
  return buffer;
}

// A cursor over the model text that reads integers and reports failures
// with the file name and line number.
class ModelReader {
 public:
  ModelReader(std::string_view text, const std::string& origin) : text_(text), origin_(origin) {}

  int line() const { return line_; }

  [[noreturn]] void fail(const std::string& reason) const { fail_at(line_, reason); }
  [[noreturn]] void fail_at(int line, const std::string& reason) const {
    throw Error(origin_ + ": line " + std::to_string(line) + ": " + reason);
  }

  // The next integer; `what` names it in error messages. Magnitudes are
  // capped at 18 digits, so nothing here overflows.
  int64_t integer(const char* what) {
    skip_space();
    if (pos_ == text_.size()) fail(std::string("unexpected end of file (truncated?): expected ") + what);
    const size_t start = pos_;
    bool negative = false;
    if (text_[pos_] == '-' || text_[pos_] == '+') negative = text_[pos_++] == '-';
    int64_t value = 0;
    int digits = 0;
    while (pos_ < text_.size() && text_[pos_] >= '0' && text_[pos_] <= '9') {
      if (++digits > 18) fail(std::string("number too large for ") + what + ": " + token_at(start));
      value = value * 10 + (text_[pos_++] - '0');
    }
    if (digits == 0 || (pos_ < text_.size() && !is_blank(text_[pos_])))
      fail(std::string("expected ") + what + " (an integer), found " + token_at(start));
    return negative ? -value : value;
  }

  bool at_end() {
    skip_space();
    return pos_ == text_.size();
  }
  size_t remaining_bytes() const { return text_.size() - pos_; }
  std::string next_token() const { return token_at(pos_); }

 private:
  static bool is_blank(char c) { return c == ' ' || (c >= '\t' && c <= '\r'); }

  void skip_space() {
    for (; pos_ < text_.size() && is_blank(text_[pos_]); ++pos_)
      if (text_[pos_] == '\n') ++line_;
  }

  // The token starting at `start`, quoted and shortened, with bytes that are
  // not printable ASCII escaped (the file may be binary garbage).
  std::string token_at(size_t start) const {
    std::string out = "\"";
    size_t i = start;
    for (; i < text_.size() && !is_blank(text_[i]) && i - start < 24; ++i) {
      const auto byte = static_cast<unsigned char>(text_[i]);
      if (byte >= 0x20 && byte < 0x7F && byte != '"' && byte != '\\') {
        out += static_cast<char>(byte);
      } else {
        char escaped[8];
        std::snprintf(escaped, sizeof escaped, "\\x%02X", byte);
        out += escaped;
      }
    }
    if (i < text_.size() && !is_blank(text_[i])) out += "...";
    return out + "\"";
  }

  std::string_view text_;
  const std::string& origin_;
  size_t pos_ = 0;
  int line_ = 1;
};

struct Merge {
  int left, right, merged;
};

uint64_t pair_key(int left, int right) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
}

class YttmTokenizer : public Tokenizer {
 public:
  YttmTokenizer(std::unordered_map<char32_t, int> char_ids, std::vector<Merge> merges, int unk_id, int vocab_size)
      : char_ids_(std::move(char_ids)), merges_(std::move(merges)), unk_id_(unk_id), vocab_size_(vocab_size) {
    word_start_id_ = char_ids_.at(kWordStart);
    merge_rank_.reserve(merges_.size());
    for (size_t rank = 0; rank < merges_.size(); ++rank)
      merge_rank_.emplace(pair_key(merges_[rank].left, merges_[rank].right), static_cast<int>(rank));
  }

  std::vector<int> encode(std::string_view utf8) const override {
    const std::u32string text = decode_utf8(utf8);
    std::vector<int> ids;
    Scratch scratch;
    // Words are maximal runs of non-space characters; spaces themselves
    // (leading, trailing, repeated) produce nothing.
    size_t i = 0;
    while (true) {
      while (i < text.size() && is_space(text[i])) ++i;
      if (i == text.size()) break;
      size_t end = i;
      while (end < text.size() && !is_space(text[end])) ++end;
      encode_word(std::u32string_view(text).substr(i, end - i), scratch, ids);
      i = end;
    }
    return ids;
  }

  int vocab_size() const override { return vocab_size_; }

 private:
  // Token values besides real ids: a run of characters outside the alphabet
  // (upstream gives each run one placeholder token that no rule merges and
  // that comes out as a single unk), and a node merged into its left
  // neighbour.
  static constexpr int kUnknownRun = -1;
  static constexpr int kMergedAway = -2;

  // Upstream takes the rule with the lowest index first and, among equal
  // rules, the leftmost position: BpeCandidate's order.
  using Node = detail::BpeNode;
  using Candidate = detail::BpeCandidate;
  struct Scratch {
    std::vector<Node> nodes;
    std::vector<Candidate> heap;
  };

  void encode_word(std::u32string_view word, Scratch& scratch, std::vector<int>& ids) const {
    auto& nodes = scratch.nodes;
    auto& heap = scratch.heap;
    nodes.clear();
    heap.clear();

    nodes.push_back({word_start_id_, -1, -1});
    for (char32_t c : word) {
      auto it = char_ids_.find(c);
      const int token = it == char_ids_.end() ? kUnknownRun : it->second;
      if (token == kUnknownRun && nodes.back().token == kUnknownRun) continue;  // one unk per run
      const int index = static_cast<int>(nodes.size());
      nodes.back().next = index;
      nodes.push_back({token, index - 1, -1});
    }

    const auto greater = std::greater<Candidate>();
    auto push_candidate = [&](int pos) {
      const int next = nodes[pos].next;
      if (next < 0 || nodes[pos].token < 0 || nodes[next].token < 0) return;
      auto it = merge_rank_.find(pair_key(nodes[pos].token, nodes[next].token));
      if (it == merge_rank_.end()) return;
      heap.push_back({it->second, pos});
      std::push_heap(heap.begin(), heap.end(), greater);
    };
    for (int pos = 0; pos + 1 < static_cast<int>(nodes.size()); ++pos) push_candidate(pos);

    while (!heap.empty()) {
      std::pop_heap(heap.begin(), heap.end(), greater);
      const Candidate candidate = heap.back();
      heap.pop_back();

      // Candidates are not removed when a neighbour merge changes their
      // pair; they are checked here instead.
      const Merge& merge = merges_[candidate.rank];
      Node& left = nodes[candidate.pos];
      if (left.token != merge.left || left.next < 0) continue;
      Node& right = nodes[left.next];
      if (right.token != merge.right) continue;

      left.token = merge.merged;
      left.next = right.next;
      if (right.next >= 0) nodes[right.next].prev = candidate.pos;
      right = {kMergedAway, -1, -1};

      // The two pairs that now include the merged token.
      if (left.prev >= 0) push_candidate(left.prev);
      if (left.next >= 0) push_candidate(candidate.pos);
    }

    // Node 0 is never merged away: merges keep the left node.
    for (int pos = 0; pos >= 0; pos = nodes[pos].next)
      ids.push_back(nodes[pos].token == kUnknownRun ? unk_id_ : nodes[pos].token);
  }

  std::unordered_map<char32_t, int> char_ids_;
  std::vector<Merge> merges_;                    // by rank
  std::unordered_map<uint64_t, int> merge_rank_;  // (left, right) -> rank
  int word_start_id_ = 0;
  int unk_id_ = 0;
  int vocab_size_ = 0;
};

}  // namespace

std::unique_ptr<Tokenizer> parse_yttm_tokenizer(std::string_view text, const std::string& origin) {
  ModelReader reader(text, origin);
  if (reader.at_end()) throw Error(origin + ": empty file, expected a YouTokenToMe BPE model");

  // Header. Each alphabet line takes at least 4 bytes ("c i\n") and each
  // rule at least 6 ("x y z\n"), so counts the file cannot hold are rejected
  // before anything is allocated for them.
  const int64_t n_chars = reader.integer("the number of characters");
  const int64_t n_rules = reader.integer("the number of merge rules");
  if (n_chars < 1 || n_chars > 0x110000)
    reader.fail("the number of characters (" + std::to_string(n_chars) + ") must be between 1 and 1114112");
  if (n_rules < 0) reader.fail("the number of merge rules (" + std::to_string(n_rules) + ") is negative");
  const auto room = static_cast<int64_t>(reader.remaining_bytes());
  if (n_chars > room / 4 || n_rules > (room - 4 * n_chars) / 6)
    reader.fail("the header (n_chars = " + std::to_string(n_chars) + ", n_rules = " + std::to_string(n_rules) +
                ") asks for more entries than the rest of the file (" + std::to_string(room) +
                " bytes) can hold: truncated or corrupt");

  struct CharEntry {
    int64_t code_point, id;
    int line;
  };
  std::vector<CharEntry> chars;
  chars.reserve(static_cast<size_t>(n_chars));
  for (int64_t i = 0; i < n_chars; ++i) {
    const int64_t code_point = reader.integer("a character's code point");
    const int line = reader.line();
    const int64_t id = reader.integer("a character's token id");
    chars.push_back({code_point, id, line});
  }

  struct RuleEntry {
    int64_t left, right, merged;
    int line;
  };
  std::vector<RuleEntry> rules;
  rules.reserve(static_cast<size_t>(n_rules));
  for (int64_t i = 0; i < n_rules; ++i) {
    const int64_t left = reader.integer("a merge rule's left token");
    const int line = reader.line();
    const int64_t right = reader.integer("a merge rule's right token");
    const int64_t merged = reader.integer("a merge rule's merged token");
    rules.push_back({left, right, merged, line});
  }

  const int64_t unk = reader.integer("the unk id");
  const int specials_line = reader.line();
  const int64_t pad = reader.integer("the pad id");
  const int64_t bos = reader.integer("the bos id");
  const int64_t eos = reader.integer("the eos id");
  if (!reader.at_end()) reader.fail("unexpected " + reader.next_token() + " after the special token ids");

  // Upstream's vocabulary: alphabet, merged tokens and the special tokens
  // that are present (id != -1). Every id must be distinct and below it.
  const int64_t vocab = n_chars + n_rules + 1 + (pad != -1) + (bos != -1) + (eos != -1);
  if (vocab > INT_MAX) reader.fail("vocabulary of " + std::to_string(vocab) + " tokens is too large");
  const std::string id_range = "0.." + std::to_string(vocab - 1);

  enum class Slot : uint8_t { kFree, kSpecial, kToken };
  std::vector<Slot> slots(static_cast<size_t>(vocab), Slot::kFree);

  if (unk < 0 || unk >= vocab)
    reader.fail_at(specials_line, "unk id " + std::to_string(unk) + " is out of range " + id_range);
  slots[unk] = Slot::kSpecial;
  for (auto [name, id] : {std::pair<const char*, int64_t>{"pad", pad}, {"bos", bos}, {"eos", eos}}) {
    if (id == -1) continue;
    if (id < 0 || id >= vocab)
      reader.fail_at(specials_line, std::string(name) + " id " + std::to_string(id) + " is out of range " +
                                        id_range + " (or -1 for none)");
    if (slots[id] != Slot::kFree)
      reader.fail_at(specials_line, std::string(name) + " id " + std::to_string(id) +
                                        " is the id of another special token");
    slots[id] = Slot::kSpecial;
  }

  auto claim_id = [&](int64_t id, int line, const std::string& owner) {
    if (id < 0 || id >= vocab)
      reader.fail_at(line, "id " + std::to_string(id) + " of " + owner + " is out of range " + id_range);
    if (slots[id] == Slot::kSpecial)
      reader.fail_at(line, "id " + std::to_string(id) + " of " + owner + " is a special token's id");
    if (slots[id] == Slot::kToken)
      reader.fail_at(line, "id " + std::to_string(id) + " of " + owner + " is a duplicate id (already used)");
    slots[id] = Slot::kToken;
  };

  std::unordered_map<char32_t, int> char_ids;
  char_ids.reserve(chars.size());
  for (const CharEntry& entry : chars) {
    if (!is_unicode_scalar(entry.code_point))
      reader.fail_at(entry.line, "code point " + std::to_string(entry.code_point) +
                                     " is not a Unicode scalar value (0..0x10FFFF without surrogates)");
    const auto c = static_cast<char32_t>(entry.code_point);
    claim_id(entry.id, entry.line, "character " + code_point_name(c));
    if (!char_ids.emplace(c, static_cast<int>(entry.id)).second)
      reader.fail_at(entry.line, "character " + code_point_name(c) + " is listed twice");
  }
  if (!char_ids.count(kWordStart))
    throw Error(origin + ": the alphabet lacks the word-start character U+2581 \"\xE2\x96\x81\"");

  // A rule may only merge tokens defined above it (characters or earlier
  // merges), which also rules out cycles.
  std::vector<Merge> merges;
  merges.reserve(rules.size());
  std::unordered_map<uint64_t, size_t> rule_of_pair;
  rule_of_pair.reserve(rules.size());
  for (size_t rank = 0; rank < rules.size(); ++rank) {
    const RuleEntry& rule = rules[rank];
    const std::string name = "merge rule " + std::to_string(rank + 1);
    for (int64_t operand : {rule.left, rule.right})
      if (operand < 0 || operand >= vocab || slots[operand] != Slot::kToken)
        reader.fail_at(rule.line, name + " uses token " + std::to_string(operand) +
                                      ", which is not defined (by the alphabet or an earlier rule) before it");
    claim_id(rule.merged, rule.line, "the token made by " + name);
    const Merge merge{static_cast<int>(rule.left), static_cast<int>(rule.right), static_cast<int>(rule.merged)};
    auto [it, inserted] = rule_of_pair.emplace(pair_key(merge.left, merge.right), rank);
    if (!inserted)
      reader.fail_at(rule.line, name + " merges the same pair as merge rule " + std::to_string(it->second + 1) +
                                    " (line " + std::to_string(rules[it->second].line) + ")");
    merges.push_back(merge);
  }

  return std::make_unique<YttmTokenizer>(std::move(char_ids), std::move(merges), static_cast<int>(unk),
                                         static_cast<int>(vocab));
}

std::unique_ptr<Tokenizer> load_yttm_tokenizer(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) throw Error(path + ": is a directory, expected a bpe.model file");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path + ": cannot open the YouTokenToMe model (" + std::strerror(errno) + ")");
  std::ostringstream contents;
  contents << in.rdbuf();
  if (in.bad()) throw Error(path + ": read error");
  return parse_yttm_tokenizer(contents.str(), path);
}

}  // namespace ruclip
