#!/usr/bin/env bash
# The element tests (runtime label changes, renegotiation, EOS, flushing,
# 100 PLAYING<->NULL cycles, the slow-model live pipeline) under
# AddressSanitizer + LeakSanitizer + UndefinedBehaviorSanitizer, in ./build-asan.
# Any leak, invalid access or undefined behaviour fails the run.
#
# --all: builds everything in ./build-asan and runs the whole `meson test`
# suite there instead (the Python tests run build-asan's ruclip and plugin).
# Other arguments go to the test binary (default) or to `meson test` (--all).
set -euo pipefail
cd "$(dirname "$0")/.."
all=false
if [ "${1:-}" = "--all" ]; then
  all=true
  shift
fi
bash scripts/install-deps.sh
if [ ! -f build-asan/build.ninja ]; then
  meson setup build-asan --buildtype=debugoptimized -Db_sanitize=address,undefined -Db_lundef=false
fi
if $all; then
  ninja -C build-asan -j "$(nproc)"
else
  ninja -C build-asan -j "$(nproc)" tests/test_element gst-plugin/libgstruclip.so tools/ruclip core/ruclip-sentencepiece.so
fi

export GST_PLUGIN_PATH="$PWD/build-asan/gst-plugin"
# Load plugins in this process: the (uninstrumented) plugin scanner can't load them.
export GST_REGISTRY_FORK=no GST_REGISTRY_1_0="$PWD/build-asan/gst-registry.bin"
export RUCLIP_EXE="$PWD/build-asan/tools/ruclip" RUCLIP_TEST_DATA="$PWD/tests/data"
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
# First run only builds the plugin registry (GStreamer keeps a few one-time
# allocations from scanning it, which are not ours); meson test gives the
# tests the one in build-asan/tests.
if $all; then GST_REGISTRY_1_0="$PWD/build-asan/tests/gst-registry.bin"; fi
ASAN_OPTIONS=detect_leaks=0 ./build-asan/tests/test_element --gtest_filter=-* > /dev/null
export LSAN_OPTIONS=suppressions="$PWD/tests/lsan.supp":print_suppressions=0
export ASAN_OPTIONS=detect_leaks=1:fast_unwind_on_malloc=0:malloc_context_size=30
if ! $all; then
  exec ./build-asan/tests/test_element "$@"
fi
start=$SECONDS
status=0
# Sanitized code runs several times slower: room on the per-test timeouts.
meson test -C build-asan --print-errorlogs --num-processes "$(nproc)" --timeout-multiplier 3 "$@" || status=$?
echo "== whole suite under ASan+UBSan: $((SECONDS - start)) s of tests, exit $status"
exit $status
