// bench: images/s and texts/s of a model folder or of a published geometry
// with random weights, next to what this machine's matrix multiply allows.
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <iostream>
#include <random>

#include "cli.h"
#include "ruclip/tools/benchmark.h"
#include "ruclip/config.h"
#include "ruclip/image.h"

namespace ruclip_cli {
namespace {

using Clock = std::chrono::steady_clock;

// Milliseconds per call of `step`, after `warmup` untimed calls, until
// `seconds` have passed (at least 3 timed calls).
template <class Step>
std::vector<double> time_calls(Step step, double seconds, int warmup = 2) {
  for (int i = 0; i < warmup; ++i) step();
  std::vector<double> ms;
  const auto start = Clock::now();
  while (ms.size() < 3 || std::chrono::duration<double>(Clock::now() - start).count() < seconds) {
    const auto t = Clock::now();
    step();
    ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t).count());
  }
  return ms;
}

json summary(std::vector<double> ms, int batch) {
  std::sort(ms.begin(), ms.end());
  auto at = [&](double q) { return ms[std::min(ms.size() - 1, static_cast<size_t>(q * ms.size()))]; };
  double total = 0;
  for (double m : ms) total += m;
  return {{"per_second", batch * ms.size() / (total / 1000)},
          {"batch_ms", {{"p50", at(0.50)}, {"p95", at(0.95)}, {"mean", total / ms.size()}}},
          {"batches", ms.size()}};
}

// A 1920x1080 frame of noise in `format`, its planes in `storage`.
ruclip::FrameView noise_frame(ruclip::PixelFormat format, std::vector<uint8_t>& storage) {
  const int w = 1920, h = 1080;
  std::mt19937 rng(7);
  storage.resize(static_cast<size_t>(w) * h * 3);
  for (auto& b : storage) b = static_cast<uint8_t>(rng());
  ruclip::FrameView f;
  f.format = format;
  f.width = w;
  f.height = h;
  f.planes[0] = storage.data();
  if (format == ruclip::PixelFormat::RGB) {
    f.strides[0] = 3 * w;
  } else {
    f.strides[0] = w;
    f.planes[1] = storage.data() + w * h;
    f.strides[1] = format == ruclip::PixelFormat::NV12 ? w : w / 2;
    f.planes[2] = storage.data() + w * h * 5 / 4;
    f.strides[2] = w / 2;
  }
  return f;
}

