// Tables of images with texts (captions or labels): CSV with a header row, or
// JSON lines. Used by `ruclip train` and `ruclip eval`.
// Library: ruclip_tools (for the `ruclip` command and the tests), not the inference library.
#pragma once
#include <string>
#include <vector>

namespace ruclip {

struct ImageText {
  std::string file;  // resolved: relative paths are taken from the table's folder
  std::string text;
};

// Reads `path` (.csv, or .jsonl/.json for JSON lines), or, when it is a
// folder, the first of captions.csv / captions.jsonl / labels.csv in it.
// The file column is the first of `file_columns` present, the text column the
// first of `text_columns`. Throws ruclip::Error naming the file and line.
std::vector<ImageText> read_image_texts(const std::string& path, const std::vector<std::string>& file_columns,
                                        const std::vector<std::string>& text_columns);

// One CSV record per line, RFC 4180 quoting ("" inside quotes); throws on an
// unterminated quote. Exposed for tests.
std::vector<std::string> split_csv_line(const std::string& line);

}  // namespace ruclip
