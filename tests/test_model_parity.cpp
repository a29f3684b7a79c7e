// The model against upstream ruCLIP's own outputs (tests/data/ruclip-tiny-v2/expected.json).
#include <gtest/gtest.h>

#include <cmath>
#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <sstream>

#include "ruclip/tokenizer.h"

#include "ruclip/tools/benchmark.h"
#include "ruclip/checkpoint.h"
#include "ruclip/config.h"
#include "ruclip/error.h"
#include "ruclip/tools/image_files.h"
#include "ruclip/cpu.h"
#include "ruclip/model.h"
#include "ruclip/zero_shot.h"
#include "test_util.h"

using ruclip_test::expected;
using ruclip_test::max_abs_diff;

using ruclip_test::error_of;

namespace {

ruclip::ModelOptions opts(const std::string& device, int threads, const std::string& precision = "fp32") {
  return {ruclip::Device::parse(device), threads, ruclip::parse_precision(precision)};
}

ruclip::Model& tiny_model() {
  static auto model = ruclip::Model::load(ruclip_test::tiny_model_dir(), opts("cpu", 2));
  return *model;
}

using ruclip_test::row;

std::vector<float> fixture_pixels() { return ruclip_test::fixture_pixels(expected()); }

std::vector<ruclip::Image> fixture_images() {
  std::vector<ruclip::Image> images;
  for (const auto& image : expected()["images"])
    images.push_back(ruclip::load_image(ruclip_test::tiny_model_dir() + "/" + image["file"].get<std::string>()));
  return images;
}

// Each fixture image's best text (by cosine) is the one upstream's logits pick.
void expect_upstream_ranking(ruclip::Embeddings images, ruclip::Embeddings texts) {
  images.normalize_rows();
  texts.normalize_rows();
  for (int i = 0; i < 5; ++i) {
    int best = 0, want_best = 0;
    double best_dot = -2;
    for (int j = 0; j < texts.rows; ++j) {
      double dot = 0;
      for (int k = 0; k < images.dim; ++k) dot += double(images.row(i)[k]) * texts.row(j)[k];
      if (dot > best_dot) best_dot = dot, best = j;
      if (expected()["logits_per_image"][i][j].get<double>() > expected()["logits_per_image"][i][want_best].get<double>())
        want_best = j;
    }
    EXPECT_EQ(best, want_best) << "image " << i;
  }
}

}  // namespace

TEST(ModelParity, TextLatentsFromUpstreamIds) {
  const std::vector<std::vector<int64_t>> ids = ruclip_test::fixture_ids(expected());
  const auto e = tiny_model().encode_token_ids(ids);
  ASSERT_EQ(e.rows, 10);
  for (int i = 0; i < e.rows; ++i)
    EXPECT_LE(max_abs_diff(row(e, i), expected()["texts"][i]["text_latent"].get<std::vector<float>>()), 1e-4)
        << "text " << i;
}

TEST(ModelParity, TextLatentsFromText) {
  std::vector<std::string> texts;
  for (const auto& t : expected()["texts"]) texts.push_back(t["text"]);
  const auto e = tiny_model().encode_text(texts);
  for (int i = 0; i < e.rows; ++i) {
    EXPECT_EQ(tiny_model().tokenize(texts[i]), expected()["texts"][i]["input_ids"].get<std::vector<int64_t>>());
    EXPECT_LE(max_abs_diff(row(e, i), expected()["texts"][i]["text_latent"].get<std::vector<float>>()), 1e-4)
        << texts[i];
  }
}

TEST(ModelParity, ImageLatentsFromUpstreamPixels) {
  const auto pixels = fixture_pixels();
  const auto e = tiny_model().encode_pixels(pixels.data(), 5);
  ASSERT_EQ(e.rows, 5);
  for (int i = 0; i < e.rows; ++i)
    EXPECT_LE(max_abs_diff(row(e, i), expected()["images"][i]["image_latent"].get<std::vector<float>>()), 1e-4)
        << "image " << i;
}

TEST(ModelParity, BatchEqualsOneByOne) {
  const auto pixels = fixture_pixels();
  const auto batch = tiny_model().encode_pixels(pixels.data(), 5);
  const size_t per = pixels.size() / 5;
  for (int i = 0; i < 5; ++i) {
    const auto single = tiny_model().encode_pixels(pixels.data() + i * per, 1);
    EXPECT_LE(max_abs_diff(row(single, 0), row(batch, i)), 1e-5);
  }
}

