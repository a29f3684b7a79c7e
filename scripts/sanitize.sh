#!/usr/bin/env bash
# The element tests (runtime label changes, renegotiation, EOS, flushing,
# 100 PLAYING<->NULL cycles, the slow-model live pipeline) under
# AddressSanitizer + LeakSanitizer + UndefinedBehaviorSanitizer, in ./build-asan.
# Any leak, invalid access or undefined behaviour fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
if [ ! -f build-asan/build.ninja ]; then
  meson setup build-asan --buildtype=debugoptimized -Db_sanitize=address,undefined -Db_lundef=false
fi
ninja -C build-asan -j "$(nproc)" tests/test_element gst-plugin/libgstruclip.so core/ruclip core/ruclip-sentencepiece.so

export GST_PLUGIN_PATH="$PWD/build-asan/gst-plugin"
# Load plugins in this process: the (uninstrumented) plugin scanner can't load them.
export GST_REGISTRY_FORK=no GST_REGISTRY_1_0="$PWD/build-asan/gst-registry.bin"
export RUCLIP_EXE="$PWD/build-asan/core/ruclip" RUCLIP_TEST_DATA="$PWD/tests/data"
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
# First run only builds the plugin registry (GStreamer keeps a few one-time
# allocations from scanning it, which are not ours).
ASAN_OPTIONS=detect_leaks=0 ./build-asan/tests/test_element --gtest_filter=-* > /dev/null
LSAN_OPTIONS=suppressions="$PWD/tests/lsan.supp":print_suppressions=0 ASAN_OPTIONS=detect_leaks=1:fast_unwind_on_malloc=0:malloc_context_size=30 ./build-asan/tests/test_element "$@"
