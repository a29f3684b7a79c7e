// Pieces the tokenizers share (text.cpp, yttm_tokenizer.cpp, gpt2_tokenizer.cpp).
// Internal: not installed.
#pragma once
#include <string>

namespace ruclip::detail {

// Python's str.isspace() (what str.split() and str.strip() remove): Unicode
// bidirectional class WS, B or S, or category Zs. It differs from the
// White_Space property (the regex module's \s) in U+001C..U+001F.
bool is_python_space(char32_t c);

// Appends the UTF-8 form of the Unicode scalar value `c`.
void append_utf8(std::string& out, char32_t c);

// The BPE merge loops of both BPE tokenizers work on a word as a doubly
// linked list over a vector (a merge is O(1), positions keep their order)
// with a min-heap of possible merges.
struct BpeNode {
  int token, prev, next;
};
// A possible merge of the node at `pos` with its successor: the lowest rank
// (merge rule index) first and, within a rank, the leftmost position.
struct BpeCandidate {
  int rank, pos;
  bool operator>(const BpeCandidate& other) const {
    return rank != other.rank ? rank > other.rank : pos > other.pos;
  }
};

}  // namespace ruclip::detail
