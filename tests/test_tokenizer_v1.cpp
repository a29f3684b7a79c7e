// ruCLIP v1's text side: the GPT-2 byte-level BPE tokenizer against the ids
// upstream's GPT2Tokenizer gave (tests/data/ruclip-v1-tiny/expected.json), and
// upstream get_text_batch's rows and masks.
#include <gtest/gtest.h>

#include <array>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "ruclip/config.h"
#include "ruclip/error.h"
#include "ruclip/tokenizer.h"
#include "test_util.h"

namespace fs = std::filesystem;
using ruclip::ModelConfig;
using ruclip::ModelFamily;
using ruclip::Tokenizer;
using ruclip_test::data_dir;
using ruclip_test::make_temp_dir;
using ruclip_test::read_file;
using ruclip_test::write_file;

using ruclip_test::error_of;

namespace {

using ruclip_test::v1_expected;
using ruclip_test::v1_model_dir;

const Tokenizer& fixture_tokenizer() {
  static const auto tokenizer = ruclip::load_gpt2_tokenizer(v1_model_dir() + "/vocab.json", v1_model_dir() + "/merges.txt");
  return *tokenizer;
}

const std::string& fixture_vocab_text() {
  static const std::string text = read_file(v1_model_dir() + "/vocab.json");
  return text;
}
const std::string& fixture_merges_text() {
  static const std::string text = read_file(v1_model_dir() + "/merges.txt");
  return text;
}
int vocab_id(const std::string& token) {
  static const nlohmann::json vocab = nlohmann::json::parse(fixture_vocab_text());
  return vocab.at(token).get<int>();
}

// The config upstream's get_text_batch runs with in the fixture.
ModelConfig v1_config() {
  ModelConfig config;
  config.family = ModelFamily::kV1;
  config.context_length = v1_expected().at("seq_length").get<int>();
  const auto& special = v1_expected().at("special_tokens");
  config.pad_id = special.at("pad_token_id").get<int>();
  config.bos_id = special.at("bos_token_id").get<int>();
  config.eos_id = special.at("eos_token_id").get<int>();
  config.vocab_size = special.at("vocab_size").get<int>();
  return config;
}

std::vector<int64_t> to_int64(const std::vector<int>& ids) { return {ids.begin(), ids.end()}; }

std::vector<int> concat(std::initializer_list<std::vector<int>> parts) {
  std::vector<int> out;
  for (const auto& part : parts) out.insert(out.end(), part.begin(), part.end());
  return out;
}

}  // namespace

// --- the tokenizer -----------------------------------------------------------

TEST(Gpt2Tokenizer, MatchesUpstreamIdsOnAllFixtureLines) {
  const auto& lines = v1_expected().at("tokenizer_ids");
  ASSERT_EQ(lines.size(), 200u);
  for (const auto& line : lines) {
    const std::string text = line.at("text").get<std::string>();
    EXPECT_EQ(fixture_tokenizer().encode(text), line.at("ids").get<std::vector<int>>()) << text;
  }
}

TEST(Gpt2Tokenizer, VocabSizeIsUpstreams) {
  EXPECT_EQ(fixture_tokenizer().vocab_size(), v1_expected().at("special_tokens").at("vocab_size").get<int>());
}

TEST(Gpt2Tokenizer, LegacyFixtureHasTheSameTokenizerFiles) {
  // The legacy-format copy of the fixture (tests/data/ruclip-v1-tiny-legacy)
  // ships upstream's tokenizer files too: byte-identical to the v1 fixture's.
  const std::string legacy = std::string(RUCLIP_TEST_DATA) + "/ruclip-v1-tiny-legacy";
  EXPECT_EQ(read_file(legacy + "/vocab.json"), fixture_vocab_text());
  EXPECT_EQ(read_file(legacy + "/merges.txt"), fixture_merges_text());
}

