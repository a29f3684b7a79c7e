#!/usr/bin/env bash
# The CPU benchmark behind the README's speed table: ViT-B/32-224 image
# embeddings, ours (ruclip bench, fp32 and bf16) against the reference
# (bench/reference.py on Debian's python3-torch) at each of its thread
# settings, batch 8 and batch 1, all in one run on an otherwise idle machine.
#   bash bench/cpu.sh [SECONDS_PER_MEASUREMENT]      (default 20)
# Prints JSON lines, then a summary table. Needs the build (scripts/build.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-20}"
threads="$(nproc)"
dpkg-query -W -f='${Status}' python3-torch 2>/dev/null | grep -q "install ok installed" ||
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-torch
out="$(mktemp -d)"
echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset}" >&2

for batch in 8 1; do
  for setting in "1 $threads" "$threads 1" "$threads $threads"; do
    set -- $setting
    OMP_NUM_THREADS=$1 OPENBLAS_NUM_THREADS=$2 /usr/bin/python3 bench/reference.py --geometry vit-b32-224 \
      --batch "$batch" --seconds "$seconds" | tee -a "$out/reference.jsonl"
  done
  /usr/bin/python3 bench/reference.py --geometry vit-b32-224 --batch "$batch" --seconds 1 --bf16 | tee -a "$out/reference.jsonl"
  for precision in fp32 bf16; do
    ./build/core/ruclip bench --geometry vit-b32-224 --batch "$batch" --precision "$precision" \
      --threads "$threads" --seconds "$seconds" | python3 -c "import json,sys; print(json.dumps(json.load(sys.stdin)))" \
      | tee -a "$out/ours.jsonl"
  done
done

python3 - "$out" <<'PY'
import json, sys, os
d = sys.argv[1]
ref = [json.loads(l) for l in open(os.path.join(d, "reference.jsonl"))]
ours = [json.loads(l) for l in open(os.path.join(d, "ours.jsonl"))]
print("\n| batch | implementation | precision | threads (OMP/BLAS) | images/s | batch p50 ms | vs best reference | of the limit |")
print("|---|---|---|---|---|---|---|---|")
for batch in (8, 1):
    runs = [r for r in ref if r["batch"] == batch and "images_per_second" in r]
    best = max(runs, key=lambda r: r["images_per_second"])
    for r in runs:
        mark = " (best)" if r is best else ""
        print(f"| {batch} | reference{mark} | fp32 | {r['OMP_NUM_THREADS']}/{r['OPENBLAS_NUM_THREADS']} | "
              f"{r['images_per_second']:.1f} | {r['image_batch_ms']['p50']:.0f} | {r['images_per_second'] / best['images_per_second']:.2f}x | |")
    for r in ref:
        if r["batch"] == batch and "error" in r:
            print(f"| {batch} | reference | bf16 | | fails: {r['error']} | | | |")
    for o in ours:
        if o["batch"] != batch:
            continue
        print(f"| {batch} | ruclip bench | {o['precision']} | {o['threads']} | {o['images_per_second']:.1f} | "
              f"{o['image_batch_ms']['p50']:.0f} | {o['images_per_second'] / best['images_per_second']:.2f}x | "
              f"{o['fraction_of_limit']:.0%} of {o['limit_images_per_second']:.1f} |")
print("\nmatmul GFLOP/s measured in the same run: " + ", ".join(
    f"{o['precision']}: LibTorch {o['matmul_gflops']:.0f}" + (f", oneDNN fp32 {o['onednn_fp32_matmul_gflops']:.0f}" if o['onednn_fp32_matmul_gflops'] else "")
    for o in ours if o["batch"] == 8))
PY
