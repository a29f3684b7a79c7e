// Arbitrary bytes as text -> lower-casing, the tiny model's YouTokenToMe
// encoder and the processor's text preparation.
#include "fuzz_common.h"
#include "ruclip/config.h"
#include "ruclip/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const ruclip::ModelConfig config = ruclip::load_config(RUCLIP_FUZZ_MODEL);
  static const auto tokenizer = ruclip::load_tokenizer(RUCLIP_FUZZ_MODEL, config);
  fuzz_expect_clean_error([&] {
    const auto ids = ruclip::prepare_text(*tokenizer, config,
                                          std::string_view(reinterpret_cast<const char*>(data), size));
    if (static_cast<int>(ids.size()) != config.context_length || ids[0] != config.bos_id) __builtin_trap();
  });
  return 0;
}
