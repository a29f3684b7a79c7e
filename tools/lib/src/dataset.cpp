#include "ruclip/tools/dataset.h"

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "ruclip/error.h"

namespace ruclip {
namespace fs = std::filesystem;

std::vector<std::string> split_csv_line(const std::string& line) {
  std::vector<std::string> fields(1);
  bool quoted = false;
  for (size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    if (quoted) {
      if (c == '"' && i + 1 < line.size() && line[i + 1] == '"') {
        fields.back() += '"';
        ++i;
      } else if (c == '"') {
        quoted = false;
      } else {
        fields.back() += c;
      }
    } else if (c == '"') {
      quoted = true;
    } else if (c == ',') {
      fields.emplace_back();
    } else if (c != '\r' || i + 1 != line.size()) {
      fields.back() += c;
    }
  }
  if (quoted) throw Error("unterminated quote");
  return fields;
}

namespace {

int find_column(const std::vector<std::string>& header, const std::vector<std::string>& names) {
  for (const auto& name : names)
    for (size_t i = 0; i < header.size(); ++i)
      if (header[i] == name) return static_cast<int>(i);
  return -1;
}

std::string join(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : " or ") + n;
  return out;
}

std::string resolve(const fs::path& base, const std::string& file) {
  const fs::path p(file);
  return (p.is_absolute() ? p : base / p).lexically_normal().string();
}

}  // namespace

std::vector<ImageText> read_image_texts(const std::string& path, const std::vector<std::string>& file_columns,
                                        const std::vector<std::string>& text_columns) {
  fs::path table = path;
  if (fs::is_directory(table)) {
    fs::path found;
    for (const char* name : {"captions.csv", "captions.jsonl", "labels.csv"})
      if (fs::exists(table / name)) {
        found = table / name;
        break;
      }
    if (found.empty()) throw Error(path + ": no captions.csv, captions.jsonl or labels.csv in this folder");
    table = found;
  }
  std::ifstream in(table, std::ios::binary);
  if (!in) throw Error(table.string() + ": cannot open");
  const fs::path base = table.parent_path();
  const std::string ext = table.extension().string();
  const bool jsonl = ext == ".jsonl" || ext == ".json";

  std::vector<ImageText> out;
  std::string line;
  int file_col = -1, text_col = -1;
  for (int number = 1; std::getline(in, line); ++number) {
    const std::string where = table.string() + ": line " + std::to_string(number);
    if (line.empty() || line == "\r") continue;
    if (jsonl) {
      nlohmann::json row;
      try {
        row = nlohmann::json::parse(line);
      } catch (const nlohmann::json::exception& e) {
        throw Error(where + ": not valid JSON (" + e.what() + ")");
      }
      auto get = [&](const std::vector<std::string>& names) -> std::string {
        if (row.is_object())
          for (const auto& n : names)
            if (row.contains(n) && row[n].is_string()) return row[n].get<std::string>();
        throw Error(where + ": needs a string field " + join(names));
      };
      const std::string file = get(file_columns);
      out.push_back({resolve(base, file), get(text_columns)});
      continue;
    }
    std::vector<std::string> fields;
    try {
      fields = split_csv_line(line);
    } catch (const Error& e) {
      throw Error(where + ": " + e.what());
    }
    if (file_col < 0) {  // the header row
      file_col = find_column(fields, file_columns);
      text_col = find_column(fields, text_columns);
      if (file_col < 0 || text_col < 0)
        throw Error(where + ": the header needs columns " + join(file_columns) + " and " + join(text_columns));
      continue;
    }
    if (static_cast<int>(fields.size()) <= std::max(file_col, text_col))
      throw Error(where + ": has " + std::to_string(fields.size()) + " fields, fewer than the header");
    out.push_back({resolve(base, fields[file_col]), fields[text_col]});
  }
  if (out.empty()) throw Error(table.string() + ": no rows");
  return out;
}

}  // namespace ruclip
