// ruCLIP v1 (the article's model: OpenAI's ViT + ruGPT3-small's GPT-2, a
// Projection head after each) against upstream deprecated/clip's own outputs
// (tests/data/ruclip-v1-tiny/expected.json; its README says how each number
// was computed).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>

#include "nn/clip_weights.h"
#include "nn/state_dict.h"  // the towers themselves: full context, forced bf16
#include "runtime/cpu_threads.h"
#include "runtime/kernel_choice.h"
#include "ruclip/checkpoint.h"
#include "ruclip/config.h"
#include "ruclip/cpu.h"
#include "ruclip/error.h"
#include "ruclip/tools/image_files.h"
#include "ruclip/model.h"
#include "ruclip/tokenizer.h"
#include "ruclip/tools/train.h"
#include "ruclip/zero_shot.h"
#include "test_util.h"

namespace fs = std::filesystem;
using ruclip_test::max_abs_diff;

using ruclip_test::error_of;

namespace {

using ruclip_test::v1_expected;
using ruclip_test::v1_model_dir;
// The same model in torch's pre-1.6 (legacy) serialization.
std::string legacy_dir() { return ruclip_test::data_dir() + "/ruclip-v1-tiny-legacy"; }


ruclip::ModelOptions opts(const std::string& device, int threads, const std::string& precision = "fp32") {
  return {ruclip::Device::parse(device), threads, ruclip::parse_precision(precision)};
}

ruclip::Model& v1_model() {
  static auto model = ruclip::Model::load(v1_model_dir(), opts("cpu", 2));
  return *model;
}

using ruclip_test::row;

std::vector<std::vector<int64_t>> upstream_ids() { return ruclip_test::fixture_ids(v1_expected()); }
std::vector<float> upstream_pixels() { return ruclip_test::fixture_pixels(v1_expected()); }

std::vector<float> text_latent(int i) { return v1_expected()["texts"][i]["text_latent"].get<std::vector<float>>(); }
std::vector<float> image_latent(int i) {
  return v1_expected()["images"][i]["image_latent"].get<std::vector<float>>();
}

// A temp copy of the fixture folder with `files` of it.
std::string copy_v1(std::initializer_list<const char*> files) {
  const std::string dir = ruclip_test::make_temp_dir();
  for (const char* name : files) fs::copy_file(v1_model_dir() + "/" + name, dir + "/" + name);
  return dir;
}

// The fixture's state dict, changed by `edit`, written as DIR/weights.safetensors
// next to the tokenizer and config.json; returns the weights file's path.
template <typename Edit>
std::string edited_checkpoint(Edit edit, bool with_config = true) {
  ruclip::StateDict dict = ruclip::read_torch_checkpoint(v1_model_dir() + "/ViT-B32-small.pt");
  edit(dict);
  const std::string dir = with_config ? copy_v1({"vocab.json", "merges.txt", "config.json"})
                                      : copy_v1({"vocab.json", "merges.txt"});
  const std::string path = dir + "/weights.safetensors";
  ruclip::write_safetensors(path, dict);
  return path;
}

// The fixture's towers on LibTorch directly (the kernels' path is Model's).
std::unique_ptr<ruclip::detail::ClipWeights> fixture_weights() {
  const std::string pt = v1_model_dir() + "/ViT-B32-small.pt";
  ruclip::StateDict dict = ruclip::read_torch_checkpoint(pt);
  const ruclip::ModelConfig stated = ruclip::load_config(v1_model_dir());
  const ruclip::ModelConfig config = ruclip::v1_config_from_shapes(ruclip::detail::state_dict_shapes(dict), &stated, pt);
  auto w = std::make_unique<ruclip::detail::ClipWeights>(config);
  ruclip::detail::load_state_dict(*w, std::move(dict), pt);
  return w;
}

torch::Tensor ids_tensor(const std::vector<std::vector<int64_t>>& ids) {
  std::vector<int64_t> flat;
  for (const auto& r : ids) flat.insert(flat.end(), r.begin(), r.end());
  return torch::tensor(flat, torch::kInt64).view({static_cast<int64_t>(ids.size()), -1});
}

std::vector<float> tensor_row(const torch::Tensor& t, int64_t i) {
  const torch::Tensor r = t[i].to(torch::kFloat32).contiguous();
  return {r.data_ptr<float>(), r.data_ptr<float>() + r.numel()};
}

}  // namespace

