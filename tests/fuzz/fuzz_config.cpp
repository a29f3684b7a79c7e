// config.json text -> ModelConfig (and back).
#include "fuzz_common.h"
#include "ruclip/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz_expect_clean_error([&] {
    const auto config = ruclip::parse_config(std::string(reinterpret_cast<const char*>(data), size), "config.json");
    const auto again = ruclip::parse_config(ruclip::config_to_json(config), "round trip");
    if (again.embed_dim != config.embed_dim || again.templates != config.templates) __builtin_trap();
  });
  return 0;
}
