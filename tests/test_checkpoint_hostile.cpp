// Hostile weight files: pickles that try to import or build things, broken
// and lying zip archives, broken legacy (torch < 1.6) files, tensor views
// outside their storage, bad safetensors.
// Each must end in a ruclip::Error whose message names the file and the
// reason; none may crash, execute anything or allocate what it claims.
#include <gtest/gtest.h>
#include <zip.h>

#include <cstring>
#include <filesystem>
#include <map>
#include <random>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "checkpoint_builder.h"
#include "ruclip/checkpoint.h"
#include "ruclip/error.h"
#include "test_util.h"

using checkpoint_test::Entries;
using checkpoint_test::key_list_pickle;
using checkpoint_test::legacy_preamble;
using checkpoint_test::make_legacy;
using checkpoint_test::make_zip;
using checkpoint_test::storage_record;
using checkpoint_test::SysInfo;
using checkpoint_test::PickleWriter;
using checkpoint_test::raw_bytes;

using ruclip_test::error_of;

namespace {

using namespace std::string_literals;
using ruclip::StateDict;

// ---------------------------------------------------------------------------
// Assembling hostile files.

// {name: _rebuild_tensor_v2(storage, offset, shape, strides, False, OrderedDict())}
std::string one_tensor_pickle(const std::string& name, const std::string& key, int64_t storage_numel, int64_t offset,
                              const std::vector<int64_t>& shape, const std::vector<int64_t>& strides,
                              const std::string& storage_type = "FloatStorage") {
  PickleWriter p;
  p.proto(2).global("collections", "OrderedDict").op(')').op('R');
  p.str(name).global("torch._utils", "_rebuild_tensor_v2").mark().storage(storage_type, key, storage_numel);
  p.integer(offset).ints(shape).ints(strides).op(0x89).global("collections", "OrderedDict").op(')').op('R');
  p.op('t').op('R').op('s').stop();
  return p.bytes();
}



std::string make_checkpoint(const std::string& pickle, const std::map<std::string, std::string>& storages = {},
                            bool deflate = false) {
  Entries entries = {{"archive/data.pkl", pickle}};
  for (const auto& [key, data] : storages) entries.emplace_back("archive/data/" + key, data);
  entries.emplace_back("archive/version", "3\n");
  return make_zip(entries, deflate);
}

uint32_t u32_at(const std::string& b, size_t at) {
  uint32_t v;
  std::memcpy(&v, b.data() + at, 4);
  return v;
}
uint16_t u16_at(const std::string& b, size_t at) {
  uint16_t v;
  std::memcpy(&v, b.data() + at, 2);
  return v;
}
void put_u32(std::string& b, size_t at, uint32_t v) { std::memcpy(b.data() + at, &v, 4); }

// Offset of `name`'s record in the central directory (archives without a comment).
size_t central_record(const std::string& zip, const std::string& name) {
  const size_t eocd = zip.size() - 22;
  if (u32_at(zip, eocd) != 0x06054b50) throw std::runtime_error("no end of central directory");
  size_t at = u32_at(zip, eocd + 16);
  for (int i = 0; i < u16_at(zip, eocd + 10); ++i) {
    const size_t name_len = u16_at(zip, at + 28);
    if (zip.compare(at + 46, name_len, name) == 0) return at;
    at += 46 + name_len + u16_at(zip, at + 30) + u16_at(zip, at + 32);
  }
  throw std::runtime_error("no entry " + name);
}

// Rewrites the sizes an entry declares, in its central record and its local
// header alike, so that the archive stays self-consistent but lies.
void patch_sizes(std::string& zip, const std::string& name, uint32_t compressed, uint32_t uncompressed) {
  const size_t central = central_record(zip, name);
  const size_t local = u32_at(zip, central + 42);
  put_u32(zip, central + 20, compressed);
  put_u32(zip, central + 24, uncompressed);
  put_u32(zip, local + 18, compressed);
  put_u32(zip, local + 22, uncompressed);
}

std::string load_error(const std::string& zip_bytes) {
  return error_of([&] {
    ruclip::read_torch_checkpoint(reinterpret_cast<const uint8_t*>(zip_bytes.data()), zip_bytes.size(),
                                  "hostile.bin");
  });
}

std::string pickle_error(const std::string& pickle) { return load_error(make_checkpoint(pickle)); }

std::string safetensors_error(const std::string& bytes) {
  return error_of([&] {
    ruclip::read_safetensors(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), "hostile.safetensors");
  });
}

#define EXPECT_CONTAINS(text, fragment) EXPECT_NE((text).find(fragment), std::string::npos) << (text)

std::string fixture_bytes() {
  static const std::string bytes = ruclip_test::read_file(ruclip_test::tiny_model_dir() + "/pytorch_model.bin");
  return bytes;
}

// One entry of a zip, read with libzip directly.
std::string zip_entry(const std::string& zip_bytes, const std::string& name) {
  zip_error_t error;
  zip_error_init(&error);
  zip_source_t* source = zip_source_buffer_create(zip_bytes.data(), zip_bytes.size(), 0, &error);
  zip_t* archive = zip_open_from_source(source, ZIP_RDONLY, &error);
  if (!archive) throw std::runtime_error("cannot open zip");
  zip_stat_t st;
  zip_stat(archive, name.c_str(), 0, &st);
  std::string out(st.size, '\0');
  zip_file_t* file = zip_fopen(archive, name.c_str(), 0);
  zip_fread(file, out.data(), st.size);
  zip_fclose(file);
  zip_discard(archive);
  zip_error_fini(&error);
  return out;
}

const std::string& fixture_pickle() {
  static const std::string pickle = zip_entry(fixture_bytes(), "pytorch_model/data.pkl");
  return pickle;
}

// ---------------------------------------------------------------------------
// The unpickler.

TEST(HostilePickle, ForbiddenGlobalsAreNamedNeverCalled) {
  const std::string dir = ruclip_test::make_temp_dir();
  const std::string marker = dir + "/executed";
  const std::vector<std::pair<std::string, std::string>> globals = {
      {"os", "system"}, {"builtins", "eval"}, {"posix", "system"}, {"subprocess", "Popen"},
      {"foo", "Bar"},   {"torch", "load"},    {"torch._utils", "_rebuild_qtensor"},
      {"torch.storage", "_load_from_bytes"},  {"collections", "defaultdict"}};
  for (const auto& [module, name] : globals) {
    // What `pickle.loads` would turn into module.name("touch <marker>").
    PickleWriter p;
    p.proto(2).global(module, name).mark().str("touch " + marker).op('t').op('R').stop();
    EXPECT_EQ(pickle_error(p.bytes()), "hostile.bin: data.pkl: forbidden global '" + module + "." + name + "' at byte 2");
  }
  EXPECT_FALSE(std::filesystem::exists(marker));
  std::filesystem::remove_all(dir);
}

TEST(HostilePickle, ForbiddenGlobalThroughStackGlobal) {
  PickleWriter p;
  p.proto(4).short_str("builtins").short_str("eval").op(0x93);  // STACK_GLOBAL at byte 2 + 10 + 6
  p.short_str("1+1").op(0x85).op('R').stop();
  EXPECT_EQ(pickle_error(p.bytes()), "hostile.bin: data.pkl: forbidden global 'builtins.eval' at byte 18");
}