// --- Loading ---------------------------------------------------------------

TEST(ModelV1Load, GeometryFromTheShapesAndConfigJson) {
  ruclip_test::expect_v1_tiny_geometry(v1_model().config());
  EXPECT_FLOAT_EQ(v1_model().logit_scale(), 14.285714149475098f);  // exp(log(1 / 0.07)), upstream's init
  const ruclip::Normalization n = v1_model().normalization();
  EXPECT_EQ(n.resize, ruclip::ResizeMode::kBicubicThenCrop);
  EXPECT_EQ(n.resolution, 32);
  EXPECT_FLOAT_EQ(n.std[1], 0.26130258f);
  EXPECT_EQ(v1_model().directory(), v1_model_dir());
}

// As published: ViT-B32-small.pt, vocab.json, merges.txt and nothing else.
// Heads are width / 64 (OpenAI's build_model), seq_length upstream's 128,
// capped by the 32 positions this tiny GPT-2 has.
TEST(ModelV1Load, AsPublishedWithoutConfigJson) {
  const std::string dir = copy_v1({"ViT-B32-small.pt", "vocab.json", "merges.txt"});
  auto model = ruclip::Model::load(dir, opts("cpu", 2));
  const ruclip::ModelConfig& c = model->config();
  EXPECT_EQ(c.family, ruclip::ModelFamily::kV1);
  EXPECT_EQ(c.vision_heads, 1);
  EXPECT_EQ(c.transformer_heads, 1);
  EXPECT_EQ(c.context_length, 32);
  EXPECT_EQ(c.image_resolution, 32);
  EXPECT_EQ(c.embed_dim, 40);
  EXPECT_EQ(model->tokenize("кот").size(), 32u);
  // One head instead of two: other numbers than upstream's two-head model, still unit latents.
  const auto pixels = upstream_pixels();
  const auto e = model->encode_pixels(pixels.data(), 5);
  EXPECT_NEAR(ruclip_test::cosine(row(e, 0), row(e, 0)), 1.0, 1e-6);
  EXPECT_GT(max_abs_diff(row(e, 0), image_latent(0)), 1e-3);
}

TEST(ModelV1Load, TheWeightsFileItself) {
  auto model = ruclip::Model::load(v1_model_dir() + "/ViT-B32-small.pt", opts("cpu", 2));
  EXPECT_EQ(model->directory(), v1_model_dir());
  const auto ids = upstream_ids();
  EXPECT_EQ(model->encode_token_ids(ids).data, v1_model().encode_token_ids(ids).data);
}

// The weights file by path works for a ruclip-vit-* (v2) folder too.
TEST(ModelV1Load, AV2WeightsFileItself) {
  auto by_file = ruclip::Model::load(ruclip_test::tiny_model_dir() + "/pytorch_model.bin", opts("cpu", 2));
  auto by_folder = ruclip::Model::load(ruclip_test::tiny_model_dir(), opts("cpu", 2));
  EXPECT_EQ(by_file->config().family, ruclip::ModelFamily::kV2);
  std::vector<int64_t> ids(16, 0);
  ids[0] = 2, ids[1] = 100, ids[2] = 3;
  EXPECT_EQ(by_file->encode_token_ids({ids}).data, by_folder->encode_token_ids({ids}).data);
}

TEST(ModelV1Load, WhichCheckpointOfTheFolder) {
  // config.json names ViT-B32-small.pt: it must be there.
  const std::string dir = copy_v1({"vocab.json", "merges.txt", "config.json"});
  fs::copy_file(v1_model_dir() + "/ViT-B32-small.pt", dir + "/ruclip-v1.pt");
  EXPECT_NE(error_of([&] { ruclip::Model::load(dir); })
                .find(dir + "/config.json: names the checkpoint \"ViT-B32-small.pt\", which is not in the folder"),
            std::string::npos);
  // Without config.json the only *.pt is the one.
  fs::remove(dir + "/config.json");
  auto model = ruclip::Model::load(dir, opts("cpu", 2));
  EXPECT_EQ(model->config().weights_file, "ruclip-v1.pt");
  // Two: which one is for the user to say.
  fs::copy_file(v1_model_dir() + "/ViT-B32-small.pt", dir + "/other.pt");
  const std::string msg = error_of([&] { ruclip::Model::load(dir); });
  EXPECT_NE(msg.find("several checkpoints (other.pt, ruclip-v1.pt)"), std::string::npos) << msg;
  EXPECT_EQ(ruclip::Model::load(dir + "/other.pt", opts("cpu", 2))->config().weights_file, "other.pt");
  // None at all.
  const std::string empty = copy_v1({"vocab.json", "merges.txt"});
  EXPECT_NE(error_of([&] { ruclip::Model::load(empty); }).find(empty + "/config.json: cannot open"), std::string::npos);
}

