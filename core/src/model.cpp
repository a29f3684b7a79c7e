// Model: loading a model folder and running both towers for callers that
// know nothing of LibTorch. The architecture itself is in clip_weights.cpp.
#include "ruclip/model.h"

#include <torch/torch.h>

#include <algorithm>
#include <filesystem>
#include <sstream>

#include "clip_weights.h"
#include "device.h"
#include "ruclip/checkpoint.h"
#include "ruclip/error.h"
#include "ruclip/tokenizer.h"
#ifdef RUCLIP_HAVE_CUDA_PREPROCESS
#include "cuda/preprocess_cuda.h"
#endif

namespace ruclip {
namespace {

using torch::Tensor;

}  // namespace

namespace detail {

torch::Device pick_device(const std::string& name) {
  if (name == "cpu") return torch::kCPU;
  if (name == "auto") return torch::cuda::is_available() ? torch::Device(torch::kCUDA, 0) : torch::Device(torch::kCPU);
  if (name == "cuda" || name.rfind("cuda:", 0) == 0) {
    int index = 0;
    if (name.size() > 5) {
      const std::string digits = name.substr(5);
      if (digits.empty() || digits.size() > 3 || !std::all_of(digits.begin(), digits.end(), ::isdigit))
        throw Error("device '" + name + "': expected cpu, cuda, cuda:N or auto");
      index = std::stoi(digits);
    }
    if (!torch::cuda::is_available())
      throw Error("device '" + name + "': CUDA is not available (this LibTorch has no CUDA support or no GPU is visible)");
    if (index >= static_cast<int>(torch::cuda::device_count()))
      throw Error("device '" + name + "': only " + std::to_string(torch::cuda::device_count()) + " CUDA device(s) present");
    return torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(index));
  }
  throw Error("device '" + name + "': expected cpu, cuda, cuda:N or auto");
}

// fp16 on the CPU is refused: LibTorch 1.13 has no fast CPU kernels for it.
torch::ScalarType pick_dtype(const std::string& precision, const torch::Device& device) {
  if (precision == "fp32") return torch::kFloat32;
  if (precision == "bf16") return torch::kBFloat16;
  if (precision == "fp16") {
    if (!device.is_cuda())
      throw Error("precision 'fp16' needs a CUDA device; on the CPU use bf16 or fp32");
    return torch::kFloat16;
  }
  throw Error("precision '" + precision + "': expected fp32, bf16 or fp16");
}

}  // namespace detail

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
  std::string precision = "fp32";
  torch::ScalarType dtype = torch::kFloat32;
  std::unique_ptr<detail::ClipWeights> weights;
  float logit_scale = 0;
#ifdef RUCLIP_HAVE_CUDA_PREPROCESS
  // On a CUDA device, frames are uploaded once and preprocessed there.
  std::unique_ptr<CudaPreprocessor> gpu_preprocessor;
#endif

  // Device, precision and threads from `options`; throws on bad values
  // before anything large is read.
  void configure(const ModelOptions& options) {
    device = detail::pick_device(options.device);
    dtype = detail::pick_dtype(options.precision, device);
    precision = options.precision;
    if (options.num_threads < 0) throw Error("num-threads must be 0 (all CPUs) or positive");
    detail::set_cpu_threads(options.num_threads, detail::ThreadPlan::kOneDnn);
  }
  void place_weights() {
    logit_scale = std::exp(weights->logit_scale.item<float>());
    weights->to(device, dtype);
    weights->prepare_inference();
  }
};

