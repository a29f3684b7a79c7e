// ruclip-gpu-bench: what the model does on a CUDA GPU, written as one JSON
// document (scripts/gpu-check.sh puts it in the folder the GPU machine hands
// back; docs/performance.md reads it).
//
//   ruclip-gpu-bench --out FILE [--device cuda|cpu] [--quick]
//
// Each figure is timed with the device synchronized before the clock starts
// and before it stops, inputs already on the device unless the figure is about
// moving them; the first call of each shape is a warm-up and is not counted.
// --device cpu --quick runs every part on the CPU with tiny sizes: the dry run
// (it checks the program, not the machine).
#include <ATen/Context.h>
#include <torch/torch.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "nn/clip_weights.h"
#include "nn/state_dict.h"
#include "ruclip/checkpoint.h"
#include "ruclip/config.h"
#include "ruclip/error.h"
#include "ruclip/image.h"
#include "ruclip/model.h"
#include "ruclip/scheduler.h"
#include "ruclip/tools/benchmark.h"
#include "ruclip/tools/random_frames.h"
#ifdef RUCLIP_HAVE_CUDA_PREPROCESS
#include "image/cuda/preprocess_cuda.h"
#endif

namespace {

using nlohmann::ordered_json;
using Clock = std::chrono::steady_clock;

struct Settings {
  torch::Device device = torch::kCUDA;
  bool quick = false;
  std::string tokenizer;  // a bpe.model for the scheduler's model folder
};

void sync(const torch::Device& device) {
  if (device.is_cuda()) torch::cuda::synchronize(device.index());
}

// Seconds per call of `work`: one warm-up, then repeats until `budget` seconds
// or `max_reps` calls (at least one).
double seconds_per_call(const torch::Device& device, const std::function<void()>& work, double budget,
                        int max_reps = 20) {
  work();
  sync(device);
  int reps = 0;
  const auto start = Clock::now();
  double spent = 0;
  do {
    work();
    ++reps;
    sync(device);
    spent = std::chrono::duration<double>(Clock::now() - start).count();
  } while (spent < budget && reps < max_reps);
  return spent / reps;
}

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * (v.size() - 1) + 0.5))];
}

ordered_json machine(const Settings& s) {
  ordered_json m = {{"torch", TORCH_VERSION}, {"device", s.device.str()}};
  if (s.device.is_cuda()) {
    m["cuda_devices"] = torch::cuda::device_count();
    m["cudnn"] = torch::cuda::cudnn_is_available();
  }
  return m;
}

// The ceilings: dense products at n x n x n, and host-to-device copies.
ordered_json ceilings(const Settings& s) {
  ordered_json out;
  const int64_t n = s.quick ? 128 : 8192;
  for (auto [name, dtype] : {std::pair{"fp16", torch::kFloat16}, std::pair{"bf16", torch::kBFloat16}}) {
    const auto options = torch::TensorOptions().device(s.device).dtype(dtype);
    const torch::Tensor a = torch::randn({n, n}, options), b = torch::randn({n, n}, options);
    torch::Tensor c;
    const double t = seconds_per_call(s.device, [&] { c = torch::mm(a, b); }, s.quick ? 0.05 : 1.0);
    out["gemm_" + std::string(name)] = {{"n", n}, {"tflops", 2.0 * n * n * n / t / 1e12}};
  }
  if (s.device.is_cuda()) {
    const int64_t bytes = int64_t{256} << 20;
    const torch::Tensor device_buffer = torch::empty({bytes}, torch::TensorOptions().device(s.device).dtype(torch::kUInt8));
    for (bool pinned : {true, false}) {
      const torch::Tensor host = torch::ones({bytes}, torch::TensorOptions().dtype(torch::kUInt8).pinned_memory(pinned));
      const double t = seconds_per_call(s.device, [&] { device_buffer.copy_(host, /*non_blocking=*/pinned); }, 1.0);
      out[pinned ? "h2d_pinned" : "h2d_pageable"] = {{"bytes", bytes}, {"gbytes_per_s", bytes / t / 1e9}};
    }
  }
  return out;
}

