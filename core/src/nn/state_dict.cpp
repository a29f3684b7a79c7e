// Loading ClipWeights from a state dict and back (state_dict.h).
#include "nn/state_dict.h"

#include <sstream>

#include "ruclip/error.h"

namespace ruclip::detail {

namespace {

std::string shape_str(c10::IntArrayRef shape) {
  std::ostringstream out;
  out << '[';
  for (size_t i = 0; i < shape.size(); ++i) out << (i ? "," : "") << shape[i];
  out << ']';
  return out.str();
}

// Why transformers' GPT-2 block buffer `name` is not what the v1 text tower
// computes with ("" when it is): h.N.attn.bias, the causal mask (uint8 lower-
// triangular ones, [1, 1, n_ctx, n_ctx]), and h.N.attn.masked_bias (-10000).
std::string gpt2_buffer_problem(const std::string& name, const TensorData& t, const ModelConfig& c) {
  // Far above any n_ctx (ruGPT3-small: 2048): a hostile shape can't make the check allocate much.
  constexpr int64_t kMaxCausalRows = 8192;
  if (name.size() > 12 && name.compare(name.size() - 12, 12, ".masked_bias") == 0) {
    if (t.numel() != 1 || t.shape.size() > 1) return name + " is " + shape_str(t.shape) + ", expected a scalar";
    const float value = t.to_float()[0];
    if (value != static_cast<float>(kGpt2MaskValue))
      return name + " is " + std::to_string(value) + ", but GPT-2's masked scores are -10000 here";
    return "";
  }
  const auto& s = t.shape;
  if (s.size() != 4 || s[0] != 1 || s[1] != 1 || s[2] != s[3] || s[2] < c.context_length || s[2] > kMaxCausalRows)
    return name + " is " + shape_str(s) + ", expected the causal mask [1,1,n_ctx,n_ctx] with n_ctx >= " +
           std::to_string(c.context_length) + " (seq_length)";
  if (t.dtype != DType::U8 && t.dtype != DType::Bool)
    return name + " is " + dtype_name(t.dtype) + ", expected uint8 (the causal mask)";
  const std::vector<float> values = t.to_float();
  const int64_t n = s[2];
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j)
      if (values[i * n + j] != (j <= i ? 1.0f : 0.0f))
        return name + " is not the causal mask (ones on and below the diagonal): element [" + std::to_string(i) +
               "," + std::to_string(j) + "] is " + std::to_string(values[i * n + j]);
  return "";
}

}  // namespace

void load_state_dict(ClipWeights& w, StateDict dict, const std::string& origin) {
  const bool v1 = w.config.family == ModelFamily::kV1;
  // v2's geometry is config.json's; v1's comes from the shapes unless config.json states it.
  const char* source = v1 ? "the geometry" : "config.json";
  std::vector<std::string> missing, mis_shaped, unexpected, wrong;
  for (auto& p : w.parameters()) {
    auto it = dict.find(p.name);
    if (it == dict.end()) {
      missing.push_back(p.name);
      continue;
    }
    const TensorData& t = it->second;
    const std::vector<int64_t> stored = p.transposed ? std::vector<int64_t>(p.shape.rbegin(), p.shape.rend()) : p.shape;
    if (t.shape != stored) {
      mis_shaped.push_back(p.name + " is " + shape_str(t.shape) + ", " + source + " implies " + shape_str(stored));
    } else {
      // Conv1D's [in, out] to the [out, in] of the linear kernels, once.
      *p.tensor = p.transposed ? to_tensor(t).t().contiguous() : to_tensor(t);
    }
    dict.erase(it);
  }
  if (v1) {
    // The GPT-2 blocks' buffers (transformers 3.x saves them; later versions don't).
    for (int i = 0; i < w.config.transformer_layers; ++i)
      for (const char* buffer : {".attn.bias", ".attn.masked_bias"}) {
        auto it = dict.find("text_encoder.model.h." + std::to_string(i) + buffer);
        if (it == dict.end()) continue;
        if (std::string problem = gpt2_buffer_problem(it->first, it->second, w.config); !problem.empty())
          wrong.push_back(problem);
        dict.erase(it);
      }
  }
  for (const auto& [name, _] : dict) unexpected.push_back(name);
  if (missing.empty() && mis_shaped.empty() && unexpected.empty() && wrong.empty()) return;

  std::ostringstream msg;
  if (v1)
    msg << origin << ": weights do not match the ruCLIP v1 geometry (read from the tensor shapes, and from "
           "config.json where the folder has one)";
  else
    msg << origin << ": weights do not match config.json";
  auto list = [&msg](const char* what, const std::vector<std::string>& names) {
    if (names.empty()) return;
    msg << "; " << what << " (" << names.size() << "): ";
    for (size_t i = 0; i < names.size() && i < 8; ++i) msg << (i ? ", " : "") << names[i];
    if (names.size() > 8) msg << ", ...";
  };
  list("missing", missing);
  list("wrong shape", mis_shaped);
  list("unexpected", unexpected);
  list("not what the model computes with", wrong);
  throw Error(msg.str());
}

bool is_v1_state_dict(const StateDict& dict) {
  for (const char* prefix : {"visual_encoder.", "text_encoder."}) {
    auto it = dict.lower_bound(prefix);
    if (it != dict.end() && it->first.rfind(prefix, 0) == 0) return true;
  }
  return false;
}

std::map<std::string, std::vector<int64_t>> state_dict_shapes(const StateDict& dict) {
  std::map<std::string, std::vector<int64_t>> shapes;
  for (const auto& [name, t] : dict) shapes.emplace_hint(shapes.end(), name, t.shape);
  return shapes;
}

StateDict to_state_dict(ClipWeights& w) {
  StateDict dict;
  for (auto& p : w.parameters()) dict[p.name] = to_tensor_data(p.transposed ? p.tensor->t() : *p.tensor);
  return dict;
}

TensorData to_tensor_data(const Tensor& t) {
  // A copy: `t` (a parameter being trained, say) may change afterwards.
  const Tensor c = t.detach().to(torch::kCPU, torch::kFloat32).contiguous();
  std::shared_ptr<Storage> storage = Storage::allocate(c.numel() * sizeof(float));
  if (storage->size() > 0) std::memcpy(storage->writable_data(), c.data_ptr<float>(), storage->size());
  return TensorData{DType::F32, c.sizes().vec(), c.strides().vec(), 0, std::move(storage)};
}

Tensor to_tensor(const TensorData& t) {
  // A float32 row-major view into a reader's buffer that no other TensorData
  // refers to becomes a tensor on those very bytes: the file's storage, read
  // once, is the parameter (it lives as long as the tensor; training writes
  // to it in place). A storage several views share is copied, so that two
  // parameters never alias.
  const std::shared_ptr<const Storage>& storage = t.storage.shared();
  if (t.dtype == DType::F32 && storage && storage->writable_data() && storage.use_count() == 1) {
    const uint8_t* first = t.contiguous_data();
    if (first && reinterpret_cast<uintptr_t>(first) % alignof(float) == 0) {
      uint8_t* data = storage->writable_data() + (first - storage->data());
      return torch::from_blob(data, t.shape, [keep = storage](void*) {}, torch::kFloat32);
    }
  }
  // Other dtypes and views: converted once, into memory the tensor owns.
  auto values = std::make_shared<std::vector<float>>(t.to_float());
  if (values->empty()) return torch::empty(t.shape, torch::kFloat32);
  float* data = values->data();
  return torch::from_blob(data, t.shape, [keep = std::move(values)](void*) {}, torch::kFloat32);
}

}  // namespace ruclip::detail
