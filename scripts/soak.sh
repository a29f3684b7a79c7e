#!/usr/bin/env bash
# Soak test (tests/soak/README.md): 20,000 frames of a live source through
# ruclipfilter mode=async, labels changed every 100 frames and resolution every
# 2,000, checking memory, results and counters. Release build in ./build-soak.
# Prints one JSON line ("ok": true/false) and exits non-zero on failure.
# Extra arguments go to the program: --frames N --fps F --interval I --rss-bound-mib M.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh >&2
if [ ! -f build-soak/build.ninja ]; then
  meson setup build-soak --buildtype=release >&2
fi
ninja -C build-soak -j "$(nproc)" tests/soak/soak gst-plugin/libgstruclip.so >&2

export GST_PLUGIN_PATH="$PWD/build-soak/gst-plugin"
export GST_REGISTRY_1_0="$PWD/build-soak/gst-registry.bin"
export RUCLIP_TEST_DATA="$PWD/tests/data"
exec ./build-soak/tests/soak/soak "$@"
