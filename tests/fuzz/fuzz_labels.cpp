// labels-file text and the labels property -> label lists.
#include "fuzz_common.h"
#include "ruclip/labels.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  for (const auto& item : ruclip::split_list(text))
    if (item.empty() || item.find(';') != std::string::npos) __builtin_trap();
  fuzz_expect_clean_error([&] {
    for (const auto& label : ruclip::parse_labels_file(text, "labels.txt"))
      if (label.empty() || label[0] == '#' || label.find('\n') != std::string::npos) __builtin_trap();
  });
  return 0;
}