TEST(HostilePickle, ForbiddenGlobalInsideARealStateDict) {
  // The fixture's pickle with its first _rebuild_tensor_v2 (byte 61) swapped for posix.system.
  std::string pickle = fixture_pickle();
  const std::string rebuild = "ctorch._utils\n_rebuild_tensor_v2\n";
  ASSERT_EQ(pickle.find(rebuild), 61u);
  pickle.replace(61, rebuild.size(), "cposix\nsystem\n");
  EXPECT_EQ(pickle_error(pickle), "hostile.bin: data.pkl: forbidden global 'posix.system' at byte 61");
}

TEST(HostilePickle, ObjectBuildingOpcodesAreRefused) {
  struct Case {
    std::string bytes;
    std::string message;
  };
  const std::vector<Case> cases = {
      {"\x80\x02(ios\nsystem\n.", "opcode INST (0x69) is not allowed at byte 3"},
      {"\x80\x02(cfoo\nBar\no.", "forbidden global 'foo.Bar' at byte 3"},
      {"\x80\x02(o.", "opcode OBJ (0x6f) is not allowed at byte 3"},
      {"\x80\x02" "ccollections\nOrderedDict\n)\x81.", "opcode NEWOBJ (0x81) is not allowed at byte 28"},
      {"\x80\x04)}\x92.", "opcode NEWOBJ_EX (0x92) is not allowed at byte 4"},
      {"\x80\x02\x82\x01.", "opcode EXT1 (0x82) is not allowed at byte 2"},
      {"\x80\x02P1\n.", "opcode PERSID (0x50) is not allowed at byte 2"},
      {"\x80\x02\xff", "unknown opcode 0xff at byte 2"},
      {"\x80\x02S'text'\n.", "unknown opcode 0x53 at byte 2"},  // protocol-0 STRING: not used by torch
  };
  for (const Case& c : cases) EXPECT_EQ(pickle_error(c.bytes), "hostile.bin: data.pkl: " + c.message);
}

TEST(HostilePickle, UnknownOpcodeInsideARealStateDict) {
  std::string pickle = fixture_pickle();
  ASSERT_EQ(static_cast<uint8_t>(pickle[175]), 0x89);  // the first NEWFALSE (requires_grad)
  pickle[175] = static_cast<char>(0xfe);
  EXPECT_EQ(pickle_error(pickle), "hostile.bin: data.pkl: unknown opcode 0xfe at byte 175");
}

TEST(HostilePickle, EveryTruncationOfTheFixturePickle) {
  const std::string& pickle = fixture_pickle();
  std::vector<size_t> cuts = {0, 1, 2, 3, 30, 33, 35, pickle.size() - 2, pickle.size() - 1};
  for (size_t cut = 5; cut < pickle.size(); cut += 53) cuts.push_back(cut);
  for (size_t cut : cuts) {
    const std::string message = pickle_error(pickle.substr(0, cut));
    EXPECT_EQ(message.rfind("hostile.bin: data.pkl: truncated pickle", 0), 0u) << "cut " << cut << ": " << message;
  }
}

TEST(HostilePickle, LengthsAndIndicesAreBoundsChecked) {
  struct Case {
    std::string bytes;
    std::string message;
  };
  const std::vector<Case> cases = {
      {"\x80\x02X\xff\xff\xff\xff" "abc."s, "truncated pickle at byte 2"},                    // 4 GiB string
      {"\x80\x02\x8d\xff\xff\xff\xff\xff\xff\xff\x7f."s, "truncated pickle at byte 2"},    // 2^63-byte string
      {"\x80\x02\x8c\x05" "ab"s, "truncated pickle at byte 2"},
      {"\x80\x04\x95\xff\xff\xff\xff\xff\xff\xff\xff."s, "truncated pickle (frame of 18446744073709551615 bytes) at byte 2"},
      {"\x80\x02h\x05."s, "memo index 5 is not defined at byte 2"},
      {"\x80\x02j\x00\x00\x00\x01."s, "memo index 16777216 is not defined at byte 2"},
      {"\x80\x02q\x00."s, "stack underflow at byte 2"},                                     // BINPUT, nothing to store
      {"\x80\x02N\x86."s, "stack underflow at byte 3"},                                     // TUPLE2 of one value
      {"\x80\x02N(0."s, "stack underflow at byte 4"},                                       // POP below the MARK
      {"\x80\x02Nt."s, "no MARK to pop to at byte 3"},
      {"\x80\x02."s, "stack underflow at byte 2"},                                          // STOP on an empty stack
      {"\x80\x02NN."s, "malformed pickle: values left on the stack at STOP at byte 4"},
      {"\x80\x02(N."s, "malformed pickle: values left on the stack at STOP at byte 4"},
      {"\x80\x02NNa."s, "APPEND on a None, expected a list at byte 4"},
      {"\x80\x02}(Nu."s, "SETITEMS with an odd number of values at byte 5"},
      {"\x80\x02\x8a\x09\x01\x02\x03\x04\x05\x06\x07\x08\x09."s, "integer of 9 bytes does not fit 64 bits at byte 2"},
      {"\x80\x02\x8b\xff\xff\xff\xff."s, "integer of 4294967295 bytes does not fit 64 bits at byte 2"},
      {"\x80\x06}."s, "unsupported pickle protocol 6 at byte 0"},
      {"\x80\x02" "c"s + std::string(300, 'a'), "GLOBAL name too long at byte 2"},
      {"\x80\x02" "cos"s, "truncated pickle at byte 2"},
      {"\x80\x02N)R."s, "REDUCE calls a None, not an allowed global at byte 4"},
      {"\x80\x02" "ctorch\nFloatStorage\n)R."s, "'torch.FloatStorage' cannot be called at byte 23"},
      {"\x80\x02" "ccollections\nOrderedDict\nK\x01\x85R."s, "OrderedDict called with arguments at byte 30"},
      {"\x80\x02" "ccollections\nOrderedDict\nNR."s, "REDUCE arguments of 'collections.OrderedDict' are not a tuple at byte 28"},
      {"\x80\x02NNb."s, "BUILD on a None with a None state is not supported at byte 4"},
      {"\x80\x02K\x01Q."s, "unsupported persistent id (expected ('storage', type, key, location, numel)) at byte 4"},
      {"\x80\x02\x8c\x01" "a\x8c\x01" "b\x93."s, "forbidden global 'a.b' at byte 8"},
      {"\x80\x02K\x01\x8c\x01" "b\x93."s, "STACK_GLOBAL needs two strings, got int and str at byte 7"},
  };
  for (const Case& c : cases) EXPECT_EQ(pickle_error(c.bytes), "hostile.bin: data.pkl: " + c.message);
}

