// Reading weights: the upstream fixture checkpoints (ruCLIP v2's zip, v1's in
// the zip and the legacy format), checkpoints assembled here byte by byte
// (shared storages, offsets, strides, f16/bf16, protocol 4, legacy format),
// TensorData conversions and the safetensors round trip.
#include <gtest/gtest.h>
#include <zip.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "checkpoint_builder.h"
#include "ruclip/checkpoint.h"
#include "ruclip/error.h"
#include "test_util.h"

using checkpoint_test::Entries;
using checkpoint_test::LegacyStorage;
using checkpoint_test::make_legacy;
using checkpoint_test::make_zip;
using checkpoint_test::PickleWriter;
using checkpoint_test::raw_bytes;

namespace {

using ruclip::DType;
using ruclip::StateDict;
using ruclip::TensorData;

// ---------------------------------------------------------------------------
// Assembling checkpoints.

struct TensorSpec {
  std::string name;
  std::string storage_type;  // "FloatStorage", ...
  std::string key;
  int64_t storage_numel;
  int64_t offset;
  std::vector<int64_t> shape, strides;
  bool parameter = false;  // wrapped in torch._utils._rebuild_parameter
};

// A state dict pickled the way torch.save does it (protocol 2, OrderedDict
// with a `_metadata` attribute set by BUILD, memoized globals); with the
// legacy format's persistent ids when `legacy`.
std::string state_dict_pickle(const std::vector<TensorSpec>& tensors, bool legacy = false) {
  PickleWriter p;
  p.legacy(legacy).proto(2).global("collections", "OrderedDict").binput(0).empty_tuple().reduce().binput(1).mark();
  bool rebuild_memoized = false;
  for (const TensorSpec& t : tensors) {
    p.str(t.name);
    if (t.parameter) p.global("torch._utils", "_rebuild_parameter");
    if (rebuild_memoized) {
      p.binget(2);
    } else {
      p.global("torch._utils", "_rebuild_tensor_v2").binput(2);
      rebuild_memoized = true;
    }
    p.mark().storage(t.storage_type, t.key, t.storage_numel).integer(t.offset).ints(t.shape).ints(t.strides);
    p.op(0x89).binget(0).empty_tuple().reduce().tuple().reduce();  // requires_grad=False, hooks=OrderedDict()
    if (t.parameter) p.op(0x88).binget(0).empty_tuple().reduce().op(0x87).reduce();  // (tensor, True, {}) TUPLE3
  }
  p.setitems();
  // state dict._metadata = OrderedDict({'': {'version': 1}})
  p.empty_dict().str("_metadata").binget(0).empty_tuple().reduce();
  p.mark().str("").empty_dict().str("version").integer(1).setitem().setitems().setitem().build().stop();
  return p.bytes();
}



// A torch.save-style archive: <folder>/data.pkl, <folder>/data/<key>, <folder>/version.
std::string make_checkpoint(const std::string& pickle, const std::map<std::string, std::string>& storages,
                            const std::string& folder = "archive", bool deflate = false) {
  Entries entries = {{folder + "/data.pkl", pickle}};
  for (const auto& [key, data] : storages) entries.emplace_back(folder + "/data/" + key, data);
  entries.emplace_back(folder + "/version", "3\n");
  return make_zip(entries, deflate);
}

StateDict load(const std::string& zip_bytes) {
  return ruclip::read_torch_checkpoint(reinterpret_cast<const uint8_t*>(zip_bytes.data()), zip_bytes.size(),
                                       "handmade.bin");
}

const std::string& fixture_path() {
  static const std::string path = ruclip_test::tiny_model_dir() + "/pytorch_model.bin";
  return path;
}

const StateDict& fixture() {
  static const StateDict dict = ruclip::read_torch_checkpoint(fixture_path());
  return dict;
}

float element(const TensorData& t, std::vector<int64_t> index) {
  int64_t at = t.offset;
  for (size_t d = 0; d < index.size(); ++d) at += index[d] * t.strides[d];
  float value;
  std::memcpy(&value, t.storage->data() + at * 4, 4);
  return value;
}

// ---------------------------------------------------------------------------
// The upstream fixture.

TEST(FixtureCheckpoint, HasTheUpstreamKeysAndShapes) {
  const StateDict& dict = fixture();
  // The pickle listing (pickletools.dis of pytorch_model/data.pkl) has 62 tensors.
  EXPECT_EQ(dict.size(), 62u);
  const std::map<std::string, std::vector<int64_t>> expected_shapes = {
      {"visual.conv1.weight", {128, 3, 8, 8}},
      {"visual.class_embedding", {128}},
      {"visual.positional_embedding", {17, 128}},
      {"visual.proj", {128, 48}},
      {"visual.ln_pre.weight", {128}},
      {"visual.ln_post.bias", {128}},
      {"visual.transformer.resblocks.0.attn.in_proj_weight", {384, 128}},
      {"visual.transformer.resblocks.1.mlp.c_fc.weight", {512, 128}},
      {"visual.transformer.resblocks.1.mlp.c_proj.weight", {128, 512}},
      {"transformer.resblocks.0.attn.in_proj_weight", {192, 64}},
      {"transformer.resblocks.0.attn.in_proj_bias", {192}},
      {"transformer.resblocks.1.attn.out_proj.weight", {64, 64}},
      {"transformer.resblocks.1.mlp.c_fc.weight", {256, 64}},
      {"transformer.resblocks.1.ln_2.bias", {64}},
      {"token_embedding.weight", {3000, 64}},
      {"positional_embedding", {16, 64}},
      {"text_projection", {64, 48}},
      {"ln_final.weight", {64}},
      {"logit_scale", {}},
  };
  for (const auto& [name, shape] : expected_shapes) {
    auto it = dict.find(name);
    ASSERT_NE(it, dict.end()) << name;
    EXPECT_EQ(it->second.shape, shape) << name;
  }
  for (const auto& [name, t] : dict) {
    EXPECT_EQ(t.dtype, DType::F32) << name;
    EXPECT_EQ(t.offset, 0) << name;
    // Each tensor owns a whole storage of exactly its size, row-major.
    ASSERT_TRUE(t.storage) << name;
    EXPECT_EQ(t.storage->size(), static_cast<size_t>(t.numel()) * 4) << name;
    int64_t stride = 1;
    for (size_t d = t.shape.size(); d-- > 0;) {
      EXPECT_EQ(t.strides[d], stride) << name << " dim " << d;
      stride *= t.shape[d];
    }
  }
  EXPECT_EQ(dict.at("visual.conv1.weight").strides, (std::vector<int64_t>{192, 64, 8, 1}));
  EXPECT_EQ(dict.at("logit_scale").numel(), 1);
  EXPECT_EQ(dict.at("token_embedding.weight").numel(), 192000);
}

TEST(FixtureCheckpoint, ValuesMatchTheRawStorages) {
  // Obtained with Python's zipfile + struct, independently of this reader:
  //   z = zipfile.ZipFile("pytorch_model.bin")
  //   struct.unpack_from("<f", z.read("pytorch_model/data/<key>"), 4 * flat_index)[0]
  // with <key> taken from the pickle listing (e.g. visual.proj -> '5').
  const StateDict& dict = fixture();
  EXPECT_FLOAT_EQ(dict.at("logit_scale").to_float().at(0), 2.6592600345611572f);
  EXPECT_FLOAT_EQ(element(dict.at("visual.proj"), {0, 0}), 0.07784713804721832f);
  EXPECT_FLOAT_EQ(element(dict.at("visual.proj"), {127, 47}), -0.0328742079436779f);
  EXPECT_FLOAT_EQ(element(dict.at("visual.conv1.weight"), {5, 2, 7, 3}), 0.027121296152472496f);
  EXPECT_FLOAT_EQ(element(dict.at("token_embedding.weight"), {2999, 63}), 0.03290494158864021f);
  EXPECT_FLOAT_EQ(element(dict.at("token_embedding.weight"), {1234, 5}), -0.016364220529794693f);
  EXPECT_FLOAT_EQ(element(dict.at("positional_embedding"), {15, 63}), 0.021143149584531784f);
  EXPECT_FLOAT_EQ(element(dict.at("visual.class_embedding"), {0}), -0.06762465089559555f);
  EXPECT_FLOAT_EQ(element(dict.at("transformer.resblocks.0.attn.in_proj_weight"), {100, 10}),
                  -0.04024462774395943f);
  EXPECT_FLOAT_EQ(element(dict.at("ln_final.bias"), {7}), -0.10202314704656601f);

  // to_float() gives the same elements in row-major order.
  const std::vector<float> proj = dict.at("visual.proj").to_float();
  ASSERT_EQ(proj.size(), 128u * 48u);
  EXPECT_FLOAT_EQ(proj[0], 0.07784713804721832f);
  EXPECT_FLOAT_EQ(proj[127 * 48 + 47], -0.0328742079436779f);
  const std::vector<float> conv = dict.at("visual.conv1.weight").to_float();
  EXPECT_FLOAT_EQ(conv[5 * 192 + 2 * 64 + 7 * 8 + 3], 0.027121296152472496f);
}

TEST(FixtureCheckpoint, FromMemoryEqualsFromFile) {
  const std::string bytes = ruclip_test::read_file(fixture_path());
  const StateDict dict = load(bytes);
  ASSERT_EQ(dict.size(), fixture().size());
  for (const auto& [name, t] : fixture()) {
    const TensorData& other = dict.at(name);
    EXPECT_EQ(other.shape, t.shape) << name;
    EXPECT_EQ(*other.storage, *t.storage) << name;
  }
}

// ---------------------------------------------------------------------------
// Checkpoints assembled here.

std::vector<TensorSpec> handmade_specs() {
  return {
      // Three views of one storage holding 0..11.
      {"a", "FloatStorage", "0", 12, 0, {3, 4}, {4, 1}},
      {"b", "FloatStorage", "0", 12, 1, {3, 2}, {4, 1}},  // rows 1..2 of each 4-row, offset 1
      {"c", "FloatStorage", "0", 12, 2, {2, 3}, {1, 4}},  // transposed: c[i][j] = s[2 + i + 4j]
      {"h", "HalfStorage", "1", 6, 0, {2, 3}, {3, 1}},
      {"bf", "BFloat16Storage", "2", 4, 1, {2}, {2}},      // elements 1 and 3
      {"p", "FloatStorage", "3", 1, 0, {}, {}, true},     // an nn.Parameter scalar
      {"d", "DoubleStorage", "4", 2, 0, {2}, {1}},
      {"l", "LongStorage", "5", 2, 0, {2}, {1}},
  };
}

std::map<std::string, std::string> handmade_storages() {
  return {
      {"0", raw_bytes<float>({0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11})},
      // 1, -2, 0.5, 65504 (largest half), 2^-24 (smallest subnormal), +inf
      {"1", raw_bytes<uint16_t>({0x3C00, 0xC000, 0x3800, 0x7BFF, 0x0001, 0x7C00})},
      // 1, -2, 3.140625, -0.5
      {"2", raw_bytes<uint16_t>({0x3F80, 0xC000, 0x4049, 0xBF00})},
      {"3", raw_bytes<float>({42.0f})},
      {"4", raw_bytes<double>({1.5, -2.25})},
      {"5", raw_bytes<int64_t>({-3, int64_t{1} << 40})},
  };
}

void expect_handmade_values(const StateDict& dict) {
  ASSERT_EQ(dict.size(), 8u);
  EXPECT_EQ(dict.at("a").to_float(), (std::vector<float>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}));
  EXPECT_EQ(dict.at("b").to_float(), (std::vector<float>{1, 2, 5, 6, 9, 10}));
  EXPECT_EQ(dict.at("c").to_float(), (std::vector<float>{2, 6, 10, 3, 7, 11}));
  EXPECT_EQ(dict.at("c").shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(dict.at("c").strides, (std::vector<int64_t>{1, 4}));
  EXPECT_EQ(dict.at("b").offset, 1);
  // One storage, read once, shared by all three views.
  EXPECT_EQ(dict.at("a").storage.get(), dict.at("b").storage.get());
  EXPECT_EQ(dict.at("a").storage.get(), dict.at("c").storage.get());
  EXPECT_NE(dict.at("a").storage.get(), dict.at("p").storage.get());

  EXPECT_EQ(dict.at("h").dtype, DType::F16);
  const std::vector<float> h = dict.at("h").to_float();
  ASSERT_EQ(h.size(), 6u);
  EXPECT_EQ(h[0], 1.0f);
  EXPECT_EQ(h[1], -2.0f);
  EXPECT_EQ(h[2], 0.5f);
  EXPECT_EQ(h[3], 65504.0f);
  EXPECT_EQ(h[4], std::ldexp(1.0f, -24));
  EXPECT_TRUE(std::isinf(h[5]) && h[5] > 0);

  EXPECT_EQ(dict.at("bf").dtype, DType::BF16);
  EXPECT_EQ(dict.at("bf").to_float(), (std::vector<float>{-2.0f, -0.5f}));

  EXPECT_TRUE(dict.at("p").shape.empty());
  EXPECT_EQ(dict.at("p").to_float(), std::vector<float>{42.0f});
  EXPECT_EQ(dict.at("d").dtype, DType::F64);
  EXPECT_EQ(dict.at("d").to_float(), (std::vector<float>{1.5f, -2.25f}));
  EXPECT_EQ(dict.at("l").dtype, DType::I64);
  EXPECT_EQ(dict.at("l").to_float(), (std::vector<float>{-3.0f, 1099511627776.0f}));
}

TEST(HandmadeCheckpoint, SharedStoragesOffsetsStridesAndDtypes) {
  expect_handmade_values(load(make_checkpoint(state_dict_pickle(handmade_specs()), handmade_storages())));
}

TEST(HandmadeCheckpoint, AnyFolderNameAndDeflatedEntries) {
  const std::string pickle = state_dict_pickle(handmade_specs());
  expect_handmade_values(load(make_checkpoint(pickle, handmade_storages(), "pytorch_model", /*deflate=*/true)));
  expect_handmade_values(load(make_checkpoint(pickle, handmade_storages(), "my model", /*deflate=*/false)));
}

TEST(HandmadeCheckpoint, FromAFile) {
  const std::string dir = ruclip_test::make_temp_dir();
  ruclip_test::write_file(dir + "/model.bin", make_checkpoint(state_dict_pickle(handmade_specs()), handmade_storages()));
  expect_handmade_values(ruclip::read_torch_checkpoint(dir + "/model.bin"));
  std::filesystem::remove_all(dir);
}

TEST(HandmadeCheckpoint, ExtraEntriesAndLittleByteorder) {
  Entries entries = {{"archive/data.pkl", state_dict_pickle({{"w", "FloatStorage", "0", 2, 0, {2}, {1}}})},
                     {"archive/data/0", raw_bytes<float>({7, 8})},
                     {"archive/byteorder", "little"},
                     {"archive/version", "3\n"},
                     {"archive/.data/serialization_id", "1234567890"}};
  const StateDict dict = load(make_zip(entries));
  EXPECT_EQ(dict.at("w").to_float(), (std::vector<float>{7, 8}));
}

TEST(HandmadeCheckpoint, Protocol4Opcodes) {
  // What newer torch emits: FRAME, SHORT_BINUNICODE, STACK_GLOBAL, MEMOIZE,
  // LONG1, a 7-argument _rebuild_tensor_v2 and a plain dict as backward hooks.
  PickleWriter body;
  body.short_str("collections").op(0x94).short_str("OrderedDict").op(0x94).op(0x93).op(0x94);  // memo 0..2
  body.empty_tuple().op('R').op(0x94);                                                           // memo 3: the dict
  body.short_str("w").op(0x94);
  body.short_str("torch._utils").short_str("_rebuild_tensor_v2").op(0x93).op(0x94);
  body.op('(').op('(').short_str("storage").short_str("torch").short_str("FloatStorage").op(0x93);
  body.short_str("0").short_str("cpu").op(0x8a).op(1).op(4).op('t').op('Q');  // numel as LONG1 4
  body.op('J').raw(std::string("\0\0\0\0", 4));                               // storage offset: BININT 0
  body.op('K').op(2).op('K').op(2).op(0x86);                                   // size (2, 2): TUPLE2
  body.op('K').op(1).op('K').op(2).op(0x86);                                   // stride (1, 2): transposed
  body.op(0x89).op('}').op('N').op('t').op('R');  // requires_grad, hooks {}, metadata None
  body.op('s').op('.');                            // SETITEM, STOP
  PickleWriter p;
  p.proto(4).op(0x95);
  for (int i = 0; i < 8; ++i) p.op(static_cast<uint8_t>((body.bytes().size() >> (8 * i)) & 0xff));
  p.raw(body.bytes());
  const StateDict dict = load(make_checkpoint(p.bytes(), {{"0", raw_bytes<float>({1, 2, 3, 4})}}));
  ASSERT_EQ(dict.size(), 1u);
  EXPECT_EQ(dict.at("w").shape, (std::vector<int64_t>{2, 2}));
  EXPECT_EQ(dict.at("w").to_float(), (std::vector<float>{1, 3, 2, 4}));
}

TEST(HandmadeCheckpoint, StateDictWrapperIsUnwrapped) {
  // {"state_dict": OrderedDict(w=tensor)} as training scripts save it.
  PickleWriter p;
  p.proto(2).empty_dict().str("state_dict").global("collections", "OrderedDict").empty_tuple().reduce();
  p.str("w").global("torch._utils", "_rebuild_tensor_v2").mark().storage("FloatStorage", "0", 3).integer(0);
  p.ints({3}).ints({1}).op(0x89).global("collections", "OrderedDict").empty_tuple().reduce().tuple().reduce();
  p.setitem().setitem().stop();
  const StateDict dict = load(make_checkpoint(p.bytes(), {{"0", raw_bytes<float>({1, 2, 3})}}));
  ASSERT_EQ(dict.size(), 1u);
  EXPECT_EQ(dict.at("w").to_float(), (std::vector<float>{1, 2, 3}));
}

TEST(HandmadeCheckpoint, EmptyTensorAndEmptyStateDict) {
  const StateDict dict =
      load(make_checkpoint(state_dict_pickle({{"e", "FloatStorage", "0", 0, 0, {0, 5}, {5, 1}}}), {{"0", ""}}));
  EXPECT_EQ(dict.at("e").numel(), 0);
  EXPECT_TRUE(dict.at("e").to_float().empty());
  EXPECT_TRUE(load(make_checkpoint(state_dict_pickle({}), {})).empty());
}

// ---------------------------------------------------------------------------
// ruCLIP v1 (issue #16): ViT-B32-small.pt in torch's zip format and in the
// legacy format of torch < 1.6, which 2021-era checkpoints may use.

std::string v1_path(const std::string& folder) { return ruclip_test::data_dir() + "/" + folder + "/ViT-B32-small.pt"; }

const StateDict& v1_zip() {
  static const StateDict dict = ruclip::read_torch_checkpoint(v1_path("ruclip-v1-tiny"));
  return dict;
}

const StateDict& v1_legacy() {
  static const StateDict dict = ruclip::read_torch_checkpoint(v1_path("ruclip-v1-tiny-legacy"));
  return dict;
}

// Row-major contiguous, offset 0, alone in a storage of exactly its size:
// how torch.save writes the tensors of a state_dict().
void expect_whole_storage(const TensorData& t, const std::string& name) {
  ASSERT_TRUE(t.storage) << name;
  EXPECT_EQ(t.offset, 0) << name;
  EXPECT_EQ(t.contiguous_data(), t.storage->data()) << name;
  EXPECT_EQ(t.storage->size(), static_cast<size_t>(t.numel()) * ruclip::dtype_size(t.dtype)) << name;
  // Read straight into a buffer of the reader's own (no copy held elsewhere).
  EXPECT_NE(t.storage->writable_data(), nullptr) << name;
}

// GPT-2's buffers (README "State dict"): a lower-triangular uint8 causal mask
// and the float32 scalar -10000 that replaces masked scores.
void expect_gpt2_buffers(const StateDict& dict) {
  for (const char* block : {"text_encoder.model.h.0.attn.", "text_encoder.model.h.1.attn."}) {
    const TensorData& mask = dict.at(std::string(block) + "bias");
    ASSERT_EQ(mask.shape, (std::vector<int64_t>{1, 1, 32, 32})) << block;
    const std::vector<float> m = mask.to_float();
    for (int i = 0; i < 32; ++i)
      for (int j = 0; j < 32; ++j) ASSERT_EQ(m[i * 32 + j], j <= i ? 1.0f : 0.0f) << block << " " << i << "," << j;
    const TensorData& masked = dict.at(std::string(block) + "masked_bias");
    EXPECT_TRUE(masked.shape.empty());
    EXPECT_EQ(masked.to_float(), std::vector<float>{-10000.0f}) << block;
  }
  EXPECT_EQ(dict.at("logit_scale").to_float(), std::vector<float>{2.6592600345611572f});
}

TEST(V1Checkpoint, ZipFileMatchesProvenance) {
  const nlohmann::json provenance =
      nlohmann::json::parse(ruclip_test::read_file(ruclip_test::data_dir() + "/ruclip-v1-tiny/provenance.json"));
  const nlohmann::json& listed = provenance.at("state_dict");  // name: [dtype, shape]
  const StateDict& dict = v1_zip();
  ASSERT_EQ(dict.size(), listed.size());
  int bytes_tensors = 0, scalars = 0;
  for (const auto& [name, entry] : listed.items()) {
    auto it = dict.find(name);
    ASSERT_NE(it, dict.end()) << name;
    const TensorData& t = it->second;
    const std::string dtype = entry.at(0);
    ASSERT_TRUE(dtype == "float32" || dtype == "uint8") << name << ": " << dtype;
    EXPECT_EQ(t.dtype, dtype == "uint8" ? DType::U8 : DType::F32) << name;
    EXPECT_EQ(t.shape, entry.at(1).get<std::vector<int64_t>>()) << name;
    expect_whole_storage(t, name);
    bytes_tensors += dtype == "uint8";
    scalars += t.shape.empty();
  }
  // What this test is for: ByteStorage tensors and 0-dim tensors are there.
  EXPECT_EQ(bytes_tensors, 2);
  EXPECT_EQ(scalars, 3);  // logit_scale and two masked_bias
  expect_gpt2_buffers(dict);
}

TEST(V1Checkpoint, LegacyFileGivesTheSameTensors) {
  const StateDict& zip = v1_zip();
  const StateDict& legacy = v1_legacy();
  // The two files really are different formats.
  EXPECT_EQ(ruclip_test::read_file(v1_path("ruclip-v1-tiny")).substr(0, 4), "PK\x03\x04");
  EXPECT_EQ(ruclip_test::read_file(v1_path("ruclip-v1-tiny-legacy")).substr(0, 2), "\x80\x02");
  ASSERT_EQ(legacy.size(), zip.size());
  for (const auto& [name, t] : zip) {
    auto it = legacy.find(name);
    ASSERT_NE(it, legacy.end()) << name;
    const TensorData& l = it->second;
    EXPECT_EQ(l.dtype, t.dtype) << name;
    EXPECT_EQ(l.shape, t.shape) << name;
    EXPECT_EQ(l.strides, t.strides) << name;
    EXPECT_EQ(l.contiguous_bytes(), t.contiguous_bytes()) << name;
    expect_whole_storage(l, name);
  }
  expect_gpt2_buffers(legacy);
}

TEST(V1Checkpoint, LegacyFromMemoryEqualsFromFile) {
  const std::string bytes = ruclip_test::read_file(v1_path("ruclip-v1-tiny-legacy"));
  const StateDict dict = load(bytes);
  ASSERT_EQ(dict.size(), v1_legacy().size());
  for (const auto& [name, t] : v1_legacy()) {
    const TensorData& other = dict.at(name);
    EXPECT_EQ(other.dtype, t.dtype) << name;
    EXPECT_EQ(other.shape, t.shape) << name;
    EXPECT_EQ(*other.storage, *t.storage) << name;
  }
}

// The handmade storages as the legacy format's storage section: in key
// order (torch sorts the keys), counts in elements.
std::vector<LegacyStorage> legacy_storages(const std::vector<TensorSpec>& specs,
                                           const std::map<std::string, std::string>& storages) {
  std::vector<LegacyStorage> out;
  for (const auto& [key, bytes] : storages)
    for (const TensorSpec& t : specs)
      if (t.key == key) {
        out.push_back({key, static_cast<uint64_t>(t.storage_numel), bytes});
        break;
      }
  return out;
}

TEST(LegacyCheckpoint, SharedStoragesOffsetsStridesAndDtypes) {
  const std::string file = make_legacy(state_dict_pickle(handmade_specs(), /*legacy=*/true),
                                       legacy_storages(handmade_specs(), handmade_storages()));
  expect_handmade_values(load(file));
  const std::string dir = ruclip_test::make_temp_dir();
  ruclip_test::write_file(dir + "/model.pt", file);
  expect_handmade_values(ruclip::read_torch_checkpoint(dir + "/model.pt"));
  std::filesystem::remove_all(dir);
}

TEST(LegacyCheckpoint, PicklesLargerThanTheFirstPieceReadFromAFile) {
  // Names of 100 000 bytes: the pickles outgrow the 64 KiB the reader starts with.
  std::vector<TensorSpec> specs;
  for (int i = 0; i < 3; ++i)
    specs.push_back({std::string(100000, static_cast<char>('a' + i)), "FloatStorage", std::to_string(i), 2, 0, {2}, {1}});
  const std::string file =
      make_legacy(state_dict_pickle(specs, true), {{"0", 2, raw_bytes<float>({1, 2})},
                                                  {"1", 2, raw_bytes<float>({3, 4})},
                                                  {"2", 2, raw_bytes<float>({5, 6})}});
  ASSERT_GT(file.size(), 300000u);
  const std::string dir = ruclip_test::make_temp_dir();
  ruclip_test::write_file(dir + "/model.pt", file);
  for (const StateDict& dict : {ruclip::read_torch_checkpoint(dir + "/model.pt"), load(file)}) {
    ASSERT_EQ(dict.size(), 3u);
    EXPECT_EQ(dict.at(std::string(100000, 'a')).to_float(), (std::vector<float>{1, 2}));
    EXPECT_EQ(dict.at(std::string(100000, 'c')).to_float(), (std::vector<float>{5, 6}));
  }
  std::filesystem::remove_all(dir);
}

TEST(LegacyCheckpoint, StorageViewsOfTorchBefore04) {
  // ('storage', FloatStorage, '0', 'cpu', 12, ('v', 4, 6)): elements 4..9 of storage '0' as storage 'v'.
  PickleWriter p;
  p.legacy().proto(2).empty_dict().mark();
  p.str("in_view").global("torch._utils", "_rebuild_tensor_v2").mark();
  p.storage_view("FloatStorage", "0", 12, "v", 4, 6).integer(1).ints({2, 2}).ints({3, 1}).op(0x89).empty_dict().tuple().reduce();
  p.str("whole").global("torch._utils", "_rebuild_tensor_v2").mark();
  p.storage("FloatStorage", "0", 12).integer(0).ints({12}).ints({1}).op(0x89).empty_dict().tuple().reduce();
  p.setitems().stop();
  const StateDict dict = load(make_legacy(p.bytes(), {{"0", 12, raw_bytes<float>({0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11})}}));
  // view elements 1, 2, 4, 5: storage elements 5, 6, 8, 9
  EXPECT_EQ(dict.at("in_view").to_float(), (std::vector<float>{5, 6, 8, 9}));
  EXPECT_EQ(dict.at("in_view").offset, 5);
  EXPECT_EQ(dict.at("whole").to_float().size(), 12u);
  EXPECT_EQ(dict.at("in_view").storage, dict.at("whole").storage);  // one buffer, read once
}

TEST(LegacyCheckpoint, EmptyStateDictAndEmptyStorage) {
  EXPECT_TRUE(load(make_legacy(state_dict_pickle({}, true), {})).empty());
  const StateDict dict =
      load(make_legacy(state_dict_pickle({{"e", "FloatStorage", "0", 0, 0, {0, 5}, {5, 1}}}, true), {{"0", 0, ""}}));
  EXPECT_EQ(dict.at("e").numel(), 0);
}

// ---------------------------------------------------------------------------
// TensorData.

TensorData make_tensor(DType dtype, const std::string& bytes, std::vector<int64_t> shape,
                       std::vector<int64_t> strides, int64_t offset = 0) {
  TensorData t;
  t.dtype = dtype;
  t.shape = std::move(shape);
  t.strides = std::move(strides);
  t.offset = offset;
  t.storage = std::make_shared<const std::vector<uint8_t>>(bytes.begin(), bytes.end());
  return t;
}

TEST(TensorData, ToFloatHonoursStridesAndConverts) {
  // A 3-d view with a skipped element in every dimension.
  std::vector<float> base(64);
  for (size_t i = 0; i < base.size(); ++i) base[i] = static_cast<float>(i);
  const TensorData t = make_tensor(DType::F32, raw_bytes(base), {2, 2, 2}, {32, 8, 2}, 1);
  EXPECT_EQ(t.to_float(), (std::vector<float>{1, 3, 9, 11, 33, 35, 41, 43}));

  EXPECT_EQ(make_tensor(DType::I32, raw_bytes<int32_t>({-5, 7}), {2}, {1}).to_float(), (std::vector<float>{-5, 7}));
  EXPECT_EQ(make_tensor(DType::I16, raw_bytes<int16_t>({-300, 3}), {2}, {1}).to_float(),
            (std::vector<float>{-300, 3}));
  EXPECT_EQ(make_tensor(DType::I8, raw_bytes<int8_t>({-128, 127}), {2}, {1}).to_float(),
            (std::vector<float>{-128, 127}));
  EXPECT_EQ(make_tensor(DType::U8, raw_bytes<uint8_t>({0, 255}), {2}, {1}).to_float(), (std::vector<float>{0, 255}));
  EXPECT_EQ(make_tensor(DType::Bool, raw_bytes<uint8_t>({0, 1, 1}), {3}, {1}).to_float(),
            (std::vector<float>{0, 1, 1}));
  // A half NaN stays NaN; -0 keeps its sign.
  const std::vector<float> h = make_tensor(DType::F16, raw_bytes<uint16_t>({0x7E00, 0x8000}), {2}, {1}).to_float();
  EXPECT_TRUE(std::isnan(h[0]));
  EXPECT_TRUE(h[1] == 0.0f && std::signbit(h[1]));
}

TEST(TensorData, ContiguousBytesKeepsTheDtype) {
  const TensorData t = make_tensor(DType::BF16, raw_bytes<uint16_t>({1, 2, 3, 4, 5, 6}), {3, 2}, {1, 3});
  const std::vector<uint8_t> bytes = t.contiguous_bytes();
  EXPECT_EQ(std::string(bytes.begin(), bytes.end()), raw_bytes<uint16_t>({1, 4, 2, 5, 3, 6}));
}

TEST(TensorData, ViewsOutsideTheStorageAreRefused) {
  EXPECT_THROW(make_tensor(DType::F32, raw_bytes<float>({1, 2}), {3}, {1}).to_float(), ruclip::Error);
  EXPECT_THROW(make_tensor(DType::F32, raw_bytes<float>({1, 2}), {2}, {1}, 1).to_float(), ruclip::Error);
  EXPECT_THROW(make_tensor(DType::F32, raw_bytes<float>({1, 2}), {2}, {-1}, 1).to_float(), ruclip::Error);
  EXPECT_THROW(make_tensor(DType::F32, raw_bytes<float>({1, 2}), {2}, {1, 1}).contiguous_bytes(), ruclip::Error);
  TensorData no_storage;
  no_storage.shape = {1};
  no_storage.strides = {1};
  EXPECT_THROW(no_storage.to_float(), ruclip::Error);
}

// ---------------------------------------------------------------------------
// safetensors.

TEST(Safetensors, FixtureRoundTrip) {
  const std::string dir = ruclip_test::make_temp_dir();
  const std::string path = dir + "/model.safetensors";
  ruclip::write_safetensors(path, fixture(), {{"format", "pt"}, {"source", "ruclip-tiny-v2"}});
  EXPECT_FALSE(std::filesystem::exists(path + ".partial"));

  const StateDict dict = ruclip::read_safetensors(path);
  ASSERT_EQ(dict.size(), fixture().size());
  for (const auto& [name, t] : fixture()) {
    const TensorData& back = dict.at(name);
    EXPECT_EQ(back.dtype, DType::F32) << name;
    EXPECT_EQ(back.shape, t.shape) << name;
    EXPECT_EQ(back.to_float(), t.to_float()) << name;
  }

  // The layout: 8-byte length, JSON padded with spaces to a multiple of 8,
  // tensors in name order, back to back.
  const std::string bytes = ruclip_test::read_file(path);
  uint64_t n = 0;
  std::memcpy(&n, bytes.data(), 8);
  EXPECT_EQ(n % 8, 0u);
  const auto header = nlohmann::json::parse(bytes.substr(8, n));
  EXPECT_EQ(header.at("__metadata__"), (nlohmann::json{{"format", "pt"}, {"source", "ruclip-tiny-v2"}}));
  uint64_t expected_begin = 0;
  for (const auto& [name, t] : fixture()) {
    const auto& entry = header.at(name);
    EXPECT_EQ(entry.at("dtype"), "F32");
    EXPECT_EQ(entry.at("data_offsets")[0].get<uint64_t>(), expected_begin) << name;
    expected_begin += static_cast<uint64_t>(t.numel()) * 4;
  }
  EXPECT_EQ(bytes.size(), 8 + n + expected_begin);
  std::filesystem::remove_all(dir);
}

TEST(Safetensors, RoundTripHalfBFloat16AndAStridedView) {
  StateDict tensors = load(make_checkpoint(state_dict_pickle(handmade_specs()), handmade_storages()));
  const std::string dir = ruclip_test::make_temp_dir();
  ruclip::write_safetensors(dir + "/t.safetensors", tensors);
  const StateDict back = ruclip::read_safetensors(dir + "/t.safetensors");
  ASSERT_EQ(back.size(), tensors.size());
  for (const auto& [name, t] : tensors) {
    const TensorData& b = back.at(name);
    EXPECT_EQ(b.dtype, t.dtype) << name;
    EXPECT_EQ(b.shape, t.shape) << name;
    EXPECT_EQ(b.contiguous_bytes(), t.contiguous_bytes()) << name;  // bit-exact, incl. inf
  }
  // The transposed view was written contiguously.
  EXPECT_EQ(back.at("c").strides, (std::vector<int64_t>{3, 1}));
  EXPECT_EQ(back.at("c").to_float(), (std::vector<float>{2, 6, 10, 3, 7, 11}));
  EXPECT_EQ(back.at("h").dtype, DType::F16);
  EXPECT_EQ(back.at("bf").to_float(), (std::vector<float>{-2.0f, -0.5f}));
  std::filesystem::remove_all(dir);
}

TEST(Safetensors, HandWrittenFileFromMemory) {
  // Header as the reference writer produces it, with an empty tensor and metadata.
  const std::string json =
      R"({"__metadata__":{"format":"pt"},"x":{"dtype":"BF16","shape":[2],"data_offsets":[0,4]},)"
      R"("y":{"dtype":"I64","shape":[1,1],"data_offsets":[4,12]},"z":{"dtype":"F32","shape":[0],"data_offsets":[12,12]}})";
  std::string file(8, '\0');
  const uint64_t n = json.size();
  std::memcpy(file.data(), &n, 8);
  file += json + raw_bytes<uint16_t>({0x3F80, 0xC040}) + raw_bytes<int64_t>({-9});
  const StateDict dict =
      ruclip::read_safetensors(reinterpret_cast<const uint8_t*>(file.data()), file.size(), "memory.safetensors");
  ASSERT_EQ(dict.size(), 3u);
  EXPECT_EQ(dict.at("x").to_float(), (std::vector<float>{1.0f, -3.0f}));
  EXPECT_EQ(dict.at("y").shape, (std::vector<int64_t>{1, 1}));
  EXPECT_EQ(dict.at("y").to_float(), std::vector<float>{-9.0f});
  EXPECT_EQ(dict.at("z").numel(), 0);
}

TEST(Safetensors, WriteRefusesABadViewAndLeavesNoFile) {
  StateDict tensors;
  tensors["bad"] = make_tensor(DType::F32, raw_bytes<float>({1, 2}), {4}, {1});
  const std::string dir = ruclip_test::make_temp_dir();
  try {
    ruclip::write_safetensors(dir + "/t.safetensors", tensors);
    ADD_FAILURE() << "no error";
  } catch (const ruclip::Error& e) {
    EXPECT_NE(std::string(e.what()).find(dir + "/t.safetensors: tensor 'bad': tensor view reaches element 3"),
              std::string::npos)
        << e.what();
  }
  EXPECT_TRUE(std::filesystem::is_empty(dir));

  // JSON needs UTF-8 names; a checkpoint's names are arbitrary bytes.
  StateDict odd_name;
  odd_name["bad\xff"] = make_tensor(DType::F32, raw_bytes<float>({1}), {1}, {1});
  EXPECT_THROW(ruclip::write_safetensors(dir + "/t.safetensors", odd_name), ruclip::Error);
  EXPECT_TRUE(std::filesystem::is_empty(dir));
  std::filesystem::remove_all(dir);
}

TEST(Dtype, SizesAndNames) {
  EXPECT_EQ(ruclip::dtype_size(DType::F32), 4u);
  EXPECT_EQ(ruclip::dtype_size(DType::BF16), 2u);
  EXPECT_EQ(ruclip::dtype_size(DType::I64), 8u);
  EXPECT_EQ(ruclip::dtype_size(DType::Bool), 1u);
  EXPECT_STREQ(ruclip::dtype_name(DType::F16), "F16");
  EXPECT_STREQ(ruclip::dtype_name(DType::Bool), "BOOL");
}

}  // namespace

