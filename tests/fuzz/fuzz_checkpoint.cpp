// pytorch_model.bin bytes -> zip or legacy-format reader + restricted unpickler.
#include "fuzz_common.h"
#include "ruclip/checkpoint.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz_expect_clean_error([&] {
    const auto dict = ruclip::read_torch_checkpoint(data, size, "fuzz.bin");
    for (const auto& [name, tensor] : dict) (void)tensor.to_float();
  });
  return 0;
}
