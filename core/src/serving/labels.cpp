#include "ruclip/labels.h"

#include <fstream>
#include <sstream>

#include "ruclip/error.h"
#include "ruclip/tokenizer.h"

namespace ruclip {

std::string trim(std::string_view text) {
  const char* ws = " \t\r\n\f\v";
  const size_t begin = text.find_first_not_of(ws);
  if (begin == std::string_view::npos) return "";
  return std::string(text.substr(begin, text.find_last_not_of(ws) - begin + 1));
}

std::vector<std::string> split_list(std::string_view text, char separator) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find(separator, start);
    if (end == std::string_view::npos) end = text.size();
    std::string item = trim(text.substr(start, end - start));
    if (!item.empty()) out.push_back(std::move(item));
    start = end + 1;
  }
  return out;
}

std::vector<std::string> parse_labels_file(std::string_view text, const std::string& origin) {
  std::vector<std::string> labels;
  size_t start = 0;
  for (int line_number = 1; start <= text.size(); ++line_number) {
    size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    const std::string line = trim(text.substr(start, end - start));
    start = end + 1;
    if (line.empty() || line[0] == '#') continue;
    try {
      decode_utf8(line);
    } catch (const Error& e) {
      throw Error(origin + ": line " + std::to_string(line_number) + ": " + e.what());
    }
    labels.push_back(line);
  }
  return labels;
}

std::vector<std::string> read_labels_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("labels-file '" + path + "': cannot open");
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) throw Error("labels-file '" + path + "': read error");
  return parse_labels_file(text.str(), "labels-file '" + path + "'");
}

}  // namespace ruclip
