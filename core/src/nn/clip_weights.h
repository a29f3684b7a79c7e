// Internal (LibTorch): the ruCLIP parameters and the forward pass of both
// towers, shared by inference (model.cpp) and training (train.cpp).
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
  // (prepare_inference, CPU; undefined otherwise: conv1_w is used).
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
  // After `to`, for inference only (no autograd through it): puts the blocks'
  // linear layers on `kernel` (linear.h). A oneDNN kernel packs each weight
  // into its layout and the dense tensor is released: one copy of the weights.
  void prepare_inference(LinearKernel kernel);
};

// A timing of one image-tower block: on `images` images' tokens, the best
// of `calls` timed calls after a warm-up.
struct BlockLoad {
  int64_t images;
  int calls;
};
// GFLOP/s of one image-tower block of `config`'s geometry (constant weights
// in `kernel`'s layout, made once for all `loads`) under each of `loads`
// (bf16 activations for onednn-bf16, as the model runs it), under the thread
// setting in force. What the model measures at load to choose its kernel:
// the whole block, because a kernel's thread plan decides how fast
// everything between the products runs too.
std::vector<double> measure_block_gflops(const ModelConfig& config, LinearKernel kernel,
                                         const std::vector<BlockLoad>& loads);

// Uses `threads` CPU threads (0: all online CPUs) without oversubscribing:
// LibTorch's OpenMP pool and OpenBLAS's own threads would multiply (each
// spins while the other works), so only one of them gets `threads`, the
// other one thread.
//  - kBlas: OpenBLAS multithreads its products (training; the libtorch-blas
//    inference kernel), everything else runs on one thread.
//  - kOpenMp: LibTorch's OpenMP pool has the threads; oneDNN runs its
//    products there too.
// Process-wide, like the libraries' own settings.
enum class ThreadPlan { kBlas, kOpenMp };
void set_cpu_threads(int threads, ThreadPlan plan);

// The policy models load under, since every model of the process shares
// those pools: the first model loaded claims the setting (its num-threads,
// 0: all CPUs, and its kernel's plan) until the last model holding it is
// gone; models loaded meanwhile run with it and may not change it under the
// others. ruclip::set_process_cpu_threads (model.h) overrides it on purpose.
// Returns a warning for a model that asked for something else ("" when it got
// what it asked for); every claim is released once (release_cpu_threads).
// `threads_for_claim` is the count a model asking for `requested` will get.
// Thread-safe.
std::string claim_cpu_threads(int requested, ThreadPlan plan);
void release_cpu_threads();
int threads_for_claim(int requested);
// The warning claim_cpu_threads would give a model asking for `requested`
// now, without claiming ("" when it gets them): for a user of a model already loaded.
std::string cpu_threads_not_applied(int requested);
// Puts the claimed setting back after a measurement changed it (no-op before a claim).
void restore_claimed_cpu_threads();

// Fills `w` from a state dict; throws one ruclip::Error listing every missing,
// unexpected and mis-shaped weight. `origin` names the weights file. For v1
// the GPT-2 blocks' buffers h.N.attn.bias (the causal mask, lower-triangular
// ones of at least context_length rows) and h.N.attn.masked_bias (-10000)
// may be there: they are checked to be what the tower computes with, and
// not kept.
void load_state_dict(ClipWeights& w, StateDict dict, const std::string& origin);
// A ruCLIP v1 state dict (deprecated/clip's CLIP: visual_encoder.*, text_encoder.* keys).
bool is_v1_state_dict(const StateDict& dict);
// The tensors' shapes, for v1_config_from_shapes (config.h).
std::map<std::string, std::vector<int64_t>> state_dict_shapes(const StateDict& dict);
// Upstream's initialization (CLIP.initialize_parameters and the module defaults).
void init_random(ClipWeights& w, uint64_t seed);
// The parameters as float32 CPU tensors, ready for write_safetensors.
StateDict to_state_dict(ClipWeights& w);

// Between LibTorch tensors and the checkpoint readers' TensorData, as float32
// on the CPU. to_tensor uses the reader's buffer itself when the data is
// float32, contiguous and not shared with another entry (no copy); otherwise,
// and in to_tensor_data, a contiguous copy.
TensorData to_tensor_data(const Tensor& t);
Tensor to_tensor(const TensorData& t);

}  // namespace ruclip::detail
