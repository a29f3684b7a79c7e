// The ruCLIP model: both towers on LibTorch behind a LibTorch-free interface.
// load -> tokenize -> preprocess -> encode -> score. A whole program:
// examples/classify_frame.cpp.
//
//   auto model = ruclip::Model::load("models/ruclip-shapes-ru");        // a model folder
//   auto labels = ruclip::build_label_set(*model, {"красный фон", "синий фон"});  // zero_shot.h
//   ruclip::Embeddings e = model->encode_frames({frame});               // a FrameView (image.h)
//   for (const auto& s : ruclip::score_image(*labels, e.row(0), e.dim, model->logit_scale()))
//     std::printf("%s %.3f\n", s.label.c_str(), s.probability);
//
// Threads: a loaded Model may be used from any number of threads at once;
// only load and destruction must not overlap other calls on it.
#pragma once
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "ruclip/config.h"
#include "ruclip/image.h"
#include "ruclip/options.h"

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

// Concurrency: a loaded Model is immutable; encode_*, tokenize and the
// getters may run concurrently from any number of threads (the element embeds
// frames on its streaming thread while a new label set is encoded on
// another). They share the process's CPU threads (LibTorch's OpenMP pool and,
// with the BLAS kernel, OpenBLAS's), so concurrent calls don't run faster in
// total. load/random/destruction are not concurrent with calls on the same
// Model.
// A frame preprocessed where its model runs (on a GPU: in device memory),
// made by Model::prepare_frame for a later Model::encode_prepared; immutable,
// may be shared across threads; holds its memory until the last owner drops it.
class PreparedFrame {
 public:
  virtual ~PreparedFrame() = default;
};

class Model {
 public:
  // Reads DIR/config.json, the tokenizer, and DIR/model.safetensors or
  // DIR/pytorch_model.bin (ruCLIP v2, ruclip-vit-*); or a ruCLIP v1 folder
  // (ai-forever/ru-clip's ViT-B32-small.pt, or the folder's only *.pt, with
  // vocab.json + merges.txt; config.json optional: the geometry follows from
  // the tensors' shapes). `model_dir` may also be the weights file itself,
  // the folder being its parent. Throws ruclip::Error naming what is wrong.
  // On the CPU, picks the linear-layer kernels for this machine (CPU features,
  // then a short measurement, once per process and shape);
  // the first model of the process sets the CPU threads (see above).
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
  Precision precision() const;  // the precision running (never kAuto)
  const KernelReport& kernels() const;
  float logit_scale() const;   // exp() of the stored parameter, as upstream uses it

  // Processor ids (context_length each) of a text.
  std::vector<int64_t> tokenize(const std::string& text) const;

  // Raw latents, as upstream encode_text / encode_image return them (v2: not
  // normalized; v1: its encoders' output, L2-normalized).
  // Texts are encoded in batches of similar length, each only up to its last
  // end-of-text token: the tower is causal and pools there, so the rest of the
  // context can't change a latent (equal to full context within 1e-5).
  Embeddings encode_text(const std::vector<std::string>& texts) const;
  Embeddings encode_token_ids(const std::vector<std::vector<int64_t>>& ids) const;
  // `pixels`: batch x 3 x R x R floats, already normalized.
  Embeddings encode_pixels(const float* pixels, int batch) const;
  // Frames in host memory, or (reads_cuda_frames()) in CUDA memory on this
  // model's GPU, preprocessed there; otherwise a CUDA frame is an Error.
  Embeddings encode_frames(const std::vector<FrameView>& frames) const;
  // On a CUDA device with the GPU preprocessor built in.
  bool reads_cuda_frames() const;
  // Preprocesses `frame` now, where the model runs: on its GPU (frames in
  // host or CUDA memory; returns once the frame is staged, so the caller may
  // release it), elsewhere on the CPU. For callers that can't keep the frame
  // until the model call (async streams).
  std::shared_ptr<const PreparedFrame> prepare_frame(const FrameView& frame) const;
  // Frames this model prepared, in one batch.
  Embeddings encode_prepared(const std::vector<std::shared_ptr<const PreparedFrame>>& frames) const;

  Normalization normalization() const;

 private:
  struct Impl;
  explicit Model(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace ruclip