TEST(Gpt2Tokenizer, SpecialTokensInTheTextAreSingleTokensWithTheWhitespaceNextToThemStripped) {
  const Tokenizer& t = fixture_tokenizer();
  const std::vector<int> cat = t.encode("кот");
  const std::vector<int> space_cat = t.encode(" кот");
  ASSERT_NE(cat, space_cat);
  EXPECT_EQ(t.encode("<s>"), std::vector<int>{1});
  EXPECT_EQ(t.encode("</s>"), std::vector<int>{2});
  EXPECT_EQ(t.encode("<pad>"), std::vector<int>{0});
  // <s>, </s>, <pad> were given to add_special_tokens as plain strings:
  // tokenize() strips the whitespace on both sides of them.
  EXPECT_EQ(t.encode("кот<s>кот"), concat({cat, {1}, cat}));
  EXPECT_EQ(t.encode("кот  <s> \t кот"), concat({cat, {1}, cat}));
  EXPECT_EQ(t.encode(" <s>кот </s> <pad>"), concat({{1}, cat, {2, 0}}));
  EXPECT_EQ(t.encode("<s><s>"), (std::vector<int>{1, 1}));
  // Only the exact strings.
  EXPECT_EQ(t.encode("<s >"), concat({t.encode("<"), t.encode("s"), t.encode(" >")}));
  EXPECT_EQ(t.encode("<unk>"), concat({t.encode("<"), t.encode("unk"), t.encode(">")}));
  // A whitespace-only text has no tokens at all (tokenize's `not text.strip()`).
  EXPECT_TRUE(t.encode("").empty());
  EXPECT_TRUE(t.encode(" \t\n\xC2\xA0").empty());
  // Whitespace that is not next to a special token is kept.
  EXPECT_FALSE(t.encode("кот  ").empty());
  EXPECT_NE(t.encode("кот  "), cat);
}

TEST(Gpt2Tokenizer, EndOfTextIsKeptWholeAndNeedsAnId) {
  // GPT2Tokenizer's default unk, <|endoftext|>, is a no-split AddedToken
  // (no whitespace stripping). The fixture vocabulary lacks it: upstream has
  // no id for it.
  const std::string message = error_of([] { fixture_tokenizer().encode("кот <|endoftext|>"); });
  EXPECT_NE(message.find("<|endoftext|>"), std::string::npos) << message;
  EXPECT_NE(message.find("vocab.json"), std::string::npos) << message;

  nlohmann::json vocab = nlohmann::json::parse(fixture_vocab_text());
  vocab["<|endoftext|>"] = 1260;
  const auto t = ruclip::parse_gpt2_tokenizer(vocab.dump(), fixture_merges_text(), "with-eot");
  EXPECT_EQ(t->vocab_size(), 1261);
  EXPECT_EQ(t->encode(" кот <|endoftext|> кот"), concat({t->encode(" кот "), {1260}, t->encode(" кот")}));
}

TEST(Gpt2Tokenizer, UnknownByteIsTheUnkTokenOrAnErrorNamingIt) {
  // A vocabulary without the symbol of byte 'q': upstream falls back on
  // <|endoftext|>'s id, and has none when that is missing too.
  nlohmann::json vocab = nlohmann::json::parse(fixture_vocab_text());
  vocab.erase("q");
  const auto t = ruclip::parse_gpt2_tokenizer(vocab.dump(), fixture_merges_text(), "no-q");
  const std::string message = error_of([&] { t->encode("aqua"); });
  EXPECT_NE(message.find("0x71"), std::string::npos) << message;
  EXPECT_NE(message.find("aqua"), std::string::npos) << message;
  EXPECT_NE(message.find("no-q/vocab.json"), std::string::npos) << message;

  vocab["<|endoftext|>"] = 5000;
  const auto with_unk = ruclip::parse_gpt2_tokenizer(vocab.dump(), fixture_merges_text(), "no-q-unk");
  EXPECT_EQ(with_unk->encode("aqua"), concat({{vocab_id("a")}, {5000}, with_unk->encode("ua")}));
}

