// Model: loading a model folder and running both towers for callers that
// know nothing of LibTorch. The architecture itself is in clip_weights.cpp.
#include "ruclip/model.h"

#include <torch/torch.h>

#include <malloc.h>

#include <algorithm>
#include <filesystem>
#include <mutex>
#include <sstream>

#include "nn/clip_weights.h"
#include "nn/state_dict.h"
#include "runtime/kernel_choice.h"
#include "runtime/thread_groups.h"
#include "runtime/torch_errors.h"
#include "ruclip/checkpoint.h"
#include "ruclip/error.h"
#include "ruclip/model_folder.h"
#include "ruclip/tokenizer.h"
#ifdef RUCLIP_HAVE_CUDA_PREPROCESS
#include "image/cuda/preprocess_cuda.h"
#endif

namespace ruclip {
namespace {

using torch::Tensor;

// Texts per forward pass: bounds the activations (a 1200-text label set is
// 75 passes on the CPU, not one of 1200 x 77 positions). At 64 per pass the
// activations and the heap they leave behind held `ruclip classify` with 200
// labels x 6 templates 60-90 MiB above the image-only peak on the CPU, over
// the reference's whole model (bench/labels.sh); at 16 it stays within 16 MiB
// of it, no slower. A GPU keeps 64: its passes cost launches, not host RSS.
constexpr size_t kCpuTextBatch = 16;
constexpr size_t kCudaTextBatch = 64;

}  // namespace

void Embeddings::normalize_rows() {
  for (int i = 0; i < rows; ++i) {
    float* r = row(i);
    double sum = 0;
    for (int j = 0; j < dim; ++j) sum += double(r[j]) * r[j];
    if (sum <= 0) continue;
    const float inv = static_cast<float>(1.0 / std::sqrt(sum));
    for (int j = 0; j < dim; ++j) r[j] *= inv;
  }
}

struct Model::Impl {
  std::string directory;
  std::unique_ptr<Tokenizer> tokenizer;
  torch::Device device = torch::kCPU;
  detail::KernelPlan plan;
  std::unique_ptr<detail::ClipWeights> weights;
  float logit_scale = 0;
#ifdef RUCLIP_HAVE_CUDA_PREPROCESS
  // On a CUDA device, frames are uploaded once and preprocessed there. The
  // preprocessor reuses its buffers from one run to the next, and encode_frames
  // may be called from several threads at once: it is made and used under the lock.
  std::mutex gpu_preprocessor_lock;
  std::unique_ptr<CudaPreprocessor> gpu_preprocessor;

  // Queues the frames' preprocessing into `out` on the device (count x 3 x R
  // x R floats), on its default stream, where LibTorch's work goes too: the
  // tower that reads them runs after.
  void preprocess_on_gpu(const FrameView* frames, size_t count, const Normalization& norm, float* out) {
    const size_t per_frame = 3 * static_cast<size_t>(norm.resolution) * norm.resolution;
    std::lock_guard<std::mutex> lock(gpu_preprocessor_lock);
    if (!gpu_preprocessor) gpu_preprocessor = std::make_unique<CudaPreprocessor>(device.index());
    for (size_t i = 0; i < count; ++i) gpu_preprocessor->run(frames[i], norm, out + i * per_frame, nullptr);
  }
#endif

  // Device, kernels, precision and threads (Model::load has checked the
  // values before reading the weights).
  void configure(const ModelOptions& options, const ModelConfig& config) {
    if (options.num_threads < 0) throw Error("num-threads must be 0 (all CPUs) or positive");
    device = detail::to_torch_device(options.device);
    plan = detail::choose_kernels(options.precision, device, config, options.num_threads);
    holds_threads = true;
  }
  // choose_kernels claimed the process's CPU thread setting for this model.
  bool holds_threads = false;
  ~Impl() {
    if (holds_threads) detail::release_cpu_threads();
  }
  void place_weights() {
    logit_scale = std::exp(weights->logit_scale.item<float>());
    detail::with_torch_errors("placing the weights on " + device.str(), 0, [&] {
      weights->to(device, plan.dtype);
      weights->prepare_inference(plan.kernels);
    });
    // The dense weights just released were mostly below glibc's (adaptive)
    // mmap threshold: hand their pages back, or they stay in the process's
    // RSS as free heap.
    malloc_trim(0);
  }

