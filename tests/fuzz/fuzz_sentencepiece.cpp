// sentencepiece.model bytes -> the SentencePiece backend (through our module).
#include <unistd.h>

#include <cstdio>
#include <string>

#include "fuzz_common.h"
#include "ruclip/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string path = "/tmp/ruclip-fuzz-spm-" + std::to_string(getpid()) + ".model";
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) return 0;
  std::fwrite(data, 1, size, f);
  std::fclose(f);
  fuzz_expect_clean_error([&] {
    const auto tokenizer = ruclip::load_sentencepiece_tokenizer(path);
    for (int id : tokenizer->encode("красная звезда на белом фоне"))
      if (id < 0 || id >= tokenizer->vocab_size()) __builtin_trap();
  });
  return 0;
}