TEST(ModelParity, ImageLatentsFromPngFiles) {
  const auto images = fixture_images();
  for (size_t i = 0; i < images.size(); ++i) {
    const auto e = tiny_model().encode_frames({images[i].view()});
    const auto want = expected()["images"][i]["image_latent"].get<std::vector<float>>();
    EXPECT_GE(ruclip_test::cosine(row(e, 0), want), 0.9999) << expected()["images"][i]["file"];
  }
}

TEST(ModelParity, LogitsPerImage) {
  const auto pixels = fixture_pixels();
  auto images = tiny_model().encode_pixels(pixels.data(), 5);
  std::vector<std::string> texts;
  for (const auto& t : expected()["texts"]) texts.push_back(t["text"]);
  auto text = tiny_model().encode_text(texts);
  images.normalize_rows();
  text.normalize_rows();
  for (int i = 0; i < 5; ++i)
    for (int j = 0; j < 10; ++j) {
      double dot = 0;
      for (int k = 0; k < images.dim; ++k) dot += double(images.row(i)[k]) * text.row(j)[k];
      EXPECT_NEAR(tiny_model().logit_scale() * dot, expected()["logits_per_image"][i][j].get<double>(), 1e-3);
    }
}

TEST(ZeroShotParity, ClassLatentsAndProbabilities) {
  const auto& zs = expected()["zero_shot"];
  const auto set = ruclip::build_label_set(tiny_model(), zs["classes"], zs["templates"]);
  for (int i = 0; i < set->text.rows; ++i)
    EXPECT_LE(max_abs_diff(row(set->text, i), zs["class_latents"][i].get<std::vector<float>>()), 1e-4);

  const auto pixels = fixture_pixels();
  const auto from_pixels = tiny_model().encode_pixels(pixels.data(), 5);
  const auto images = fixture_images();
  for (int i = 0; i < 5; ++i) {
    const auto from_png = tiny_model().encode_frames({images[i].view()});
    for (const auto* e : {&from_pixels, &from_png}) {
      const int r = e == &from_pixels ? i : 0;
      const auto scores = ruclip::score_image(*set, e->row(r), e->dim, tiny_model().logit_scale());
      ASSERT_EQ(scores.size(), 4u);
      EXPECT_EQ(scores[0].label, zs["classes"][zs["argmax"][i].get<int>()]);
      for (size_t k = 1; k < scores.size(); ++k) EXPECT_GE(scores[k - 1].probability, scores[k].probability);
      for (const auto& s : scores) {
        const auto c = std::find(zs["classes"].begin(), zs["classes"].end(), s.label) - zs["classes"].begin();
        EXPECT_NEAR(s.probability, zs["probs"][i][c].get<double>(), 1e-3) << s.label << " image " << i;
      }
    }
  }
}

TEST(ZeroShot, TopKAndDefaultTemplates) {
  const auto set = ruclip::build_label_set(tiny_model(), {"кошка", "собака", "дерево"});
  EXPECT_EQ(set->templates.size(), 6u);
  EXPECT_EQ(set->templates[1], "фото, на котором изображено {}");
  const auto pixels = fixture_pixels();
  const auto e = tiny_model().encode_pixels(pixels.data(), 1);
  const auto all = ruclip::score_image(*set, e.row(0), e.dim, tiny_model().logit_scale());
  const auto top2 = ruclip::score_image(*set, e.row(0), e.dim, tiny_model().logit_scale(), 2);
  ASSERT_EQ(top2.size(), 2u);
  EXPECT_EQ(top2[0].label, all[0].label);
  EXPECT_EQ(top2[1].label, all[1].label);
  double sum = 0;
  for (const auto& s : all) sum += s.probability;
  EXPECT_NEAR(sum, 1.0, 1e-5);
  // Labels are lower-cased and stripped as upstream's Predictor does.
  const auto upper = ruclip::build_label_set(tiny_model(), {"  КОШКА ", "Собака", "ДЕРЕВО"});
  EXPECT_LE(max_abs_diff(upper->text.data, set->text.data), 1e-6);
}