TEST(ModelV1Load, LegacySerializationGivesTheSameNumbers) {
  if (!fs::exists(legacy_dir() + "/ViT-B32-small.pt")) GTEST_SKIP() << legacy_dir() << " is not there";
  auto legacy = ruclip::Model::load(legacy_dir(), opts("cpu", 2));
  const auto ids = upstream_ids();
  EXPECT_EQ(legacy->encode_token_ids(ids).data, v1_model().encode_token_ids(ids).data);
  const auto pixels = upstream_pixels();
  EXPECT_EQ(legacy->encode_pixels(pixels.data(), 5).data, v1_model().encode_pixels(pixels.data(), 5).data);
}

// --- Against upstream --------------------------------------------------------

TEST(ModelV1Parity, TextLatentsFromUpstreamIds) {
  const auto e = v1_model().encode_token_ids(upstream_ids());
  ASSERT_EQ(e.rows, 10);
  ASSERT_EQ(e.dim, 40);
  for (int i = 0; i < e.rows; ++i) EXPECT_LE(max_abs_diff(row(e, i), text_latent(i)), 1e-4) << "text " << i;
}

TEST(ModelV1Parity, ImageLatentsFromUpstreamPixels) {
  const auto pixels = upstream_pixels();
  const auto e = v1_model().encode_pixels(pixels.data(), 5);
  ASSERT_EQ(e.rows, 5);
  for (int i = 0; i < e.rows; ++i) EXPECT_LE(max_abs_diff(row(e, i), image_latent(i)), 1e-4) << "image " << i;
}

// The VisualTransformer's output before the Projection head (expected.json's
// image_features, a debugging aid): v1's image tower is v2's up to there.
TEST(ModelV1Parity, ImageFeaturesBeforeTheHead) {
  auto w = fixture_weights();
  c10::InferenceMode guard;
  auto pixels = upstream_pixels();
  const torch::Tensor px = torch::from_blob(pixels.data(), {5, 3, 32, 32});
  w->config.family = ruclip::ModelFamily::kV2;  // encode_image without the head
  const torch::Tensor features = w->encode_image(px);
  ASSERT_EQ(features.size(1), 48);
  for (int i = 0; i < 5; ++i)
    EXPECT_LE(max_abs_diff(tensor_row(features, i), v1_expected()["images"][i]["image_features"].get<std::vector<float>>()),
              1e-4)
        << "image " << i;
}

TEST(ModelV1Parity, LogitsPerImage) {
  const auto pixels = upstream_pixels();
  const auto images = v1_model().encode_pixels(pixels.data(), 5);
  const auto texts = v1_model().encode_token_ids(upstream_ids());
  for (int i = 0; i < 5; ++i)
    for (int j = 0; j < 10; ++j) {
      double dot = 0;
      for (int k = 0; k < images.dim; ++k) dot += double(images.row(i)[k]) * texts.row(j)[k];
      const double want = v1_expected()["logits_per_image"][i][j].get<double>();
      EXPECT_NEAR(v1_model().logit_scale() * dot, want, 1e-3) << "image " << i << " text " << j;
      EXPECT_NEAR(v1_model().logit_scale() * dot, v1_expected()["logits_per_text"][j][i].get<double>(), 1e-3);
    }
}

TEST(ModelV1Parity, TextsEndToEnd) {
  std::vector<std::string> texts;
  for (const auto& t : v1_expected()["texts"]) texts.push_back(t["text"]);
  const auto e = v1_model().encode_text(texts);
  ASSERT_EQ(e.rows, 10);
  for (int i = 0; i < e.rows; ++i) {
    EXPECT_EQ(v1_model().tokenize(texts[i]), v1_expected()["texts"][i]["input_ids"].get<std::vector<int64_t>>())
        << texts[i];
    EXPECT_LE(max_abs_diff(row(e, i), text_latent(i)), 1e-4) << texts[i];
  }
  EXPECT_NE(error_of([] { v1_model().encode_text({"кот", "  "}); }).find("empty"), std::string::npos);
}

