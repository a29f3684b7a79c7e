// Label lists as users write them: "кошка; собака" in a property or option,
// or a labels file with one label per line.
#pragma once
#include <string>
#include <string_view>
#include <vector>

namespace ruclip {

// Without leading and trailing ASCII whitespace (Python's str.strip() for
// the whitespace labels realistically carry).
std::string trim(std::string_view text);

// "a; b;;c" -> {"a", "b", "c"}: items trimmed, empty ones dropped.
std::vector<std::string> split_list(std::string_view text, char separator = ';');

// A labels file's contents: one label per line, trimmed; blank lines and lines
// starting with '#' skipped. Throws ruclip::Error naming `origin` and the line
// for text that is not UTF-8.
std::vector<std::string> parse_labels_file(std::string_view text, const std::string& origin);
// Reads and parses `path`; the error names the file.
std::vector<std::string> read_labels_file(const std::string& path);

}  // namespace ruclip