TEST(ZeroShot, ModelTemplatesReplaceTheDefaults) {
  const std::string dir = ruclip_test::copy_tiny_model();
  auto config = nlohmann::json::parse(ruclip_test::read_file(dir + "/config.json"));
  config["templates"] = {"это {}"};
  ruclip_test::write_file(dir + "/config.json", config.dump());
  auto model = ruclip::Model::load(dir, opts("cpu", 1));
  const auto own = ruclip::build_label_set(*model, {"кошка", "собака"});
  EXPECT_EQ(own->templates, std::vector<std::string>{"это {}"});
  const auto given = ruclip::build_label_set(tiny_model(), {"кошка", "собака"}, {"это {}"});
  EXPECT_LE(max_abs_diff(own->text.data, given->text.data), 1e-6);
  // Templates given by the caller still win.
  EXPECT_EQ(ruclip::build_label_set(*model, {"кошка"}, {"{}"})->templates, std::vector<std::string>{"{}"});
}

TEST(ZeroShot, Errors) {
  EXPECT_NE(error_of([] { ruclip::build_label_set(tiny_model(), {}); }).find("no labels"), std::string::npos);
  EXPECT_NE(error_of([] { ruclip::build_label_set(tiny_model(), {"кошка"}, {"фото кошки"}); })
                .find("'фото кошки' has no {}"),
            std::string::npos);
  EXPECT_NE(error_of([] { ruclip::build_label_set(tiny_model(), {"кошка", "  "}); }).find("empty label"),
            std::string::npos);
}

TEST(ModelLoad, SafetensorsGivesTheSameModel) {
  const std::string dir = ruclip_test::copy_tiny_model();
  ruclip::write_safetensors(dir + "/model.safetensors",
                            ruclip::read_torch_checkpoint(ruclip_test::tiny_model_dir() + "/pytorch_model.bin"));
  std::filesystem::remove(dir + "/pytorch_model.bin");
  auto model = ruclip::Model::load(dir, opts("cpu", 2));  // as tiny_model(): the same kernels, bit for bit
  const auto pixels = fixture_pixels();
  const auto a = model->encode_pixels(pixels.data(), 5);
  const auto b = tiny_model().encode_pixels(pixels.data(), 5);
  EXPECT_EQ(a.data, b.data);
  EXPECT_EQ(model->logit_scale(), tiny_model().logit_scale());
}

TEST(ModelLoad, WeightProblemsAreNamed) {
  auto dict = ruclip::read_torch_checkpoint(ruclip_test::tiny_model_dir() + "/pytorch_model.bin");
  dict.erase("visual.proj");
  dict["visual.ln_post.weight"].shape = {64};  // a view on fewer elements: mis-shaped
  dict["visual.ln_post.weight"].strides = {1};
  dict["extra.weight"] = dict["logit_scale"];
  const std::string dir = ruclip_test::copy_tiny_model();
  std::filesystem::remove(dir + "/pytorch_model.bin");
  ruclip::write_safetensors(dir + "/model.safetensors", dict);
  const std::string msg = error_of([&] { ruclip::Model::load(dir); });
  EXPECT_NE(msg.find(dir + "/model.safetensors: weights do not match config.json"), std::string::npos) << msg;
  EXPECT_NE(msg.find("missing (1): visual.proj"), std::string::npos) << msg;
  EXPECT_NE(msg.find("visual.ln_post.weight is [64], config.json implies [128]"), std::string::npos) << msg;
  EXPECT_NE(msg.find("unexpected (1): extra.weight"), std::string::npos) << msg;
}

TEST(ModelLoad, FolderProblems) {
  EXPECT_NE(error_of([] { ruclip::Model::load("/nonexistent/model"); }).find("/nonexistent/model: not a folder"),
            std::string::npos);
  const std::string dir = ruclip_test::copy_tiny_model();
  std::filesystem::remove(dir + "/pytorch_model.bin");
  EXPECT_NE(error_of([&] { ruclip::Model::load(dir); }).find("no weights"), std::string::npos);
}