struct PrecisionCase {
  const char* name;
  torch::ScalarType dtype;
  bool tf32;
};
const PrecisionCase kPrecisions[] = {{"fp32", torch::kFloat32, false},
                                     {"tf32", torch::kFloat32, true},
                                     {"fp16", torch::kFloat16, false},
                                     {"bf16", torch::kBFloat16, false}};

void allow_tf32(bool on) {
  at::globalContext().setAllowTF32CuBLAS(on);
  at::globalContext().setAllowTF32CuDNN(on);
}

// The towers with random weights of a published geometry, pixels and ids
// already on the device: images/s and TFLOP/s per batch and precision,
// texts/s at batch 64.
ordered_json towers(const Settings& s, const std::string& geometry) {
  ordered_json out = ordered_json::array();
  const ruclip::ModelConfig config = ruclip::published_geometry(geometry);
  const std::vector<int64_t> batches = s.quick ? std::vector<int64_t>{1} : std::vector<int64_t>{1, 8, 64, 256};
  c10::InferenceMode guard;
  for (const PrecisionCase& p : kPrecisions) {
    if (!s.device.is_cuda() && p.dtype == torch::kFloat16) continue;  // no fp16 towers on the CPU
    ruclip::detail::ClipWeights w(config);
    ruclip::detail::init_random(w, 1);
    w.to(s.device, p.dtype);
    w.prepare_inference(ruclip::detail::LayerKernels::all(ruclip::detail::LinearKernel::kLibTorch));
    allow_tf32(p.tf32);
    const int64_t r = config.image_resolution;
    for (int64_t batch : batches) {
      const torch::Tensor pixels = torch::randn({batch, 3, r, r}, torch::TensorOptions().device(s.device));
      const double t = seconds_per_call(s.device, [&] { w.encode_image(pixels); }, s.quick ? 0.05 : 0.5);
      out.push_back({{"geometry", geometry}, {"tower", "image"}, {"precision", p.name}, {"batch", batch},
                     {"per_s", batch / t}, {"tflops", batch * ruclip::image_gflop(config) / t / 1e3}});
    }
    const int64_t texts = s.quick ? 4 : 64;
    const torch::Tensor ids =
        torch::randint(4, config.vocab_size, {texts, config.context_length}, torch::TensorOptions().dtype(torch::kInt64))
            .index_put_({torch::indexing::Slice(), config.context_length - 1}, config.eos_id)
            .to(s.device);
    const double t = seconds_per_call(s.device, [&] { w.encode_text(ids, true); }, s.quick ? 0.05 : 0.5);
    out.push_back({{"geometry", geometry}, {"tower", "text"}, {"precision", p.name}, {"batch", texts},
                   {"per_s", texts / t}, {"tflops", texts * ruclip::text_gflop(config) / t / 1e3}});
    allow_tf32(false);
  }
  return out;
}

using Frame = ruclip::OwnedFrame;
Frame yuv_frame(ruclip::PixelFormat format, int w, int h, uint32_t seed) { return ruclip::random_yuv_frame(format, w, h, seed); }

// A ViT-B/32-224 model folder with random weights and the fixture's
// tokenizer: the scheduler needs labels, so a tokenizer, which a geometry alone has not.
std::string write_model_folder(const std::string& tokenizer) {
  const std::string dir = (std::filesystem::temp_directory_path() / "ruclip-gpu-bench-model").string();
  std::filesystem::create_directories(dir);
  ruclip::ModelConfig config = ruclip::published_geometry("vit-b32-224");
  ruclip::detail::ClipWeights w(config);
  ruclip::detail::init_random(w, 1);
  config.weights_file = "model.safetensors";
  ruclip::write_safetensors(dir + "/model.safetensors", ruclip::detail::to_state_dict(w));
  std::ofstream(dir + "/config.json") << ruclip::config_to_json(config);
  std::filesystem::copy_file(tokenizer, dir + "/bpe.model", std::filesystem::copy_options::overwrite_existing);
  return dir;
}

