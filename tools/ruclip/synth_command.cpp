// synth: a synthetic Russian image-caption data set (ruclip/synthetic.h) on disk.
#include <cerrno>
#include <cstdlib>
#include <iostream>

#include "cli.h"
#include "ruclip/error.h"
#include "ruclip/tools/synthetic.h"

namespace ruclip_cli {
namespace {

namespace synth = ruclip::synth;

uint64_t seed_option(const Args& args) {
  const std::string v = args.one("seed");
  if (v.empty()) return 0;
  errno = 0;
  char* end = nullptr;
  const unsigned long long n = std::strtoull(v.c_str(), &end, 10);
  if (*end != '\0' || v[0] == '-' || errno == ERANGE) throw UsageError("option --seed: not a valid number: " + v);
  return n;
}

int in_range(const Args& args, const std::string& name, int fallback, int lo, int hi) {
  const int n = args.integer(name, fallback);
  if (n != fallback && (n < lo || n > hi))
    throw UsageError("option --" + name + " must be " + std::to_string(lo) + ".." + std::to_string(hi) + ", not " +
                     std::to_string(n));
  return n;
}

int synth_run(const Args& args) {
  if (!args.positional.empty()) throw UsageError("unexpected argument '" + args.positional[0] + "'");
  const std::string out = args.required("out");
  if (args.one("count").empty()) throw UsageError("option --count is required");
  const int count = in_range(args, "count", 0, 1, 1 << 20);
  if (count == 0) throw UsageError("option --count must be at least 1");

  synth::Options options;
  options.width = in_range(args, "width", 0, 8, 4096);
  options.height = in_range(args, "height", 0, 8, 4096);
  options.jpeg_quality = in_range(args, "jpeg-quality", 0, 1, 100);

  const std::string style = args.one("style", "train");
  if (style == "train") options.style = synth::Style::Train;
  else if (style == "eval") options.style = synth::Style::Eval;
  else throw UsageError("option --style must be train or eval, not '" + style + "'");

  const std::string pairs = args.one("pairs", "seen");
  if (pairs == "seen") options.pairs = synth::Pairs::Seen;
  else if (pairs == "held") options.pairs = synth::Pairs::Held;
  else if (pairs == "all") options.pairs = synth::Pairs::All;
  else throw UsageError("option --pairs must be seen, held or all, not '" + pairs + "'");

  const std::string solid = args.one("solid", "yes");
  if (solid == "yes") options.include_solid = true;
  else if (solid == "no") options.include_solid = false;
  else throw UsageError("option --solid must be yes or no, not '" + solid + "'");

  const uint64_t seed = seed_option(args);
  const synth::DatasetSummary s = synth::write_dataset(out, options, count, seed);
  const synth::Generator sized(options, seed);  // the size the style filled in
  std::cout << json{{"count", s.count},
                    {"dir", s.dir},
                    {"files", {{"images", s.images_dir}, {"captions", s.captions_csv}, {"labels", s.labels_csv}}},
                    {"format", s.extension},
                    {"width", sized.options().width},
                    {"height", sized.options().height},
                    {"style", style},
                    {"pairs", pairs},
                    {"seed", seed}}
                   .dump()
            << "\n";
  return 0;
}

}  // namespace

const Command kSynth{"synth",
                     "ruclip synth --out DIR --count N [--width W] [--height H] [--style train|eval] "
                     "[--pairs seen|held|all] [--solid yes|no] [--jpeg-quality Q] [--seed S]",
                     {"out", "count", "width", "height", "style", "pairs", "solid", "jpeg-quality", "seed"},
                     synth_run};

}  // namespace ruclip_cli