TEST(ModelLoad, Devices) {
  EXPECT_NE(error_of([] { ruclip::Model::load(ruclip_test::tiny_model_dir(), opts("gpu", 1)); })
                .find("device 'gpu': expected cpu, cuda, cuda:N or auto"),
            std::string::npos);
  EXPECT_NE(error_of([] { ruclip::Model::load(ruclip_test::tiny_model_dir(), opts("cuda:x", 1)); }).find("device 'cuda:x'"),
            std::string::npos);
  auto model = ruclip::Model::load(ruclip_test::tiny_model_dir(), opts("auto", 1));
  EXPECT_TRUE(model->device() == "cpu" || model->device().rfind("cuda", 0) == 0);
  if (model->device() == "cpu") {
    EXPECT_NE(error_of([] { ruclip::Model::load(ruclip_test::tiny_model_dir(), opts("cuda", 1)); })
                  .find("CUDA is not available"),
              std::string::npos);
  }
}

// A reduced precision's latents on the fixture: each image's and text's
// latent keeps its direction (cosine >= `min_cosine`) without being fp32's
// exact numbers (some coordinate off by more than `min_difference`), and the
// texts rank per image as upstream ranks them. Returns the image latents.
ruclip::Embeddings expect_latents_follow_fp32(const ruclip::Model& model, const std::string& precision,
                                              double min_cosine, double min_difference) {
  const auto pixels = fixture_pixels();
  auto images = model.encode_pixels(pixels.data(), 5);
  for (int i = 0; i < 5; ++i) {
    const auto want = expected()["images"][i]["image_latent"].get<std::vector<float>>();
    EXPECT_GE(ruclip_test::cosine(row(images, i), want), min_cosine) << precision << " image " << i;
    EXPECT_GT(max_abs_diff(row(images, i), want), min_difference)
        << precision << " gave fp32's exact numbers: not " << precision << "?";
  }
  const std::vector<std::vector<int64_t>> ids = ruclip_test::fixture_ids(expected());
  auto texts = model.encode_token_ids(ids);
  for (int j = 0; j < texts.rows; ++j)
    EXPECT_GE(ruclip_test::cosine(row(texts, j), expected()["texts"][j]["text_latent"].get<std::vector<float>>()),
              min_cosine)
        << precision << " text " << j;
  expect_upstream_ranking(images, texts);
  return images;
}

// bf16 keeps 8 bits of mantissa: the latents move by about 1 %, the
// direction hardly (cosine), and the ranking of the fixture's texts per image
// stays that of fp32 and upstream.
TEST(Precision, Bf16LatentsFollowFp32) {
  auto bf16 = ruclip::Model::load(ruclip_test::tiny_model_dir(), opts("cpu", 1, "bf16"));
  if (!ruclip::cpu_features().native_bf16()) GTEST_SKIP() << "no native bf16 on this CPU (tested: BfloatFallsBackOnCpusWithout)";
  EXPECT_EQ(bf16->precision(), ruclip::Precision::kBf16);
  expect_latents_follow_fp32(*bf16, "bf16", 0.995, 1e-6);
}

// The text tower is causal and pools at the first eos: a batch is computed
// only as far as its longest text. A short text batched with one that fills
// the whole context (so computed over all positions) gets the latent it gets
// alone (computed over its own length only).
TEST(TextEncoding, ShortTextsEqualFullContext) {
  const ruclip::ModelConfig& c = tiny_model().config();
  const std::vector<int64_t> full = ruclip_test::context_filling_ids(c, 101);
  int short_texts = 0;
  for (const auto& t : expected()["texts"]) {
    const auto ids = t["input_ids"].get<std::vector<int64_t>>();
    if (std::find(ids.begin(), ids.end(), c.eos_id) - ids.begin() >= c.context_length - 1) continue;  // fills it
    ++short_texts;
    const auto alone = tiny_model().encode_token_ids({ids});
    const auto with_full = tiny_model().encode_token_ids({ids, full});
    EXPECT_LE(max_abs_diff(row(alone, 0), row(with_full, 0)), 1e-5) << t["text"];
    EXPECT_GT(max_abs_diff(row(alone, 0), row(with_full, 1)), 1e-3) << "the long text's latent, not its own";
  }
  EXPECT_GE(short_texts, 5);
}