  // The image tower on `pixels` [N, 3, R, R] (on the model's device). On the
  // CPU with oneDNN's kernels throughout, a sub-batch per thread
  // (thread_groups.h). Not on LibTorch's products: OpenBLAS runs its own
  // thread pool under each call.
  Tensor encode_image(const Tensor& pixels) const {
    const detail::LayerKernels& k = plan.kernels;
    const bool onednn = k.blocks != detail::LinearKernel::kLibTorch &&
                        k.mlp_output != detail::LinearKernel::kLibTorch &&
                        k.patch_embedding != detail::LinearKernel::kLibTorch;
    if (!device.is_cpu() || !onednn) return weights->encode_image(pixels);
    return detail::encode_on_thread_groups(pixels.size(0), [&](int64_t first, int64_t count) {
      return weights->encode_image(pixels.narrow(0, first, count));
    });
  }
};

Model::Model(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Model::~Model() = default;

namespace {

StateDict read_weights(const std::string& path) {
  const bool safetensors = path.size() > 12 && path.compare(path.size() - 12, 12, ".safetensors") == 0;
  return safetensors ? read_safetensors(path) : read_torch_checkpoint(path);
}

// The geometry the weights go with: config.json for a ruclip-vit-* (v2) model,
// whose weights must be v2's; for ruCLIP v1, the tensors' shapes, config.json
// (where there is one) stating what they can't.
ModelConfig model_config(const ModelFolder& folder, const StateDict& dict) {
  namespace fs = std::filesystem;
  const std::string& weights = folder.weights_file;
  if (detail::is_v1_state_dict(dict)) {
    if (folder.stated && folder.stated->family == ModelFamily::kV2 && !folder.weights_named)
      throw Error(weights + ": holds a ruCLIP v1 state dict (visual_encoder.*, text_encoder.*), but " + folder.directory +
                  "/config.json describes a ruclip-vit-* (v2) model");
    ModelConfig config = v1_config_from_shapes(detail::state_dict_shapes(dict), folder.stated ? &*folder.stated : nullptr,
                                               weights);
    config.weights_file = fs::path(weights).filename().string();
    return config;
  }
  if (folder.stated && folder.stated->family == ModelFamily::kV2) return *folder.stated;
  throw Error(weights + ": not a ruCLIP v1 state dict (no visual_encoder.* or text_encoder.* weights)" +
              (folder.stated ? ", though " + folder.directory + "/config.json describes one"
                             : std::string(", and ") + folder.directory + " has no config.json for a ruclip-vit-* (v2) model"));
}

}  // namespace

// One line for both families: the folder's files; the weights read; the
// geometry they go with; the towers filled from them (every tensor checked
// before anything is sized by the geometry); the kernels for this machine;
// the tokenizer; the weights packed for those kernels.
std::unique_ptr<Model> Model::load(const std::string& path, const ModelOptions& options) {
  // Wrong options and missing files are named before the weights are read.
  if (options.num_threads < 0) throw Error("num-threads must be 0 (all CPUs) or positive");
  detail::check_precision(options.precision, detail::to_torch_device(options.device));
  const ModelFolder folder = find_model_folder(path);
  StateDict dict = read_weights(folder.weights_file);
  const ModelConfig config = model_config(folder, dict);
  auto impl = std::make_unique<Impl>();
  impl->directory = folder.directory;
  impl->weights = std::make_unique<detail::ClipWeights>(config, /*allocate=*/config.family == ModelFamily::kV2);
  detail::load_state_dict(*impl->weights, std::move(dict), folder.weights_file);
  impl->configure(options, config);
  impl->tokenizer = load_tokenizer(folder.tokenizer, config);
  impl->place_weights();
  return std::unique_ptr<Model>(new Model(std::move(impl)));
}

std::unique_ptr<Model> Model::random(const ModelConfig& config, uint64_t seed, const ModelOptions& options) {
  auto impl = std::make_unique<Impl>();
  impl->configure(options, config);
  impl->weights = std::make_unique<detail::ClipWeights>(config);
  detail::init_random(*impl->weights, seed);
  impl->place_weights();
  return std::unique_ptr<Model>(new Model(std::move(impl)));
}

const ModelConfig& Model::config() const { return impl_->weights->config; }
const std::string& Model::directory() const { return impl_->directory; }
std::string Model::device() const { return impl_->device.str(); }
Precision Model::precision() const { return impl_->plan.precision; }
const KernelReport& Model::kernels() const { return impl_->plan.report; }
float Model::logit_scale() const { return impl_->logit_scale; }

Normalization Model::normalization() const {
  Normalization n;
  // v1 preprocesses as OpenAI's _transform (bicubic resize of the shorter side, then the centre crop).
  if (impl_->weights->config.family == ModelFamily::kV1) n.resize = ResizeMode::kBicubicThenCrop;
  n.resolution = impl_->weights->config.image_resolution;
  n.mean = impl_->weights->config.mean;
  n.std = impl_->weights->config.std;
  return n;
}

std::vector<int64_t> Model::tokenize(const std::string& text) const {
  if (!impl_->tokenizer) throw Error("this model was built from a geometry and has no tokenizer");
  return prepare_text(*impl_->tokenizer, impl_->weights->config, text);
}

namespace {
Embeddings to_embeddings(const Tensor& latents) {
  Tensor cpu = latents.to(torch::kCPU, torch::kFloat32).contiguous();
  Embeddings e;
  e.rows = static_cast<int>(cpu.size(0));
  e.dim = static_cast<int>(cpu.size(1));
  e.data.assign(cpu.data_ptr<float>(), cpu.data_ptr<float>() + cpu.numel());
  return e;
}
}  // namespace

Embeddings Model::encode_token_ids(const std::vector<std::vector<int64_t>>& ids) const {
  const ModelConfig& c = impl_->weights->config;
  Embeddings out{static_cast<int>(ids.size()), c.embed_dim, {}};
  if (ids.empty()) return out;
  // Checked, and ordered by where each text's first eos is (its length), so
  // each batch is computed only as far as its own longest text.
  std::vector<size_t> length(ids.size()), order(ids.size());
  for (size_t i = 0; i < ids.size(); ++i) {
    const auto& row = ids[i];
    if (static_cast<int>(row.size()) != c.context_length)
      throw Error("token ids: expected " + std::to_string(c.context_length) + " per text, got " +
                  std::to_string(row.size()));
    for (int64_t id : row)
      if (id < 0 || id >= c.vocab_size)
        throw Error("token ids: id " + std::to_string(id) + " is outside the vocabulary (" +
                    std::to_string(c.vocab_size) + ")");
    length[i] = std::find(row.begin(), row.end(), c.eos_id) - row.begin();
    order[i] = i;
  }
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return length[a] < length[b]; });
  out.data.resize(ids.size() * static_cast<size_t>(c.embed_dim));
  c10::InferenceMode guard;
  std::vector<int64_t> flat;
  const size_t batch = impl_->device.is_cuda() ? kCudaTextBatch : kCpuTextBatch;
  for (size_t first = 0; first < order.size(); first += batch) {
    const size_t count = std::min(batch, order.size() - first);
    flat.clear();
    for (size_t j = 0; j < count; ++j) flat.insert(flat.end(), ids[order[first + j]].begin(), ids[order[first + j]].end());
    const Embeddings e = detail::with_torch_errors("encoding texts", static_cast<int>(count), [&] {
      const Tensor t = torch::from_blob(flat.data(), {static_cast<int64_t>(count), c.context_length}, torch::kInt64)
                           .to(impl_->device);
      return to_embeddings(impl_->weights->encode_text(t));
    });
    for (size_t j = 0; j < count; ++j)
      std::copy(e.row(static_cast<int>(j)), e.row(static_cast<int>(j)) + c.embed_dim, out.row(static_cast<int>(order[first + j])));
  }
  return out;
}