TEST(ModelV1Parity, ImageLatentsFromPngFiles) {
  for (int i = 0; i < 5; ++i) {
    const auto& image = v1_expected()["images"][i];
    const ruclip::Image file = ruclip::load_image(v1_model_dir() + "/" + image["file"].get<std::string>());
    const auto e = v1_model().encode_frames({file.view()});
    EXPECT_LE(max_abs_diff(row(e, 0), image_latent(i)), 1e-4) << image["file"];
  }
}

TEST(ModelV1Parity, ZeroShotOverTheFixtureTexts) {
  // Template "{}" and labels already lower-case and trimmed (zero-shot
  // lower-cases labels, as upstream v1's prepare_classes does too): the class
  // latents are the texts' own.
  const std::vector<int> picked = {1, 2, 6};
  std::vector<std::string> labels;
  for (int i : picked) labels.push_back(v1_expected()["texts"][i]["text"]);
  const auto set = ruclip::build_label_set(v1_model(), labels, {"{}"});
  for (int j = 0; j < 3; ++j) EXPECT_LE(max_abs_diff(row(set->text, j), text_latent(picked[j])), 1e-4) << labels[j];
}

// --- The short-text truncation ----------------------------------------------

// GPT-2 is causal and pooled at the eos: computing only up to the batch's
// last eos, without the padding mask, equals upstream's computation over
// the whole sequence with its padding mask.
// Presence on v1 as on v2: the label in a softmax over itself and the
// background, here against upstream's own logits of the same texts.
TEST(ModelV1Parity, PresenceFromUpstreamLogits) {
  const auto texts = v1_expected()["texts"];
  const int label = 2, background[] = {1, 9};  // "кот"; "чашка кофе на блюдце", "были бы адекватны ..."
  const auto set = ruclip::build_label_set(
      v1_model(), {texts[label]["text"].get<std::string>()}, {"{}"},
      ruclip::build_background(v1_model(), {"{}"}, {texts[background[0]]["text"], texts[background[1]]["text"]}));
  ASSERT_EQ(set->background->text.rows, 2);
  for (int i = 0; i < 5; ++i) {
    const auto logits = v1_expected()["logits_per_image"][i];
    const double own = std::exp(logits[label].get<double>());
    double rest = 0;
    for (int b : background) rest += std::exp(logits[b].get<double>());
    const std::vector<float> latent = image_latent(i);
    const auto scores = ruclip::score_image(*set, latent.data(), static_cast<int>(latent.size()),
                                            v1_model().logit_scale(), 0, ruclip::Scoring::kPresence);
    EXPECT_NEAR(scores[0].presence, own / (own + rest), 1e-3) << "image " << i;
    EXPECT_FLOAT_EQ(scores[0].probability, 1.0f);
  }
}

TEST(ModelV1Text, TruncatedEqualsFullContextWithThePaddingMask) {
  auto w = fixture_weights();
  c10::InferenceMode guard;
  const auto ids = upstream_ids();
  int short_texts = 0;
  for (size_t i = 0; i < ids.size(); ++i) {
    const torch::Tensor t = ids_tensor({ids[i]});
    const auto full = tensor_row(w->encode_text(t, true), 0);
    const auto truncated = tensor_row(w->encode_text(t, false), 0);
    EXPECT_LE(max_abs_diff(full, truncated), 1e-5) << "text " << i;
    EXPECT_LE(max_abs_diff(full, text_latent(static_cast<int>(i))), 1e-4) << "text " << i;
    short_texts += v1_expected()["texts"][i]["eos_position"].get<int>() < 15;
  }
  EXPECT_GE(short_texts, 5);
  // All at once: each row computed up to the longest text (16), without the mask.
  const torch::Tensor all = w->encode_text(ids_tensor(ids), false);
  for (size_t i = 0; i < ids.size(); ++i)
    EXPECT_LE(max_abs_diff(tensor_row(all, i), text_latent(static_cast<int>(i))), 1e-4) << "text " << i;
}