ruclip::ModelOptions model_options(const Settings& s, const char* precision) {
  return {ruclip::Device::parse(s.device.is_cuda() ? "cuda" : "cpu"), 0, ruclip::parse_precision(precision)};
}

// Frames from host memory to embeddings (Model::encode_frames: GPU
// preprocessing on CUDA), and the preprocessing alone, split into the host's
// part (reading the frame's used rows into pinned staging, enqueueing) and the
// device's (upload and kernels).
ordered_json frames(const Settings& s, ruclip::Model& model) {
  ordered_json out = ordered_json::array();
  const int w = s.quick ? 320 : 1920, h = s.quick ? 180 : 1080;
  const std::vector<int> batches = s.quick ? std::vector<int>{2} : std::vector<int>{64, 256};
  for (auto [name, format] : {std::pair{"NV12", ruclip::PixelFormat::NV12}, std::pair{"I420", ruclip::PixelFormat::I420}}) {
    std::vector<Frame> pool;
    for (uint32_t i = 0; i < 8; ++i) pool.push_back(yuv_frame(format, w, h, i));
    for (int batch : batches) {
      std::vector<ruclip::FrameView> views;
      for (int i = 0; i < batch; ++i) views.push_back(pool[i % pool.size()].view);
      const double t = seconds_per_call(s.device, [&] { model.encode_frames(views); }, s.quick ? 0.05 : 1.0, 10);
      ordered_json row = {{"format", name}, {"width", w}, {"height", h}, {"batch", batch}, {"frames_per_s", batch / t}};
#ifdef RUCLIP_HAVE_CUDA_PREPROCESS
      if (s.device.is_cuda()) {
        ruclip::CudaPreprocessor pre(s.device.index());
        const ruclip::Normalization norm = model.normalization();
        const torch::Tensor out_pixels = torch::empty({batch, 3, norm.resolution, norm.resolution},
                                                      torch::TensorOptions().device(s.device));
        double host = 0, total = 0;
        for (int rep = 0; rep < 3; ++rep) {
          sync(s.device);
          const auto start = Clock::now();
          for (int i = 0; i < batch; ++i) pre.run(views[i], norm, out_pixels[i].data_ptr<float>(), nullptr);
          const auto enqueued = Clock::now();
          sync(s.device);
          if (rep == 0) continue;  // warm-up
          host += std::chrono::duration<double>(enqueued - start).count();
          total += std::chrono::duration<double>(Clock::now() - start).count();
        }
        row["preprocess_frames_per_s"] = 2 * batch / total;
        row["preprocess_host_ms_per_frame"] = 1e3 * host / (2 * batch);
        row["preprocess_device_ms_per_frame"] = 1e3 * (total - host) / (2 * batch);
      }
#endif
      out.push_back(row);
    }
  }
  return out;
}