TEST(HostilePickle, MalformedTensorsAndPersistentIds) {
  // _rebuild_tensor_v2 with the wrong arguments.
  PickleWriter few;
  few.proto(2).op('}').str("w").global("torch._utils", "_rebuild_tensor_v2").mark().integer(1).op('t').op('R');
  few.op('s').stop();
  EXPECT_CONTAINS(pickle_error(few.bytes()), "hostile.bin: data.pkl: _rebuild_tensor_v2 expects 6 or 7 arguments, got 1");

  PickleWriter not_storage;
  not_storage.proto(2).op('}').str("w").global("torch._utils", "_rebuild_tensor_v2").mark();
  not_storage.integer(1).integer(0).ints({1}).ints({1}).op(0x89).op('}').op('t').op('R').op('s').stop();
  EXPECT_CONTAINS(pickle_error(not_storage.bytes()), "first argument is a int, not a storage");

  // The storage type given as a string instead of the torch global.
  PickleWriter string_type;
  string_type.proto(2).mark().str("storage").str("FloatStorage").str("0").str("cpu").integer(4).op('t').op('Q');
  EXPECT_CONTAINS(pickle_error(string_type.bytes()), "persistent id names no storage type");

  PickleWriter negative_numel;
  negative_numel.proto(2).storage("FloatStorage", "0", -1);
  EXPECT_CONTAINS(pickle_error(negative_numel.bytes()), "persistent id has a bad element count");

  // _rebuild_parameter around something that is not a tensor.
  PickleWriter param;
  param.proto(2).global("torch._utils", "_rebuild_parameter").mark().integer(1).op(0x88).op('}').op('t').op('R');
  EXPECT_CONTAINS(pickle_error(param.bytes()), "_rebuild_parameter expects (tensor, requires_grad, backward_hooks)");
}

TEST(HostilePickle, RootMustBeAStateDictOfTensors) {
  EXPECT_EQ(pickle_error("\x80\x02K\x05."), "hostile.bin: data.pkl holds a int, not a state dict");
  EXPECT_EQ(pickle_error("\x80\x02}X\x01\x00\x00\x00wK\x01s."s),
            "hostile.bin: state dict entry 'w' is a int, not a tensor");
  EXPECT_EQ(pickle_error("\x80\x02}K\x01K\x01s."), "hostile.bin: state dict has a int key");
  // A list that contains itself: no crash, no leak (see the valgrind run).
  EXPECT_EQ(pickle_error("\x80\x02]q\x00h\x00" "a."s), "hostile.bin: data.pkl holds a list, not a state dict");
}

TEST(HostilePickle, ResourceLimits) {
  // 5000 nested MARKs.
  EXPECT_EQ(pickle_error("\x80\x02" + std::string(5000, '(')),
            "hostile.bin: data.pkl: MARKs nested too deeply at byte 4098");
  // A million references to one value: the stack is bounded, nothing big is allocated per entry.
  PickleWriter deep;
  deep.proto(2).op('N').op('q').op(0);
  for (int i = 0; i <= (1 << 20); ++i) deep.op('h').op(0);
  EXPECT_CONTAINS(pickle_error(deep.bytes()), "hostile.bin: data.pkl: pickle stack too deep at byte");
}

// ---------------------------------------------------------------------------
// Tensors against their storages.

TEST(HostileTensor, ViewOutsideItsStorage) {
  // storage '3' holds 4096 floats; the view's last element is 8999 + 1.
  EXPECT_EQ(load_error(make_checkpoint(one_tensor_pickle("visual.proj", "3", 4096, 8999, {2}, {1}),
                                       {{"3", std::string(4096 * 4, '\0')}})),
            "hostile.bin: tensor 'visual.proj' reaches element 9000 of storage '3' which holds 4096");
  const std::map<std::string, std::string> four = {{"0", raw_bytes<float>({1, 2, 3, 4})}};
  EXPECT_EQ(load_error(make_checkpoint(one_tensor_pickle("w", "0", 4, 0, {2, 3}, {3, 1}), four)),
            "hostile.bin: tensor 'w' reaches element 5 of storage '0' which holds 4");
  EXPECT_EQ(load_error(make_checkpoint(one_tensor_pickle("w", "0", 4, 0, {2}, {-1}), four)),
            "hostile.bin: tensor 'w' has a negative stride (-1) in dimension 0");
  EXPECT_EQ(load_error(make_checkpoint(one_tensor_pickle("w", "0", 4, 0, {-2}, {1}), four)),
            "hostile.bin: tensor 'w' has a negative size (-2) in dimension 0");
  EXPECT_EQ(load_error(make_checkpoint(one_tensor_pickle("w", "0", 4, -1, {2}, {1}), four)),
            "hostile.bin: tensor 'w' has a negative storage offset (-1)");
  EXPECT_EQ(load_error(make_checkpoint(one_tensor_pickle("w", "0", 4, 0, {2, 2}, {1}), four)),
            "hostile.bin: tensor 'w' has 2 sizes but 1 strides");
  EXPECT_EQ(load_error(make_checkpoint(one_tensor_pickle("w", "0", 4, 0, {int64_t{1} << 62, 4}, {4, 1}), four)),
            "hostile.bin: tensor 'w' has more than 2^63 elements");
  EXPECT_EQ(load_error(make_checkpoint(one_tensor_pickle("w", "0", 4, 0, {3}, {int64_t{1} << 62}), four)),
            "hostile.bin: tensor 'w' reaches beyond element 2^63 of storage '0'");
  // A stride-0 view of a million elements over 4: would make to_float() allocate 4 MB from 16 bytes.
  EXPECT_EQ(load_error(make_checkpoint(one_tensor_pickle("w", "0", 4, 0, {1000000}, {0}), four)),
            "hostile.bin: tensor 'w' has 1000000 elements, more than the 4 of storage '0' (overlapping views are "
            "not supported)");
}

TEST(HostileTensor, StorageClaimsMoreThanItsEntryHolds) {
  const std::map<std::string, std::string> four = {{"0", raw_bytes<float>({1, 2, 3, 4})}};
  // 10^12 floats (4 TB) claimed by a 16-byte entry: refused before any allocation.
  EXPECT_EQ(load_error(make_checkpoint(one_tensor_pickle("w", "0", 1000000000000, 0, {1000000000000}, {1}), four)),
            "hostile.bin: storage '0' claims 1000000000000 F32 elements but its entry holds 16 bytes");
  EXPECT_EQ(load_error(make_checkpoint(one_tensor_pickle("w", "0", 5, 0, {5}, {1}), four)),
            "hostile.bin: storage '0' claims 5 F32 elements but its entry holds 16 bytes");
  // numel * element size overflows 64 bits.
  EXPECT_CONTAINS(load_error(make_checkpoint(one_tensor_pickle("w", "0", int64_t{1} << 62, 0, {1}, {1}, "DoubleStorage"),
                                             four)),
                  "hostile.bin: storage '0' claims 4611686018427387904 F64 elements but its entry holds 16 bytes");
}

TEST(HostileTensor, MissingStorageEntry) {
  EXPECT_EQ(load_error(make_checkpoint(one_tensor_pickle("w", "7", 4, 0, {4}, {1}),
                                       {{"0", raw_bytes<float>({1, 2, 3, 4})}})),
            "hostile.bin: tensor 'w': storage '7' has no entry 'archive/data/7'");
  // A key that tries to walk out of the data folder is only ever a name inside the zip.
  EXPECT_EQ(load_error(make_checkpoint(one_tensor_pickle("w", "../../etc/passwd", 4, 0, {4}, {1}))),
            "hostile.bin: tensor 'w': storage '../../etc/passwd' has no entry 'archive/data/../../etc/passwd'");
}

// ---------------------------------------------------------------------------
// The zip archive.