TEST(Gpt2Tokenizer, InvalidUtf8IsAnErrorNamingTheOffset) {
  for (const std::string text : {"кот\xC3", "\xFF", "ab\xED\xA0\x80", "a<s>\xC0\xAF"}) {
    const std::string message = error_of([&] { fixture_tokenizer().encode(text); });
    EXPECT_NE(message.find("invalid UTF-8"), std::string::npos) << message;
  }
  const std::string message = error_of([] { fixture_tokenizer().encode("кот\xC3"); });
  EXPECT_NE(message.find("byte 6"), std::string::npos) << message;
}

// A tokenizer over the fixture's 256 byte symbols (ids 4..259, in byte
// order) and the given merges, each of two byte strings. Merges across a
// pre-tokenizer boundary never happen, so the ids show where it split.
class MadeUpTokenizer {
 public:
  explicit MadeUpTokenizer(const std::vector<std::pair<std::string, std::string>>& merges) {
    const nlohmann::json fixture = nlohmann::json::parse(fixture_vocab_text());
    std::vector<std::string> by_id(fixture.size());
    for (auto it = fixture.begin(); it != fixture.end(); ++it) by_id.at(it.value().get<size_t>()) = it.key();
    for (int b = 0; b < 256; ++b) symbols_[b] = by_id.at(4 + b);
    vocab_ = {{"<pad>", 0}, {"<s>", 1}, {"</s>", 2}};
    for (int b = 0; b < 256; ++b) vocab_[symbols_[b]] = 4 + b;
    std::string merges_text = "#version: 0.2\n";
    for (const auto& [left, right] : merges) {
      merges_text += symbols(left) + " " + symbols(right) + "\n";
      const std::string merged = symbols(left + right);
      if (!vocab_.contains(merged)) vocab_[merged] = static_cast<int>(vocab_.size()) + 1;
    }
    tokenizer_ = ruclip::parse_gpt2_tokenizer(vocab_.dump(), merges_text, "made-up");
  }
  std::string symbols(const std::string& bytes) const {
    std::string out;
    for (char c : bytes) out += symbols_[static_cast<unsigned char>(c)];
    return out;
  }
  // The ids of tokens given as byte strings.
  std::vector<int> ids(std::initializer_list<std::string> tokens) const {
    std::vector<int> out;
    for (const std::string& token : tokens) out.push_back(vocab_.at(symbols(token)).get<int>());
    return out;
  }
  std::vector<int> encode(const std::string& text) const { return tokenizer_->encode(text); }

 private:
  std::array<std::string, 256> symbols_;
  nlohmann::json vocab_;
  std::unique_ptr<Tokenizer> tokenizer_;
};

TEST(Gpt2Tokenizer, ByteSymbolsAreBytesToUnicode) {
  const MadeUpTokenizer t({});
  EXPECT_EQ(t.symbols("a!~"), "a!~");
  EXPECT_EQ(t.symbols(" \t\n"), "\xC4\xA0\xC4\x89\xC4\x8A");  // U+0120 U+0109 U+010A
  EXPECT_EQ(t.symbols("\xAD\xA0\x7F"), "\xC5\x83\xC5\x82\xC4\xA1");  // U+0143 U+0142 U+0121
  EXPECT_EQ(t.encode("a\xD0\xB0"), (std::vector<int>{4 + 'a', 4 + 0xD0, 4 + 0xB0}));
}

