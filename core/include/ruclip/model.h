// The ruCLIP model: both towers on LibTorch behind a LibTorch-free interface.
// load -> tokenize -> preprocess -> encode -> score.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "ruclip/config.h"
#include "ruclip/image.h"

namespace ruclip {

// Rows of embeddings, row-major.
struct Embeddings {
  int rows = 0;
  int dim = 0;
  std::vector<float> data;
  const float* row(int i) const { return data.data() + static_cast<size_t>(i) * dim; }
  float* row(int i) { return data.data() + static_cast<size_t>(i) * dim; }
  void normalize_rows();  // each row to unit L2 norm (left as is when zero)
};

struct ModelOptions {
  std::string device = "cpu";  // "cpu", "cuda", "cuda:N", "auto"
  int num_threads = 0;         // 0: all online CPUs
  // Arithmetic of both towers: "fp32"; "bf16" (CPU with oneDNN, or CUDA);
  // "fp16" (CUDA only). Embeddings come back as float32 either way.
  std::string precision = "fp32";
};

class Model {
 public:
  // Reads DIR/config.json, the tokenizer, and DIR/model.safetensors or
  // DIR/pytorch_model.bin. Throws ruclip::Error naming what is wrong.
  static std::unique_ptr<Model> load(const std::string& model_dir, const ModelOptions& options = {});
  // A model of this geometry with upstream's random initialization and no
  // tokenizer (tokenize/encode_text throw; encode_token_ids works): for
  // benchmarks of the published geometries without their weights.
  static std::unique_ptr<Model> random(const ModelConfig& config, uint64_t seed, const ModelOptions& options = {});
  ~Model();
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;

  const ModelConfig& config() const;
  const std::string& directory() const;
  std::string device() const;  // where it runs, e.g. "cpu" or "cuda:0"
  const std::string& precision() const;  // "fp32", "bf16" or "fp16"
  float logit_scale() const;   // exp() of the stored parameter, as upstream uses it

  // Processor ids (context_length each) of a text.
  std::vector<int64_t> tokenize(const std::string& text) const;

  // Raw latents, as upstream encode_text / encode_image return them (not normalized).
  Embeddings encode_text(const std::vector<std::string>& texts);
  Embeddings encode_token_ids(const std::vector<std::vector<int64_t>>& ids);
  // `pixels`: batch x 3 x R x R floats, already normalized.
  Embeddings encode_pixels(const float* pixels, int batch);
  Embeddings encode_frames(const std::vector<FrameView>& frames);

  Normalization normalization() const;

 private:
  struct Impl;
  explicit Model(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace ruclip
