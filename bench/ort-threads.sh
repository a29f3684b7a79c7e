#!/usr/bin/env bash
# Which ONNX Runtime thread settings are fastest on this machine: each setting
# of ONNX Runtime in bench/peers.py (intra-op threads, inter-op threads, spinning, execution
# mode) at batch 8 and 1, interleaved over ROUNDS so that load from elsewhere
# hits them all alike. bench/cpu.sh measures the two that win (ORT_SETTINGS there).
#   [SETTINGS="..."] bash bench/ort-threads.sh [SECONDS] [ROUNDS]      (default 5 3)
# Needs bench/onnx/vit-b32-224.onnx and bench/.venv (bench/cpu.sh makes both).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-5}"
rounds="${2:-3}"
n="$(nproc)"
model=bench/onnx/vit-b32-224.onnx
out="$(mktemp -d)"
# "intra inter spinning mode", one setting each; SETTINGS="2 1 1 sequential;2 1 0 sequential" picks some
IFS=';' read -r -a settings <<<"${SETTINGS:-$n 1 1 sequential;$n 1 0 sequential;1 1 1 sequential;$n $n 1 parallel;$n $n 0 parallel}"
for round in $(seq "$rounds"); do
  for batch in 8 1; do
    for s in "${settings[@]}"; do
      read -r intra inter spin mode <<<"$s"
      bench/.venv/bin/python bench/peers.py --engine onnxruntime --model "$model" --batch "$batch" \
        --seconds "$seconds" --threads "$intra" --inter-op "$inter" --spinning "$spin" --execution-mode "$mode" |
        tee -a "$out/ort.jsonl"
    done
  done
done
python3 - "$out/ort.jsonl" <<'PY'
import json, statistics, sys
runs = [json.loads(l) for l in open(sys.argv[1])]
print("\n| batch | intra | inter | spinning | mode | images/s median (min-max) | p50 ms median |")
print("|---|---|---|---|---|---|---|")
keys = sorted({(r["batch"], r["threads"], r["inter_op_threads"], r["intra_op_spinning"], r["execution_mode"]) for r in runs},
              key=lambda k: (-k[0], k[1:]))
for k in keys:
    rs = [r for r in runs if (r["batch"], r["threads"], r["inter_op_threads"], r["intra_op_spinning"], r["execution_mode"]) == k]
    ips = [r["images_per_second"] for r in rs]
    print(f"| {k[0]} | {k[1]} | {k[2]} | {k[3]} | {k[4]} | {statistics.median(ips):.1f} ({min(ips):.1f}-{max(ips):.1f}) | "
          f"{statistics.median(r['image_batch_ms']['p50'] for r in rs):.0f} |")
PY