// More texts than one batch, of mixed lengths, in no order: each latent lands
// in its own row, equal to encoding that text alone.
TEST(TextEncoding, BatchesKeepEachTextInItsRow) {
  std::vector<std::vector<int64_t>> ids;
  for (int i = 0; i < 150; ++i) ids.push_back(expected()["texts"][(i * 7) % 10]["input_ids"].get<std::vector<int64_t>>());
  const auto all = tiny_model().encode_token_ids(ids);
  ASSERT_EQ(all.rows, 150);
  for (int i = 0; i < 150; i += 13)
    EXPECT_LE(max_abs_diff(row(all, i), expected()["texts"][(i * 7) % 10]["text_latent"].get<std::vector<float>>()),
              1e-4)
        << "row " << i;
}

// Every float32 kernel (RUCLIP_FP32_KERNEL forces one instead of the
// measured choice) gives upstream's latents, images and texts, at 1 and 2
// threads.
TEST(Precision, EveryFp32KernelMatchesUpstream) {
  const auto pixels = fixture_pixels();
  const std::vector<std::vector<int64_t>> ids = ruclip_test::fixture_ids(expected());
  for (const char* kernel : {"libtorch-blas", "onednn-f32"})
    for (int threads : {1, 2}) {
      // CPU threads are process-wide and tiny_model() holds them: set them for every model on purpose.
      ruclip::set_process_cpu_threads(threads);
      ASSERT_EQ(ruclip::process_cpu_threads(), threads);
      setenv("RUCLIP_FP32_KERNEL", kernel, 1);
      auto model = ruclip::Model::load(ruclip_test::tiny_model_dir(), opts("cpu", threads));
      unsetenv("RUCLIP_FP32_KERNEL");
      EXPECT_EQ(model->kernels().linear_kernel, kernel);
      EXPECT_TRUE(model->kernels().warnings.empty()) << model->kernels().warnings[0];
      const auto images = model->encode_pixels(pixels.data(), 5);
      for (int i = 0; i < 5; ++i)
        EXPECT_LE(max_abs_diff(row(images, i), expected()["images"][i]["image_latent"].get<std::vector<float>>()),
                  1e-4)
            << kernel << " image " << i;
      const auto texts = model->encode_token_ids(ids);
      for (int j = 0; j < texts.rows; ++j)
        EXPECT_LE(max_abs_diff(row(texts, j), expected()["texts"][j]["text_latent"].get<std::vector<float>>()), 1e-4)
            << kernel << " text " << j;
    }
  ruclip::set_process_cpu_threads(2);  // as tiny_model() asked
  setenv("RUCLIP_FP32_KERNEL", "gemm", 1);
  EXPECT_NE(error_of([] { ruclip::Model::load(ruclip_test::tiny_model_dir(), opts("cpu", 1)); })
                .find("RUCLIP_FP32_KERNEL='gemm': expected one of onednn-f32, libtorch-blas"),
            std::string::npos);
  unsetenv("RUCLIP_FP32_KERNEL");
}

// int8 linear layers: image latents keep their direction (cosine >= 0.99)
// and the fixture's texts rank per image as upstream ranks them.
TEST(Precision, Int8LatentsFollowFp32) {
  auto int8 = ruclip::Model::load(ruclip_test::tiny_model_dir(), opts("cpu", 1, "int8"));
  EXPECT_EQ(int8->precision(), ruclip::Precision::kInt8);
  EXPECT_EQ(int8->kernels().linear_kernel, "onednn-int8");
  expect_latents_follow_fp32(*int8, "int8", 0.99, 1e-5);
}

// int8-mixed: int8 but for each block's MLP output product, which runs
// float32: latents follow fp32's as int8's do, and differ from both
// (neither all int8 nor all float32 ran).
TEST(Precision, Int8MixedLatentsFollowFp32) {
  auto mixed = ruclip::Model::load(ruclip_test::tiny_model_dir(), opts("cpu", 1, "int8-mixed"));
  EXPECT_EQ(mixed->precision(), ruclip::Precision::kInt8Mixed);
  EXPECT_EQ(mixed->kernels().linear_kernel, "onednn-int8-mixed");
  const auto images = expect_latents_follow_fp32(*mixed, "int8-mixed", 0.99, 1e-5);
  auto int8 = ruclip::Model::load(ruclip_test::tiny_model_dir(), opts("cpu", 1, "int8"));
  const auto pixels = fixture_pixels();
  const auto int8_images = int8->encode_pixels(pixels.data(), 5);
  for (int i = 0; i < 5; ++i)
    EXPECT_GT(max_abs_diff(row(images, i), row(int8_images, i)), 1e-5) << "int8-mixed gave int8's exact numbers";
}