TEST(HostileZip, EmptyGarbageAndMissingFiles) {
  EXPECT_EQ(load_error(""), "hostile.bin: empty file, not a zip archive");
  std::mt19937 rng(7);
  std::string garbage(1000, '\0');
  for (char& c : garbage) c = static_cast<char>(rng());
  EXPECT_EQ(load_error(garbage).rfind("hostile.bin: not a zip archive", 0), 0u) << load_error(garbage);
  EXPECT_EQ(load_error("PK\x03\x04").rfind("hostile.bin: truncated or corrupted zip archive", 0), 0u);

  const std::string dir = ruclip_test::make_temp_dir();
  EXPECT_EQ(error_of([&] { ruclip::read_torch_checkpoint(dir + "/missing.bin"); }),
            dir + "/missing.bin: cannot open (No such file or directory)");
  EXPECT_EQ(error_of([&] { ruclip::read_torch_checkpoint(dir); }).rfind(dir + ": cannot open (", 0), 0u);
  ruclip_test::write_file(dir + "/empty.bin", "");
  EXPECT_EQ(error_of([&] { ruclip::read_torch_checkpoint(dir + "/empty.bin"); }),
            dir + "/empty.bin: empty file, not a zip archive");
  ruclip_test::write_file(dir + "/garbage.bin", garbage);
  EXPECT_EQ(error_of([&] { ruclip::read_torch_checkpoint(dir + "/garbage.bin"); }).rfind(dir + "/garbage.bin: not a zip archive", 0), 0u);
  std::filesystem::remove_all(dir);
}

TEST(HostileZip, TruncatedArchive) {
  const std::string full = fixture_bytes();
  for (size_t cut : {full.size() - 1, full.size() - 22, full.size() - 100, full.size() / 2, size_t{100}, size_t{4}}) {
    const std::string message = load_error(full.substr(0, cut));
    EXPECT_EQ(message.rfind("hostile.bin: truncated or corrupted zip archive (libzip: ", 0), 0u)
        << "cut " << cut << ": " << message;
  }
  // On disk too, naming the path.
  const std::string dir = ruclip_test::make_temp_dir();
  ruclip_test::write_file(dir + "/cut.bin", full.substr(0, full.size() / 3));
  EXPECT_EQ(error_of([&] { ruclip::read_torch_checkpoint(dir + "/cut.bin"); }).rfind(dir + "/cut.bin: truncated or corrupted zip archive", 0),
            0u);
  std::filesystem::remove_all(dir);
}

TEST(HostileZip, CorruptedCentralDirectory) {
  const std::string full = fixture_bytes();
  const size_t record = central_record(full, "pytorch_model/data.pkl");
  struct Case {
    size_t at;
    std::string message;
  };
  const std::vector<Case> cases = {
      {record, "hostile.bin: truncated or corrupted zip archive"},       // record signature
      {record + 16, "hostile.bin: cannot read entry 'pytorch_model/data.pkl' (CRC error)"},  // its CRC
      {record + 46, "hostile.bin: truncated or corrupted zip archive"},  // its name
      {record + 42, "hostile.bin: truncated or corrupted zip archive"},  // its local header offset
      {record + 20, "hostile.bin: entry 'pytorch_model/data.pkl' is stored uncompressed but declares 9309 bytes "
                    "from 9223"},  // its compressed size
      {record + 24, "hostile.bin: entry 'pytorch_model/data.pkl' is stored uncompressed but declares 9223 bytes "
                    "from 9309"},  // its uncompressed size
  };
  for (const Case& c : cases) {
    std::string bytes = full;
    bytes[c.at] = static_cast<char>(bytes[c.at] ^ 0x5a);
    const std::string message = load_error(bytes);
    EXPECT_EQ(message.rfind(c.message, 0), 0u) << "byte " << c.at << ": " << message;
  }
}

TEST(HostileZip, CorruptedEntryData) {
  // Flipped bytes inside stored data: the CRC catches them.
  std::string bytes = fixture_bytes();
  const size_t in_pickle = bytes.find("collections\nOrderedDict");
  bytes[in_pickle] = 'C';
  EXPECT_EQ(load_error(bytes), "hostile.bin: cannot read entry 'pytorch_model/data.pkl' (CRC error)");

  bytes = fixture_bytes();
  const size_t local = u32_at(bytes, central_record(bytes, "pytorch_model/data/5") + 42);
  const size_t data = local + 30 + u16_at(bytes, local + 26) + u16_at(bytes, local + 28);
  bytes[data + 100] = static_cast<char>(bytes[data + 100] ^ 1);
  EXPECT_EQ(load_error(bytes), "hostile.bin: cannot read entry 'pytorch_model/data/5' (CRC error)");
}

TEST(HostileZip, MissingOrOddEntries) {
  EXPECT_EQ(load_error(make_zip({{"archive/version", "3\n"}})),
            "hostile.bin: no data.pkl in the archive (not a torch.save checkpoint?)");
  EXPECT_EQ(load_error(make_zip({{"data.pkl", "\x80\x02}."}})),
            "hostile.bin: no data.pkl in the archive (not a torch.save checkpoint?)");
  EXPECT_EQ(load_error(make_zip({{"a/data.pkl", "\x80\x02}."}, {"b/data.pkl", "\x80\x02}."}})),
            "hostile.bin: several data.pkl in the archive");
  EXPECT_EQ(load_error(make_zip({{"a/data.pkl", "\x80\x02}."}, {"a/byteorder", "big"}})),
            "hostile.bin: big-endian checkpoint (byteorder 'big') is not supported");
  EXPECT_EQ(load_error(make_zip({{"a/data.pkl", "\x80\x02}."}, {"a/byteorder", "middle\x01"}})),
            "hostile.bin: unknown byteorder 'middle\\x01'");
}

TEST(HostileZip, EntriesThatLieAboutTheirSize) {
  const std::string pickle = one_tensor_pickle("w", "0", 0x3C000000, 0, {0x3C000000}, {1});
  const std::map<std::string, std::string> zeros = {{"0", std::string(4096, '\0')}};

  // Zip bomb style: a deflated entry of a few bytes declaring ~4 GB; the
  // storage claims exactly that much. Refused before it is inflated.
  std::string bomb = make_checkpoint(pickle, zeros, /*deflate=*/true);
  const size_t record = central_record(bomb, "archive/data/0");
  const uint32_t compressed = u32_at(bomb, record + 20);
  patch_sizes(bomb, "archive/data/0", compressed, 0xF0000000u);
  EXPECT_EQ(load_error(bomb), "hostile.bin: entry 'archive/data/0' declares 4026531840 bytes from " +
                                  std::to_string(compressed) +
                                  " compressed: more than deflate can expand (zip bomb?)");

  // A stored entry declaring more than the archive holds (libzip already
  // notices that it runs past the central directory).
  std::string stored = make_checkpoint(pickle, zeros);
  patch_sizes(stored, "archive/data/0", 0xF0000000u, 0xF0000000u);
  EXPECT_EQ(load_error(stored).rfind("hostile.bin: truncated or corrupted zip archive", 0), 0u) << load_error(stored);

  // A stored entry whose two sizes disagree.
  std::string mismatch = make_checkpoint(pickle, zeros);
  patch_sizes(mismatch, "archive/data/0", 4096, 0xF0000000u);
  EXPECT_EQ(load_error(mismatch),
            "hostile.bin: entry 'archive/data/0' is stored uncompressed but declares 4026531840 bytes from 4096");

  // A data.pkl declaring 300 MiB, with a compressed size that makes it
  // plausible (320 kB of noise after STOP): over the 256 MiB pickle limit.
  std::mt19937 rng(1);
  std::string noisy = "\x80\x02}.";
  for (int i = 0; i < 320000; ++i) noisy += static_cast<char>(rng());
  std::string big = make_checkpoint(noisy, {}, /*deflate=*/true);
  patch_sizes(big, "archive/data.pkl", u32_at(big, central_record(big, "archive/data.pkl") + 20), 300u << 20);
  EXPECT_EQ(load_error(big),
            "hostile.bin: entry 'archive/data.pkl' declares 314572800 bytes, more than the 268435456 allowed");

  // A deflated entry that is shorter than it declares (plausible ratio).
  std::string short_entry = make_checkpoint(one_tensor_pickle("w", "0", 2048, 0, {2048}, {1}), zeros, true);
  const size_t short_record = central_record(short_entry, "archive/data/0");
  patch_sizes(short_entry, "archive/data/0", u32_at(short_entry, short_record + 20), 8192);
  EXPECT_CONTAINS(load_error(short_entry), "hostile.bin: entry 'archive/data/0' is truncated (4096 of 8192 bytes)");
}

