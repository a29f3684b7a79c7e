#!/usr/bin/env bash
# The reduced precisions (bf16, int8) against fp32 on the shipped model's
# evaluation sets (the recipe's renderer and seeds:
# models/recipes/ruclip-shapes-ru/train.sh): top-1 agreement over all
# pictures, and the cosine between fp32 and reduced image embeddings on the
# first 200 pictures of each set. PRECISIONS="bf16 int8" (default); with
# RUCLIP_MAX_CPU_ISA=avx2 the kernels of an AVX2-only CPU (there bf16 runs fp32).
#   bash bench/precision.sh [MODEL_DIR]     (default: models/ruclip-shapes-ru)
set -euo pipefail
cd "$(dirname "$0")/.."
ruclip=./build/tools/ruclip
model="${1:-models/ruclip-shapes-ru}"
work="$(mktemp -d)"
"$ruclip" synth --out "$work/eval-seen" --count 1500 --style eval --pairs seen --solid no --jpeg-quality 75 --seed 2 > /dev/null
"$ruclip" synth --out "$work/eval-held" --count 1000 --style eval --pairs held --solid no --jpeg-quality 75 --seed 3 > /dev/null
labels=()
while IFS= read -r l; do labels+=(--label "$l"); done < models/recipes/ruclip-shapes-ru/labels.txt
for set in seen held; do
  for precision in fp32 ${PRECISIONS:-bf16 int8}; do
    "$ruclip" eval --model "$model" --data "$work/eval-$set/labels.csv" "${labels[@]}" --template "{}" \
      --precision "$precision" --json-only > "$work/$set-$precision.json"
  done
  images=()
  for f in $(tail -n +2 "$work/eval-$set/labels.csv" | head -200 | cut -d, -f1); do images+=(--image "$work/eval-$set/$f"); done
  for precision in fp32 ${PRECISIONS:-bf16 int8}; do
    "$ruclip" embed --model "$model" --precision "$precision" "${images[@]}" > "$work/$set-$precision-embed.json"
  done
  python3 - "$work" "$set" ${PRECISIONS:-bf16 int8} <<'PY'
import json, math, sys
work, name, *reduced = sys.argv[1:]
a = json.load(open(f"{work}/{name}-fp32.json"))
pa = {p["file"]: p["predicted"] for p in a["predictions"]}
ea = json.load(open(f"{work}/{name}-fp32-embed.json"))["image"]
for precision in reduced:
    b = json.load(open(f"{work}/{name}-{precision}.json"))
    pb = {p["file"]: p["predicted"] for p in b["predictions"]}
    agree = sum(pa[f] == pb[f] for f in pa) / len(pa)
    eb = json.load(open(f"{work}/{name}-{precision}-embed.json"))["image"]
    cos = [sum(x * y for x, y in zip(u, v)) / math.sqrt(sum(x * x for x in u) * sum(y * y for y in v)) for u, v in zip(ea, eb)]
    print(json.dumps({"set": name, "precision": precision, "images": len(pa), "top1_agreement": agree,
                      "fp32_top1": a["top1"], "top1": b["top1"],
                      "embedding_cosine_min": min(cos), "embedding_cosine_mean": sum(cos) / len(cos)}))
PY
done
rm -rf "$work"
