// The ruCLIP architecture on LibTorch, written as plain functions over the
// weights (no torch::nn modules): CLIP's ViT image tower and causal text
// transformer, pre-LN residual blocks with QuickGELU, exactly as upstream
// ruclip/model.py computes them.
#include "ruclip/model.h"

#include <torch/torch.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <sstream>

#include "ruclip/checkpoint.h"
#include "ruclip/error.h"
#include "ruclip/tokenizer.h"

namespace ruclip {
namespace {

using torch::Tensor;
namespace F = torch::nn::functional;

struct Block {
  Tensor ln_1_w, ln_1_b, in_proj_w, in_proj_b, out_proj_w, out_proj_b;
  Tensor ln_2_w, ln_2_b, c_fc_w, c_fc_b, c_proj_w, c_proj_b;
};

std::string shape_str(c10::IntArrayRef shape) {
  std::ostringstream out;
  out << '[';
  for (size_t i = 0; i < shape.size(); ++i) out << (i ? "," : "") << shape[i];
  out << ']';
  return out.str();
}

// Hands out weights by name, checking shapes, and remembers every problem so
// that one error lists all missing, unexpected and mis-shaped weights at once.
class WeightTaker {
 public:
  WeightTaker(StateDict dict, std::string origin) : dict_(std::move(dict)), origin_(std::move(origin)) {}

  Tensor take(const std::string& name, std::vector<int64_t> shape) {
    auto it = dict_.find(name);
    if (it == dict_.end()) {
      missing_.push_back(name);
      return torch::zeros(shape);
    }
    const TensorData& t = it->second;
    if (t.shape != shape) {
      mis_shaped_.push_back(name + " is " + shape_str(t.shape) + ", config.json implies " + shape_str(shape));
      dict_.erase(it);
      return torch::zeros(shape);
    }
    std::vector<float> values = t.to_float();
    dict_.erase(it);
    return torch::from_blob(values.data(), shape, torch::kFloat32).clone();
  }

  // Throws when anything was missing, mis-shaped or left over.
  void finish() const {
    if (missing_.empty() && mis_shaped_.empty() && dict_.empty()) return;
    std::ostringstream msg;
    msg << origin_ << ": weights do not match config.json";
    auto list = [&msg](const char* what, const std::vector<std::string>& names) {
      if (names.empty()) return;
      msg << "; " << what << " (" << names.size() << "): ";
      for (size_t i = 0; i < names.size() && i < 8; ++i) msg << (i ? ", " : "") << names[i];
      if (names.size() > 8) msg << ", ...";
    };
    std::vector<std::string> unexpected;
    for (const auto& [name, _] : dict_) unexpected.push_back(name);
    list("missing", missing_);
    list("wrong shape", mis_shaped_);
    list("unexpected", unexpected);
    throw Error(msg.str());
  }

 private:
  StateDict dict_;
  std::string origin_;
  std::vector<std::string> missing_, mis_shaped_;
};

std::vector<Block> take_blocks(WeightTaker& w, const std::string& prefix, int layers, int64_t d) {
  std::vector<Block> blocks;
  for (int i = 0; i < layers; ++i) {
    const std::string p = prefix + ".resblocks." + std::to_string(i) + ".";
    Block b;
    b.ln_1_w = w.take(p + "ln_1.weight", {d});
    b.ln_1_b = w.take(p + "ln_1.bias", {d});
    b.in_proj_w = w.take(p + "attn.in_proj_weight", {3 * d, d});
    b.in_proj_b = w.take(p + "attn.in_proj_bias", {3 * d});
    b.out_proj_w = w.take(p + "attn.out_proj.weight", {d, d});
    b.out_proj_b = w.take(p + "attn.out_proj.bias", {d});
    b.ln_2_w = w.take(p + "ln_2.weight", {d});
    b.ln_2_b = w.take(p + "ln_2.bias", {d});
    b.c_fc_w = w.take(p + "mlp.c_fc.weight", {4 * d, d});
    b.c_fc_b = w.take(p + "mlp.c_fc.bias", {4 * d});
    b.c_proj_w = w.take(p + "mlp.c_proj.weight", {d, 4 * d});
    b.c_proj_b = w.take(p + "mlp.c_proj.bias", {d});
    blocks.push_back(std::move(b));
  }
  return blocks;
}

Tensor layer_norm(const Tensor& x, const Tensor& w, const Tensor& b) {
  return torch::layer_norm(x, {x.size(-1)}, w, b, 1e-5);
}

// nn.MultiheadAttention(x, x, x) on a batch-first [N, L, D] tensor.
Tensor self_attention(const Tensor& x, const Block& b, int64_t heads, const c10::optional<Tensor>& mask) {
  const int64_t n = x.size(0), l = x.size(1), d = x.size(2), head_dim = d / heads;
  Tensor qkv = torch::linear(x, b.in_proj_w, b.in_proj_b).view({n, l, 3, heads, head_dim}).permute({2, 0, 3, 1, 4});
  Tensor q = qkv[0] / std::sqrt(static_cast<double>(head_dim));
  Tensor scores = torch::matmul(q, qkv[1].transpose(-2, -1));  // [N, H, L, L]
  if (mask) scores = scores + *mask;
  Tensor out = torch::matmul(torch::softmax(scores, -1), qkv[2]);  // [N, H, L, Dh]
  out = out.permute({0, 2, 1, 3}).reshape({n, l, d});
  return torch::linear(out, b.out_proj_w, b.out_proj_b);
}

Tensor residual_block(Tensor x, const Block& b, int64_t heads, const c10::optional<Tensor>& mask) {
  x = x + self_attention(layer_norm(x, b.ln_1_w, b.ln_1_b), b, heads, mask);
  Tensor h = torch::linear(layer_norm(x, b.ln_2_w, b.ln_2_b), b.c_fc_w, b.c_fc_b);
  h = h * torch::sigmoid(1.702 * h);  // QuickGELU
  return x + torch::linear(h, b.c_proj_w, b.c_proj_b);
}

int online_cpus() {
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? static_cast<int>(n) : 1;
}

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
  ModelConfig config;
  std::unique_ptr<Tokenizer> tokenizer;
  torch::Device device = torch::kCPU;

