// Parsing and naming what options.h declares.
#include "ruclip/options.h"

#include <algorithm>
#include <cctype>
#include <sstream>

#include "ruclip/error.h"

namespace ruclip {
namespace {

std::string device_error(const std::string& name) {
  return "device '" + name + "': expected cpu, cuda, cuda:N or auto";
}

}  // namespace

Device Device::parse(const std::string& name) {
  Device d;
  if (name == "cpu") return d;
  if (name == "auto") {
    d.kind = Kind::kAuto;
    return d;
  }
  if (name != "cuda" && name.rfind("cuda:", 0) != 0) throw Error(device_error(name));
  d.kind = Kind::kCuda;
  if (name.size() > 4) {
    const std::string digits = name.substr(5);
    if (digits.empty() || digits.size() > 3 || !std::all_of(digits.begin(), digits.end(), ::isdigit))
      throw Error(device_error(name));
    d.index = std::stoi(digits);
  }
  return d;
}

std::string Device::str() const {
  switch (kind) {
    case Kind::kCpu: return "cpu";
    case Kind::kAuto: return "auto";
    case Kind::kCuda: break;
  }
  return "cuda:" + std::to_string(index);
}

Precision parse_precision(const std::string& name) {
  for (Precision p : {Precision::kFp32, Precision::kBf16, Precision::kFp16, Precision::kInt8, Precision::kInt8Mixed,
                      Precision::kAuto})
    if (name == precision_name(p)) return p;
  throw Error("precision '" + name + "': expected fp32, bf16, fp16, int8, int8-mixed or auto");
}

const char* precision_name(Precision precision) {
  switch (precision) {
    case Precision::kFp32: return "fp32";
    case Precision::kBf16: return "bf16";
    case Precision::kFp16: return "fp16";
    case Precision::kInt8: return "int8";
    case Precision::kInt8Mixed: return "int8-mixed";
    case Precision::kAuto: return "auto";
  }
  return "?";
}

std::string KernelReport::summary() const {
  std::ostringstream out;
  out << "precision " << precision << " (asked " << requested << "), linear layers on " << linear_kernel;
  if (!measured_gflops.empty()) {
    out << " (measured";
    for (size_t i = 0; i < measured_gflops.size(); ++i)
      out << (i ? ", " : " ") << measured_gflops[i].first << " " << static_cast<int>(measured_gflops[i].second + 0.5)
          << " GFLOP/s";
    out << ")";
  }
  out << "; CPU " << (cpu_model.empty() ? "unknown" : cpu_model) << ":";
  for (const auto& f : cpu_features) out << " " << f;
  return out.str();
}

}  // namespace ruclip