// Every single-byte change of a small valid checkpoint's pickle either loads
// or fails with a ruclip::Error: no crash, no other exception.
TEST(HostileZip, MutatedPicklesNeverCrash) {
  PickleWriter p;
  p.proto(2).global("collections", "OrderedDict").op('q').op(0).op(')').op('R').mark();
  p.str("w").global("torch._utils", "_rebuild_tensor_v2").mark().storage("FloatStorage", "0", 6).integer(1);
  p.ints({2, 2}).ints({3, 1}).op(0x89).op('h').op(0).op(')').op('R').op('t').op('R').op('u').stop();
  const std::string pickle = p.bytes();
  const std::map<std::string, std::string> storage = {{"0", raw_bytes<float>({0, 1, 2, 3, 4, 5})}};
  int loaded = 0, refused = 0;
  for (size_t i = 0; i < pickle.size(); ++i) {
    for (uint8_t flip : {0x01, 0x10, 0x80, 0xff}) {
      std::string mutated = pickle;
      mutated[i] = static_cast<char>(mutated[i] ^ flip);
      const std::string zip = make_checkpoint(mutated, storage);
      try {
        const StateDict dict =
            ruclip::read_torch_checkpoint(reinterpret_cast<const uint8_t*>(zip.data()), zip.size(), "mutated.bin");
        for (const auto& [name, t] : dict) t.to_float();
        ++loaded;
      } catch (const ruclip::Error& e) {
        EXPECT_EQ(std::string(e.what()).rfind("mutated.bin: ", 0), 0u) << e.what();
        ++refused;
      }
    }
  }
  EXPECT_GT(refused, 0);
  EXPECT_GT(loaded, 0);  // e.g. a changed tensor name or element count still within bounds
}

// ---------------------------------------------------------------------------
// The legacy format (torch < 1.6): five pickles, then the storages.

const std::string& legacy_fixture() {
  static const std::string bytes =
      ruclip_test::read_file(ruclip_test::data_dir() + "/ruclip-v1-tiny-legacy/ViT-B32-small.pt");
  return bytes;
}

// Where the fixture's storage section starts (after its key list pickle;
// pickletools.dis), and its first storage: '456889184', logit_scale's one float.
constexpr size_t kFixtureStorages = 14479;

// {name: tensor} with legacy persistent ids.
std::string legacy_one_tensor(const std::string& name, const std::string& key, int64_t storage_numel, int64_t offset,
                              const std::vector<int64_t>& shape, const std::vector<int64_t>& strides) {
  PickleWriter p;
  p.legacy().proto(2).global("collections", "OrderedDict").op(')').op('R');
  p.str(name).global("torch._utils", "_rebuild_tensor_v2").mark().storage("FloatStorage", key, storage_numel);
  p.integer(offset).ints(shape).ints(strides).op(0x89).global("collections", "OrderedDict").op(')').op('R');
  p.op('t').op('R').op('s').stop();
  return p.bytes();
}

// Two tensors on storages '0' and '1' (4 floats each), and their records.
std::string two_storage_pickle() {
  PickleWriter p;
  p.legacy().proto(2).op('}').mark();
  for (const char* key : {"0", "1"}) {
    p.str(std::string("w") + key).global("torch._utils", "_rebuild_tensor_v2").mark().storage("FloatStorage", key, 4);
    p.integer(0).ints({4}).ints({1}).op(0x89).op('}').op('t').op('R');
  }
  p.op('u').stop();
  return p.bytes();
}
const std::string kFour = storage_record(4, raw_bytes<float>({1, 2, 3, 4}));

// Something code-running, as pickle.loads would call it: module.name("touch <marker>").
std::string evil_pickle(const std::string& module, const std::string& name, const std::string& marker) {
  return PickleWriter().proto(2).global(module, name).mark().str("touch " + marker).op('t').op('R').stop().bytes();
}

TEST(HostileLegacy, ForbiddenGlobalsAreNamedNeverCalled) {
  const std::string dir = ruclip_test::make_temp_dir();
  const std::string marker = dir + "/executed";
  const std::string preamble = legacy_preamble();
  const std::vector<std::pair<std::string, std::string>> globals = {
      {"os", "system"},       {"builtins", "eval"}, {"torch", "load"}, {"posix", "system"},
      {"subprocess", "Popen"}, {"copyreg", "_reconstructor"}, {"torch.serialization", "_legacy_load"}};
  for (const auto& [module, name] : globals) {
    const std::string evil = evil_pickle(module, name, marker);
    const std::string global = "forbidden global '" + module + "." + name + "'";
    // As the object, as sys_info, as the storage key list: every pickle is restricted.
    EXPECT_EQ(load_error(preamble + evil + key_list_pickle({})),
              "hostile.bin: object pickle: " + global + " at byte " + std::to_string(preamble.size() + 2));
    const std::string no_sys_info = checkpoint_test::legacy_magic() + PickleWriter().proto(2).integer(1001).stop().bytes();
    EXPECT_EQ(load_error(no_sys_info + evil),
              "hostile.bin: sys_info pickle: " + global + " at byte " + std::to_string(no_sys_info.size() + 2));
    const std::string object = legacy_one_tensor("w", "0", 1, 0, {}, {});
    EXPECT_EQ(load_error(preamble + object + evil),
              "hostile.bin: storage key list pickle: " + global + " at byte " +
                  std::to_string(preamble.size() + object.size() + 2));
  }
  EXPECT_FALSE(std::filesystem::exists(marker));
  std::filesystem::remove_all(dir);
}

TEST(HostileLegacy, ForbiddenGlobalInsideTheRealFile) {
  // The fixture's first _rebuild_tensor_v2 (byte 189) swapped for posix.system.
  std::string bytes = legacy_fixture();
  const std::string rebuild = "ctorch._utils\n_rebuild_tensor_v2\n";
  ASSERT_EQ(bytes.find(rebuild), 189u);
  bytes.replace(189, rebuild.size(), "cposix\nsystem\n");
  EXPECT_EQ(load_error(bytes), "hostile.bin: object pickle: forbidden global 'posix.system' at byte 189");
  // On disk, naming the path.
  const std::string dir = ruclip_test::make_temp_dir();
  ruclip_test::write_file(dir + "/evil.pt", bytes);
  EXPECT_EQ(error_of([&] { ruclip::read_torch_checkpoint(dir + "/evil.pt"); }),
            dir + "/evil.pt: object pickle: forbidden global 'posix.system' at byte 189");
  std::filesystem::remove_all(dir);
}