// The report says what runs and was measured, and auto picks a precision.
TEST(Precision, KernelReportAndAuto) {
  auto model = ruclip::Model::load(ruclip_test::tiny_model_dir(), opts("cpu", 1, "auto"));
  const ruclip::KernelReport& r = model->kernels();
  EXPECT_EQ(r.requested, "auto");
  EXPECT_NE(model->precision(), ruclip::Precision::kAuto);
  EXPECT_EQ(r.precision, ruclip::precision_name(model->precision()));
  EXPECT_NE(r.summary().find("linear layers on " + r.linear_kernel), std::string::npos) << r.summary();
  EXPECT_EQ(r.cpu_model, ruclip::cpu_features().model);
  // What was measured decides: int8 (with AVX-512 VNNI or AMX only)
  // against bf16 where bf16 is native, else against the fastest fp32
  // kernel, each with its margin; without VNNI, int8-mixed against fp32.
  std::map<std::string, double> rate(r.measured_gflops.begin(), r.measured_gflops.end());
  const bool bf16 = ruclip::cpu_features().native_bf16();
  if (!ruclip::cpu_features().avx512_vnni && !ruclip::cpu_features().amx_int8) {
    EXPECT_FALSE(rate.count("onednn-int8")) << r.summary();
    if (bf16) {
      EXPECT_EQ(model->precision(), ruclip::Precision::kBf16);
      return;
    }
    if (!rate.count("onednn-int8-mixed")) {
      // Only where oneDNN's int8 can't run beside this LibTorch (docs/building.md).
      EXPECT_EQ(model->precision(), ruclip::Precision::kFp32);
      EXPECT_NE(error_of([] { ruclip::Model::load(ruclip_test::tiny_model_dir(), opts("cpu", 1, "int8-mixed")); })
                    .find("doesn't run beside this LibTorch"),
                std::string::npos);
      return;
    }
    const double fp32 = std::max(rate["onednn-f32"], rate["libtorch-blas"]);
    EXPECT_EQ(model->precision(),
              rate.at("onednn-int8-mixed") > 1.2 * fp32 ? ruclip::Precision::kInt8Mixed : ruclip::Precision::kFp32)
        << r.summary();
    return;
  }
  ASSERT_TRUE(rate.count("onednn-int8")) << r.summary();
  const double other = bf16 ? rate.at("onednn-bf16") : std::max(rate["onednn-f32"], rate["libtorch-blas"]);
  const ruclip::Precision other_precision = bf16 ? ruclip::Precision::kBf16 : ruclip::Precision::kFp32;
  EXPECT_EQ(model->precision(),
            rate.at("onednn-int8") > (bf16 ? 1.1 : 1.2) * other ? ruclip::Precision::kInt8 : other_precision)
      << r.summary();
}

TEST(Precision, Errors) {
  EXPECT_NE(error_of([] { ruclip::Model::load(ruclip_test::tiny_model_dir(), opts("cpu", 1, "fp16")); })
                .find("precision 'fp16' needs a CUDA device"),
            std::string::npos);
  EXPECT_NE(error_of([] { ruclip::parse_precision("int4"); })
                .find("precision 'int4': expected fp32, bf16, fp16, int8, int8-mixed or auto"),
            std::string::npos);
}

// The six published geometries build with random weights and give latents of
// their embedding width; the FLOP count matches the hand count for ViT-B/32
// at 224 (patch embedding 0.23 + 12 blocks x 0.716 GFLOP = 8.82 GFLOP).
TEST(Geometry, PublishedGeometriesAndTheirCost) {
  EXPECT_EQ(ruclip::published_geometry_names().size(), 6u);
  EXPECT_NEAR(ruclip::image_gflop(ruclip::published_geometry("vit-b32-224")), 8.82, 0.01);
  EXPECT_GT(ruclip::image_gflop(ruclip::published_geometry("vit-l14-336")),
            20 * ruclip::image_gflop(ruclip::published_geometry("vit-b32-224")));
  EXPECT_NE(error_of([] { ruclip::published_geometry("vit-b64-999"); }).find("unknown geometry 'vit-b64-999'"),
            std::string::npos);
  ruclip::ModelConfig c = ruclip::published_geometry("vit-b32-224");
  c.vision_layers = c.transformer_layers = 1;  // the real widths, fewer layers: fast
  auto model = ruclip::Model::random(c, 3, opts("cpu", 1));
  std::vector<float> pixels(2 * 3 * 224 * 224, 0.5f);
  const auto e = model->encode_pixels(pixels.data(), 2);
  EXPECT_EQ(e.rows, 2);
  EXPECT_EQ(e.dim, 512);
  EXPECT_NE(error_of([&] { model->tokenize("кошка"); }).find("has no tokenizer"), std::string::npos);
  std::vector<int64_t> ids(77, 0);
  ids[0] = 2, ids[1] = 100, ids[2] = 3;
  EXPECT_EQ(model->encode_token_ids({ids}).dim, 512);
}

