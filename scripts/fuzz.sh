#!/usr/bin/env bash
# Fuzzes every parser that reads outside input (tests/fuzz/README.md):
#   bash scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]     (default: 10 s, all eight)
# Builds ./build-fuzz (clang, libFuzzer, ASan + UBSan), replays each target's
# seed corpus and regression inputs, then fuzzes it for SECONDS, two targets
# at a time. Inputs that find new coverage are kept in build-fuzz/corpus/NAME
# (not in git), so later runs go on from there. A crash, leak, sanitizer report
# or unexpected exception fails the run and leaves crash-*/leak-* files in
# build-fuzz/findings/NAME. Prints one JSON line per target.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-10}"
shift || true
targets=("$@")
((${#targets[@]})) || targets=(checkpoint safetensors config yttm sentencepiece labels tokenizer gpt2)

bash scripts/install-deps.sh
if [ ! -f build-fuzz/build.ninja ]; then
  CC=clang CXX=clang++ meson setup build-fuzz -Dfuzzing=true -Db_sanitize=address,undefined -Db_lundef=false \
    -Dgst_plugin=disabled -Dtests=disabled -Dcuda=disabled > /dev/null
fi
ninja -C build-fuzz -j "$(nproc)" core/ruclip-sentencepiece.so $(printf 'tests/fuzz/fuzz_%s ' "${targets[@]}") > /dev/null

export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
run_target() {
  local name="$1" corpus="build-fuzz/corpus/$1" findings="build-fuzz/findings/$1"
  mkdir -p "$corpus" "$findings"
  local inputs=("tests/fuzz/corpus/$name")
  [ -d "tests/fuzz/regressions/$name" ] && inputs+=("tests/fuzz/regressions/$name")
  local log="$findings/last-run.log" status=0
  # -rss_limit_mb: a parser must refuse a hostile size before allocating it.
  (cd "$findings" && "../../tests/fuzz/fuzz_$name" "../../corpus/$name" "${inputs[@]/#/../../../}" \
    -max_total_time="$seconds" -max_len=65536 -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
    > "$(basename "$log")" 2>&1) || status=$?
  local execs
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo 0)
  printf '{"target": "fuzz_%s", "seconds": %s, "executions": %s, "corpus_files": %s, "status": %s}\n' \
    "$name" "$seconds" "${execs:-0}" "$(ls "$corpus" | wc -l)" "$status"
  if [ "$status" -ne 0 ]; then
    echo "fuzz_$name FAILED: see $log" >&2
    tail -n 40 "$log" >&2
    return 1
  fi
}

failed=0
pids=()
for name in "${targets[@]}"; do
  run_target "$name" &
  pids+=($!)
  if ((${#pids[@]} >= $(nproc))); then
    wait "${pids[0]}" || failed=1
    pids=("${pids[@]:1}")
  fi
done
for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
exit "$failed"