TEST(Gpt2Tokenizer, PreTokenizerIsGpt2sPatternWithTheRegexModulesBackslashS) {
  const std::string nbsp = "\xC2\xA0", mvs = "\xE1\xA0\x8E";  // U+00A0, U+180E
  const MadeUpTokenizer t({{" ", " "}, {" ", "b"}, {"\t", "\t"}, {"\xC2", "\xA0"}, {nbsp, nbsp},
                           {"\xE1", "\xA0"}, {"\xE1\xA0", "\x8E"}, {mvs, mvs}, {"\x1C", "\x1C"},
                           {"a", " "}, {"a", "4"}, {"4", "2"}, {"t", "'"}, {"i", "t"}, {"'", "s"},
                           {"a", "\t"}, {"a", nbsp}, {"a", mvs}, {"a", "\x1C"}});
  // A whitespace run before a word leaves its last space to the word
  // (" ?\p{L}+"); only a real space does that.
  EXPECT_EQ(t.encode("a  b"), t.ids({"a", " ", " b"}));
  EXPECT_EQ(t.encode("a\t\tb"), t.ids({"a", "\t", "\t", "b"}));
  EXPECT_EQ(t.encode("a\t\t"), t.ids({"a", "\t\t"}));
  // The regex module's \s is White_Space: U+00A0 is in it ...
  EXPECT_EQ(t.encode("a" + nbsp + nbsp + "b"), t.ids({"a", nbsp, nbsp, "b"}));
  // ... U+180E (which PCRE2's own \s takes) and U+001C (which Python's
  // str.isspace takes) are not: they are "other" characters.
  EXPECT_EQ(t.encode("a" + mvs + mvs + "b"), t.ids({"a", mvs + mvs, "b"}));
  EXPECT_EQ(t.encode("a\x1C\x1C" "b"), t.ids({"a", "\x1C\x1C", "b"}));
  // Contractions and digits are pieces of their own.
  EXPECT_EQ(t.encode("it's"), t.ids({"it", "'s"}));
  EXPECT_EQ(t.encode("a42"), t.ids({"a", "42"}));
  // Python's strip() around a special token does take U+001C; so does the
  // whitespace-only test.
  EXPECT_EQ(t.encode("\x1C<s>\x1C" "a"), (std::vector<int>{1, 4 + 'a'}));
  EXPECT_TRUE(t.encode("\x1C\x1F").empty());
}

TEST(Gpt2Tokenizer, MergesEveryOccurrenceOfTheBestPairInOnePass) {
  // GPT2Tokenizer.bpe merges all occurrences of the lowest-ranked pair, then
  // looks again. With "aa a" ranked before "a a" (a file where a merge uses a
  // token no earlier merge made), "aaaa" is "aa" "aa": merging one pair at a
  // time would make "aaa" "a".
  const std::string vocab = R"({"<pad>": 0, "<s>": 1, "</s>": 2, "a": 3, "aa": 4, "aaa": 5, "aaaa": 6})";
  const auto t = ruclip::parse_gpt2_tokenizer(vocab, "#version: 0.2\naa a\na a\n", "made-up");
  EXPECT_EQ(t->encode("aaaa"), (std::vector<int>{4, 4}));
  EXPECT_EQ(t->encode("aaa"), (std::vector<int>{5}));  // "a a" first (leftmost), then "aa a"
  EXPECT_EQ(t->encode("aaaaa"), (std::vector<int>{4, 5}));  // "aa" "aa" "a", then "aa" + "a"
  EXPECT_EQ(t->vocab_size(), 7);
}

TEST(Gpt2Tokenizer, TheTextAfterTheLastNewlineOfMergesIsNotAMerge) {
  // GPT2Tokenizer reads merges.txt as text.split("\n")[1:-1].
  const std::vector<int> merged{vocab_id("ĠÐ"), vocab_id("°")};  // " а" = bytes 20 D0 B0
  const std::vector<int> unmerged{vocab_id("Ġ"), vocab_id("Ð"), vocab_id("°")};
  auto encode_with = [&](const std::string& merges) {
    return ruclip::parse_gpt2_tokenizer(fixture_vocab_text(), merges, "m")->encode(" а");
  };
  EXPECT_EQ(encode_with("#version: 0.2\nĠ Ð\n"), merged);
  EXPECT_EQ(encode_with("#version: 0.2\r\nĠ Ð\r\n"), merged);
  EXPECT_EQ(encode_with("#version: 0.2\nĠ Ð"), unmerged);
  EXPECT_EQ(encode_with("#version: 0.2\n\nĠ Ð\n\n"), merged);  // blank lines merge nothing
  EXPECT_EQ(encode_with("#version: 0.2\n"), unmerged);
}

