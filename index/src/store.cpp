#include "ruclip/index/store.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <regex>

#include "ruclip/error.h"
#include "stores.h"

namespace ruclip::index {

bool Store::is_postgresql(const std::string& location) {
  return location.rfind("postgresql://", 0) == 0 || location.rfind("postgres://", 0) == 0;
}

std::string Store::printable(const std::string& location) {
  if (!is_postgresql(location)) return location;
  // scheme://user:password@host...: the password never reaches a message.
  static const std::regex password(R"(^(postgres(ql)?://[^:/@]*):[^@/]*@)");
  std::string out = std::regex_replace(location, password, "$1:***@");
  static const std::regex query_password(R"(([?&]password=)[^&]*)");
  return std::regex_replace(out, query_password, "$1***");
}

std::unique_ptr<Store> Store::open(const std::string& location, bool create) {
  if (location.empty()) throw Error("index location is empty: give a file path or a postgresql:// URI");
  if (is_postgresql(location)) return open_postgresql(location, printable(location), create);
  return open_sqlite(location, create);
}

std::optional<Source> Store::file(const std::string& path) {
  for (Source& s : sources())
    if (s.kind == Source::Kind::kFile && s.name == path) return std::move(s);
  return std::nullopt;
}

int64_t wall_clock_now() {
  return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string iso8601(int64_t wall_time) {
  if (wall_time == kNoWallTime) return "";
  const int64_t seconds = wall_time >= 0 ? wall_time / 1000000 : (wall_time - 999999) / 1000000;
  const int64_t micros = wall_time - seconds * 1000000;
  const std::time_t t = static_cast<std::time_t>(seconds);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(micros / 1000));
  return buf;
}

int64_t parse_time(const std::string& text, int64_t now, const std::string& what) {
  std::smatch m;
  static const std::regex age(R"(^(\d+(?:\.\d+)?)(s|m|h|d)$)");
  if (std::regex_match(text, m, age)) {
    const double n = std::stod(m[1]);
    const double unit = m[2] == "s" ? 1 : m[2] == "m" ? 60 : m[2] == "h" ? 3600 : 86400;
    return now - static_cast<int64_t>(n * unit * 1e6);
  }
  static const std::regex iso(
      R"(^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,6}))?)?(Z|[+-]\d{2}:?\d{2})?)?$)");
  if (!std::regex_match(text, m, iso))
    throw Error(what + " '" + text + "': expected an ISO 8601 time (2026-12-07T10:00:00Z) or an age (90s, 15m, 2h, 7d)");
  std::tm tm{};
  tm.tm_year = std::stoi(m[1]) - 1900;
  tm.tm_mon = std::stoi(m[2]) - 1;
  tm.tm_mday = std::stoi(m[3]);
  tm.tm_hour = m[4].matched ? std::stoi(m[4]) : 0;
  tm.tm_min = m[5].matched ? std::stoi(m[5]) : 0;
  tm.tm_sec = m[6].matched ? std::stoi(m[6]) : 0;
  if (tm.tm_mon > 11 || tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23 || tm.tm_min > 59 || tm.tm_sec > 60)
    throw Error(what + " '" + text + "': not a valid date and time");
  int64_t seconds = static_cast<int64_t>(timegm(&tm));
  if (m[8].matched && m[8] != "Z") {  // the offset: local = UTC + offset
    std::string off = m[8];
    off.erase(std::remove(off.begin(), off.end(), ':'), off.end());
    const int minutes = std::stoi(off.substr(1, 2)) * 60 + std::stoi(off.substr(3, 2));
    seconds -= (off[0] == '-' ? -1 : 1) * minutes * 60;
  }
  int64_t micros = 0;
  if (m[7].matched) {
    std::string frac = m[7];
    frac.resize(6, '0');
    micros = std::stoll(frac);
  }
  return seconds * 1000000 + micros;
}

}  // namespace ruclip::index
