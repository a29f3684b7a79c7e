// ruCLIP v1's GPT-2 tokenizer, with the v1 fixture's files
// (tests/data/ruclip-v1-tiny). The first byte says what the rest is:
//   0: a text -> GPT-2 BPE and v1's text preparation (get_text_batch)
//   1: merges.txt, with the fixture's vocab.json, then encoding a fixed text
//   2: vocab.json, with the fixture's merges.txt, then encoding a fixed text
#include <algorithm>
#include <fstream>
#include <sstream>
#include <string>

#include "fuzz_common.h"
#include "ruclip/config.h"
#include "ruclip/tokenizer.h"

namespace {

std::string read(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) std::abort();  // the fixture is part of the source tree
  std::ostringstream contents;
  contents << in.rdbuf();
  return contents.str();
}

void check_ids(const ruclip::Tokenizer& tokenizer, std::string_view text) {
  for (int id : tokenizer.encode(text))
    if (id < 0 || id >= tokenizer.vocab_size()) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string vocab = read(RUCLIP_FUZZ_V1_MODEL "/vocab.json");
  static const std::string merges = read(RUCLIP_FUZZ_V1_MODEL "/merges.txt");
  static const auto tokenizer = ruclip::parse_gpt2_tokenizer(vocab, merges, RUCLIP_FUZZ_V1_MODEL);
  static const ruclip::ModelConfig config = [] {
    ruclip::ModelConfig c;
    c.family = ruclip::ModelFamily::kV1;
    c.context_length = 16;
    c.pad_id = 0, c.bos_id = 1, c.eos_id = 2;
    return c;
  }();
  static const std::string fixed_text = "Все дороги идут <s> из  прошлого, it's 2021!\t\n\xC2\xA0☃ </s>";
  if (size == 0) return 0;
  const std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  fuzz_expect_clean_error([&] {
    switch (data[0] % 3) {
      case 0: {
        check_ids(*tokenizer, rest);
        const auto ids = ruclip::prepare_text(*tokenizer, config, rest);
        if (ids.size() != 16 || ids[0] != config.bos_id || std::count(ids.begin(), ids.end(), config.eos_id) != 1)
          __builtin_trap();
        break;
      }
      case 1:
        check_ids(*ruclip::parse_gpt2_tokenizer(vocab, rest, "fuzz"), fixed_text);
        break;
      default:
        check_ids(*ruclip::parse_gpt2_tokenizer(rest, merges, "fuzz"), fixed_text);
        break;
    }
  });
  return 0;
}