TEST(ModelV1Text, ShortTextsBatchedWithALongOne) {
  const ruclip::ModelConfig& c = v1_model().config();
  const std::vector<int64_t> full = ruclip_test::context_filling_ids(c, 301);
  const auto ids = upstream_ids();
  for (size_t i = 0; i < ids.size(); ++i) {
    const auto with_full = v1_model().encode_token_ids({ids[i], full});
    EXPECT_LE(max_abs_diff(row(with_full, 0), text_latent(static_cast<int>(i))), 1e-4) << "text " << i;
    EXPECT_GT(max_abs_diff(row(with_full, 0), row(with_full, 1)), 1e-3);
  }
}

// --- Precision and kernels ----------------------------------------------------

TEST(ModelV1Precision, EveryFp32KernelMatchesUpstream) {
  const auto pixels = upstream_pixels();
  const auto ids = upstream_ids();
  for (const char* kernel : {"libtorch-blas", "onednn-f32"}) {
    setenv("RUCLIP_FP32_KERNEL", kernel, 1);
    std::unique_ptr<ruclip::Model> model;
    try {
      model = ruclip::Model::load(v1_model_dir(), opts("cpu", 2));
    } catch (const ruclip::Error& e) {
      EXPECT_NE(std::string(e.what()).find("expected one of"), std::string::npos) << e.what();  // no oneDNN
    }
    unsetenv("RUCLIP_FP32_KERNEL");
    if (!model) continue;
    EXPECT_EQ(model->kernels().linear_kernel, kernel);
    const auto images = model->encode_pixels(pixels.data(), 5);
    for (int i = 0; i < 5; ++i) EXPECT_LE(max_abs_diff(row(images, i), image_latent(i)), 1e-4) << kernel << " image " << i;
    const auto texts = model->encode_token_ids(ids);
    for (int j = 0; j < 10; ++j) EXPECT_LE(max_abs_diff(row(texts, j), text_latent(j)), 1e-4) << kernel << " text " << j;
  }
}

TEST(ModelV1Precision, Int8FollowsFp32) {
  std::unique_ptr<ruclip::Model> int8;
  try {
    int8 = ruclip::Model::load(v1_model_dir(), opts("cpu", 1, "int8"));
  } catch (const ruclip::Error& e) {
    if (std::string(e.what()).find("needs oneDNN") != std::string::npos) GTEST_SKIP() << "built without oneDNN";
    throw;
  }
  EXPECT_EQ(int8->precision(), ruclip::Precision::kInt8);
  const auto pixels = upstream_pixels();
  const auto images = int8->encode_pixels(pixels.data(), 5);
  const auto texts = int8->encode_token_ids(upstream_ids());
  for (int i = 0; i < 5; ++i) {
    EXPECT_GE(ruclip_test::cosine(row(images, i), image_latent(i)), 0.99) << "image " << i;
    EXPECT_GT(max_abs_diff(row(images, i), image_latent(i)), 1e-6) << "int8 gave fp32's exact numbers: not int8?";
  }
  for (int j = 0; j < 10; ++j) EXPECT_GE(ruclip_test::cosine(row(texts, j), text_latent(j)), 0.99) << "text " << j;
}

// int8-mixed's plan, laid on v1's layers: exactly each block's MLP output
// product (GPT-2's mlp.c_proj, the image tower's c_proj) runs float32; the
// rest, the projection heads included, int8; the patch embedding never int8.
TEST(ModelV1Precision, Int8MixedKeepsOnlyMlpOutputsFp32) {
  using ruclip::detail::LinearKernel;
  if (!ruclip::detail::onednn_kernel_runs(LinearKernel::kOneDnnInt8) ||
      !ruclip::detail::onednn_kernel_runs(LinearKernel::kOneDnnF32))
    GTEST_SKIP() << "oneDNN's int8 or f32 product doesn't run beside this LibTorch here (docs/building.md)";
  auto w = fixture_weights();
  const auto plan = ruclip::detail::choose_kernels(ruclip::Precision::kInt8Mixed, torch::kCPU, w->config, 1);
  ruclip::detail::release_cpu_threads();
  EXPECT_EQ(plan.kernels.blocks, LinearKernel::kOneDnnInt8);
  EXPECT_EQ(plan.kernels.mlp_output, LinearKernel::kOneDnnF32);
  EXPECT_EQ(plan.kernels.patch_embedding, ruclip::cpu_features().native_bf16() ? LinearKernel::kOneDnnBf16
                                                                                : LinearKernel::kOneDnnF32);
  EXPECT_EQ(plan.report.linear_kernel, "onednn-int8-mixed");
  w->prepare_inference(plan.kernels);
  for (const auto* blocks : {&w->visual_blocks, &w->text_blocks}) {
    ASSERT_FALSE(blocks->empty());
    for (const auto& b : *blocks) {
      EXPECT_EQ(b.in_proj.kernel(), LinearKernel::kOneDnnInt8);
      EXPECT_EQ(b.out_proj.kernel(), LinearKernel::kOneDnnInt8);
      EXPECT_EQ(b.c_fc.kernel(), LinearKernel::kOneDnnInt8);
      EXPECT_EQ(b.c_proj.kernel(), LinearKernel::kOneDnnF32);
    }
  }
  for (const auto* head : {&w->visual_head, &w->text_head}) {
    EXPECT_EQ(head->linear1.kernel(), LinearKernel::kOneDnnInt8);
    EXPECT_EQ(head->linear2.kernel(), LinearKernel::kOneDnnInt8);
  }
  EXPECT_EQ(w->patch_embedding.kernel(), plan.kernels.patch_embedding);
}

