#!/usr/bin/env bash
# The README's test command: installs what it needs, builds, runs the whole
# suite (then each fuzz target briefly), and prints the runners' summary.
# The sanitizer runs rebuild everything with LibTorch (long even for the
# element tests alone) and have their own commands (tests/README.md), so
# that this one stays under CI's 15-minute budget.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh
status=0
meson test -C build --print-errorlogs --num-processes 2 "$@" || status=$?

fuzzed=0
echo "== each fuzz target for 10 s (scripts/fuzz.sh)"
bash scripts/fuzz.sh 10 || fuzzed=$?
[ "$fuzzed" -eq 0 ] || status=1
echo "$fuzzed" > build/fuzz-status  # for .ci/run's closing line

# One plain closing line, per test case (scripts/test_summary.py), plus the fuzz run.
python3 scripts/test_summary.py build/meson-logs/testlog.json "$fuzzed"
exit $status
