// Internal (LibTorch): ClipWeights from and to a checkpoint's state dict
// (upstream's names and shapes, checked), and the conversions between
// LibTorch tensors and the checkpoint readers' TensorData.
#pragma once
#include <map>
#include <string>
#include <vector>

#include "nn/clip_weights.h"
#include "ruclip/checkpoint.h"

namespace ruclip::detail {

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
// The parameters as float32 CPU tensors, ready for write_safetensors.
StateDict to_state_dict(ClipWeights& w);

// Between LibTorch tensors and the checkpoint readers' TensorData, as float32
// on the CPU. to_tensor uses the reader's buffer itself when the data is
// float32, contiguous and not shared with another entry (no copy); otherwise,
// and in to_tensor_data, a contiguous copy.
TensorData to_tensor_data(const Tensor& t);
Tensor to_tensor(const TensorData& t);

}  // namespace ruclip::detail