  // Image tower.
  Tensor conv1_w, class_embedding, visual_positional, ln_pre_w, ln_pre_b, ln_post_w, ln_post_b, visual_proj;
  std::vector<Block> visual_blocks;
  // Text tower.
  Tensor token_embedding, text_positional, ln_final_w, ln_final_b, text_projection;
  std::vector<Block> text_blocks;
  Tensor causal_mask;  // [L, L], -inf above the diagonal
  float logit_scale = 0;

  Tensor encode_image(Tensor pixels) const {  // [N, 3, R, R] on device
    Tensor x = torch::conv2d(pixels, conv1_w, {}, config.vision_patch_size);  // [N, W, g, g]
    x = x.flatten(2).permute({0, 2, 1});                                     // [N, g*g, W]
    Tensor cls = class_embedding.view({1, 1, -1}).expand({x.size(0), 1, x.size(2)});
    x = torch::cat({cls, x}, 1) + visual_positional;
    x = layer_norm(x, ln_pre_w, ln_pre_b);
    for (const Block& b : visual_blocks) x = residual_block(x, b, config.vision_heads, c10::nullopt);
    x = layer_norm(x.select(1, 0), ln_post_w, ln_post_b);
    return torch::matmul(x, visual_proj);
  }

  Tensor encode_text(const Tensor& ids) const {  // [N, L] int64 on device
    Tensor x = torch::embedding(token_embedding, ids) + text_positional;
    for (const Block& b : text_blocks) x = residual_block(x, b, config.transformer_heads, causal_mask);
    x = layer_norm(x, ln_final_w, ln_final_b);
    // Pool at the first eos (upstream: torch.where(input_ids == eos_id)[1]).
    Tensor eos_pos = (ids == config.eos_id).to(torch::kInt32).argmax(1);
    x = x.index({torch::arange(x.size(0), ids.options()), eos_pos});
    return torch::matmul(x, text_projection);
  }
};

Model::Model(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Model::~Model() = default;

std::unique_ptr<Model> Model::load(const std::string& model_dir, const ModelOptions& options) {
  namespace fs = std::filesystem;
  if (!fs::is_directory(model_dir)) throw Error(model_dir + ": not a folder (expected a ruCLIP model folder)");
  auto impl = std::make_unique<Impl>();
  impl->directory = model_dir;
  impl->config = load_config(model_dir);
  impl->tokenizer = load_tokenizer(model_dir, impl->config);
  impl->device = pick_device(options.device);
  if (options.num_threads < 0) throw Error("num-threads must be 0 (all CPUs) or positive");
  at::set_num_threads(options.num_threads > 0 ? options.num_threads : online_cpus());

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

  const ModelConfig& c = impl->config;
  const int64_t vw = c.vision_width, tw = c.transformer_width, grid = c.image_resolution / c.vision_patch_size;
  WeightTaker w(std::move(dict), weights_path);
  impl->conv1_w = w.take("visual.conv1.weight", {vw, 3, c.vision_patch_size, c.vision_patch_size});
  impl->class_embedding = w.take("visual.class_embedding", {vw});
  impl->visual_positional = w.take("visual.positional_embedding", {grid * grid + 1, vw});
  impl->ln_pre_w = w.take("visual.ln_pre.weight", {vw});
  impl->ln_pre_b = w.take("visual.ln_pre.bias", {vw});
  impl->visual_blocks = take_blocks(w, "visual.transformer", c.vision_layers, vw);
  impl->ln_post_w = w.take("visual.ln_post.weight", {vw});
  impl->ln_post_b = w.take("visual.ln_post.bias", {vw});
  impl->visual_proj = w.take("visual.proj", {vw, c.embed_dim});
  impl->token_embedding = w.take("token_embedding.weight", {c.vocab_size, tw});
  impl->text_positional = w.take("positional_embedding", {c.context_length, tw});
  impl->text_blocks = take_blocks(w, "transformer", c.transformer_layers, tw);
  impl->ln_final_w = w.take("ln_final.weight", {tw});
  impl->ln_final_b = w.take("ln_final.bias", {tw});
  impl->text_projection = w.take("text_projection", {tw, c.embed_dim});
  Tensor logit_scale = w.take("logit_scale", {});
  w.finish();
  impl->logit_scale = std::exp(logit_scale.item<float>());
  impl->causal_mask = torch::full({c.context_length, c.context_length}, -INFINITY).triu(1);

  if (impl->device != torch::kCPU) {
    auto move = [&](Tensor& t) { t = t.to(impl->device); };
    for (Tensor* t : {&impl->conv1_w, &impl->class_embedding, &impl->visual_positional, &impl->ln_pre_w,
                      &impl->ln_pre_b, &impl->ln_post_w, &impl->ln_post_b, &impl->visual_proj,
                      &impl->token_embedding, &impl->text_positional, &impl->ln_final_w, &impl->ln_final_b,
                      &impl->text_projection, &impl->causal_mask})
      move(*t);
    for (auto* blocks : {&impl->visual_blocks, &impl->text_blocks})
      for (Block& b : *blocks)
        for (Tensor* t : {&b.ln_1_w, &b.ln_1_b, &b.in_proj_w, &b.in_proj_b, &b.out_proj_w, &b.out_proj_b, &b.ln_2_w,
                          &b.ln_2_b, &b.c_fc_w, &b.c_fc_b, &b.c_proj_w, &b.c_proj_b})
          move(*t);
  }
  return std::unique_ptr<Model>(new Model(std::move(impl)));
}

const ModelConfig& Model::config() const { return impl_->config; }
const std::string& Model::directory() const { return impl_->directory; }
std::string Model::device() const { return impl_->device.str(); }
float Model::logit_scale() const { return impl_->logit_scale; }

Normalization Model::normalization() const {
  Normalization n;
  n.resolution = impl_->config.image_resolution;
  n.mean = impl_->config.mean;
  n.std = impl_->config.std;
  return n;
}

std::vector<int64_t> Model::tokenize(const std::string& text) const {
  return prepare_text(*impl_->tokenizer, impl_->config, text);
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
  const ModelConfig& c = impl_->config;
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
  return to_embeddings(impl_->encode_text(t));
}

Embeddings Model::encode_text(const std::vector<std::string>& texts) {
  std::vector<std::vector<int64_t>> ids;
  ids.reserve(texts.size());
  for (const auto& text : texts) ids.push_back(tokenize(text));
  return encode_token_ids(ids);
}

Embeddings Model::encode_pixels(const float* pixels, int batch) {
  const int64_t r = impl_->config.image_resolution;
  if (batch <= 0) return Embeddings{0, impl_->config.embed_dim, {}};
  c10::InferenceMode guard;
  Tensor t = torch::from_blob(const_cast<float*>(pixels), {batch, 3, r, r}, torch::kFloat32).to(impl_->device);
  return to_embeddings(impl_->encode_image(t));
}

Embeddings Model::encode_frames(const std::vector<FrameView>& frames) {
  const Normalization norm = normalization();
  const size_t per_image = 3 * static_cast<size_t>(norm.resolution) * norm.resolution;
  std::vector<float> pixels(per_image * frames.size());
  for (size_t i = 0; i < frames.size(); ++i) preprocess(frames[i], norm, pixels.data() + i * per_image);
  return encode_pixels(pixels.data(), static_cast<int>(frames.size()));
}

}  // namespace ruclip
