#include "runtime/kernel_choice.h"
#include "runtime/block_timing.h"

#include <algorithm>
#include <iterator>
#include <cstdlib>
#include <map>
#include <optional>
#include <mutex>
#include <sstream>
#include <tuple>
#include <vector>

#include "ruclip/cpu.h"
#include "ruclip/error.h"

namespace ruclip::detail {
namespace {

ThreadPlan plan_for(LinearKernel kernel) {
  // LibTorch's float32 products on the CPU are OpenBLAS's: its own threads get the cores.
  return kernel == LinearKernel::kLibTorch ? ThreadPlan::kBlas : ThreadPlan::kOpenMp;
}

// What a block's products run on: one kernel for all four, or (int8-mixed)
// int8 with the MLP's output product in float32.
struct Candidate {
  LinearKernel kernel;
  LinearKernel mlp_output;
  Candidate(LinearKernel k) : kernel(k), mlp_output(k) {}  // NOLINT: one kernel is a candidate
  Candidate(LinearKernel k, LinearKernel m) : kernel(k), mlp_output(m) {}
  bool operator==(const Candidate& o) const { return kernel == o.kernel && mlp_output == o.mlp_output; }
};
const Candidate kInt8Mixed{LinearKernel::kOneDnnInt8, LinearKernel::kOneDnnF32};

// The names RUCLIP_FP32_KERNEL takes and the report shows.
std::string candidate_name(const Candidate& c) {
  if (c == kInt8Mixed) return "onednn-int8-mixed";
  return c.kernel == LinearKernel::kLibTorch ? "libtorch-blas" : linear_kernel_name(c.kernel);
}

// One image (a camera pipeline's frame at a time, where the kernels differ
// most) and a batch of 4 (close to a batch of 8's rate, at half the
// measuring time), weighted alike. The batch gets one call: a block over 4
// images is long enough to time on its own.
const std::vector<BlockLoad> kLoads = {{1, 4}, {4, 1}};

// GFLOP/s of each of `kernels` on the model's block (measure_block_gflops)
// under the thread plan it runs with: its rate on an equal amount of work in
// each load (the harmonic mean of its rates). Measured once per process and
// geometry (the machine doesn't change under a running process); the kernels
// not measured yet take turns, two rounds (A B A B) unless the first is
// decisive, each keeping its best per load: a burst of load from another
// process then hits all of them instead of deciding the choice (with a single
// measurement each, a machine busy with other work can make the slower kernel win).
std::vector<double> measured(const std::vector<Candidate>& kernels, int threads, const ModelConfig& config) {
  static std::mutex mutex;
  // kernels, threads, geometry, images
  using Key = std::tuple<int, int, int, int64_t, int64_t, int64_t, int64_t>;
  static std::map<Key, double> cache;
  std::lock_guard<std::mutex> guard(mutex);
  auto key = [&](const Candidate& kernel, const BlockLoad& load) {
    return Key(static_cast<int>(kernel.kernel), static_cast<int>(kernel.mlp_output), threads, config.vision_width,
               config.image_resolution / config.vision_patch_size, config.vision_heads, load.images);
  };
  std::vector<Candidate> todo;
  for (const Candidate& kernel : kernels)
    for (const BlockLoad& load : kLoads)
      if (!cache.count(key(kernel, load)) && std::find(todo.begin(), todo.end(), kernel) == todo.end())
        todo.push_back(kernel);
  auto rate = [&](const std::map<Key, double>& rates, const Candidate& kernel) {
    double seconds_per_gflop = 0;
    for (const BlockLoad& load : kLoads) seconds_per_gflop += 1.0 / rates.at(key(kernel, load));
    return static_cast<double>(kLoads.size()) / seconds_per_gflop;
  };
  std::map<Key, double> best;
  for (int round = 0; round < (todo.size() > 1 ? 2 : 1); ++round) {
    for (const Candidate& kernel : todo) {
      set_cpu_threads(threads, plan_for(kernel.kernel));
      const std::vector<double> rates = measure_block_gflops(config, kernel.kernel, kernel.mlp_output, kLoads);
      for (size_t i = 0; i < kLoads.size(); ++i) {
        double& b = best[key(kernel, kLoads[i])];
        b = std::max(b, rates[i]);
      }
    }
    // A lead of 1.5x is no burst of load (that would have to slow the faster
    // kernel by as much): the second round would only cost load time.
    std::vector<double> rates;
    for (const Candidate& kernel : todo) rates.push_back(rate(best, kernel));
    std::sort(rates.rbegin(), rates.rend());
    if (rates.size() > 1 && rates[0] > 1.5 * rates[1]) break;
  }
  if (!todo.empty()) restore_claimed_cpu_threads();  // models already running keep theirs
  for (const auto& [k, gflops] : best) cache.emplace(k, gflops);
  std::vector<double> out;
  for (const Candidate& kernel : kernels) out.push_back(rate(cache, kernel));
  return out;
}

std::string cpu_name() {
  const std::string& model = cpu_features().model;
  return model.empty() ? "this CPU" : model;
}

}  // namespace

torch::Device to_torch_device(const Device& device) {
  switch (device.kind) {
    case Device::Kind::kCpu: return torch::kCPU;
    case Device::Kind::kAuto:
      return torch::cuda::is_available() ? torch::Device(torch::kCUDA, 0) : torch::Device(torch::kCPU);
    case Device::Kind::kCuda: break;
  }
  const std::string name = device.str();
  if (!torch::cuda::is_available())
    throw Error("device '" + name + "': CUDA is not available (this LibTorch has no CUDA support or no GPU is visible)");
  if (device.index >= static_cast<int>(torch::cuda::device_count()))
    throw Error("device '" + name + "': only " + std::to_string(torch::cuda::device_count()) + " CUDA device(s) present");
  return torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(device.index));
}

