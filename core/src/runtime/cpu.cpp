#include "ruclip/cpu.h"

#include <cstdlib>
#include <cstring>

#include "ruclip/error.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#define RUCLIP_X86 1
#else
#define RUCLIP_X86 0
#endif

namespace ruclip {
namespace {

#if RUCLIP_X86
struct Regs {
  unsigned a = 0, b = 0, c = 0, d = 0;
};

Regs cpuid(unsigned leaf, unsigned sub = 0) {
  Regs r;
  if (!__get_cpuid_count(leaf, sub, &r.a, &r.b, &r.c, &r.d)) r = Regs{};
  return r;
}

unsigned long long xgetbv0() {
  unsigned lo = 0, hi = 0;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return (static_cast<unsigned long long>(hi) << 32) | lo;
}

bool bit(unsigned value, int n) { return (value >> n) & 1u; }

CpuFeatures detect() {
  CpuFeatures f;
  const unsigned max_leaf = static_cast<unsigned>(__get_cpuid_max(0, nullptr));
  const Regs l1 = cpuid(1);
  // The OS must save the wider registers, else the instructions fault.
  unsigned long long xcr0 = bit(l1.c, 27) ? xgetbv0() : 0;
  const bool os_avx = (xcr0 & 0x6) == 0x6;
  const bool os_avx512 = os_avx && (xcr0 & 0xe0) == 0xe0;
  const bool os_amx = (xcr0 & 0x60000) == 0x60000;
  const bool avx = os_avx && bit(l1.c, 28);
  f.fma = avx && bit(l1.c, 12);
  f.f16c = avx && bit(l1.c, 29);
  if (max_leaf >= 7) {
    const Regs l7 = cpuid(7, 0), l71 = cpuid(7, 1);
    f.avx2 = avx && bit(l7.b, 5);
    f.avx512f = os_avx512 && bit(l7.b, 16);
    f.avx512dq = f.avx512f && bit(l7.b, 17);
    f.avx512bw = f.avx512f && bit(l7.b, 30);
    f.avx512vl = f.avx512f && bit(l7.b, 31);
    f.avx512_vnni = f.avx512f && bit(l7.c, 11);
    f.avx512_bf16 = f.avx512f && bit(l71.a, 5);
    f.avx_vnni = f.avx2 && bit(l71.a, 4);
    f.amx_bf16 = os_amx && bit(l7.d, 22) && bit(l7.d, 24);
    f.amx_int8 = os_amx && bit(l7.d, 25) && bit(l7.d, 24);
  }
  if (static_cast<unsigned>(__get_cpuid_max(0x80000000u, nullptr)) >= 0x80000004u) {
    char brand[49] = {};
    for (unsigned i = 0; i < 3; ++i) {
      const Regs r = cpuid(0x80000002 + i);
      std::memcpy(brand + 16 * i, &r, 16);
    }
    f.model = brand;
    const size_t first = f.model.find_first_not_of(' '), last = f.model.find_last_not_of(' ');
    f.model = first == std::string::npos ? "" : f.model.substr(first, last - first + 1);
  }
  return f;
}
#else
CpuFeatures detect() { return CpuFeatures{}; }
#endif

// The levels of RUCLIP_MAX_CPU_ISA, smallest first, as oneDNN names them.
const char* const kLevels[] = {"sse41", "avx2", "avx512_core", "avx512_core_vnni", "avx512_core_bf16",
                               "avx512_core_amx"};

void apply_cap(CpuFeatures& f, const std::string& cap) {
  int level = -1;
  for (int i = 0; i < 6; ++i)
    if (cap == kLevels[i]) level = i;
  if (level < 0) {
    std::string known;
    for (const char* l : kLevels) known += std::string(known.empty() ? "" : ", ") + l;
    throw Error("RUCLIP_MAX_CPU_ISA='" + cap + "': expected all, " + known);
  }
  if (level < 5) f.amx_bf16 = f.amx_int8 = false;
  if (level < 4) f.avx512_bf16 = false;
  if (level < 3) f.avx512_vnni = false;
  if (level < 2) f.avx512f = f.avx512bw = f.avx512vl = f.avx512dq = f.avx_vnni = false;
  if (level < 1) f.avx2 = f.fma = f.f16c = false;
}

CpuFeatures detect_capped() {
  CpuFeatures f = detect();
  const char* env = std::getenv("RUCLIP_MAX_CPU_ISA");
  std::string cap = env ? env : "";
  for (char& ch : cap) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  if (cap.empty() || cap == "all") {
    f.isa_cap = "all";
  } else {
    apply_cap(f, cap);
    f.isa_cap = cap;
  }
  return f;
}

}  // namespace

std::vector<std::string> CpuFeatures::names() const {
  std::vector<std::string> out;
  const std::pair<const char*, bool> all[] = {
      {"avx2", avx2},           {"fma", fma},           {"f16c", f16c},         {"avx512f", avx512f},
      {"avx512dq", avx512dq},   {"avx512bw", avx512bw}, {"avx512vl", avx512vl}, {"avx512_vnni", avx512_vnni},
      {"avx_vnni", avx_vnni},   {"avx512_bf16", avx512_bf16}, {"amx_bf16", amx_bf16}, {"amx_int8", amx_int8}};
  for (const auto& [name, present] : all)
    if (present) out.push_back(name);
  return out;
}

std::string CpuFeatures::onednn_isa() const {
  if (amx_bf16 && amx_int8 && avx512_bf16) return "AVX512_CORE_AMX";
  if (avx512_core() && avx512_bf16 && avx512_vnni) return "AVX512_CORE_BF16";
  if (avx512_core() && avx512_vnni) return "AVX512_CORE_VNNI";
  if (avx512_core()) return "AVX512_CORE";
  if (avx2 && fma) return "AVX2";
  return "SSE41";
}

const CpuFeatures& cpu_features() {
  // A bad cap throws on every call (the static is never initialized then).
  static const CpuFeatures features = detect_capped();
  return features;
}

}  // namespace ruclip