TEST(HostileLegacy, MagicNumberAndProtocolVersion) {
  std::string bytes = legacy_fixture();
  bytes[8] = static_cast<char>(bytes[8] ^ 1);  // inside the magic number
  const std::string not_magic =
      "hostile.bin: starts like a pickle but not with torch.save's magic number: not a legacy torch checkpoint "
      "(or a corrupted one)";
  EXPECT_EQ(load_error(bytes), not_magic);
  EXPECT_EQ(load_error("\x80\x02K\x01."), not_magic);           // a pickle of 1
  EXPECT_EQ(load_error("\x80\x01\x8a\x0al\xfc"), not_magic);   // protocol 1 has no LONG1
  EXPECT_EQ(load_error("\x80"), "hostile.bin: truncated legacy torch.save file (1 bytes)");
  EXPECT_EQ(load_error(legacy_fixture().substr(0, 9)), "hostile.bin: truncated legacy torch.save file (9 bytes)");

  const std::string magic = checkpoint_test::legacy_magic();
  EXPECT_EQ(load_error(legacy_preamble({}, 1002)),
            "hostile.bin: legacy protocol version 1002 is not supported (expected 1001)");
  EXPECT_EQ(load_error(magic + PickleWriter().proto(2).str("1001").stop().bytes()),
            "hostile.bin: protocol version is a str, not an int");
  EXPECT_EQ(load_error(magic), "hostile.bin: protocol version pickle: truncated pickle (no STOP opcode) at byte 15");
}

TEST(HostileLegacy, SysInfo) {
  SysInfo big_endian;
  big_endian.little_endian = false;
  const std::string object = legacy_one_tensor("w", "0", 1, 0, {}, {});
  EXPECT_EQ(load_error(make_legacy(object, {{"0", 1, raw_bytes<float>({1})}}, legacy_preamble(big_endian))),
            "hostile.bin: big-endian checkpoint (sys_info little_endian is False) is not supported");
  SysInfo long8;
  long8.long_size = 8;
  EXPECT_EQ(load_error(legacy_preamble(long8)), "hostile.bin: sys_info type_sizes 'long' is 8, expected 4");
  SysInfo int2;
  int2.int_size = 2;
  EXPECT_EQ(load_error(legacy_preamble(int2)), "hostile.bin: sys_info type_sizes 'int' is 2, expected 4");
  SysInfo other_version;
  other_version.protocol_version = 7;
  EXPECT_EQ(load_error(legacy_preamble(other_version)), "hostile.bin: sys_info protocol_version is not 1001");

  const std::string head = checkpoint_test::legacy_magic() + PickleWriter().proto(2).integer(1001).stop().bytes();
  EXPECT_EQ(load_error(head + PickleWriter().proto(2).op(']').stop().bytes()),
            "hostile.bin: sys_info is a list, not a dict");
  PickleWriter no_sizes;
  no_sizes.proto(2).op('}').mark().str("protocol_version").integer(1001).str("little_endian").op(0x88).op('u').stop();
  EXPECT_EQ(load_error(head + no_sizes.bytes()), "hostile.bin: sys_info has no 'type_sizes'");
  PickleWriter int_order;
  int_order.proto(2).op('}').mark().str("protocol_version").integer(1001).str("little_endian").integer(1).op('u').stop();
  EXPECT_EQ(load_error(head + int_order.bytes()), "hostile.bin: sys_info little_endian is a int, not a bool");
}

TEST(HostileLegacy, TruncatedFile) {
  const std::string& full = legacy_fixture();
  // Inside the pickles.
  for (size_t cut = 1; cut < kFixtureStorages; cut += 97) {
    const std::string message = load_error(full.substr(0, cut));
    EXPECT_EQ(message.rfind("hostile.bin: ", 0), 0u) << "cut " << cut << ": " << message;
    EXPECT_CONTAINS(message, "truncated");
  }
  // A BINUNICODE at byte 4981 (pickletools.dis) runs past the cut.
  EXPECT_EQ(load_error(full.substr(0, 5000)), "hostile.bin: object pickle: truncated pickle at byte 4981");
  EXPECT_EQ(load_error(full.substr(0, kFixtureStorages - 1)),
            "hostile.bin: storage key list pickle: truncated pickle (no STOP opcode) at byte 14478");
  // In the storage section.
  EXPECT_EQ(load_error(full.substr(0, kFixtureStorages)),
            "hostile.bin: truncated in the storage section: no element count for storage '456889184' (1 of 73) at "
            "byte 14479");
  EXPECT_EQ(load_error(full.substr(0, kFixtureStorages + 10)),
            "hostile.bin: storage '456889184': its element count at byte 14479 says 1 F32 elements, but only 2 bytes "
            "of the file follow (truncated in the storage section, or a bad count)");
  for (size_t cut = kFixtureStorages + 1; cut < full.size(); cut += 4099)
    EXPECT_CONTAINS(load_error(full.substr(0, cut)), "truncated in the storage section");
  // The last storage holds 2560 floats (10240 bytes).
  EXPECT_CONTAINS(load_error(full.substr(0, full.size() - 1)),
                  "says 2560 F32 elements, but only 10239 bytes of the file follow (truncated");
  // On disk (read in pieces), naming the path.
  const std::string dir = ruclip_test::make_temp_dir();
  for (size_t cut : {size_t{5000}, kFixtureStorages + 10, full.size() - 1}) {
    ruclip_test::write_file(dir + "/cut.pt", full.substr(0, cut));
    const std::string message = error_of([&] { ruclip::read_torch_checkpoint(dir + "/cut.pt"); });
    EXPECT_EQ(message, dir + "/cut.pt" + load_error(full.substr(0, cut)).substr(std::string("hostile.bin").size()));
  }
  std::filesystem::remove_all(dir);
}

TEST(HostileLegacy, ElementCountsAndTrailingBytes) {
  const std::string& full = legacy_fixture();
  const std::string left = std::to_string(full.size() - kFixtureStorages - 8);
  for (uint64_t count : {uint64_t{1} << 40, uint64_t{1} << 62, ~uint64_t{0}}) {
    std::string bytes = full;
    bytes.replace(kFixtureStorages, 8, storage_record(count, ""));
    EXPECT_EQ(load_error(bytes), "hostile.bin: storage '456889184': its element count at byte 14479 says " +
                                     std::to_string(count) + " F32 elements, but only " + left +
                                     " bytes of the file follow (truncated in the storage section, or a bad count)");
  }
  std::string zero = full;
  zero.replace(kFixtureStorages, 8, storage_record(0, ""));
  EXPECT_EQ(load_error(zero), "hostile.bin: storage '456889184' holds 0 elements in the file, its persistent id claims 1");
  EXPECT_EQ(load_error(full + "\x80"),
            "hostile.bin: trailing garbage: 1 bytes after the last storage, from byte " + std::to_string(full.size()));

  // 10^12 floats (4 TB) claimed by the persistent id: refused before any allocation.
  const std::string huge = legacy_one_tensor("w", "0", 1000000000000, 0, {4}, {1});
  EXPECT_EQ(load_error(make_legacy(huge, {{"0", 4, raw_bytes<float>({1, 2, 3, 4})}})),
            "hostile.bin: storage '0' holds 4 elements in the file, its persistent id claims 1000000000000");
  const std::string record_and_pid_agree = legacy_preamble() + huge + key_list_pickle({"0"}) + storage_record(1000000000000, "x");
  EXPECT_CONTAINS(load_error(record_and_pid_agree),
                  "hostile.bin: storage '0': its element count at byte " +
                      std::to_string(record_and_pid_agree.size() - 9) +
                      " says 1000000000000 F32 elements, but only 1 bytes of the file follow");
  // numel * element size overflows 64 bits.
  EXPECT_EQ(load_error(make_legacy(legacy_one_tensor("w", "0", int64_t{1} << 62, 0, {1}, {1}), {})),
            "hostile.bin: storage '0' claims 4611686018427387904 F32 elements, more than 2^64 bytes");
}