void check_precision(Precision requested, const torch::Device& device) {
  const bool int8 = requested == Precision::kInt8 || requested == Precision::kInt8Mixed;
  if (device.is_cuda() && int8)
    throw Error(std::string("precision '") + precision_name(requested) + "': CPU only; on CUDA use fp16 or bf16");
  if (!device.is_cuda() && requested == Precision::kFp16)
    throw Error("precision 'fp16' needs a CUDA device; on the CPU use bf16, int8 or fp32");
  if (!device.is_cuda() && int8 && !onednn_available())
    throw Error(std::string("precision '") + precision_name(requested) +
                "' needs oneDNN (this build has none: install libdnnl-dev and rebuild)");
}

KernelPlan choose_kernels(Precision requested, const torch::Device& device, const ModelConfig& config,
                          int requested_threads) {
  check_precision(requested, device);  // what no device or build can run: named once, there
  KernelPlan plan;
  // Measured under the threads this model will get (the first model's, when one is loaded).
  const int num_threads = threads_for_claim(requested_threads);
  KernelReport& r = plan.report;
  r.requested = precision_name(requested);
  const CpuFeatures& cpu = cpu_features();
  r.cpu_model = cpu.model;
  r.cpu_features = cpu.names();
  if (cpu.isa_cap != "all") r.cpu_features.push_back("capped:" + cpu.isa_cap);

  if (device.is_cuda()) {
    switch (requested) {
      case Precision::kFp32:
        plan.dtype = torch::kFloat32;
        // fp32 means fp32: LibTorch lets cuDNN's convolutions use TF32 (10-bit
        // mantissa) by default, and an application may allow it for cuBLAS.
        // The switches are process-wide; the report says so.
        at::globalContext().setAllowTF32CuDNN(false);
        at::globalContext().setAllowTF32CuBLAS(false);
        r.warnings.push_back("precision fp32 on CUDA: TF32 turned off for cuBLAS and cuDNN in this process");
        break;
      case Precision::kBf16: plan.dtype = torch::kBFloat16; break;
      case Precision::kFp16:
      case Precision::kAuto: plan.dtype = torch::kFloat16; break;
      case Precision::kInt8:
      case Precision::kInt8Mixed: break;  // refused by check_precision
    }
    plan.precision = requested == Precision::kAuto ? Precision::kFp16 : requested;
    r.precision = precision_name(plan.precision);
    r.linear_kernel = "cuda";
    if (std::string w = claim_cpu_threads(requested_threads, ThreadPlan::kOpenMp); !w.empty()) {
      r.warnings.push_back(w);
      r.threads_warning = w;
    }
    return plan;
  }
  if (!cap_onednn_isa() && onednn_available())
    r.warnings.push_back("RUCLIP_MAX_CPU_ISA could not be passed on to oneDNN (it had already chosen its kernels)");

  auto rate = [&](const Candidate& kernel) {
    const double g = measured({kernel}, num_threads, config)[0];
    r.measured_gflops.emplace_back(candidate_name(kernel), g);
    return g;
  };

  // Exact float32: LibTorch's BLAS (OpenBLAS with its own threads) or oneDNN,
  // whichever runs the model's block faster here. Their products alone are
  // close, and which one leads depends on the CPU and its instruction set,
  // but the BLAS plan leaves the rest of the block one thread, which tends
  // to outweigh its products' lead. Measured all the same: the order is not
  // known for every CPU (a real Zen 3 is untested). (An OpenBLAS one-thread
  // sgemm per OpenMP thread is no way out: OpenBLAS serializes concurrent calls.)
  std::vector<LinearKernel> fp32_candidates;
  if (onednn_kernel_runs(LinearKernel::kOneDnnF32)) fp32_candidates.push_back(LinearKernel::kOneDnnF32);
  fp32_candidates.push_back(LinearKernel::kLibTorch);
  if (const char* forced = std::getenv("RUCLIP_FP32_KERNEL")) {  // tests and benchmarks: no measurement
    const std::string name = forced;
    std::optional<LinearKernel> kernel;
    for (LinearKernel k : fp32_candidates)
      if (name == candidate_name(k)) kernel = k;
    if (!kernel) {
      std::string known;
      for (LinearKernel k : fp32_candidates) known += std::string(known.empty() ? "" : ", ") + candidate_name(k);
      throw Error("RUCLIP_FP32_KERNEL='" + name + "': expected one of " + known + " (this build)");
    }
    fp32_candidates = {*kernel};
  }
  // auto considers int8 only where its weights keep 8 bits (AVX-512 VNNI,
  // AMX): with 7 (AVX2: Zen 3, Haswell..Skylake client) its top-1 agreement
  // with fp32 on the shipped model's held-out pairs falls below the 99 % bar;
  // there it considers int8-mixed, which holds it (docs/performance.md).
  std::optional<Candidate> auto_int8;  // the int8 candidate auto weighs, if any
  if (requested == Precision::kAuto && onednn_kernel_runs(LinearKernel::kOneDnnInt8)) {
    if (int8_weights_full_range())
      auto_int8 = Candidate(LinearKernel::kOneDnnInt8);
    else if (onednn_kernel_runs(LinearKernel::kOneDnnF32))
      auto_int8 = kInt8Mixed;
  }
  const bool auto_weighs_int8 = auto_int8 && !(*auto_int8 == kInt8Mixed);  // full int8
  std::optional<LinearKernel> fp32_kernel;
  double fp32_rate = 0;
  auto fastest_fp32 = [&] {
    if (fp32_kernel) return *fp32_kernel;
    // One candidate (forced, or no oneDNN): nothing to measure, unless auto
    // weighs it against int8.
    if (fp32_candidates.size() == 1 && !auto_int8) return *(fp32_kernel = fp32_candidates[0]);
    std::vector<Candidate> contenders(fp32_candidates.begin(), fp32_candidates.end());  // measured together, taking turns
    if (auto_int8) contenders.push_back(*auto_int8);
    measured(contenders, num_threads, config);
    for (LinearKernel k : fp32_candidates) {
      const double g = rate(k);
      if (g > fp32_rate) fp32_rate = g, fp32_kernel = k;
    }
    return *fp32_kernel;
  };
  const bool bf16_native = cpu.native_bf16() && onednn_kernel_runs(LinearKernel::kOneDnnBf16);
  Precision precision = requested;
  if (requested == Precision::kAuto) {
    if (bf16_native && auto_weighs_int8) {
      // bf16 or int8, whichever runs the block faster here, int8 only by a
      // margin worth its larger error (both within the bar: README). Their
      // order is the machine's: AVX-512 VNNI, AVX-512 BF16 and AMX each speed
      // up one of them by its own amount.
      measured({LinearKernel::kOneDnnBf16, LinearKernel::kOneDnnInt8}, num_threads, config);  // taking turns
      const double bf16_rate = rate(LinearKernel::kOneDnnBf16);
      precision = rate(LinearKernel::kOneDnnInt8) > 1.1 * bf16_rate ? Precision::kInt8 : Precision::kBf16;
    } else if (bf16_native) {
      precision = Precision::kBf16;
    } else if (auto_int8) {
      // int8 (or int8-mixed) where it beats float32 here by a margin worth its (measured, small) error.
      fastest_fp32();
      precision = rate(*auto_int8) <= 1.2 * fp32_rate ? Precision::kFp32
                  : auto_weighs_int8                  ? Precision::kInt8
                                                      : Precision::kInt8Mixed;
    } else {
      precision = Precision::kFp32;
    }
  }
  if (precision == Precision::kBf16 && !bf16_native) {
    std::ostringstream why;
    why << "precision 'bf16': " << cpu_name()
        << (!onednn_available() ? ": built without oneDNN"
            : !cpu.native_bf16() ? " has no native bf16 instructions (AVX-512 BF16 or AMX), where bf16 runs many times "
                                   "slower than fp32"
                                 : ": oneDNN's bf16 product doesn't run beside this LibTorch")
        << "; running fp32 instead (int8 is the reduced precision for this CPU)";
    r.warnings.push_back(why.str());
    precision = Precision::kFp32;
  }
  if ((precision == Precision::kInt8 || precision == Precision::kInt8Mixed) &&
      !onednn_kernel_runs(LinearKernel::kOneDnnInt8))
    throw Error(std::string("precision '") + precision_name(precision) +
                "': oneDNN's int8 product doesn't run beside this LibTorch on this CPU (docs/building.md); use fp32 or "
                "bf16");
  if (precision == Precision::kInt8Mixed && !onednn_kernel_runs(LinearKernel::kOneDnnF32))
    throw Error("precision 'int8-mixed': oneDNN's float32 product doesn't run beside this LibTorch on this CPU "
                "(docs/building.md); use int8 or fp32");

  LayerKernels& k = plan.kernels;
  switch (precision) {
    case Precision::kBf16:
      k = LayerKernels::all(LinearKernel::kOneDnnBf16);
      plan.dtype = torch::kBFloat16;
      break;
    case Precision::kInt8:
    case Precision::kInt8Mixed:
      k.blocks = LinearKernel::kOneDnnInt8;
      k.mlp_output = precision == Precision::kInt8Mixed ? kInt8Mixed.mlp_output : k.blocks;
      // The patch embedding's product: bf16 where native (twice float32's
      // rate there, its error as small as bf16's), else float32.
      k.patch_embedding = bf16_native ? LinearKernel::kOneDnnBf16 : LinearKernel::kOneDnnF32;
      break;
    default:
      k = LayerKernels::all(fastest_fp32());
      break;
  }
  plan.precision = precision;
  plan.threads = plan_for(k.blocks);
  r.precision = precision_name(precision);
  r.linear_kernel = candidate_name({k.blocks, k.mlp_output});
  if (std::string w = claim_cpu_threads(requested_threads, plan.threads); !w.empty()) {
    r.warnings.push_back(w);
    r.threads_warning = w;
  }
  return plan;
}

}  // namespace ruclip::detail