Embeddings Model::encode_text(const std::vector<std::string>& texts) const {
  std::vector<std::vector<int64_t>> ids;
  ids.reserve(texts.size());
  for (const auto& text : texts) ids.push_back(tokenize(text));
  return encode_token_ids(ids);
}

Embeddings Model::encode_pixels(const float* pixels, int batch) const {
  const int64_t r = impl_->weights->config.image_resolution;
  if (batch <= 0) return Embeddings{0, impl_->weights->config.embed_dim, {}};
  c10::InferenceMode guard;
  return detail::with_torch_errors("encoding images", batch, [&] {
    Tensor t = torch::from_blob(const_cast<float*>(pixels), {batch, 3, r, r}, torch::kFloat32).to(impl_->device);
    return to_embeddings(impl_->encode_image(t));
  });
}

namespace {
// Model's PreparedFrame: normalized pixels [3, R, R] on the model's device.
struct TensorFrame : PreparedFrame {
  Tensor pixels;
};
}  // namespace

std::shared_ptr<const PreparedFrame> Model::prepare_frame(const FrameView& frame) const {
  const Normalization norm = normalization();
  auto prepared = std::make_shared<TensorFrame>();
  c10::InferenceMode guard;
  const int64_t r = norm.resolution;
#ifdef RUCLIP_HAVE_CUDA_PREPROCESS
  if (impl_->device.is_cuda()) {
    detail::with_torch_errors("preparing a frame", 1, [&] {
      prepared->pixels = torch::empty({3, r, r}, torch::TensorOptions().device(impl_->device).dtype(torch::kFloat32));
      impl_->preprocess_on_gpu(&frame, 1, norm, prepared->pixels.data_ptr<float>());
    });
    return prepared;
  }
#endif
  prepared->pixels = torch::empty({3, r, r}, torch::kFloat32);
  preprocess(frame, norm, prepared->pixels.data_ptr<float>());
  return prepared;
}

