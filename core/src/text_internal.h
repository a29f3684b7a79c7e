// Pieces of text.cpp that the GPT-2 tokenizer (gpt2_tokenizer.cpp) shares.
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

}  // namespace ruclip::detail