TEST(Gpt2Tokenizer, ConcurrentEncodesAgree) {
  const auto t = ruclip::load_gpt2_tokenizer(v1_model_dir() + "/vocab.json", v1_model_dir() + "/merges.txt");
  const auto& lines = v1_expected().at("tokenizer_ids");
  std::vector<std::thread> threads;
  std::vector<int> mismatches(8, 0);
  for (int k = 0; k < 8; ++k)
    threads.emplace_back([&, k] {
      for (int round = 0; round < 5; ++round)
        for (const auto& line : lines)
          if (t->encode(line.at("text").get<std::string>()) != line.at("ids").get<std::vector<int>>())
            ++mismatches[k];
    });
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(mismatches, std::vector<int>(8, 0));
}

// --- broken files ------------------------------------------------------------

struct BrokenFiles {
  const char* what;
  std::string vocab, merges;
  std::vector<std::string> expected;  // parts of the message
};

TEST(Gpt2HostileFiles, EveryBrokenFileIsAnErrorNamingFileAndReason) {
  nlohmann::json vocab = nlohmann::json::parse(fixture_vocab_text());
  auto with = [&](const char* key, nlohmann::json value) {
    nlohmann::json copy = vocab;
    copy[key] = std::move(value);
    return copy.dump();
  };
  auto without = [&](const char* key) {
    nlohmann::json copy = vocab;
    copy.erase(key);
    return copy.dump();
  };
  const std::string ok_vocab = fixture_vocab_text();
  const std::string ok_merges = fixture_merges_text();
  // The header plus the fixture's first merge lines (lines 2..).
  const std::string header = ok_merges.substr(0, ok_merges.find('\n') + 1);
  const std::vector<BrokenFiles> cases = {
      {"not JSON", "{\"<s>\": 1,", ok_merges, {"t/vocab.json", "not valid JSON"}},
      {"not an object", "[1, 2]", ok_merges, {"t/vocab.json", "expected a JSON object", "array"}},
      {"empty object", "{}", ok_merges, {"t/vocab.json", "empty"}},
      {"string id", with("zz", "7"), ok_merges, {"t/vocab.json", "\"zz\"", "\"7\"", "integer"}},
      {"fractional id", with("zz", 7.5), ok_merges, {"t/vocab.json", "\"zz\"", "7.5"}},
      {"boolean id", with("zz", true), ok_merges, {"t/vocab.json", "\"zz\"", "true"}},
      {"negative id", with("zz", -3), ok_merges, {"t/vocab.json", "\"zz\"", "-3", "out of range"}},
      {"huge id", with("zz", 1e10), ok_merges, {"t/vocab.json", "\"zz\""}},
      {"huge integer id", with("zz", 18446744073709551615ull), ok_merges, {"t/vocab.json", "out of range"}},
      {"duplicate id", with("zz", 5), ok_merges, {"t/vocab.json", "\"zz\"", "same id 5"}},
      {"duplicate key", R"({"<pad>": 0, "<s>": 1, "</s>": 2, "a": 3, "a": 4})", "#v\n",
       {"t/vocab.json", "\"a\"", "twice"}},
      {"no <s>", without("<s>"), ok_merges, {"t/vocab.json", "\"<s>\"", "bos"}},
      {"no <pad>", without("<pad>"), ok_merges, {"t/vocab.json", "\"<pad>\""}},
      {"empty merges", ok_vocab, "", {"t/merges.txt", "line 1", "#version"}},
      {"no header", ok_vocab, ok_merges.substr(header.size()), {"t/merges.txt", "line 1", "#version"}},
      {"three fields", ok_vocab, header + "Ġ Ð\nÐ µ x\n", {"t/merges.txt", "line 3", "3 fields"}},
      {"one field", ok_vocab, header + "ĠÐ\n", {"t/merges.txt", "line 2", "1 field"}},
      {"unknown part", ok_vocab, header + "Ġ Ð\nzzz µ\n", {"t/merges.txt", "line 3", "\"zzz\"", "vocab.json lacks"}},
      {"unknown result", ok_vocab, header + "Ġ ?\n", {"t/merges.txt", "line 2", "\"Ġ?\"", "lacks"}},
      {"repeated merge", ok_vocab, header + "Ġ Ð\nÐ µ\nĠ Ð\n", {"t/merges.txt", "line 4", "repeats line 2"}},
      {"invalid UTF-8", ok_vocab, header + "\xC3 Ð\n", {"t/merges.txt", "invalid UTF-8", "byte"}},
  };
  for (const BrokenFiles& c : cases) {
    const std::string message = error_of([&] { ruclip::parse_gpt2_tokenizer(c.vocab, c.merges, "t"); });
    for (const std::string& part : c.expected)
      EXPECT_NE(message.find(part), std::string::npos) << c.what << ": " << message << " (wanted " << part << ")";
  }
}