TEST(HostileLegacy, StorageKeyList) {
  const std::string preamble = legacy_preamble();
  const std::string object = two_storage_pickle();
  const std::string valid = preamble + object + key_list_pickle({"0", "1"}) + kFour + kFour;
  EXPECT_EQ(ruclip::read_torch_checkpoint(reinterpret_cast<const uint8_t*>(valid.data()), valid.size(), "valid.pt").size(), 2u);
  EXPECT_EQ(load_error(preamble + object + key_list_pickle({"0", "0", "1"}) + kFour + kFour + kFour),
            "hostile.bin: storage '0' is listed twice in the storage key list");
  EXPECT_EQ(load_error(preamble + object + key_list_pickle({"0"}) + kFour),
            "hostile.bin: storage '1' is not in the storage key list: its bytes are missing");
  EXPECT_EQ(load_error(preamble + object + key_list_pickle({"0", "1", "2"}) + kFour + kFour + kFour),
            "hostile.bin: storage key list names storage '2', which nothing in the object pickle uses");
  EXPECT_EQ(load_error(preamble + object + PickleWriter().proto(2).op('}').stop().bytes()),
            "hostile.bin: storage key list is a dict, not a list");
  EXPECT_EQ(load_error(preamble + object + PickleWriter().proto(2).op(']').integer(0).op('a').stop().bytes()),
            "hostile.bin: storage key list holds a int, not a str");
  // One storage short: the records run out.
  EXPECT_EQ(load_error(preamble + object + key_list_pickle({"0", "1"}) + kFour),
            "hostile.bin: truncated in the storage section: no element count for storage '1' (2 of 2) at byte " +
                std::to_string(preamble.size() + object.size() + key_list_pickle({"0", "1"}).size() + kFour.size()));
}

TEST(HostileLegacy, PersistentIdsViewsAndClaims) {
  const std::vector<checkpoint_test::LegacyStorage> four = {{"0", 4, raw_bytes<float>({1, 2, 3, 4})}};
  // Views checked against their storages, as in the zip format.
  EXPECT_EQ(load_error(make_legacy(legacy_one_tensor("w", "0", 4, 0, {2, 3}, {3, 1}), four)),
            "hostile.bin: tensor 'w' reaches element 5 of storage '0' which holds 4");
  EXPECT_EQ(load_error(make_legacy(legacy_one_tensor("w", "0", 4, -1, {2}, {1}), four)),
            "hostile.bin: tensor 'w' has a negative storage offset (-1)");
  EXPECT_EQ(load_error(make_legacy(legacy_one_tensor("w", "0", 4, 0, {1000000}, {0}), four)),
            "hostile.bin: tensor 'w' has 1000000 elements, more than the 4 of storage '0' (overlapping views are "
            "not supported)");

  // The zip format's 5-tuple is not a legacy persistent id.
  PickleWriter five;
  five.proto(2).storage("FloatStorage", "0", 4).stop();
  EXPECT_EQ(load_error(make_legacy(five.bytes(), four)),
            "hostile.bin: object pickle: unsupported persistent id (expected ('storage', type, root_key, location, "
            "numel, view)) at byte " + std::to_string(legacy_preamble().size() + 52));  // its BINPERSID
  PickleWriter bad_view;
  bad_view.legacy().proto(2).mark().str("storage").global("torch", "FloatStorage").str("0").str("cpu").integer(4);
  bad_view.mark().str("v").integer(-1).integer(2).op('t').op('t').op('Q').stop();
  EXPECT_CONTAINS(load_error(make_legacy(bad_view.bytes(), four)),
                  "hostile.bin: object pickle: persistent id has a bad storage view (expected None or (key, offset, numel))");

  // Storage views (torch < 0.4) stay inside their storage; a tensor inside its view.
  auto view_tensor = [](int64_t view_offset, int64_t view_numel, int64_t offset, std::vector<int64_t> shape) {
    PickleWriter p;
    p.legacy().proto(2).op('}').str("w").global("torch._utils", "_rebuild_tensor_v2").mark();
    p.storage_view("FloatStorage", "0", 4, "v", view_offset, view_numel).integer(offset).ints(shape).ints({1});
    p.op(0x89).op('}').op('t').op('R').op('s').stop();
    return p.bytes();
  };
  EXPECT_EQ(ruclip::read_torch_checkpoint(reinterpret_cast<const uint8_t*>(make_legacy(view_tensor(1, 3, 1, {2}), four).data()),
                                          make_legacy(view_tensor(1, 3, 1, {2}), four).size(), "ok.pt")
                .at("w")
                .to_float(),
            (std::vector<float>{3, 4}));
  EXPECT_EQ(load_error(make_legacy(view_tensor(2, 3, 0, {1}), four)),
            "hostile.bin: view 'v' of storage '0' (elements 2 + 3) reaches past its 4 elements");
  EXPECT_EQ(load_error(make_legacy(view_tensor(0, 2, 1, {2}), four)),
            "hostile.bin: tensor 'w' reaches element 2 of view 'v' of storage '0' which holds 2");

  // One storage claimed with two sizes.
  PickleWriter two_claims;
  two_claims.legacy().proto(2).op('}').mark();
  for (int64_t numel : {4, 8}) {
    two_claims.str("w" + std::to_string(numel)).global("torch._utils", "_rebuild_tensor_v2").mark();
    two_claims.storage("FloatStorage", "0", numel).integer(0).ints({4}).ints({1}).op(0x89).op('}').op('t').op('R');
  }
  two_claims.op('u').stop();
  EXPECT_EQ(load_error(make_legacy(two_claims.bytes(), four)),
            "hostile.bin: storage '0' is claimed as 4 F32 and as 8 F32 elements");
}

// Every single-byte change and every truncation of a small legacy file
// either loads or fails with a ruclip::Error: no crash, no other exception.
TEST(HostileLegacy, MutatedFilesNeverCrash) {
  const std::string file = make_legacy(two_storage_pickle(), {{"0", 4, raw_bytes<float>({1, 2, 3, 4})},
                                                              {"1", 4, raw_bytes<float>({5, 6, 7, 8})}});
  int loaded = 0, refused = 0;
  auto attempt = [&](const std::string& bytes) {
    try {
      const StateDict dict =
          ruclip::read_torch_checkpoint(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), "mutated.pt");
      for (const auto& [name, t] : dict) t.to_float();
      ++loaded;
    } catch (const ruclip::Error& e) {
      EXPECT_EQ(std::string(e.what()).rfind("mutated.pt: ", 0), 0u) << e.what();
      ++refused;
    }
  };
  for (size_t i = 0; i < file.size(); ++i) {
    for (uint8_t flip : {0x01, 0x10, 0x80, 0xff}) {
      std::string mutated = file;
      mutated[i] = static_cast<char>(mutated[i] ^ flip);
      attempt(mutated);
    }
  }
  EXPECT_GT(loaded, 0);  // e.g. a changed name or float
  for (size_t cut = 1; cut < file.size(); ++cut) attempt(file.substr(0, cut));
  EXPECT_GT(refused, static_cast<int>(file.size()));
}

