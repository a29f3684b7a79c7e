// What every fuzz target asserts: the input is accepted, or refused with a
// ruclip::Error. Any other exception, a crash, a leak or undefined behaviour
// (the sanitizers) is a finding.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "ruclip/error.h"

template <typename F>
void fuzz_expect_clean_error(F&& f) {
  try {
    f();
  } catch (const ruclip::Error&) {
    // refused with a message: fine
  } catch (...) {
    std::abort();
  }
}