int bench(const Args& args) {
  if (!args.positional.empty()) throw UsageError("unexpected argument '" + args.positional[0] + "'");
  const std::string model_dir = args.one("model"), geometry = args.one("geometry");
  if (model_dir.empty() == geometry.empty()) throw UsageError("give either --model DIR or --geometry NAME");
  const ruclip::ModelOptions options = model_options(args);
  const int batch = args.integer("batch", 8);
  const double seconds = args.number("seconds", 10);
  if (batch < 1) throw UsageError("option --batch: must be at least 1");

  const auto load_start = Clock::now();
  auto model = geometry.empty() ? ruclip::Model::load(model_dir, options)
                                : ruclip::Model::random(ruclip::published_geometry(geometry), 1, options);
  print_warnings(*model);
  const double load_seconds = std::chrono::duration<double>(Clock::now() - load_start).count();
  const ruclip::ModelConfig& c = model->config();

  // Inputs: normalized noise pixels; token ids of a 12-token text (the
  // towers' cost doesn't depend on the values, the text tower's on the
  // context length only).
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> pixel(-2, 2);
  std::vector<float> pixels(static_cast<size_t>(batch) * 3 * c.image_resolution * c.image_resolution);
  for (auto& p : pixels) p = pixel(rng);
  std::vector<std::vector<int64_t>> ids(batch, std::vector<int64_t>(c.context_length, c.pad_id));
  for (auto& row : ids) {
    row[0] = c.bos_id;
    for (int i = 1; i < std::min(11, c.context_length - 1); ++i) row[i] = 4 + rng() % (c.vocab_size - 4);
    row[std::min(11, c.context_length - 1)] = c.eos_id;
  }

  // On a GPU the images are put on the device once (prepare_frame), so the
  // figure is the tower's, not the copy of 602 KB of floats per image.
  std::function<void()> encode_images = [&] { model->encode_pixels(pixels.data(), batch); };
  std::vector<std::shared_ptr<const ruclip::PreparedFrame>> on_device;
  if (model->reads_cuda_frames()) {
    std::vector<uint8_t> storage;
    on_device.assign(batch, model->prepare_frame(noise_frame(ruclip::PixelFormat::RGB, storage)));
    encode_images = [&] { model->encode_prepared(on_device); };
  }
  const json images = summary(time_calls(encode_images, seconds), batch);
  const json texts = summary(time_calls([&] { model->encode_token_ids(ids); }, seconds), batch);

  // Preprocessing of one 1080p frame to the model's input, per format.
  json preprocess = json::object();
  const ruclip::Normalization norm = model->normalization();
  std::vector<float> out(3 * static_cast<size_t>(norm.resolution) * norm.resolution);
  for (auto [name, format] : {std::pair{"I420", ruclip::PixelFormat::I420}, std::pair{"NV12", ruclip::PixelFormat::NV12},
                              std::pair{"RGB", ruclip::PixelFormat::RGB}}) {
    std::vector<uint8_t> storage;
    const ruclip::FrameView frame = noise_frame(format, storage);
    const json s = summary(time_calls([&] { ruclip::preprocess(frame, norm, out.data()); }, 1.0), 1);
    preprocess[std::string(name) + "_1920x1080_ms"] = s["batch_ms"]["p50"];
  }

  // Peak RSS of the model's own work, read before the limit's measurement
  // below: its 2048 x 2048 matrices would add memory that no user holds.
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);

  // The machine's limit: the matrix product on the kernel the model runs its
  // linear layers with, over the image tower's arithmetic.
  const double gemm = ruclip::matmul_gflops(*model);
  const double flop = ruclip::image_gflop(c);
  const double limit = gemm / flop;
  const ruclip::KernelReport& kernels = model->kernels();
  json measured = json::object();
  for (const auto& [name, gflops] : kernels.measured_gflops) measured[name] = gflops;
  const int threads = options.num_threads > 0 ? options.num_threads : static_cast<int>(sysconf(_SC_NPROCESSORS_ONLN));

  json out_json = {
      {"model", geometry.empty() ? model_dir : geometry},
      {"geometry",
       {{"family", c.family == ruclip::ModelFamily::kV1 ? "v1" : "v2"}, {"image_resolution", c.image_resolution},
        {"vision_patch_size", c.vision_patch_size}, {"vision_width", c.vision_width}, {"vision_layers", c.vision_layers}, {"context_length", c.context_length},
        {"transformer_width", c.transformer_width}, {"transformer_layers", c.transformer_layers}}},
      {"device", model->device()},
      {"precision", ruclip::precision_name(model->precision())},
      {"precision_requested", kernels.requested},
      {"linear_kernel", kernels.linear_kernel},
      {"kernel_measurements_gflops", measured},
      {"warnings", kernels.warnings},
      {"cpu", {{"model", kernels.cpu_model}, {"features", kernels.cpu_features}}},
      {"threads", threads},
      {"batch", batch},
      {"images_per_second", images["per_second"]},
      {"image_input", on_device.empty() ? "host floats" : "device pixels"},
      {"image_batch_ms", images["batch_ms"]},
      {"image_batches", images["batches"]},
      {"texts_per_second", texts["per_second"]},
      {"text_batch_ms", texts["batch_ms"]},
      {"text_batches", texts["batches"]},
      {"image_gflop", flop},
      {"text_gflop", ruclip::text_gflop(c)},
      {"matmul_gflops", gemm},
      {"limit_images_per_second", limit},
      {"fraction_of_limit", images["per_second"].get<double>() / limit},
      {"preprocess", preprocess},
      {"load_seconds", load_seconds},
      {"peak_rss_mib", usage.ru_maxrss / 1024.0},
  };
  std::cout << out_json.dump(2) << "\n";
  return 0;
}

}  // namespace

const Command kBench{"bench",
                     "ruclip bench (--model DIR | --geometry vit-b32-224|vit-b32-384|vit-b16-224|vit-b16-384|"
                     "vit-l14-224|vit-l14-336|v1) [--batch 8] [--precision fp32|bf16|fp16|int8|int8-mixed|auto] [--seconds 10]",
                     {"model", "geometry", "batch", "precision", "seconds", "device", "threads"},
                     bench};

}  // namespace ruclip_cli
