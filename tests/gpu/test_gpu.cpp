// The model on a CUDA GPU, for scripts/gpu-check.sh on a machine that has one:
// parity with upstream ruCLIP's fixtures (v2 tiny, v1 tiny) in fp32, fp16 and
// bf16; encode_frames' GPU preprocessing against the CPU path on 1080p NV12
// and I420; concurrent encode_frames calls. Every case fails, never skips,
// where no GPU is visible: a run that checked nothing must not pass.
#include <ATen/Context.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

#include "ruclip/error.h"
#include "ruclip/image.h"
#include "ruclip/model.h"
#include "ruclip/tools/random_frames.h"
#include "test_util.h"

namespace {

using ruclip_test::cosine;
using ruclip_test::max_abs_diff;

ruclip::ModelOptions cuda(const std::string& precision) {
  return {ruclip::Device::parse("cuda"), 0, ruclip::parse_precision(precision)};
}

using ruclip_test::row;

struct Fixture {
  std::string name, dir;
  const nlohmann::json& expected;
};
std::vector<Fixture> fixtures() {
  return {{"v2 tiny", ruclip_test::tiny_model_dir(), ruclip_test::expected()},
          {"v1 tiny", ruclip_test::v1_model_dir(), ruclip_test::v1_expected()}};
}

using ruclip_test::fixture_ids;
using ruclip_test::fixture_pixels;

// Each image's best text by cosine is the one upstream's latents pick.
void expect_upstream_ranking(const nlohmann::json& expected, ruclip::Embeddings images, ruclip::Embeddings texts) {
  images.normalize_rows();
  texts.normalize_rows();
  for (int i = 0; i < images.rows; ++i) {
    const auto want_image = expected["images"][i]["image_latent"].get<std::vector<float>>();
    int best = 0, want_best = 0;
    double best_dot = -2, want_dot = -2;
    for (int j = 0; j < texts.rows; ++j) {
      const auto want_text = expected["texts"][j]["text_latent"].get<std::vector<float>>();
      const double dot = cosine(row(images, i), row(texts, j)), upstream = cosine(want_image, want_text);
      if (dot > best_dot) best_dot = dot, best = j;
      if (upstream > want_dot) want_dot = upstream, want_best = j;
    }
    EXPECT_EQ(best, want_best) << "image " << i;
  }
}

TEST(Gpu, DeviceIsVisible) {
  ASSERT_TRUE(torch::cuda::is_available()) << "no CUDA device visible to LibTorch";
  ASSERT_GE(torch::cuda::device_count(), 1u);
}

TEST(Gpu, Fp32ParityWithUpstream) {
  for (const Fixture& f : fixtures()) {
    auto model = ruclip::Model::load(f.dir, cuda("fp32"));
    EXPECT_EQ(model->device(), "cuda:0");
    // fp32 means fp32: no TF32 in cuBLAS or cuDNN.
    EXPECT_FALSE(at::globalContext().allowTF32CuBLAS());
    EXPECT_FALSE(at::globalContext().allowTF32CuDNN());
    const auto texts = model->encode_token_ids(fixture_ids(f.expected));
    for (int j = 0; j < texts.rows; ++j)
      EXPECT_LE(max_abs_diff(row(texts, j), f.expected["texts"][j]["text_latent"].get<std::vector<float>>()), 1e-4)
          << f.name << " text " << j;
    const auto pixels = fixture_pixels(f.expected);
    const int n = static_cast<int>(f.expected["images"].size());
    const auto images = model->encode_pixels(pixels.data(), n);
    for (int i = 0; i < n; ++i)
      EXPECT_LE(max_abs_diff(row(images, i), f.expected["images"][i]["image_latent"].get<std::vector<float>>()), 1e-4)
          << f.name << " image " << i;
    expect_upstream_ranking(f.expected, images, texts);
  }
}

TEST(Gpu, HalfPrecisionFollowsUpstream) {
  for (const std::string precision : {"fp16", "bf16"})
    for (const Fixture& f : fixtures()) {
      auto model = ruclip::Model::load(f.dir, cuda(precision));
      EXPECT_EQ(ruclip::precision_name(model->precision()), precision);
      const auto texts = model->encode_token_ids(fixture_ids(f.expected));
      for (int j = 0; j < texts.rows; ++j)
        EXPECT_GE(cosine(row(texts, j), f.expected["texts"][j]["text_latent"].get<std::vector<float>>()), 0.999)
            << f.name << " " << precision << " text " << j;
      const auto pixels = fixture_pixels(f.expected);
      const int n = static_cast<int>(f.expected["images"].size());
      const auto images = model->encode_pixels(pixels.data(), n);
      for (int i = 0; i < n; ++i)
        EXPECT_GE(cosine(row(images, i), f.expected["images"][i]["image_latent"].get<std::vector<float>>()), 0.999)
            << f.name << " " << precision << " image " << i;
      expect_upstream_ranking(f.expected, images, texts);
    }
}

using Frame = ruclip::OwnedFrame;
Frame yuv_frame(ruclip::PixelFormat format, uint32_t seed) { return ruclip::random_yuv_frame(format, 1920, 1080, seed); }

TEST(Gpu, FramesPreprocessedOnTheGpuEqualTheCpuPath) {
  auto model = ruclip::Model::load(ruclip_test::tiny_model_dir(), cuda("fp32"));
  const ruclip::Normalization norm = model->normalization();
  const size_t per = 3 * static_cast<size_t>(norm.resolution) * norm.resolution;
  for (auto format : {ruclip::PixelFormat::NV12, ruclip::PixelFormat::I420}) {
    std::vector<Frame> frames;
    std::vector<ruclip::FrameView> views;
    for (uint32_t i = 0; i < 4; ++i) frames.push_back(yuv_frame(format, 100 + i));
    for (const auto& f : frames) views.push_back(f.view);
    std::vector<float> pixels(per * views.size());
    for (size_t i = 0; i < views.size(); ++i) ruclip::preprocess(views[i], norm, pixels.data() + i * per);
    const auto on_gpu = model->encode_frames(views);
    const auto from_cpu = model->encode_pixels(pixels.data(), static_cast<int>(views.size()));
    // The GPU kernels' pixels are bit-identical to the CPU's, so the towers see the same input.
    for (int i = 0; i < on_gpu.rows; ++i)
      EXPECT_LE(max_abs_diff(row(on_gpu, i), row(from_cpu, i)), 1e-6) << "format " << int(format) << " frame " << i;
  }
}

// async streams' path: frames prepared on the GPU at once (the frame may go),
// encoded later in one batch, equal to encode_frames of the same frames.
TEST(Gpu, PreparedFramesEqualEncodeFrames) {
  auto model = ruclip::Model::load(ruclip_test::tiny_model_dir(), cuda("fp32"));
  ASSERT_TRUE(model->reads_cuda_frames());
  std::vector<Frame> frames;
  std::vector<ruclip::FrameView> views;
  for (uint32_t i = 0; i < 4; ++i) frames.push_back(yuv_frame(ruclip::PixelFormat::NV12, 300 + i));
  for (const auto& f : frames) views.push_back(f.view);
  const auto want = model->encode_frames(views);
  std::vector<std::shared_ptr<const ruclip::PreparedFrame>> prepared;
  for (auto& f : frames) {
    prepared.push_back(model->prepare_frame(f.view));
    std::fill(f.bytes.begin(), f.bytes.end(), 0);  // staged: the frame may go
  }
  const auto got = model->encode_prepared(prepared);
  for (int i = 0; i < got.rows; ++i) EXPECT_LE(max_abs_diff(row(got, i), row(want, i)), 1e-6) << "frame " << i;
}

TEST(Gpu, ConcurrentEncodeFramesAgreeWithOneThread) {
  auto model = ruclip::Model::load(ruclip_test::tiny_model_dir(), cuda("fp32"));
  constexpr int kThreads = 4, kRounds = 6;
  std::vector<Frame> frames;
  for (int t = 0; t < kThreads; ++t) frames.push_back(yuv_frame(ruclip::PixelFormat::NV12, 200 + t));
  std::vector<std::vector<float>> alone;
  for (const auto& f : frames) alone.push_back(row(model->encode_frames({f.view}), 0));
  std::vector<double> worst(kThreads, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      for (int r = 0; r < kRounds; ++r)
        worst[t] = std::max<double>(worst[t], max_abs_diff(row(model->encode_frames({frames[t].view}), 0), alone[t]));
    });
  for (auto& th : threads) th.join();
  for (int t = 0; t < kThreads; ++t) EXPECT_LE(worst[t], 1e-6) << "thread " << t;
}

}  // namespace
