#!/usr/bin/env bash
# The suite on the LibTorch inside PyPI's torch 2.11 (CUDA build): builds
# ./build-torch2 (scripts/build-libtorch2.sh) and runs every test there but
# those that don't depend on LibTorch's version (the fuzz replays, the source
# layout, configure's ABI check on stand-in LibTorches) or that check Debian's
# installed layout (install). Prints its own closing line.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build-libtorch2.sh
mapfile -t tests < <(meson test -C build-torch2 --list 2>/dev/null | sed 's/^ruclip-gst[^/]*\/ //' |
                     grep -v -x -e install -e layout -e configure -e 'fuzz_replay_.*')
status=0
meson test -C build-torch2 --print-errorlogs --num-processes 2 "${tests[@]}" "$@" || status=$?
python3 scripts/test_summary.py build-torch2/meson-logs/testlog.json
exit $status