// The fuzz seeds are pickled by CPython's own pickler (protocol 2 and 4) with
// stand-ins named like torch's classes: what torch.save writes. They must load.
TEST(CheckpointFromCPythonPickler, FuzzSeedsLoad) {
  for (const char* name : {"state_dict_p2.bin", "state_dict_p4.bin"}) {
    const std::string path = std::string(RUCLIP_TEST_DATA) + "/../fuzz/corpus/checkpoint/" + name;
    const auto dict = ruclip::read_torch_checkpoint(path);
    ASSERT_EQ(dict.size(), 5u) << name;
    EXPECT_EQ(dict.at("a.weight").to_float(), (std::vector<float>{0.5f, -1.0f, 2.0f, 3.5f, 0.25f, 8.0f}));
    // offset 1, stride (1, 3): elements 1, 4, 2, 5 of the storage
    EXPECT_EQ(dict.at("a.t").to_float(), (std::vector<float>{-1.0f, 0.25f, 2.0f, 8.0f}));
    EXPECT_EQ(dict.at("half").to_float(), (std::vector<float>{1.0f, -2.0f, 0.5f}));
    EXPECT_EQ(dict.at("bf16").to_float(), (std::vector<float>{1.0f, 2.0f}));
    EXPECT_EQ(dict.at("scale").to_float(), (std::vector<float>{8.0f}));
    EXPECT_TRUE(dict.at("scale").shape.empty());
    EXPECT_EQ(dict.at("a.weight").storage, dict.at("a.t").storage);
  }
}

// The same state dict in the legacy format (LegacyPickler in make_seeds.py),
// protocol 2 and 4 (whose pickles, the magic number's too, start with FRAME).
TEST(CheckpointFromCPythonPickler, LegacyFuzzSeedsLoad) {
  const std::string corpus = std::string(RUCLIP_TEST_DATA) + "/../fuzz/corpus/checkpoint/";
  const auto zip = ruclip::read_torch_checkpoint(corpus + "state_dict_p2.bin");
  for (const char* name : {"legacy_p2.bin", "legacy_p4.bin"}) {
    const std::string bytes = ruclip_test::read_file(corpus + name);
    ASSERT_EQ(static_cast<uint8_t>(bytes[0]), 0x80) << name;
    const auto dict = ruclip::read_torch_checkpoint(corpus + name);
    ASSERT_EQ(dict.size(), zip.size()) << name;
    for (const auto& [key, t] : zip) {
      EXPECT_EQ(dict.at(key).shape, t.shape) << name << " " << key;
      EXPECT_EQ(dict.at(key).to_float(), t.to_float()) << name << " " << key;
    }
    EXPECT_EQ(dict.at("a.t").offset, 1);
    EXPECT_EQ(dict.at("a.weight").storage, dict.at("a.t").storage);
  }
}