TEST(Gpt2HostileFiles, JsonErrorsGiveTheLine) {
  const std::string message =
      error_of([] { ruclip::parse_gpt2_tokenizer("{\n\"<s>\": 1,\n\"a\" 2\n}", fixture_merges_text(), "t"); });
  EXPECT_NE(message.find("line 3"), std::string::npos) << message;
}

TEST(Gpt2HostileFiles, UnreadableFilesAreNamed) {
  const std::string dir = make_temp_dir();
  const std::string message =
      error_of([&] { ruclip::load_gpt2_tokenizer(dir + "/vocab.json", v1_model_dir() + "/merges.txt"); });
  EXPECT_NE(message.find(dir + "/vocab.json"), std::string::npos) << message;
  const std::string merges_message =
      error_of([&] { ruclip::load_gpt2_tokenizer(v1_model_dir() + "/vocab.json", dir); });
  EXPECT_NE(merges_message.find(dir), std::string::npos) << merges_message;
  EXPECT_NE(merges_message.find("directory"), std::string::npos) << merges_message;
  write_file(dir + "/merges.txt", "#version: 0.2\nnot-a-token x\n");
  const std::string bad = error_of([&] { ruclip::load_gpt2_tokenizer(v1_model_dir() + "/vocab.json", dir + "/merges.txt"); });
  EXPECT_NE(bad.find(dir + "/merges.txt: line 2"), std::string::npos) << bad;
  EXPECT_NE(bad.find(v1_model_dir() + "/vocab.json"), std::string::npos) << bad;
  fs::remove_all(dir);
}

// --- upstream get_text_batch -------------------------------------------------

TEST(FoldWhitespace, IsPrcText) {
  // ' '.join(text.replace('\n', ' ').replace('\t', ' ').split()): every run of
  // str.isspace() characters (U+001C..U+001F too) is one space, none at the ends.
  EXPECT_EQ(ruclip::fold_whitespace("  кот\tи  пёс\nна   улице  "), "кот и пёс на улице");
  EXPECT_EQ(ruclip::fold_whitespace("a\xC2\xA0\x1F\x0B" "b\xE3\x80\x80"), "a b");
  EXPECT_EQ(ruclip::fold_whitespace("a\xE2\x80\x8B" "b\xE1\xA0\x8E"), "a\xE2\x80\x8B" "b\xE1\xA0\x8E");
  EXPECT_EQ(ruclip::fold_whitespace(" \t\n "), "");
  EXPECT_NE(error_of([] { ruclip::fold_whitespace("a\xC3"); }).find("invalid UTF-8"), std::string::npos);
}