// bf16 arithmetic on LibTorch's kernels (on any CPU; Model picks it only where it is native).
TEST(ModelV1Precision, Bf16FollowsFp32) {
  auto w = fixture_weights();
  w->to(torch::kCPU, torch::kBFloat16);
  w->prepare_inference(ruclip::detail::LayerKernels::all(ruclip::detail::LinearKernel::kLibTorch));
  c10::InferenceMode guard;
  const auto pixels = upstream_pixels();
  const torch::Tensor images = w->encode_image(torch::from_blob(const_cast<float*>(pixels.data()), {5, 3, 32, 32}));
  const torch::Tensor texts = w->encode_text(ids_tensor(upstream_ids()));
  EXPECT_EQ(images.scalar_type(), torch::kFloat32);
  for (int i = 0; i < 5; ++i) {
    EXPECT_GE(ruclip_test::cosine(tensor_row(images, i), image_latent(i)), 0.99) << "image " << i;
    EXPECT_GT(max_abs_diff(tensor_row(images, i), image_latent(i)), 1e-6) << "not bf16?";
  }
  for (int j = 0; j < 10; ++j) EXPECT_GE(ruclip_test::cosine(tensor_row(texts, j), text_latent(j)), 0.99) << "text " << j;
  // And through Model: bf16 where the CPU has it, fp32 (with a warning) where it hasn't.
  auto model = ruclip::Model::load(v1_model_dir(), opts("cpu", 1, "bf16"));
  const auto e = model->encode_token_ids(upstream_ids());
  for (int j = 0; j < 10; ++j) EXPECT_GE(ruclip_test::cosine(row(e, j), text_latent(j)), 0.99) << "text " << j;
}

// --- Random weights of the published geometry ----------------------------------

TEST(ModelV1Geometry, PublishedV1WithRandomWeights) {
  ruclip::ModelConfig c = ruclip::published_geometry("v1");
  EXPECT_EQ(c.family, ruclip::ModelFamily::kV1);
  EXPECT_EQ(c.embed_dim, 1024);
  EXPECT_EQ(c.context_length, 128);
  EXPECT_EQ(c.vocab_size, 50264);
  c.vision_layers = c.transformer_layers = 1;  // the real widths, fewer layers: fast
  auto model = ruclip::Model::random(c, 3, opts("cpu", 1));
  std::vector<float> pixels(2 * 3 * 224 * 224, 0.5f);
  const auto images = model->encode_pixels(pixels.data(), 2);
  EXPECT_EQ(images.dim, 1024);
  EXPECT_NEAR(ruclip_test::cosine(row(images, 0), row(images, 0)), 1.0, 1e-6);
  double norm = 0;
  for (float v : row(images, 1)) norm += double(v) * v;
  EXPECT_NEAR(norm, 1.0, 1e-5);
  std::vector<int64_t> ids(128, c.pad_id);
  ids[0] = c.bos_id, ids[1] = 100, ids[2] = c.eos_id;
  EXPECT_EQ(model->encode_token_ids({ids}).dim, 1024);
  EXPECT_EQ(model->normalization().resize, ruclip::ResizeMode::kBicubicThenCrop);
}