Model::Model(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Model::~Model() = default;

std::unique_ptr<Model> Model::load(const std::string& model_dir, const ModelOptions& options) {
  namespace fs = std::filesystem;
  if (!fs::is_directory(model_dir)) throw Error(model_dir + ": not a folder (expected a ruCLIP model folder)");
  auto impl = std::make_unique<Impl>();
  impl->directory = model_dir;
  const ModelConfig config = load_config(model_dir);
  impl->configure(options);
  impl->tokenizer = load_tokenizer(model_dir, config);

  const std::string safetensors = model_dir + "/model.safetensors";
  const std::string bin = model_dir + "/pytorch_model.bin";
  std::string weights_path;
  StateDict dict;
  if (fs::exists(safetensors)) {
    weights_path = safetensors;
    dict = read_safetensors(safetensors);
  } else if (fs::exists(bin)) {
    weights_path = bin;
    dict = read_torch_checkpoint(bin);
  } else {
    throw Error(model_dir + ": no weights (looked for model.safetensors and pytorch_model.bin)");
  }

  impl->weights = std::make_unique<detail::ClipWeights>(config);
  detail::load_state_dict(*impl->weights, std::move(dict), weights_path);
  impl->place_weights();
  return std::unique_ptr<Model>(new Model(std::move(impl)));
}

std::unique_ptr<Model> Model::random(const ModelConfig& config, uint64_t seed, const ModelOptions& options) {
  auto impl = std::make_unique<Impl>();
  impl->configure(options);
  impl->weights = std::make_unique<detail::ClipWeights>(config);
  detail::init_random(*impl->weights, seed);
  impl->place_weights();
  return std::unique_ptr<Model>(new Model(std::move(impl)));
}

const ModelConfig& Model::config() const { return impl_->weights->config; }
const std::string& Model::directory() const { return impl_->directory; }
std::string Model::device() const { return impl_->device.str(); }
const std::string& Model::precision() const { return impl_->precision; }
float Model::logit_scale() const { return impl_->logit_scale; }

Normalization Model::normalization() const {
  Normalization n;
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

Embeddings Model::encode_token_ids(const std::vector<std::vector<int64_t>>& ids) {
  const ModelConfig& c = impl_->weights->config;
  if (ids.empty()) return Embeddings{0, c.embed_dim, {}};
  std::vector<int64_t> flat;
  flat.reserve(ids.size() * c.context_length);
  for (const auto& row : ids) {
    if (static_cast<int>(row.size()) != c.context_length)
      throw Error("token ids: expected " + std::to_string(c.context_length) + " per text, got " +
                  std::to_string(row.size()));
    for (int64_t id : row)
      if (id < 0 || id >= c.vocab_size)
        throw Error("token ids: id " + std::to_string(id) + " is outside the vocabulary (" +
                    std::to_string(c.vocab_size) + ")");
    flat.insert(flat.end(), row.begin(), row.end());
  }
  c10::InferenceMode guard;
  Tensor t = torch::from_blob(flat.data(), {static_cast<int64_t>(ids.size()), c.context_length}, torch::kInt64)
                 .to(impl_->device);
  return to_embeddings(impl_->weights->encode_text(t));
}

Embeddings Model::encode_text(const std::vector<std::string>& texts) {
  std::vector<std::vector<int64_t>> ids;
  ids.reserve(texts.size());
  for (const auto& text : texts) ids.push_back(tokenize(text));
  return encode_token_ids(ids);
}

Embeddings Model::encode_pixels(const float* pixels, int batch) {
  const int64_t r = impl_->weights->config.image_resolution;
  if (batch <= 0) return Embeddings{0, impl_->weights->config.embed_dim, {}};
  c10::InferenceMode guard;
  Tensor t = torch::from_blob(const_cast<float*>(pixels), {batch, 3, r, r}, torch::kFloat32).to(impl_->device);
  return to_embeddings(impl_->weights->encode_image(t));
}

Embeddings Model::encode_frames(const std::vector<FrameView>& frames) {
  const Normalization norm = normalization();
#ifdef RUCLIP_HAVE_CUDA_PREPROCESS
  if (impl_->device.is_cuda() && !frames.empty()) {
    c10::InferenceMode guard;
    const int64_t r = norm.resolution;
    Tensor pixels = torch::empty({static_cast<int64_t>(frames.size()), 3, r, r},
                                 torch::TensorOptions().device(impl_->device).dtype(torch::kFloat32));
    if (!impl_->gpu_preprocessor) impl_->gpu_preprocessor = std::make_unique<CudaPreprocessor>(impl_->device.index());
    // LibTorch's work goes to the device's default stream unless told
    // otherwise; the kernels go there too, so the tower runs after them.
    for (size_t i = 0; i < frames.size(); ++i)
      impl_->gpu_preprocessor->run(frames[i], norm, pixels[static_cast<int64_t>(i)].data_ptr<float>(), nullptr);
    return to_embeddings(impl_->weights->encode_image(pixels));
  }
#endif
  const size_t per_image = 3 * static_cast<size_t>(norm.resolution) * norm.resolution;
  std::vector<float> pixels(per_image * frames.size());
  for (size_t i = 0; i < frames.size(); ++i) preprocess(frames[i], norm, pixels.data() + i * per_image);
  return encode_pixels(pixels.data(), static_cast<int>(frames.size()));
}

}  // namespace ruclip
