// ruclip: the command-line face of the core. JSON on stdout, errors on stderr
// with a non-zero exit (1: bad input, 2: bad usage). One file per group of
// subcommands; this one only dispatches.
#include <iostream>

#include "cli.h"
#include "ruclip/error.h"

namespace {

const ruclip_cli::Command* const kCommands[] = {
    &ruclip_cli::kTokenize,
    &ruclip_cli::kEmbed,
    &ruclip_cli::kClassify,
    &ruclip_cli::kRank,
    &ruclip_cli::kSimilarity,
    &ruclip_cli::kEval,
    &ruclip_cli::kTrain,
    &ruclip_cli::kSynth,
    &ruclip_cli::kBench,
#ifdef RUCLIP_HAVE_GST
    &ruclip_cli::kTag, &ruclip_cli::kIndex, &ruclip_cli::kSearch, &ruclip_cli::kPrune, &ruclip_cli::kServe,
    &ruclip_cli::kBenchSearch, &ruclip_cli::kBenchIndex,
#endif
};

void usage(std::ostream& out) {
  out << "usage:\n";
  for (const auto* c : kCommands) out << "  " << c->usage << "\n";
  out << "common options: --device cpu|cuda|cuda:N|auto (default auto: the first GPU when there is one, as the elements), --threads N (default: all CPUs),\n"
         "                --precision fp32|bf16|fp16|int8|int8-mixed|auto (default fp32; fp16 needs CUDA; bf16 runs\n"
         "                as bf16 only on CPUs with native bf16, else fp32 with a warning; int8, int8-mixed: CPU;\n"
         "                auto: the fastest whose accuracy holds on this machine)\n";
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || std::string(argv[1]) == "--help" || std::string(argv[1]) == "-h") {
    usage(std::cerr);
    return argc < 2 ? 2 : 0;
  }
  const std::string name = argv[1];
  for (const auto* command : kCommands) {
    if (name != command->name) continue;
    try {
      return command->run(ruclip_cli::Args(argc, argv, 2, command->options, command->flags));
    } catch (const ruclip_cli::UsageError& e) {
      std::cerr << "ruclip " << name << ": " << e.what() << "\nusage: " << command->usage << "\n";
      return 2;
    } catch (const ruclip::Error& e) {
      std::cerr << "ruclip " << name << ": " << e.what() << "\n";
      return 1;
    } catch (const std::exception& e) {
      // LibTorch (c10::Error) or the standard library: still a message, never an abort.
      std::cerr << "ruclip " << name << ": internal error: " << e.what() << "\n";
      return 1;
    }
  }
  std::cerr << "ruclip: unknown command '" << name << "'\n";
  usage(std::cerr);
  return 2;
}
