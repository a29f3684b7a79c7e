#include "ruclip/tools/train.h"

#include <torch/torch.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <numeric>
#include <random>
#include <sstream>
#include <type_traits>

#include "nn/clip_weights.h"
#include "runtime/cpu_threads.h"
#include "nn/state_dict.h"
#include "ruclip/checkpoint.h"
#include "ruclip/config.h"
#include "ruclip/tools/dataset.h"
#include "ruclip/error.h"
#include "ruclip/model_folder.h"
#include "ruclip/tools/image_files.h"
#include "ruclip/tokenizer.h"

namespace ruclip {
namespace {

namespace fs = std::filesystem;
using torch::Tensor;
using detail::ClipWeights;

// Where the weights and tokenizer come from, and the config they go with.
struct Start {
  ModelConfig config;
  std::string tokenizer_file;  // copied into the output folder
  std::string weights_file;    // empty: random initialization
};

void refuse_v1(const ModelConfig& config, const std::string& origin) {
  if (config.family == ModelFamily::kV1)
    throw Error(origin + ": ruCLIP v1 (GPT-2 text tower, Projection heads) can't be trained here; training takes "
                "ruclip-vit-* (v2) models");
}

Start decide_start(const TrainOptions& o) {
  Start s;
  std::string from = o.resume ? o.output : o.init;
  if (!from.empty()) {
    if (!o.config.empty() || !o.tokenizer.empty())
      throw Error("give either a model folder to start from (--init / --resume) or --config and --tokenizer, not both");
    s.config = load_config(from);
    refuse_v1(s.config, from + "/config.json");
    const ModelFolder folder = find_model_folder(from);
    if (folder.tokenizer.kind == TokenizerKind::kGpt2)
      throw Error(folder.tokenizer.file + ": a GPT-2 tokenizer can't be trained here");
    s.tokenizer_file = folder.tokenizer.file;
    s.weights_file = folder.weights_file;
    return s;
  }
  if (o.config.empty() || o.tokenizer.empty())
    throw Error("training from scratch needs --config (a config.json) and --tokenizer (bpe.model or sentencepiece.model)");
  std::ifstream in(o.config);
  if (!in) throw Error(o.config + ": cannot open");
  s.config = parse_config(std::string(std::istreambuf_iterator<char>(in), {}), o.config);
  refuse_v1(s.config, o.config);
  if (!fs::exists(o.tokenizer)) throw Error(o.tokenizer + ": no such tokenizer file");
  const bool spm = fs::path(o.tokenizer).filename() != "bpe.model";
  if (s.config.tokenizer.empty()) s.config.tokenizer = spm ? "sentencepiece" : "yttm";
  s.tokenizer_file = o.tokenizer;
  return s;
}

std::unique_ptr<Tokenizer> open_tokenizer(const Start& s) {
  return s.config.tokenizer == "sentencepiece" ? load_sentencepiece_tokenizer(s.tokenizer_file)
                                               : load_yttm_tokenizer(s.tokenizer_file);
}

// The whole data set in memory: normalized pixels and token ids.
struct Data {
  Tensor pixels;  // [N, 3, R, R] float
  Tensor ids;     // [N, L] int64
};

Data load_data(const TrainOptions& o, const ModelConfig& config, const Tokenizer& tokenizer) {
  const auto rows = read_image_texts(o.data, {"file", "image"}, {"caption", "text"});
  const int64_t n = static_cast<int64_t>(rows.size()), r = config.image_resolution, l = config.context_length;
  Data d{torch::empty({n, 3, r, r}), torch::empty({n, l}, torch::kInt64)};
  Normalization norm;
  norm.resolution = config.image_resolution;
  norm.mean = config.mean;
  norm.std = config.std;
  float* pixels = d.pixels.data_ptr<float>();
  int64_t* ids = d.ids.data_ptr<int64_t>();
  for (int64_t i = 0; i < n; ++i) {
    const Image image = load_image(rows[i].file);
    preprocess(image.view(), norm, pixels + i * 3 * r * r);
    const auto tokens = prepare_text(tokenizer, config, rows[i].text);
    std::copy(tokens.begin(), tokens.end(), ids + i * l);
  }
  return d;
}

// Symmetric cross-entropy over image x text similarities. Identical captions
// in a batch ("красный круг" twice) are both right answers, so targets are
// spread over them instead of calling one of them a negative.
Tensor contrastive_loss(const Tensor& image_latents, const Tensor& text_latents, const Tensor& ids,
                        const Tensor& logit_scale) {
  Tensor img = image_latents / image_latents.norm(2, -1, true);
  Tensor txt = text_latents / text_latents.norm(2, -1, true);
  Tensor logits = logit_scale.exp() * torch::matmul(img, txt.t());
  Tensor same = (ids.unsqueeze(1) == ids.unsqueeze(0)).all(-1).to(torch::kFloat32);
  Tensor targets = same / same.sum(1, true);
  Tensor loss_i = -(targets * torch::log_softmax(logits, 1)).sum(1).mean();
  Tensor loss_t = -(targets * torch::log_softmax(logits.t(), 1)).sum(1).mean();
  return (loss_i + loss_t) / 2;
}

double learning_rate_at(const TrainOptions& o, int step, int total) {
  if (step < o.warmup_steps) return o.learning_rate * (step + 1) / o.warmup_steps;
  const double progress = double(step - o.warmup_steps) / std::max(1, total - o.warmup_steps);
  return o.learning_rate * 0.5 * (1.0 + std::cos(M_PI * std::min(1.0, progress)));
}

// The optimizer's key for a parameter, its TensorImpl's address: as text in
// LibTorch 1.x, the pointer itself in 2.x.
using OptimizerKey = std::decay_t<decltype(std::declval<torch::optim::AdamW&>().state())>::key_type;
template <typename Key = OptimizerKey>  // a template, so the branch not taken isn't compiled
Key optimizer_key(const Tensor& p) {
  if constexpr (std::is_same_v<Key, std::string>) {
    std::ostringstream key;
    key << p.unsafeGetTensorImpl();
    return key.str();
  } else {
    return p.unsafeGetTensorImpl();
  }
}

// AdamW moments by parameter name, so a resumed run continues where it stopped.
void save_optimizer(torch::optim::AdamW& optimizer, std::vector<detail::NamedParameter>& params,
                    const std::string& path, int step) {
  StateDict dict;
  for (auto& p : params) {
    auto it = optimizer.state().find(optimizer_key(*p.tensor));
    if (it == optimizer.state().end()) continue;
    auto& state = static_cast<torch::optim::AdamWParamState&>(*it->second);
    dict[p.name + ".exp_avg"] = detail::to_tensor_data(state.exp_avg());
    dict[p.name + ".exp_avg_sq"] = detail::to_tensor_data(state.exp_avg_sq());
  }
  write_safetensors(path, dict, {{"step", std::to_string(step)}});
}

void load_optimizer(torch::optim::AdamW& optimizer, std::vector<detail::NamedParameter>& params,
                    const std::string& path, int step) {
  StateDict dict = read_safetensors(path);
  for (auto& p : params) {
    auto avg = dict.find(p.name + ".exp_avg"), sq = dict.find(p.name + ".exp_avg_sq");
    if (avg == dict.end() || sq == dict.end() || avg->second.shape != p.shape) continue;
    auto state = std::make_unique<torch::optim::AdamWParamState>();
    state->exp_avg(detail::to_tensor(avg->second).to(p.tensor->device()));
    state->exp_avg_sq(detail::to_tensor(sq->second).to(p.tensor->device()));
    state->step(step);
    optimizer.state()[optimizer_key(*p.tensor)] = std::move(state);
  }
}

void write_text(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  if (!out) throw Error(path.string() + ": cannot write");
}

}  // namespace

TrainResult train(const TrainOptions& o, const std::function<void(const TrainProgress&)>& progress) {
  if (o.output.empty()) throw Error("train: no output folder given");
  if (o.batch_size < 2) throw Error("train: batch size must be at least 2 (contrastive loss needs negatives)");
  if (o.epochs < 1) throw Error("train: epochs must be at least 1");
  if (o.group < 1) throw Error("train: group must be at least 1");
  const int64_t group = o.group;
  const Start start = decide_start(o);
  const auto tokenizer = open_tokenizer(start);
  if (tokenizer->vocab_size() > start.config.vocab_size)
    throw Error(start.tokenizer_file + ": " + std::to_string(tokenizer->vocab_size()) +
                " tokens, more than config vocab_size " + std::to_string(start.config.vocab_size));

  detail::set_cpu_threads(o.threads, detail::ThreadPlan::kBlas);
  torch::manual_seed(o.seed);
  const torch::Device device(o.device == "auto" ? (torch::cuda::is_available() ? "cuda" : "cpu") : o.device);

  ClipWeights w(start.config);
  if (start.weights_file.empty()) {
    detail::init_random(w, o.seed);
  } else {
    const std::string& f = start.weights_file;
    detail::load_state_dict(w, f.size() > 12 && f.substr(f.size() - 12) == ".safetensors" ? read_safetensors(f)
                                                                                           : read_torch_checkpoint(f),
                            f);
  }
  w.to(device);
  auto params = w.parameters();
  std::vector<Tensor> trainable;
  for (auto& p : params) {
    const bool train_it = !(o.freeze_image && p.visual);
    p.tensor->set_requires_grad(train_it);
    if (train_it) trainable.push_back(*p.tensor);
  }

  const Data data = load_data(o, start.config, *tokenizer);
  const int64_t n = data.pixels.size(0);
  if (n < o.batch_size) throw Error(o.data + ": " + std::to_string(n) + " pairs, fewer than one batch of " +
                                    std::to_string(o.batch_size));
  const int steps_per_epoch = static_cast<int>(n / o.batch_size);
  const int total_steps = steps_per_epoch * o.epochs;
  if (o.schedule_epochs != 0 && o.schedule_epochs < o.epochs)
    throw Error("train: schedule-epochs must be at least epochs");
  const int schedule_steps = steps_per_epoch * std::max(o.epochs, o.schedule_epochs);

  torch::optim::AdamW optimizer(trainable, torch::optim::AdamWOptions(o.learning_rate).weight_decay(o.weight_decay));
  int step = 0;
  fs::create_directories(o.output);
  const fs::path out_dir(o.output);
  if (o.resume) {
    const std::string state_file = (out_dir / "train_state.json").string();
    std::ifstream state_in(state_file);
    if (!state_in) throw Error(state_file + ": cannot open (nothing to resume)");
    const auto state = nlohmann::json::parse(state_in);
    step = state.at("step").get<int>();
    // The step count says where in the schedule the run is only for the same
    // number of steps per epoch: another data set (new pictures for the next
    // epochs) is fine if it has as many pairs, at the same batch size.
    const int saved_steps_per_epoch = state.value("steps_per_epoch", steps_per_epoch);
    if (saved_steps_per_epoch != steps_per_epoch)
      throw Error(state_file + ": the run had " + std::to_string(saved_steps_per_epoch) + " steps per epoch; " +
                  o.data + " at batch " + std::to_string(o.batch_size) + " gives " + std::to_string(steps_per_epoch) +
                  " (resume with as many pairs and the same batch size)");
    if (fs::exists(out_dir / "optimizer.safetensors"))
      load_optimizer(optimizer, params, (out_dir / "optimizer.safetensors").string(), step);
  }

  auto save = [&](int at_step, double loss) {
    torch::NoGradGuard no_grad;
    ModelConfig config = start.config;
    const std::string tok_name = config.tokenizer == "sentencepiece" ? "sentencepiece.model" : "bpe.model";
    if (fs::absolute(start.tokenizer_file) != fs::absolute(out_dir / tok_name))
      fs::copy_file(start.tokenizer_file, out_dir / tok_name, fs::copy_options::overwrite_existing);
    write_text(out_dir / "config.json", config_to_json(config));
    write_safetensors((out_dir / "model.safetensors").string(), detail::to_state_dict(w),
                      {{"step", std::to_string(at_step)}, {"loss", std::to_string(loss)}});
    save_optimizer(optimizer, params, (out_dir / "optimizer.safetensors").string(), at_step);
    nlohmann::ordered_json state = {{"step", at_step}, {"total_steps", total_steps}, {"loss", loss},
                                    {"data", o.data}, {"batch_size", o.batch_size}, {"steps_per_epoch", steps_per_epoch},
                                    {"epochs", o.epochs},
                                    {"learning_rate", o.learning_rate}, {"seed", o.seed},
                                    {"freeze_image", o.freeze_image}, {"group", o.group},
                                    {"schedule_epochs", std::max(o.epochs, o.schedule_epochs)}};
    write_text(out_dir / "train_state.json", state.dump(2) + "\n");
  };

  TrainResult result;
  result.images = static_cast<int>(n);
  std::vector<double> losses;
  const auto t0 = std::chrono::steady_clock::now();
  std::mt19937_64 rng(o.seed);
  std::vector<int64_t> order;
  const int first_step = step;
  double loss_value = 0;
  for (int epoch = step / steps_per_epoch; epoch < o.epochs; ++epoch) {
    // Shuffle whole blocks of `group` rows (same order again when resumed).
    std::mt19937_64 epoch_rng(o.seed + 1000003ULL * epoch);
    std::vector<int64_t> blocks((n + group - 1) / group);
    std::iota(blocks.begin(), blocks.end(), 0);
    std::shuffle(blocks.begin(), blocks.end(), epoch_rng);
    order.clear();
    for (int64_t block : blocks)
      for (int64_t i = block * group; i < std::min(n, (block + 1) * group); ++i) order.push_back(i);
    for (int b = step % steps_per_epoch; b < steps_per_epoch; ++b, ++step) {
      Tensor index = torch::from_blob(order.data() + b * o.batch_size, {o.batch_size}, torch::kInt64);
      Tensor pixels = data.pixels.index_select(0, index).to(device);
      Tensor ids = data.ids.index_select(0, index).to(device);
      for (auto& group : optimizer.param_groups())
        static_cast<torch::optim::AdamWOptions&>(group.options()).lr(learning_rate_at(o, step, schedule_steps));

      optimizer.zero_grad();
      Tensor image_latents;
      if (o.freeze_image) {
        torch::NoGradGuard no_grad;
        image_latents = w.encode_image(pixels);
      } else {
        image_latents = w.encode_image(pixels);
      }
      // Label-style data repeats texts within a batch: each distinct one is
      // encoded once (the same function per row, so the same loss and gradients).
      const auto [distinct_ids, inverse, counts] = at::unique_dim(ids, 0, false, true);
      Tensor text_latents = w.encode_text(distinct_ids).index_select(0, inverse);
      Tensor loss = contrastive_loss(image_latents, text_latents, ids, w.logit_scale);
      loss.backward();
      optimizer.step();
      {
        torch::NoGradGuard no_grad;
        w.logit_scale.clamp_(0.0, std::log(100.0));  // CLIP's cap on the scale
      }
      loss_value = loss.item<double>();
      losses.push_back(loss_value);

      TrainProgress p;
      p.step = step + 1;
      p.total_steps = total_steps;
      p.epoch = epoch;
      p.loss = loss_value;
      p.logit_scale = std::exp(w.logit_scale.item<double>());
      const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      const int done = step + 1 - first_step;
      p.images_per_second = done * o.batch_size / seconds;
      p.eta_seconds = seconds / done * (total_steps - step - 1);
      if (progress) progress(p);
    }
    save(step, loss_value);  // every epoch: an interrupted run resumes from here
  }
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  result.steps = step;
  auto mean = [](auto begin, auto end) { return end > begin ? std::accumulate(begin, end, 0.0) / (end - begin) : 0.0; };
  const size_t k = std::min<size_t>(10, losses.size());
  result.first_loss = mean(losses.begin(), losses.begin() + k);
  result.last_loss = mean(losses.end() - k, losses.end());
  return result;
}

}  // namespace ruclip
