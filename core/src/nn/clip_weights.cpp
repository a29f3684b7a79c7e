// The ruCLIP architecture on LibTorch, written as plain functions over the
// weights (no torch::nn modules): CLIP's ViT image tower and causal text
// transformer, pre-LN residual blocks with QuickGELU, exactly as upstream
// ruclip/model.py computes them; and ruCLIP v1 (deprecated/clip/model.py):
// the same image tower, transformers' GPT-2 as the text tower, a Projection
// head after each.
#include "nn/clip_weights.h"

#include <malloc.h>

#include <cmath>

#include "nn/attention.h"
#include "ruclip/error.h"

namespace ruclip::detail {
namespace {

// In bf16/fp16 the LayerNorm weights stay float32 (ClipWeights::to) and the
// normalization is computed in float32, as upstream CLIP's LayerNorm does.
Tensor layer_norm(const Tensor& x, const Tensor& w, const Tensor& b) {
  if (x.scalar_type() != w.scalar_type())
    return torch::layer_norm(x.to(w.scalar_type()), {x.size(-1)}, w, b, 1e-5).to(x.scalar_type());
  return torch::layer_norm(x, {x.size(-1)}, w, b, 1e-5);
}

// x W^T + b (+ epilogue) over the last dimension: on the inference kernel
// when prepare_inference made one, else LibTorch's (training, autograd).
Tensor linear(const Tensor& x, const Tensor& w, const Tensor& b, const Linear& layer, Epilogue epilogue = Epilogue::kNone,
              const Tensor& residual = {}) {
  return layer.defined() ? layer.forward(x, epilogue, residual) : libtorch_linear(x, w, b, epilogue, residual);
}

// The blocks of a tower, the last one for the `pooled` rows only (see
// residual_block): [N, 1, D] when pooled, else [N, L, D].
Tensor run_blocks(Tensor x, const std::vector<Block>& blocks, int64_t heads, const Tensor& mask, Epilogue activation,
                  const Tensor& pooled) {
  for (size_t i = 0; i < blocks.size(); ++i)
    x = residual_block(x, blocks[i], heads, mask, activation, i + 1 == blocks.size() ? pooled : Tensor());
  return x;
}

void block_parameters(std::vector<NamedParameter>& out, std::vector<Block>& blocks, const std::string& prefix,
                      int64_t d, bool visual) {
  for (size_t i = 0; i < blocks.size(); ++i) {
    const std::string p = prefix + ".resblocks." + std::to_string(i) + ".";
    Block& b = blocks[i];
    out.push_back({p + "ln_1.weight", &b.ln_1_w, {d}, visual});
    out.push_back({p + "ln_1.bias", &b.ln_1_b, {d}, visual});
    out.push_back({p + "attn.in_proj_weight", &b.in_proj_w, {3 * d, d}, visual});
    out.push_back({p + "attn.in_proj_bias", &b.in_proj_b, {3 * d}, visual});
    out.push_back({p + "attn.out_proj.weight", &b.out_proj_w, {d, d}, visual});
    out.push_back({p + "attn.out_proj.bias", &b.out_proj_b, {d}, visual});
    out.push_back({p + "ln_2.weight", &b.ln_2_w, {d}, visual});
    out.push_back({p + "ln_2.bias", &b.ln_2_b, {d}, visual});
    out.push_back({p + "mlp.c_fc.weight", &b.c_fc_w, {4 * d, d}, visual});
    out.push_back({p + "mlp.c_fc.bias", &b.c_fc_b, {4 * d}, visual});
    out.push_back({p + "mlp.c_proj.weight", &b.c_proj_w, {d, 4 * d}, visual});
    out.push_back({p + "mlp.c_proj.bias", &b.c_proj_b, {d}, visual});
  }
}

// --- ruCLIP v1 -------------------------------------------------------------


// Projection, then divided by its L2 norm (upstream's VisualEncoder and
// TextEncoder), in float32.
Tensor project_normalized(const ProjectionHead& p, const Tensor& x) {
  const Tensor e1 = linear(x, p.linear1_w, Tensor(), p.linear1);
  const Tensor sum = linear(e1 * torch::sigmoid(1.702 * e1), p.linear2_w, Tensor(), p.linear2,
                            Epilogue::kAddResidual, e1);  // e1 + e2
  const Tensor out = layer_norm(sum, p.ln_w, p.ln_b).to(torch::kFloat32);
  return out / out.norm(2, -1, true);
}

// deprecated/clip TextEncoder: GPT2Model, the hidden state at the first eos, Projection, normalized.
Tensor encode_text_gpt2(const ClipWeights& w, const Tensor& ids, bool full_context) {
  const Tensor eos_pos = (ids == w.config.eos_id).to(torch::kInt32).argmax(1);
  // Causal, pooled at the eos: positions after the batch's last eos can't
  // reach any pooled row (the padding mask only hides keys after each eos,
  // which its own row never sees either).
  const int64_t length = full_context ? ids.size(1) : eos_pos.max().item<int64_t>() + 1;
  using torch::indexing::Slice;
  const Tensor used = ids.index({Slice(), Slice(0, length)});
  Tensor mask = w.causal_mask.index({Slice(0, length), Slice(0, length)});
  if (full_context) {
    // Upstream's attention_mask: 1 up to and including the eos, 0 after.
    const Tensor keep = torch::arange(length, ids.options()).unsqueeze(0) <= eos_pos.unsqueeze(1).to(torch::kInt64);
    const Tensor padding = (1.0 - keep.to(mask.scalar_type())) * kGpt2MaskValue;
    mask = mask + padding.view({ids.size(0), 1, 1, length});  // [N, 1, L, L]
  }
  Tensor x = torch::embedding(w.token_embedding, used) + w.text_positional.index({Slice(0, length)});
  x = run_blocks(x, w.text_blocks, w.config.transformer_heads, mask, Epilogue::kGeluTanh, eos_pos);
  x = layer_norm(x.select(1, 0), w.ln_final_w, w.ln_final_b);  // ln_f, per position
  return project_normalized(w.text_head, x);
}

void visual_parameters(std::vector<NamedParameter>& out, ClipWeights& w, const std::string& prefix, int64_t proj_dim);

// deprecated/clip's CLIP.state_dict(), the buffers left out (load_state_dict checks them).
std::vector<NamedParameter> v1_parameters(ClipWeights& w) {
  const ModelConfig& c = w.config;
  const int64_t d = c.transformer_width, inner = c.transformer_inner, e = c.embed_dim;
  std::vector<NamedParameter> out;
  visual_parameters(out, w, "visual_encoder.model.", c.vision_output_dim);
  auto head = [&out](ProjectionHead& h, const std::string& p, int64_t d_in, int64_t e, bool visual) {
    out.push_back({p + "linear1.weight", &h.linear1_w, {e, d_in}, visual});
    out.push_back({p + "linear2.weight", &h.linear2_w, {e, e}, visual});
    out.push_back({p + "layer_norm.weight", &h.ln_w, {e}, visual});
    out.push_back({p + "layer_norm.bias", &h.ln_b, {e}, visual});
  };
  head(w.visual_head, "visual_encoder.projection.", c.vision_output_dim, e, true);
  const std::string t = "text_encoder.model.";
  out.push_back({t + "wte.weight", &w.token_embedding, {c.vocab_size, d}, false});
  out.push_back({t + "wpe.weight", &w.text_positional, {c.text_positions, d}, false});
  for (size_t i = 0; i < w.text_blocks.size(); ++i) {
    const std::string p = t + "h." + std::to_string(i) + ".";
    Block& b = w.text_blocks[i];
    out.push_back({p + "ln_1.weight", &b.ln_1_w, {d}, false});
    out.push_back({p + "ln_1.bias", &b.ln_1_b, {d}, false});
    out.push_back({p + "attn.c_attn.weight", &b.in_proj_w, {3 * d, d}, false, true});
    out.push_back({p + "attn.c_attn.bias", &b.in_proj_b, {3 * d}, false});
    out.push_back({p + "attn.c_proj.weight", &b.out_proj_w, {d, d}, false, true});
    out.push_back({p + "attn.c_proj.bias", &b.out_proj_b, {d}, false});
    out.push_back({p + "ln_2.weight", &b.ln_2_w, {d}, false});
    out.push_back({p + "ln_2.bias", &b.ln_2_b, {d}, false});
    out.push_back({p + "mlp.c_fc.weight", &b.c_fc_w, {inner, d}, false, true});
    out.push_back({p + "mlp.c_fc.bias", &b.c_fc_b, {inner}, false});
    out.push_back({p + "mlp.c_proj.weight", &b.c_proj_w, {d, inner}, false, true});
    out.push_back({p + "mlp.c_proj.bias", &b.c_proj_b, {d}, false});
  }
  out.push_back({t + "ln_f.weight", &w.ln_final_w, {d}, false});
  out.push_back({t + "ln_f.bias", &w.ln_final_b, {d}, false});
  head(w.text_head, "text_encoder.projection.", d, e, false);
  out.push_back({"logit_scale", &w.logit_scale, {}, false});
  return out;
}


// OpenAI's VisualTransformer, its state-dict names under `prefix` ("visual."
// in v2, "visual_encoder.model." in v1).
void visual_parameters(std::vector<NamedParameter>& out, ClipWeights& w, const std::string& prefix, int64_t proj_dim) {
  const ModelConfig& c = w.config;
  const int64_t vw = c.vision_width, grid = c.image_resolution / c.vision_patch_size;
  out.push_back({prefix + "conv1.weight", &w.conv1_w, {vw, 3, c.vision_patch_size, c.vision_patch_size}, true});
  out.push_back({prefix + "class_embedding", &w.class_embedding, {vw}, true});
  out.push_back({prefix + "positional_embedding", &w.visual_positional, {grid * grid + 1, vw}, true});
  out.push_back({prefix + "ln_pre.weight", &w.ln_pre_w, {vw}, true});
  out.push_back({prefix + "ln_pre.bias", &w.ln_pre_b, {vw}, true});
  block_parameters(out, w.visual_blocks, prefix + "transformer", vw, true);
  out.push_back({prefix + "ln_post.weight", &w.ln_post_w, {vw}, true});
  out.push_back({prefix + "ln_post.bias", &w.ln_post_b, {vw}, true});
  out.push_back({prefix + "proj", &w.visual_proj, {vw, proj_dim}, true});
}

}  // namespace

// One pre-LN residual block: x + attn(ln_1(x)), then + mlp(ln_2(.)), with
// upstream's QuickGELU (v2) or GPT-2's gelu_new (v1) as `activation`. `mask`:
// additive, [L, L] (causal) or [N, 1, L, L], or undefined. The heads are
// contiguous slices of in_proj's q, k and v (nn.MultiheadAttention's layout,
// and GPT-2's c_attn split).
// `pooled` [N] (undefined: every row): the last block of a tower, whose output
// is read at one position per sequence (image: the class token; text: the
// eos), computes that row only. Attention still reads every position's keys
// and values and the rest of the block is row by row, so the row is the full
// computation's; it saves 3/4 of the block's arithmetic.
Tensor residual_block(const Tensor& x, const Block& b, int64_t heads, const Tensor& mask, Epilogue activation,
                      const Tensor& pooled) {
  const int64_t n = x.size(0), l = x.size(1), d = x.size(2), head_dim = d / heads;
  const Tensor qkv =
      linear(layer_norm(x, b.ln_1_w, b.ln_1_b), b.in_proj_w, b.in_proj_b, b.in_proj).view({n, l, 3, heads, head_dim});
  Tensor q = qkv.select(2, 0).permute({0, 2, 1, 3});  // [N, H, L, Dh]: views into qkv
  const Tensor k = qkv.select(2, 1).permute({0, 2, 1, 3});
  const Tensor v = qkv.select(2, 2).permute({0, 2, 1, 3});
  Tensor rows = x, rows_mask = mask;
  if (pooled.defined()) {
    const Tensor batch = torch::arange(n, pooled.options());
    q = qkv.index({batch, pooled, 0}).unsqueeze(2);  // [N, H, 1, Dh]
    rows = x.index({batch, pooled}).unsqueeze(1);    // [N, 1, D]
    if (mask.defined())
      rows_mask = (mask.dim() == 2 ? mask.index({pooled}) : mask.index({batch, 0, pooled})).view({n, 1, 1, l});
  }
  const Tensor attended = attention(q, k, v, rows_mask, 1.0 / std::sqrt(static_cast<double>(head_dim)));
  const Tensor y = linear(attended, b.out_proj_w, b.out_proj_b, b.out_proj, Epilogue::kAddResidual, rows);
  const Tensor h = linear(layer_norm(y, b.ln_2_w, b.ln_2_b), b.c_fc_w, b.c_fc_b, b.c_fc, activation);
  return linear(h, b.c_proj_w, b.c_proj_b, b.c_proj, Epilogue::kAddResidual, y);
}

ClipWeights::ClipWeights(const ModelConfig& c, bool allocate)
    : config(c), visual_blocks(c.vision_layers), text_blocks(c.transformer_layers) {
  if (allocate)
    for (auto& p : parameters()) *p.tensor = torch::empty(p.shape);
  causal_mask = torch::full({c.context_length, c.context_length}, -INFINITY).triu(1);
}

std::vector<NamedParameter> ClipWeights::parameters() {
  if (config.family == ModelFamily::kV1) return v1_parameters(*this);
  const ModelConfig& c = config;
  const int64_t tw = c.transformer_width;
  std::vector<NamedParameter> out;
  visual_parameters(out, *this, "visual.", c.embed_dim);
  out.push_back({"token_embedding.weight", &token_embedding, {c.vocab_size, tw}, false});
  out.push_back({"positional_embedding", &text_positional, {c.context_length, tw}, false});
  block_parameters(out, text_blocks, "transformer", tw, false);
  out.push_back({"ln_final.weight", &ln_final_w, {tw}, false});
  out.push_back({"ln_final.bias", &ln_final_b, {tw}, false});
  out.push_back({"text_projection", &text_projection, {tw, c.embed_dim}, false});
  out.push_back({"logit_scale", &logit_scale, {}, false});
  return out;
}

Tensor ClipWeights::encode_image(const Tensor& pixels) const {
  const int64_t n = pixels.size(0), patch = config.vision_patch_size, grid = config.image_resolution / patch;
  Tensor x;
  if (patch_embedding.defined()) {
    // conv1 has stride = kernel = patch: each output is one patch's pixels
    // (channel, row, column: the weight's order) times the weight, a product
    // on the inference kernel (LibTorch's convolution is much slower at
    // batch 1).
    // (bf16 under int8 on CPUs with native bf16: the tower's activations
    // are float32 there.)
    const bool bf16 = patch_embedding.kernel() == LinearKernel::kOneDnnBf16;
    const Tensor patches = pixels.to(bf16 ? torch::kBFloat16 : class_embedding.scalar_type())
                               .view({n, 3, grid, patch, grid, patch})
                               .permute({0, 2, 4, 1, 3, 5})
                               .reshape({n, grid * grid, 3 * patch * patch});
    x = patch_embedding.forward(patches).to(class_embedding.scalar_type());  // [N, g*g, W]
  } else {
    x = torch::conv2d(pixels.to(conv1_w.scalar_type()), conv1_w, {}, patch);  // [N, W, g, g]
    x = x.flatten(2).permute({0, 2, 1});                                       // [N, g*g, W]
  }
  Tensor cls = class_embedding.view({1, 1, -1}).expand({n, 1, x.size(2)});
  x = torch::cat({cls, x}, 1) + visual_positional;
  x = layer_norm(x, ln_pre_w, ln_pre_b);
  const Tensor class_token = torch::zeros({n}, torch::TensorOptions().dtype(torch::kInt64).device(x.device()));
  x = run_blocks(x, visual_blocks, config.vision_heads, {}, Epilogue::kQuickGelu, class_token);
  x = layer_norm(x.select(1, 0), ln_post_w, ln_post_b);
  if (config.family == ModelFamily::kV1) return project_normalized(visual_head, torch::matmul(x, visual_proj));
  return torch::matmul(x, visual_proj);
}

Tensor ClipWeights::encode_text(const Tensor& ids, bool full_context) const {
  if (config.family == ModelFamily::kV1) return encode_text_gpt2(*this, ids, full_context);
  // Pool at the first eos (upstream: torch.where(input_ids == eos_id)[1]).
  const Tensor eos_pos = (ids == config.eos_id).to(torch::kInt32).argmax(1);
  const int64_t length = full_context ? ids.size(1) : eos_pos.max().item<int64_t>() + 1;
  using torch::indexing::Slice;
  const Tensor used = ids.index({Slice(), Slice(0, length)});
  const Tensor mask = causal_mask.index({Slice(0, length), Slice(0, length)});
  Tensor x = torch::embedding(token_embedding, used) + text_positional.index({Slice(0, length)});
  x = run_blocks(x, text_blocks, config.transformer_heads, mask, Epilogue::kQuickGelu, eos_pos);
  x = layer_norm(x.select(1, 0), ln_final_w, ln_final_b);  // per position: the same on the pooled rows alone
  return torch::matmul(x, text_projection);
}

void ClipWeights::to(const torch::Device& device, torch::ScalarType dtype) {
  // LayerNorm weights stay float32 (see layer_norm); logit_scale too.
  for (auto& p : parameters()) {
    const bool keep_fp32 = p.name.find("ln_") != std::string::npos || p.name == "logit_scale" ||
                           p.name.find("layer_norm") != std::string::npos;  // v1's Projection
    *p.tensor = p.tensor->to(device, keep_fp32 ? torch::kFloat32 : dtype);
  }
  causal_mask = causal_mask.to(device, dtype);
}

void ClipWeights::prepare_inference(const LayerKernels& kernels) {
  const LinearKernel kernel = kernels.blocks;
  const bool packs = kernel != LinearKernel::kLibTorch;
  // On CUDA too the patch embedding is a product (cuBLAS), not cuDNN's
  // convolution, which may run fp32 as TF32.
  if (conv1_w.defined()) {
    patch_embedding = Linear(conv1_w.reshape({conv1_w.size(0), -1}), Tensor(), kernels.patch_embedding);
    if (kernels.patch_embedding != LinearKernel::kLibTorch) conv1_w = Tensor();
  }
  for (auto* blocks : {&visual_blocks, &text_blocks})
    for (Block& b : *blocks) {
      // Layer by layer, so the packed and the dense copy of one weight at
      // most are held together.
      for (auto [layer, w, bias] : {std::tuple{&b.in_proj, &b.in_proj_w, &b.in_proj_b},
                                    std::tuple{&b.out_proj, &b.out_proj_w, &b.out_proj_b},
                                    std::tuple{&b.c_fc, &b.c_fc_w, &b.c_fc_b},
                                    std::tuple{&b.c_proj, &b.c_proj_w, &b.c_proj_b}}) {
        *layer = Linear(*w, *bias, layer == &b.c_proj ? kernels.mlp_output : kernel);
        if (layer->kernel() != LinearKernel::kLibTorch) *w = Tensor();
      }
      // The dense copies just released may sit in the middle of the heap
      // (glibc puts allocations below its mmap threshold there, and the
      // threshold rises as large blocks are freed, e.g. by the kernel
      // measurement): hand their pages back now, or they stay resident
      // while every packed copy is added, raising the load's peak memory.
      if (packs) malloc_trim(0);
    }
  if (config.family == ModelFamily::kV1)
    for (ProjectionHead* h : {&visual_head, &text_head})
      for (auto [layer, w] : {std::pair{&h->linear1, &h->linear1_w}, std::pair{&h->linear2, &h->linear2_w}}) {
        *layer = Linear(*w, Tensor(), kernel);  // no bias
        if (packs) *w = Tensor();
      }
}

void init_random(ClipWeights& w, uint64_t seed) {
  torch::NoGradGuard no_grad;
  torch::manual_seed(seed);
  const ModelConfig& c = w.config;
  const double vscale = std::pow(c.vision_width, -0.5);
  const double tw = c.transformer_width;
  const double proj_std = std::pow(tw, -0.5) * std::pow(2.0 * c.transformer_layers, -0.5);
  const double attn_std = std::pow(tw, -0.5), fc_std = std::pow(2.0 * tw, -0.5);
  auto normal = [](Tensor& t, double std) { t.normal_(0.0, std); };
  // Module defaults upstream inherits: LayerNorm 1/0, biases 0, Linear/Conv
  // kaiming-uniform (bound 1/sqrt(fan_in)), MultiheadAttention xavier-uniform.
  auto uniform_fan_in = [](Tensor& t) {
    const double bound = 1.0 / std::sqrt(static_cast<double>(t.numel() / t.size(0)));
    t.uniform_(-bound, bound);
  };
  for (auto& blocks : {&w.visual_blocks, &w.text_blocks})
    for (Block& b : *blocks) {
      for (Tensor* t : {&b.ln_1_w, &b.ln_2_w}) t->fill_(1.0);
      for (Tensor* t : {&b.ln_1_b, &b.ln_2_b, &b.in_proj_b, &b.out_proj_b, &b.c_fc_b, &b.c_proj_b}) t->zero_();
      torch::nn::init::xavier_uniform_(b.in_proj_w);
      for (Tensor* t : {&b.out_proj_w, &b.c_fc_w, &b.c_proj_w}) uniform_fan_in(*t);
    }
  for (Tensor* t : {&w.ln_pre_w, &w.ln_post_w, &w.ln_final_w}) t->fill_(1.0);
  for (Tensor* t : {&w.ln_pre_b, &w.ln_post_b, &w.ln_final_b}) t->zero_();
  uniform_fan_in(w.conv1_w);
  normal(w.class_embedding, vscale);
  normal(w.visual_positional, vscale);
  normal(w.visual_proj, vscale);
  // CLIP.initialize_parameters (text tower).
  normal(w.token_embedding, 0.02);
  normal(w.text_positional, 0.01);
  for (Block& b : w.text_blocks) {
    normal(b.in_proj_w, attn_std);
    normal(b.out_proj_w, proj_std);
    normal(b.c_fc_w, fc_std);
    normal(b.c_proj_w, proj_std);
  }
  if (c.family == ModelFamily::kV1) {
    // GPT2PreTrainedModel._init_weights: every weight N(0, 0.02), biases 0,
    // LayerNorm 1/0 (set above); Projection: the Linear and LayerNorm defaults.
    normal(w.token_embedding, 0.02);
    normal(w.text_positional, 0.02);
    for (Block& b : w.text_blocks)
      for (Tensor* t : {&b.in_proj_w, &b.out_proj_w, &b.c_fc_w, &b.c_proj_w}) normal(*t, 0.02);
    for (ProjectionHead* h : {&w.visual_head, &w.text_head}) {
      uniform_fan_in(h->linear1_w);
      uniform_fan_in(h->linear2_w);
      h->ln_w.fill_(1.0);
      h->ln_b.zero_();
    }
  } else {
    normal(w.text_projection, attn_std);
  }
  w.logit_scale.fill_(std::log(1.0 / 0.07));
}

}  // namespace ruclip::detail