// N streams sharing one model through the scheduler, each submitting a frame
// 5 times a second (sync mode: the GPU preprocesses it), then as fast as it
// can: frames/s and the latency from submit to scored.
ordered_json scheduler(const Settings& s, ruclip::Model& model) {
  ordered_json out = ordered_json::array();
  const std::vector<int> counts = s.quick ? std::vector<int>{1, 2} : std::vector<int>{1, 8, 32, 64};
  const double seconds = s.quick ? 0.5 : 4.0;
  const Frame frame = yuv_frame(ruclip::PixelFormat::NV12, s.quick ? 320 : 1920, s.quick ? 180 : 1080, 7);
  for (int n : counts)
    for (bool paced : {true, false}) {
      ruclip::InferenceScheduler sched(model);
      std::vector<std::unique_ptr<ruclip::InferenceScheduler::Stream>> streams;
      for (int i = 0; i < n; ++i) {
        ruclip::StreamOptions o;
        o.mode = ruclip::StreamMode::kSync;
        o.batch_size = 64;
        streams.push_back(sched.open_stream(o));
        streams.back()->set_labels_now({"человек", "машина", "собака", "пустая парковка"});
      }
      std::vector<std::vector<double>> latency(n);
      std::atomic<uint64_t> done{0};
      const auto start = Clock::now();
      std::vector<std::thread> threads;
      for (int i = 0; i < n; ++i)
        threads.emplace_back([&, i] {
          for (uint64_t k = 0;; ++k) {
            const auto due = start + std::chrono::microseconds(static_cast<int64_t>(k * 200000 + i * 200000 / n));
            if (paced) std::this_thread::sleep_until(due);
            if (Clock::now() - start > std::chrono::duration<double>(seconds)) break;
            ruclip::FrameRequest request;
            request.frame = k;
            request.view = &frame.view;
            ruclip::FrameAnalysis a;
            std::string error;
            if (streams[i]->submit(std::move(request), &a, &error) == ruclip::InferenceScheduler::Stream::Submitted::kAnalyzed) {
              latency[i].push_back(a.latency_ms);
              ++done;
            }
          }
        });
      for (auto& t : threads) t.join();
      const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
      std::vector<double> all;
      for (const auto& l : latency) all.insert(all.end(), l.begin(), l.end());
      out.push_back({{"streams", n}, {"paced_fps_per_stream", paced ? 5 : 0}, {"frames_per_s", done / elapsed},
                     {"latency_p50_ms", percentile(all, 0.5)}, {"latency_p95_ms", percentile(all, 0.95)},
                     {"batches", sched.totals().batches}});
    }
  return out;
}

int run(int argc, char** argv) {
  Settings s;
  std::string out_path;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw ruclip::Error(a + ": needs a value");
      return argv[++i];
    };
    if (a == "--out") out_path = value();
    else if (a == "--device") s.device = value() == "cpu" ? torch::Device(torch::kCPU) : torch::Device(torch::kCUDA, 0);
    else if (a == "--quick") s.quick = true;
    else if (a == "--tokenizer") s.tokenizer = value();
    else throw ruclip::Error("unknown argument " + a + " (ruclip-gpu-bench --out FILE [--device cuda|cpu] [--quick] --tokenizer BPE_MODEL)");
  }
  if (out_path.empty() || s.tokenizer.empty()) throw ruclip::Error("--out FILE and --tokenizer BPE_MODEL are required");
  if (s.device.is_cuda() && !torch::cuda::is_available()) throw ruclip::Error("--device cuda: no CUDA device visible");
  ordered_json doc = {{"machine", machine(s)}, {"quick", s.quick}};
  auto section = [&](const char* name, const std::function<ordered_json()>& f) {
    const auto start = Clock::now();
    doc[name] = f();
    std::cerr << "ruclip-gpu-bench: " << name << " in "
              << std::chrono::duration<double>(Clock::now() - start).count() << " s\n";
    std::ofstream(out_path) << doc.dump(2) << "\n";  // what is done so far survives a later failure
  };
  section("ceilings", [&] { return ceilings(s); });
  section("towers", [&] {
    ordered_json all = ordered_json::array();
    const std::vector<std::string> geometries =
        s.quick ? std::vector<std::string>{"vit-b32-224"} : std::vector<std::string>{"vit-b32-224", "vit-l14-336"};
    for (const std::string& g : geometries)
      for (auto& row : towers(s, g)) all.push_back(row);
    return all;
  });
  auto model = ruclip::Model::load(write_model_folder(s.tokenizer), model_options(s, s.device.is_cuda() ? "fp16" : "fp32"));
  section("frames", [&] { return frames(s, *model); });
  section("scheduler", [&] { return scheduler(s, *model); });
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "ruclip-gpu-bench: " << e.what() << "\n";
    return 1;
  }
}
