// model.safetensors bytes -> header JSON + tensor views.
#include "fuzz_common.h"
#include "ruclip/checkpoint.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz_expect_clean_error([&] {
    const auto dict = ruclip::read_safetensors(data, size, "fuzz.safetensors");
    for (const auto& [name, tensor] : dict) (void)tensor.to_float();
  });
  return 0;
}
