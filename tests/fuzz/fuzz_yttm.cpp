// bpe.model text -> YouTokenToMe model, then encoding a fixed text with it.
#include "fuzz_common.h"
#include "ruclip/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz_expect_clean_error([&] {
    const auto tokenizer =
        ruclip::parse_yttm_tokenizer(std::string_view(reinterpret_cast<const char*>(data), size), "bpe.model");
    for (int id : tokenizer->encode("красная звезда на белом фоне, abc 123 ☃"))
      if (id < 0 || id >= tokenizer->vocab_size()) __builtin_trap();
  });
  return 0;
}