// --- Hostile and broken checkpoints -------------------------------------------

TEST(ModelV1Hostile, WrongShapesAreNamed) {
  const std::string path = edited_checkpoint([](ruclip::StateDict& d) {
    auto& fc = d["text_encoder.model.h.1.mlp.c_fc.weight"];  // [64, 256] stored: a view on fewer elements
    fc.shape = {64, 128};
    fc.strides = {128, 1};
    auto& proj = d["visual_encoder.projection.linear2.weight"];
    proj.shape = {40, 20};
    proj.strides = {20, 1};
  });
  const std::string msg = error_of([&] { ruclip::Model::load(path); });
  EXPECT_NE(msg.find(path + ": weights do not match the ruCLIP v1 geometry"), std::string::npos) << msg;
  EXPECT_NE(msg.find("wrong shape (2)"), std::string::npos) << msg;
  EXPECT_NE(msg.find("text_encoder.model.h.1.mlp.c_fc.weight is [64,128], the geometry implies [64,256]"),
            std::string::npos)
      << msg;
  EXPECT_NE(msg.find("visual_encoder.projection.linear2.weight is [40,20], the geometry implies [40,40]"),
            std::string::npos)
      << msg;
}

TEST(ModelV1Hostile, MissingProjection) {
  const std::string path = edited_checkpoint([](ruclip::StateDict& d) {
    for (const char* k : {"linear1.weight", "linear2.weight", "layer_norm.weight", "layer_norm.bias"})
      d.erase(std::string("visual_encoder.projection.") + k);
  });
  const std::string msg = error_of([&] { ruclip::Model::load(path); });
  EXPECT_NE(msg.find("missing (4): visual_encoder.projection.linear1.weight"), std::string::npos) << msg;
  EXPECT_NE(msg.find(path), std::string::npos) << msg;
}

TEST(ModelV1Hostile, V1KeysMixedWithV2) {
  const ruclip::StateDict v2 = ruclip::read_torch_checkpoint(ruclip_test::tiny_model_dir() + "/pytorch_model.bin");
  const std::string path = edited_checkpoint([&](ruclip::StateDict& d) {
    d["visual.proj"] = v2.at("visual.proj");
    d["token_embedding.weight"] = v2.at("token_embedding.weight");
  });
  const std::string msg = error_of([&] { ruclip::Model::load(path); });
  EXPECT_NE(msg.find("unexpected (2): token_embedding.weight, visual.proj"), std::string::npos) << msg;
  // A v1 state dict in a v2 folder, and a v2 one named for a v1 folder.
  const std::string v2_dir = ruclip_test::copy_tiny_model();
  fs::remove(v2_dir + "/pytorch_model.bin");
  ruclip::write_safetensors(v2_dir + "/model.safetensors", ruclip::read_torch_checkpoint(v1_model_dir() + "/ViT-B32-small.pt"));
  EXPECT_NE(error_of([&] { ruclip::Model::load(v2_dir); })
                .find("holds a ruCLIP v1 state dict (visual_encoder.*, text_encoder.*), but " + v2_dir +
                      "/config.json describes a ruclip-vit-* (v2) model"),
            std::string::npos);
  const std::string v1_folder = copy_v1({"vocab.json", "merges.txt", "config.json"});
  fs::copy_file(ruclip_test::tiny_model_dir() + "/pytorch_model.bin", v1_folder + "/v2.bin");
  EXPECT_NE(error_of([&] { ruclip::Model::load(v1_folder + "/v2.bin"); }).find("not a ruCLIP v1 state dict"),
            std::string::npos);
}

