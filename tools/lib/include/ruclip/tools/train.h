// Contrastive training of a ruCLIP model on (image, Russian caption) pairs,
// as CLIP and ruCLIP were trained: symmetric cross-entropy over the batch's
// image x text similarities with a learnable logit scale.
// Library: ruclip_tools (for the `ruclip` command and the tests), not the inference library.
#pragma once
#include <cstdint>
#include <functional>
#include <string>

namespace ruclip {

struct TrainOptions {
  std::string data;    // CSV/JSONL of (file, caption), or a folder holding captions.csv
  std::string output;  // the model folder to write
  // Start from a model folder (a published ruCLIP included) ...
  std::string init;
  // ... or from scratch: a config.json and a tokenizer file (bpe.model or sentencepiece.model).
  std::string config;
  std::string tokenizer;
  bool resume = false;        // continue the run saved in `output` (weights, optimizer, step)
  bool freeze_image = false;  // the ruCLIP article's recipe: train the text side only
  int epochs = 10;
  // Length of the learning-rate schedule (warmup, then cosine to zero), in
  // epochs; 0: `epochs`. Larger: this run is the first `epochs` of a longer
  // schedule (a long training split into runs).
  int schedule_epochs = 0;
  int batch_size = 128;
  double learning_rate = 5e-4;
  double weight_decay = 0.05;
  int warmup_steps = 100;
  // Shuffle blocks of this many consecutive rows instead of single rows, so
  // a batch holds whole blocks: with rows sorted so that a block shares what
  // is easy (colour, background), the batch's negatives differ in what is
  // hard (shape). 1: plain shuffling.
  int group = 1;
  uint64_t seed = 1;
  int threads = 0;  // 0: all online CPUs
  std::string device = "cpu";
};

struct TrainProgress {
  int step = 0, total_steps = 0, epoch = 0;
  double loss = 0;
  double logit_scale = 0;
  double images_per_second = 0;
  double eta_seconds = 0;
};

struct TrainResult {
  int steps = 0;
  double first_loss = 0;  // mean over the first epoch's first 10 steps
  double last_loss = 0;   // mean over the last 10 steps
  double seconds = 0;
  int images = 0;
};

// Trains and writes output/{model.safetensors, config.json, tokenizer,
// optimizer.safetensors, train_state.json}; `progress` is called after every step.
TrainResult train(const TrainOptions& options, const std::function<void(const TrainProgress&)>& progress);

}  // namespace ruclip
