// What this CPU can run, read once per process from CPUID (and the OS's
// XSAVE state, so an instruction set the kernel hasn't enabled counts as
// absent). Every kernel choice in the core starts here: nothing assumes a
// feature the build machine had.
//
// RUCLIP_MAX_CPU_ISA caps what is reported, the way oneDNN's
// ONEDNN_MAX_CPU_ISA caps oneDNN (and the core passes the same cap on to
// oneDNN): `sse41` (portable code only), `avx2` (a Zen 3 / Haswell-class
// machine: AVX2 + FMA, no AVX-512), `avx512_core`, `avx512_core_vnni`,
// `avx512_core_bf16`, `avx512_core_amx`; unset or `all`: everything found.
// Tests and benchmarks use it to run the paths of a smaller CPU on a bigger one.
// Thread-safe: computed on first call.
#pragma once
#include <string>
#include <vector>

namespace ruclip {

struct CpuFeatures {
  std::string model;  // brand string, e.g. "AMD EPYC 7B13"
  bool avx2 = false, fma = false, f16c = false;
  bool avx512f = false, avx512bw = false, avx512vl = false, avx512dq = false;
  bool avx512_vnni = false, avx_vnni = false;
  bool avx512_bf16 = false, amx_bf16 = false, amx_int8 = false;
  std::string isa_cap;  // RUCLIP_MAX_CPU_ISA as applied ("all" when unset)

  // AVX-512 F+BW+VL+DQ: what oneDNN calls avx512_core.
  bool avx512_core() const { return avx512f && avx512bw && avx512vl && avx512dq; }
  // bf16 products in hardware (AVX-512 BF16 or AMX): bf16 is fast only here.
  bool native_bf16() const { return avx512_bf16 || amx_bf16; }
  // The names of the features present, e.g. {"avx2", "fma", "avx512f", ...}.
  std::vector<std::string> names() const;
  // oneDNN's name of the largest ISA allowed, e.g. "AVX2", "AVX512_CORE_BF16".
  std::string onednn_isa() const;
};

// This CPU, after RUCLIP_MAX_CPU_ISA. Throws ruclip::Error for an unknown cap.
const CpuFeatures& cpu_features();

}  // namespace ruclip