TEST(ModelV1Hostile, Gpt2BuffersMustBeTheCausalMask) {
  // A mask with one more key allowed: upstream would compute with it; this tower can't.
  std::string path = edited_checkpoint([](ruclip::StateDict& d) {
    ruclip::TensorData& bias = d["text_encoder.model.h.1.attn.bias"];
    std::vector<uint8_t> bytes = bias.contiguous_bytes();
    bytes[0 * 32 + 1] = 1;
    auto storage = std::make_shared<std::vector<uint8_t>>(bytes);
    bias = ruclip::TensorData{ruclip::DType::U8, {1, 1, 32, 32}, {1024, 1024, 32, 1}, 0, storage};
  });
  std::string msg = error_of([&] { ruclip::Model::load(path); });
  EXPECT_NE(msg.find("text_encoder.model.h.1.attn.bias is not the causal mask"), std::string::npos) << msg;
  path = edited_checkpoint([](ruclip::StateDict& d) {
    auto storage = std::make_shared<std::vector<uint8_t>>(4);
    const float value = -1e9f;
    std::memcpy(storage->data(), &value, 4);
    d["text_encoder.model.h.0.attn.masked_bias"] = ruclip::TensorData{ruclip::DType::F32, {}, {}, 0, storage};
  });
  msg = error_of([&] { ruclip::Model::load(path); });
  EXPECT_NE(msg.find("text_encoder.model.h.0.attn.masked_bias is"), std::string::npos) << msg;
  // Shorter than seq_length: upstream's GPT-2 slices it and fails.
  path = edited_checkpoint([](ruclip::StateDict& d) {
    auto storage = std::make_shared<std::vector<uint8_t>>(64, 1);
    d["text_encoder.model.h.0.attn.bias"] = ruclip::TensorData{ruclip::DType::U8, {1, 1, 8, 8}, {64, 64, 8, 1}, 0, storage};
  });
  msg = error_of([&] { ruclip::Model::load(path); });
  EXPECT_NE(msg.find("text_encoder.model.h.0.attn.bias is [1,1,8,8], expected the causal mask"), std::string::npos)
      << msg;
  // Not there at all (later transformers versions don't save them): fine.
  path = edited_checkpoint([](ruclip::StateDict& d) {
    for (int i = 0; i < 2; ++i)
      for (const char* b : {".attn.bias", ".attn.masked_bias"}) d.erase("text_encoder.model.h." + std::to_string(i) + b);
  });
  auto model = ruclip::Model::load(path, opts("cpu", 2));
  EXPECT_EQ(model->encode_token_ids(upstream_ids()).data, v1_model().encode_token_ids(upstream_ids()).data);
}

TEST(ModelV1Hostile, GeometryTensorsMissing) {
  // Without config.json the vision width and patch come from conv1 only.
  const std::string path = edited_checkpoint([](ruclip::StateDict& d) {
    d.erase("visual_encoder.model.conv1.weight");
    d.erase("text_encoder.model.wpe.weight");
  }, false);
  const std::string msg = error_of([&] { ruclip::Model::load(path); });
  EXPECT_NE(msg.find(path + ": the ruCLIP v1 geometry can't be read from the state dict"), std::string::npos) << msg;
  EXPECT_NE(msg.find("visual_encoder.model.conv1.weight is missing"), std::string::npos) << msg;
  EXPECT_NE(msg.find("text_encoder.model.wpe.weight is missing"), std::string::npos) << msg;
  // With config.json stating the geometry, the same file is just missing two weights.
  const std::string stated = edited_checkpoint([](ruclip::StateDict& d) { d.erase("visual_encoder.model.conv1.weight"); });
  EXPECT_NE(error_of([&] { ruclip::Model::load(stated); }).find("missing (1): visual_encoder.model.conv1.weight"),
            std::string::npos);
}

TEST(ModelV1Hostile, ConfigJsonDisagreeingWithTheShapes) {
  const std::string dir = copy_v1({"ViT-B32-small.pt", "vocab.json", "merges.txt"});
  auto config = nlohmann::json::parse(ruclip_test::read_file(v1_model_dir() + "/config.json"));
  config["text"]["n_embd"] = 128;
  config["projection"].erase("text_d_in");
  config["text"]["n_inner"] = 512;
  ruclip_test::write_file(dir + "/config.json", config.dump());
  const std::string msg = error_of([&] { ruclip::Model::load(dir); });
  EXPECT_NE(msg.find("text_encoder.model.wte.weight is [1260,64], the geometry implies [1260,128]"), std::string::npos)
      << msg;
}

TEST(ModelV1, TrainingRefusesV1) {
  ruclip::TrainOptions o;
  o.init = v1_model_dir();
  o.output = ruclip_test::make_temp_dir() + "/out";
  o.data = "/nonexistent.csv";
  const std::string msg = error_of([&] { ruclip::train(o, nullptr); });
  EXPECT_NE(msg.find("ruCLIP v1 (GPT-2 text tower, Projection heads) can't be trained here"), std::string::npos) << msg;
}
