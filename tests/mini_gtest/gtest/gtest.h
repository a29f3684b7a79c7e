// A stand-in for the few GoogleTest macros tests/test_cuda_preprocess.cpp uses,
// with its own main(), so scripts/gpu-check.sh can build that test on a bare
// GPU machine where GoogleTest is not installed. Never used by the meson build.
#pragma once
#include <cstdio>
#include <functional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace mini_gtest {

struct Message {
  std::ostringstream text;
  template <typename T>
  Message& operator<<(const T& v) {
    text << v;
    return *this;
  }
};

struct State {
  bool failed = false, skipped = false;
};
inline State& state() {
  static State s;
  return s;
}

// `Report(...) = Message() << ...` records and prints; returns void, so FAIL()
// and GTEST_SKIP() can `return` it as GoogleTest does.
struct Report {
  const char* file;
  int line;
  bool skip;
  void operator=(const Message& m) const {
    if (skip) {
      state().skipped = true;
      std::printf("%s:%d: Skipped\n%s\n", file, line, m.text.str().c_str());
    } else {
      state().failed = true;
      std::printf("%s:%d: Failure\n%s\n", file, line, m.text.str().c_str());
    }
  }
};

inline std::vector<std::pair<std::string, std::function<void()>>>& tests() {
  static std::vector<std::pair<std::string, std::function<void()>>> t;
  return t;
}
struct Register {
  Register(const char* name, void (*fn)()) { tests().emplace_back(name, fn); }
};

}  // namespace mini_gtest

#define MINI_GTEST_REPORT(skip) ::mini_gtest::Report{__FILE__, __LINE__, skip} = ::mini_gtest::Message()
#define TEST(suite, name)                                                                   \
  static void suite##_##name();                                                             \
  static ::mini_gtest::Register suite##_##name##_registered(#suite "." #name, suite##_##name); \
  static void suite##_##name()
#define EXPECT_TRUE(c) \
  if (c)               \
    ;                  \
  else                 \
    MINI_GTEST_REPORT(false) << "expected: " #c "\n"
#define EXPECT_EQ(a, b) EXPECT_TRUE((a) == (b))
#define EXPECT_NE(a, b) EXPECT_TRUE((a) != (b))
#define EXPECT_THROW(stmt, type)                                    \
  try {                                                             \
    stmt;                                                           \
    MINI_GTEST_REPORT(false) << #stmt " did not throw " #type;      \
  } catch (const type&) {                                           \
  } catch (...) {                                                   \
    MINI_GTEST_REPORT(false) << #stmt " threw another type";        \
  }
#define FAIL() return MINI_GTEST_REPORT(false)
#define GTEST_SKIP() return MINI_GTEST_REPORT(true)

int main() {
  int failed = 0;
  for (const auto& [name, fn] : mini_gtest::tests()) {
    mini_gtest::state() = {};
    std::printf("[ RUN      ] %s\n", name.c_str());
    try {
      fn();
    } catch (const std::exception& e) {
      MINI_GTEST_REPORT(false) << "exception: " << e.what();
    }
    const auto& s = mini_gtest::state();
    std::printf("%s %s\n", s.failed ? "[  FAILED  ]" : s.skipped ? "[  SKIPPED ]" : "[       OK ]", name.c_str());
    failed += s.failed;
  }
  std::printf("%d of %zu tests failed\n", failed, mini_gtest::tests().size());
  return failed ? 1 : 0;
}