TEST(PrepareTextV1, MatchesUpstreamGetTextBatch) {
  const ModelConfig config = v1_config();
  ASSERT_EQ(config.context_length, 16);
  const auto& texts = v1_expected().at("texts");
  ASSERT_EQ(texts.size(), 10u);
  for (const auto& entry : texts) {
    const std::string text = entry.at("text").get<std::string>();
    EXPECT_EQ(fixture_tokenizer().encode(ruclip::fold_whitespace(text)).size(),
              entry.at("num_bpe_tokens").get<size_t>())
        << text;
    const std::vector<int64_t> ids = ruclip::prepare_text(fixture_tokenizer(), config, text);
    EXPECT_EQ(ids, entry.at("input_ids").get<std::vector<int64_t>>()) << text;
    EXPECT_EQ(ruclip::attention_mask(ids, config), entry.at("attention_mask").get<std::vector<int64_t>>()) << text;
    const auto eos = std::find(ids.begin(), ids.end(), config.eos_id);
    EXPECT_EQ(eos - ids.begin(), entry.at("eos_position").get<int64_t>()) << text;
  }
}

TEST(PrepareTextV1, KeepsAtMostContextLengthMinusTwoTokens) {
  ModelConfig config = v1_config();
  const Tokenizer& t = fixture_tokenizer();
  const std::string text = "Все дороги идут из прошлого, но не все ведут в будущее. Весь мир - театр... военных действий.";
  const std::vector<int> bpe = t.encode(text);
  ASSERT_GT(bpe.size(), 20u);
  for (int length : {2, 3, 5, 16, 20}) {
    config.context_length = length;
    std::vector<int64_t> expected{config.bos_id};
    expected.insert(expected.end(), bpe.begin(), bpe.begin() + (length - 2));
    expected.push_back(config.eos_id);
    EXPECT_EQ(ruclip::prepare_text(t, config, text), expected) << length;
  }
  config.context_length = 1;
  EXPECT_NE(error_of([&] { ruclip::prepare_text(t, config, text); }).find("context_length = 1"), std::string::npos);
}

TEST(PrepareTextV1, EmptyOrWhitespaceTextIsAnError) {
  for (const std::string text : {"", " ", "\t\n \xC2\xA0"}) {
    const std::string message = error_of([&] { ruclip::prepare_text(fixture_tokenizer(), v1_config(), text); });
    EXPECT_NE(message.find("empty"), std::string::npos) << message;
  }
}

TEST(PrepareTextV1, InvalidUtf8IsAnError) {
  const std::string message = error_of([] { ruclip::prepare_text(fixture_tokenizer(), v1_config(), "кот\xC3"); });
  EXPECT_NE(message.find("invalid UTF-8"), std::string::npos) << message;
}

TEST(PrepareTextV1, SpecialTokensWrittenInTheText) {
  const ModelConfig config = v1_config();
  const Tokenizer& t = fixture_tokenizer();
  const std::vector<int> cat = t.encode("кот");
  // "<s>" is one token, id 1 (the bos id): nothing special happens to it.
  std::vector<int64_t> expected{1};
  for (int id : concat({cat, {1}, cat})) expected.push_back(id);
  expected.push_back(2);
  expected.resize(16, 0);
  EXPECT_EQ(ruclip::prepare_text(t, config, "кот <s> кот"), expected);

  // "<pad>" is id 0: upstream's eos goes to the first 0 in the row, i.e. over it.
  std::vector<int64_t> with_pad{1};
  for (int id : cat) with_pad.push_back(id);
  with_pad.push_back(2);
  for (int id : cat) with_pad.push_back(id);
  with_pad.resize(16, 0);
  const std::vector<int64_t> ids = ruclip::prepare_text(t, config, "кот <pad> кот");
  EXPECT_EQ(ids, with_pad);
  const std::vector<int64_t> mask = ruclip::attention_mask(ids, config);
  EXPECT_EQ(std::vector<int64_t>(mask.begin(), mask.begin() + cat.size() + 2),
            std::vector<int64_t>(cat.size() + 2, 1));

  // "</s>" in the row would be a second eos: upstream's TextEncoder would
  // read two rows for the text.
  const std::string message = error_of([&] { ruclip::prepare_text(t, config, "кот </s> кот"); });
  EXPECT_NE(message.find("eos"), std::string::npos) << message;
  EXPECT_NE(message.find("position " + std::to_string(cat.size() + 1)), std::string::npos) << message;
  // ... unless the row is cut before it.
  const std::string long_text = "Все дороги идут из прошлого, но не все ведут в будущее. </s>";
  EXPECT_NO_THROW(ruclip::prepare_text(t, config, long_text));
}