TEST(ModelLoad, TokenIdsAreChecked) {
  std::vector<int64_t> ids(16, 0);
  ids[0] = 5000;
  EXPECT_NE(error_of([&] { tiny_model().encode_token_ids({ids}); }).find("outside the vocabulary"), std::string::npos);
  EXPECT_NE(error_of([&] { tiny_model().encode_token_ids({{2, 3}}); }).find("expected 16 per text"),
            std::string::npos);
}

// libsentencepiece and LibTorch can't be linked into one program on Debian 12
// (protobuf clash); the SentencePiece backend lives in a module opened with
// RTLD_LOCAL. This test runs it inside a process that has LibTorch loaded and
// checks its ids against Debian's spm_encode.
TEST(SentencePieceInTorchProcess, EncodesLikeSpmEncode) {
  const std::string dir = ruclip_test::make_temp_dir();
  const std::string lines = ruclip_test::data_dir() + "/yttm/lines.txt";
  const std::string train = "spm_train --input=" + lines + " --model_prefix=" + dir +
                            "/sentencepiece --vocab_size=400 --model_type=bpe --pad_id=0 --unk_id=1 --bos_id=2 "
                            "--eos_id=3 --minloglevel=2 > /dev/null 2>&1";
  ASSERT_EQ(std::system(train.c_str()), 0) << train;
#if defined(__SANITIZE_ADDRESS__)
  // AddressSanitizer refuses RTLD_DEEPBIND, so libsentencepiece calls LibTorch's
  // protobuf, whose version check refuses it: that must be a clean
  // ruclip::Error (no crash, no leak); encoding can't be checked here.
  EXPECT_THROW(ruclip::load_sentencepiece_tokenizer(dir + "/sentencepiece.model"), ruclip::Error);
  GTEST_SKIP() << "SentencePiece can't load beside LibTorch under AddressSanitizer (it needs RTLD_DEEPBIND)";
#endif
  ASSERT_EQ(std::system(("head -n 50 " + lines + " | spm_encode --model=" + dir +
                         "/sentencepiece.model --output_format=id > " + dir + "/ids.txt")
                            .c_str()),
            0);
  auto tokenizer = ruclip::load_sentencepiece_tokenizer(dir + "/sentencepiece.model");
  EXPECT_EQ(tokenizer->vocab_size(), 400);
  std::istringstream text(ruclip_test::read_file(lines)), ids(ruclip_test::read_file(dir + "/ids.txt"));
  std::string line, id_line;
  int checked = 0;
  while (checked < 50 && std::getline(text, line) && std::getline(ids, id_line)) {
    std::vector<int> want;
    std::istringstream in(id_line);
    for (int id; in >> id;) want.push_back(id);
    EXPECT_EQ(tokenizer->encode(line), want) << line;
    ++checked;
  }
  EXPECT_EQ(checked, 50);
  // And a model folder that ships it instead of bpe.model works end to end.
  const std::string model = ruclip_test::copy_tiny_model();
  std::filesystem::remove(model + "/bpe.model");
  std::filesystem::copy_file(dir + "/sentencepiece.model", model + "/sentencepiece.model");
  auto m = ruclip::Model::load(model, opts("cpu", 1));
  const auto ids16 = m->tokenize("Кошка");
  EXPECT_EQ(ids16[0], 2);
  const auto e = m->encode_text({"кошка", "собака"});
  EXPECT_EQ(e.rows, 2);
}
