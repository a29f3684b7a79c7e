// How a model is asked to run (device, precision, threads) and what it
// chose on this machine (KernelReport): plain values, parsed from the
// user's strings, shared by the model, the elements and the CLI.
#pragma once
#include <string>
#include <utility>
#include <vector>

namespace ruclip {

// Where the towers run. Parsed once from the user's string ("cpu", "cuda",
// "cuda:N", "auto"); "auto" becomes a CUDA device when one is visible.
struct Device {
  enum class Kind { kCpu, kCuda, kAuto };
  Kind kind = Kind::kCpu;
  int index = 0;  // kCuda only
  // Throws ruclip::Error naming the value: "device 'gpu': expected cpu, cuda, cuda:N or auto".
  static Device parse(const std::string& name);
  std::string str() const;  // "cpu", "cuda:0", "auto"
};

// The arithmetic of both towers (embeddings come back as float32 either way).
//  - kFp32: exact (upstream's numbers within 1e-4).
//  - kBf16: bfloat16 products; fast only where the hardware has them (CPUs
//    with AVX-512 BF16 or AMX, GPUs). Asked for on a CPU without them, the
//    model runs the fastest exact path instead and says why (Model::kernels()).
//  - kFp16: CUDA only.
//  - kInt8: CPU, linear layers dynamically quantized (weights int8 per output
//    channel, activations per call), through oneDNN's int8 kernels.
//  - kInt8Mixed: CPU, int8 except each block's MLP output product (c_proj),
//    which stays fp32: the int8 for CPUs without AVX-512 VNNI or AMX, where
//    int8 weights keep 7 bits and full int8 falls below the accuracy bar.
//  - kAuto: the fastest of these whose accuracy was measured to hold (README,
//    "Speed"), by a measurement at load: on CPUs with AVX-512 VNNI or AMX,
//    int8 where it beats bf16 by 1.1x (CPUs with native bf16) or fp32 by
//    1.2x; on others, int8-mixed where it beats fp32 by 1.2x; else bf16 where
//    native, else fp32; fp16 on CUDA.
enum class Precision { kFp32, kBf16, kFp16, kInt8, kInt8Mixed, kAuto };
// "fp32", "bf16", "fp16", "int8", "int8-mixed", "auto"; throws ruclip::Error naming the value.
Precision parse_precision(const std::string& name);
const char* precision_name(Precision precision);

struct ModelOptions {
  Device device;
  int num_threads = 0;  // 0: all online CPUs. Process-wide: see set_process_cpu_threads.
  Precision precision = Precision::kFp32;
};

// What Model::load chose for this machine, for logs and `ruclip bench`.
struct KernelReport {
  std::string requested;      // the precision asked for, e.g. "bf16"
  std::string precision;      // the one running, e.g. "fp32"
  std::string linear_kernel;  // e.g. "onednn-f32", "libtorch-blas", "onednn-int8", "cuda"
  std::string cpu_model;      // CPUID brand string
  std::vector<std::string> cpu_features;
  // GFLOP/s of one of the model's image-tower blocks per candidate kernel, as
  // measured at load (1 and 4 images, weighted alike); empty when nothing was measured.
  std::vector<std::pair<std::string, double>> measured_gflops;
  std::vector<std::string> warnings;  // e.g. why bf16 was not used
  // The one of `warnings` about this model's num-threads not being applied
  // ("" when it got them): a user of an already loaded model gets the
  // kernel warnings but a threads warning of its own.
  std::string threads_warning;
  std::string summary() const;        // one line for a log
};

// CPU threads are process-wide: every model of the process computes on
// LibTorch's OpenMP pool (and, with the libtorch-blas kernel, OpenBLAS's).
// The first model loaded sets them from its ModelOptions::num_threads; while
// it or any later model is alive, a model asking for another count runs with
// the current one and says so in kernels().warnings (no model changes the
// threads under another). An application may set them on purpose for every
// model, now and later (0: all online CPUs); throws ruclip::Error below 0.
void set_process_cpu_threads(int threads);
int process_cpu_threads();  // what models run with now (or the next model would get)

}  // namespace ruclip