TEST(AttentionMask, OnesUpToTheFirstEos) {
  ModelConfig config;
  config.eos_id = 3;
  EXPECT_EQ(ruclip::attention_mask({2, 7, 3, 0, 0}, config), (std::vector<int64_t>{1, 1, 1, 0, 0}));
  EXPECT_EQ(ruclip::attention_mask({2, 7, 8}, config), (std::vector<int64_t>{1, 1, 1}));
  EXPECT_EQ(ruclip::attention_mask({3, 3, 0}, config), (std::vector<int64_t>{1, 0, 0}));
}

// --- load_tokenizer ----------------------------------------------------------

namespace {

std::string copy_tokenizer_files() {
  const std::string dir = make_temp_dir();
  for (const char* name : {"vocab.json", "merges.txt"}) fs::copy_file(v1_model_dir() + "/" + name, dir + "/" + name);
  return dir;
}

}  // namespace

TEST(LoadTokenizerV1, PicksGpt2FromTheFolder) {
  const std::string dir = copy_tokenizer_files();
  ModelConfig config = v1_config();
  auto tokenizer = ruclip::load_tokenizer(dir, config);
  EXPECT_EQ(tokenizer->vocab_size(), 1260);
  EXPECT_EQ(to_int64(tokenizer->encode("кот")), to_int64(fixture_tokenizer().encode("кот")));
  config.tokenizer = "gpt2";
  EXPECT_EQ(ruclip::load_tokenizer(dir, config)->vocab_size(), 1260);
  // Without a family, by the files alone.
  ModelConfig plain;
  plain.vocab_size = 1260;
  EXPECT_EQ(ruclip::load_tokenizer(dir, plain)->vocab_size(), 1260);
  fs::remove_all(dir);
}

TEST(LoadTokenizerV1, MissingFilesAreNamed) {
  const std::string dir = make_temp_dir();
  fs::copy_file(v1_model_dir() + "/vocab.json", dir + "/vocab.json");
  ModelConfig config = v1_config();
  const std::string message = error_of([&] { ruclip::load_tokenizer(dir, config); });
  EXPECT_NE(message.find("vocab.json"), std::string::npos) << message;
  EXPECT_NE(message.find("merges.txt"), std::string::npos) << message;
  config.tokenizer = "gpt2";
  const std::string configured = error_of([&] { ruclip::load_tokenizer(dir, config); });
  EXPECT_NE(configured.find(dir + "/merges.txt"), std::string::npos) << configured;
  config.tokenizer = "wordpiece";
  EXPECT_NE(error_of([&] { ruclip::load_tokenizer(dir, config); }).find("\"gpt2\""), std::string::npos);
  fs::remove_all(dir);
}

TEST(LoadTokenizerV1, ConfigIdsMustBeTheVocabularysSpecialTokens) {
  const std::string dir = copy_tokenizer_files();
  for (auto [field, token] : {std::pair<int ModelConfig::*, const char*>{&ModelConfig::bos_id, "<s>"},
                              {&ModelConfig::eos_id, "</s>"},
                              {&ModelConfig::pad_id, "<pad>"}}) {
    ModelConfig config = v1_config();
    config.*field = 7;
    const std::string message = error_of([&] { ruclip::load_tokenizer(dir, config); });
    EXPECT_NE(message.find(std::string(token) + " is token"), std::string::npos) << message;
    EXPECT_NE(message.find("= 7"), std::string::npos) << message;
  }
  ModelConfig small = v1_config();
  small.vocab_size = 1000;
  const std::string message = error_of([&] { ruclip::load_tokenizer(dir, small); });
  EXPECT_NE(message.find("1260"), std::string::npos) << message;
  EXPECT_NE(message.find("vocab_size = 1000"), std::string::npos) << message;
  fs::remove_all(dir);
}