// ---------------------------------------------------------------------------
// safetensors.

std::string safetensors_file(const std::string& header, const std::string& data) {
  std::string file(8, '\0');
  const uint64_t n = header.size();
  std::memcpy(file.data(), &n, 8);
  return file + header + data;
}

TEST(HostileSafetensors, HeaderLength) {
  EXPECT_EQ(safetensors_error(""), "hostile.safetensors: too short for a safetensors file (0 bytes)");
  EXPECT_EQ(safetensors_error("abc"), "hostile.safetensors: too short for a safetensors file (3 bytes)");
  std::string file = safetensors_file("{}", "");
  file[0] = 100;
  EXPECT_EQ(safetensors_error(file), "hostile.safetensors: header length 100 exceeds the file size (10 bytes)");
  std::memset(file.data(), 0xff, 8);
  EXPECT_EQ(safetensors_error(file),
            "hostile.safetensors: header length 18446744073709551615 exceeds the file size (10 bytes)");
  EXPECT_EQ(safetensors_error(safetensors_file("{not json", "")), "hostile.safetensors: header is not valid JSON");
  EXPECT_EQ(safetensors_error(safetensors_file("[1, 2]", "")), "hostile.safetensors: header is not a JSON object");
  // Valid, empty.
  EXPECT_TRUE(ruclip::read_safetensors(reinterpret_cast<const uint8_t*>(safetensors_file("{}", "").data()), 10, "x")
                  .empty());
}

TEST(HostileSafetensors, BadEntries) {
  const std::string data(16, '\0');
  struct Case {
    std::string header;
    std::string message;
  };
  const std::vector<Case> cases = {
      {R"({"x":{"dtype":"F8_E4M3","shape":[2],"data_offsets":[0,2]}})", "tensor 'x': unknown dtype 'F8_E4M3'"},
      {R"({"x":{"dtype":"U64","shape":[2],"data_offsets":[0,16]}})", "tensor 'x': unknown dtype 'U64'"},
      {R"({"x":{"shape":[2],"data_offsets":[0,8]}})", "tensor 'x': no dtype"},
      {R"({"x":{"dtype":"F32","data_offsets":[0,8]}})", "tensor 'x': no shape"},
      {R"({"x":{"dtype":"F32","shape":[2]}})", "tensor 'x': data_offsets is not a pair of offsets"},
      {R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8,9]}})", "tensor 'x': data_offsets is not a pair of offsets"},
      {R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[-8,0]}})", "tensor 'x': data_offsets is not a pair of offsets"},
      {R"({"x":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", "tensor 'x': shape [-2] is not a list of sizes"},
      {R"({"x":{"dtype":"F32","shape":[2.5],"data_offsets":[0,8]}})", "tensor 'x': shape [2.5] is not a list of sizes"},
      {R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}})", "tensor 'x': data_offsets [8,0] end before they begin"},
      {R"({"x":{"dtype":"F32","shape":[6],"data_offsets":[0,24]}})",
       "tensor 'x': data_offsets [0,24] reach past the data buffer of 16 bytes"},
      {R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}})",
       "tensor 'x': shape [2] of F32 needs 8 bytes, data_offsets [0,4] give 4"},
      {R"({"x":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,16]}})",
       "tensor 'x': shape [4294967296,4294967296] is too large"},
      {R"({"x":{"dtype":"F64","shape":[4611686018427387904],"data_offsets":[0,16]}})",
       "tensor 'x': shape [4611686018427387904] is too large"},
      {R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"y":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
       "tensors 'x' and 'y' overlap"},
      {R"({"x":[1,2]})", "tensor 'x': header entry is not an object"},
      {R"({"__metadata__":{"a":1}})", "__metadata__ value of 'a' is not a string"},
      {R"({"__metadata__":[]})", "__metadata__ is not an object"},
  };
  for (const Case& c : cases)
    EXPECT_EQ(safetensors_error(safetensors_file(c.header, data)), "hostile.safetensors: " + c.message) << c.header;
}

TEST(HostileSafetensors, EveryTruncationOfAValidFile) {
  StateDict tensors;
  tensors["a"].shape = {3};
  tensors["a"].strides = {1};
  tensors["a"].storage = std::make_shared<const std::vector<uint8_t>>(12, 1);
  tensors["b"].dtype = ruclip::DType::BF16;
  tensors["b"].shape = {2, 2};
  tensors["b"].strides = {2, 1};
  tensors["b"].storage = std::make_shared<const std::vector<uint8_t>>(8, 2);
  const std::string dir = ruclip_test::make_temp_dir();
  ruclip::write_safetensors(dir + "/ok.safetensors", tensors, {{"format", "pt"}});
  const std::string full = ruclip_test::read_file(dir + "/ok.safetensors");
  ASSERT_EQ(ruclip::read_safetensors(dir + "/ok.safetensors").size(), 2u);
  for (size_t cut = 0; cut < full.size(); ++cut) {
    const std::string message = safetensors_error(full.substr(0, cut));
    EXPECT_EQ(message.rfind("hostile.safetensors: ", 0), 0u) << message;
  }
  ruclip_test::write_file(dir + "/cut.safetensors", full.substr(0, full.size() - 1));
  EXPECT_EQ(error_of([&] { ruclip::read_safetensors(dir + "/cut.safetensors"); }),
            dir + "/cut.safetensors: tensor 'b': data_offsets [12,20] reach past the data buffer of 19 bytes");
  EXPECT_EQ(error_of([&] { ruclip::read_safetensors(dir + "/missing.safetensors"); }),
            dir + "/missing.safetensors: cannot open (No such file or directory)");
  std::filesystem::remove_all(dir);
}

TEST(HostileSafetensors, MutatedHeadersNeverCrash) {
  const std::string header =
      R"({"__metadata__":{"k":"v"},"x":{"dtype":"F16","shape":[2,2],"data_offsets":[0,8]},)"
      R"("y":{"dtype":"I32","shape":[1],"data_offsets":[8,12]}})";
  const std::string file = safetensors_file(header, std::string(12, '\x01'));
  for (size_t i = 0; i < file.size(); ++i) {
    for (uint8_t flip : {0x01, 0x08, 0x80}) {
      std::string mutated = file;
      mutated[i] = static_cast<char>(mutated[i] ^ flip);
      try {
        const StateDict dict =
            ruclip::read_safetensors(reinterpret_cast<const uint8_t*>(mutated.data()), mutated.size(), "m");
        for (const auto& [name, t] : dict) t.to_float();
      } catch (const ruclip::Error& e) {
        EXPECT_EQ(std::string(e.what()).rfind("m: ", 0), 0u) << e.what();
      }
    }
  }
}

}  // namespace
