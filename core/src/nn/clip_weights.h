// Internal (LibTorch): the ruCLIP parameters and the forward pass of both
// towers, shared by inference (model.cpp) and training (train.cpp). Loading
// them from a state dict: state_dict.h; timing a block: runtime/block_timing.h.
#pragma once
#include <torch/torch.h>

#include <map>
#include <string>
#include <vector>

#include "nn/linear.h"
#include "ruclip/checkpoint.h"
#include "ruclip/config.h"

namespace ruclip::detail {

using torch::Tensor;

// transformers 3.x GPT-2 replaces the scores above the diagonal by
// masked_bias (-10000) and adds (1 - mask) * -10000 on padded keys. The
// causal mask here adds -inf instead: after the softmax both give exactly 0
// (exp underflows below -104 in float32; the diagonal is never masked, so a
// row's maximum is a real score), and it is the same attention as v2's.
constexpr double kGpt2MaskValue = -10000.0;

struct Block {
  Tensor ln_1_w, ln_1_b, in_proj_w, in_proj_b, out_proj_w, out_proj_b;
  Tensor ln_2_w, ln_2_b, c_fc_w, c_fc_b, c_proj_w, c_proj_b;
  // The four linear layers on the inference kernel (undefined for training:
  // ClipWeights::prepare_inference makes them; the oneDNN kernels keep the
  // only copy of the weights, the dense *_w above are dropped then).
  Linear in_proj, out_proj, c_fc, c_proj;
};

// ruCLIP v1's Projection head (deprecated/clip/model.py): e1 = linear1(x),
// LayerNorm(e1 + linear2(QuickGELU(e1))); the linears have no bias.
struct ProjectionHead {
  Tensor linear1_w, linear2_w, ln_w, ln_b;
  Linear linear1, linear2;  // on the inference kernel (see Block)
};

// The kernel of each kind of linear layer (ClipWeights::prepare_inference).
struct LayerKernels {
  LinearKernel blocks = LinearKernel::kLibTorch;      // the blocks' products, v1's projection heads
  LinearKernel mlp_output = LinearKernel::kLibTorch;  // each block's c_proj (int8-mixed: float32)
  // The image tower's patch embedding: never int8 (the pixels' product
  // keeps the precision the accuracy figures assume), bf16 where int8 runs
  // beside a native bf16 kernel.
  LinearKernel patch_embedding = LinearKernel::kLibTorch;
  static LayerKernels all(LinearKernel kernel) { return {kernel, kernel, kernel}; }
};

// One parameter: its upstream state-dict name, the tensor, its shape per config.json.
struct NamedParameter {
  std::string name;
  Tensor* tensor;
  std::vector<int64_t> shape;
  bool visual;  // part of the image tower (frozen by `train --freeze-image`)
  // Stored transposed in the file, [in, out] (GPT-2's Conv1D): `shape` is
  // ours, [out, in], what the linear kernels take; loading transposes once.
  bool transposed = false;
};

// Every parameter of upstream ruclip.model.CLIP (v2), or of deprecated/clip's
// CLIP (v1, config.family kV1), named as in its state_dict.
//  - v1's image tower is v2's (OpenAI's VisualTransformer) followed by
//    visual_head; its text tower is GPT-2: token_embedding = wte,
//    text_positional = wpe ([n_positions, D]), text_blocks (c_attn, attn.c_proj,
//    mlp.c_fc, mlp.c_proj in Block's in_proj, out_proj, c_fc, c_proj, as
//    [out, in]), ln_final = ln_f, then text_head; text_projection is unused.
//    Both towers return L2-normalized latents, as upstream's encoders do.
struct ClipWeights {
  ModelConfig config;
  // Image tower.
  Tensor conv1_w, class_embedding, visual_positional, ln_pre_w, ln_pre_b, ln_post_w, ln_post_b, visual_proj;
  std::vector<Block> visual_blocks;
  // conv1 as a product over each patch's pixels, on the inference kernel
  // (prepare_inference; undefined before it, when conv1_w is used).
  Linear patch_embedding;
  // Text tower.
  Tensor token_embedding, text_positional, ln_final_w, ln_final_b, text_projection;
  std::vector<Block> text_blocks;
  ProjectionHead visual_head, text_head;  // v1 only
  Tensor logit_scale;  // the stored parameter: log of the scale
  Tensor causal_mask;  // [L, L], -inf above the diagonal (not a parameter)

  // Tensors sized per config, uninitialized; or, without `allocate`, left
  // undefined for load_state_dict to fill (a v1 geometry comes from the
  // file's tensors: nothing is allocated for a shape they don't have).
  explicit ClipWeights(const ModelConfig& c, bool allocate = true);
  ClipWeights(const ClipWeights&) = delete;
  ClipWeights& operator=(const ClipWeights&) = delete;

  // The one list that loading, saving, initialization, training and device moves walk.
  std::vector<NamedParameter> parameters();

  Tensor encode_image(const Tensor& pixels) const;  // [N, 3, R, R] -> [N, embed_dim]
  // [N, L] int64 -> [N, embed_dim]. Computed only up to the batch's last
  // first-eos position: the tower is causal and pools there, so later
  // positions can't change the result. `full_context` computes all L (tests).
  // v1 with `full_context` also applies upstream's padding mask (added
  // -10000 on the keys after the first eos), as upstream's GPT2Model does.
  Tensor encode_text(const Tensor& ids, bool full_context = false) const;

  // Moves every tensor; `dtype` (float32, bfloat16, float16) is the
  // arithmetic of both towers from then on (inputs are cast to it), except
  // LayerNorm, which stays float32 as in upstream CLIP.
  void to(const torch::Device& device, torch::ScalarType dtype = torch::kFloat32);
  // After `to`, for inference only (no autograd through it): puts the linear
  // layers on `kernels` (linear.h). A oneDNN kernel packs each weight into
  // its layout and the dense tensor is released: one copy of the weights.
  void prepare_inference(const LayerKernels& kernels);
};

// Upstream's initialization (CLIP.initialize_parameters and the module defaults).
void init_random(ClipWeights& w, uint64_t seed);

// One pre-LN residual block: x + attn(ln_1(x)), then + mlp(ln_2(.)) (clip_weights.cpp says how);
// `pooled` [N] (undefined: every row) computes only those rows (a tower's last block).
Tensor residual_block(const Tensor& x, const Block& b, int64_t heads, const Tensor& mask, Epilogue activation,
                      const Tensor& pooled = {});

}  // namespace ruclip::detail
