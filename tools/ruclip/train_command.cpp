// ruclip train: contrastive training from scratch or from a model folder.
#include <cstdio>
#include <iostream>

#include "cli.h"
#include "ruclip/tools/train.h"

namespace ruclip_cli {
namespace {

std::string duration(double seconds) {
  char buf[32];
  const int s = static_cast<int>(seconds + 0.5);
  std::snprintf(buf, sizeof buf, "%dh%02dm%02ds", s / 3600, s / 60 % 60, s % 60);
  return buf;
}

int train(const Args& args) {
  if (!args.positional.empty()) throw UsageError("unexpected argument '" + args.positional[0] + "'");
  ruclip::TrainOptions o;
  o.data = args.required("data");
  o.output = args.required("out");
  o.init = args.one("init");
  o.config = args.one("config");
  o.tokenizer = args.one("tokenizer");
  o.resume = args.flag("resume");
  o.freeze_image = args.flag("freeze-image");
  o.epochs = args.integer("epochs", o.epochs);
  o.schedule_epochs = args.integer("schedule-epochs", 0);
  o.batch_size = args.integer("batch", o.batch_size);
  o.learning_rate = args.number("lr", o.learning_rate);
  o.weight_decay = args.number("weight-decay", o.weight_decay);
  o.warmup_steps = args.integer("warmup", o.warmup_steps);
  o.group = args.integer("group", o.group);
  o.seed = static_cast<uint64_t>(args.integer("seed", static_cast<int>(o.seed)));
  o.threads = args.integer("threads", 0);
  o.device = args.one("device", "auto");
  const int every = args.integer("log-every", 20);

  const auto result = ruclip::train(o, [&](const ruclip::TrainProgress& p) {
    if (p.step % every != 0 && p.step != p.total_steps) return;
    std::fprintf(stderr, "step %d/%d  epoch %d  loss %.4f  scale %.1f  %.0f img/s  ETA %s\n", p.step, p.total_steps,
                 p.epoch + 1, p.loss, p.logit_scale, p.images_per_second, duration(p.eta_seconds).c_str());
  });
  std::cout << json{{"output", o.output},       {"steps", result.steps},           {"images", result.images},
                    {"first_loss", result.first_loss}, {"last_loss", result.last_loss}, {"seconds", result.seconds}}
                   .dump()
            << "\n";
  return 0;
}

}  // namespace

const Command kTrain{
    "train",
    "ruclip train --data CSV|JSONL|FOLDER --out DIR (--init MODEL_DIR | --config config.json --tokenizer FILE | "
    "--resume) [--freeze-image] [--epochs N] [--schedule-epochs M] [--batch N] [--lr X] [--weight-decay X] [--warmup N] [--seed N] "
    "[--group N] [--log-every N]",
    {"data", "out", "init", "config", "tokenizer", "epochs", "schedule-epochs", "batch", "lr", "weight-decay", "warmup", "group", "seed",
     "threads", "device", "log-every"},
    train,
    {"resume", "freeze-image"}};

}  // namespace ruclip_cli