Embeddings Model::encode_prepared(const std::vector<std::shared_ptr<const PreparedFrame>>& frames) const {
  if (frames.empty()) return Embeddings{0, impl_->weights->config.embed_dim, {}};
  std::vector<Tensor> pixels;
  for (const auto& f : frames) {
    const auto* t = dynamic_cast<const TensorFrame*>(f.get());
    if (!t) throw Error("encode_prepared: a frame not made by Model::prepare_frame");
    pixels.push_back(t->pixels);
  }
  c10::InferenceMode guard;
  return detail::with_torch_errors("encoding frames", static_cast<int>(frames.size()), [&] {
    return to_embeddings(impl_->encode_image(torch::stack(pixels).to(impl_->device)));
  });
}

bool Model::reads_cuda_frames() const {
#ifdef RUCLIP_HAVE_CUDA_PREPROCESS
  return impl_->device.is_cuda();
#else
  return false;
#endif
}

Embeddings Model::encode_frames(const std::vector<FrameView>& frames) const {
  const Normalization norm = normalization();
#ifdef RUCLIP_HAVE_CUDA_PREPROCESS
  if (impl_->device.is_cuda() && !frames.empty()) {
    c10::InferenceMode guard;
    const int64_t r = norm.resolution;
    const int batch = static_cast<int>(frames.size());
    return detail::with_torch_errors("encoding frames", batch, [&] {
      Tensor pixels = torch::empty({batch, 3, r, r}, torch::TensorOptions().device(impl_->device).dtype(torch::kFloat32));
      impl_->preprocess_on_gpu(frames.data(), frames.size(), norm, pixels.data_ptr<float>());
      return to_embeddings(impl_->weights->encode_image(pixels));
    });
  }
#endif
  const size_t per_image = 3 * static_cast<size_t>(norm.resolution) * norm.resolution;
  std::vector<float> pixels(per_image * frames.size());
  for (size_t i = 0; i < frames.size(); ++i) preprocess(frames[i], norm, pixels.data() + i * per_image);
  return encode_pixels(pixels.data(), static_cast<int>(frames.size()));
}

}  // namespace ruclip
