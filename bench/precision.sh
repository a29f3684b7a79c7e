#!/usr/bin/env bash
# The reduced precisions (bf16, int8) against fp32 on the shipped model's
# evaluation sets (the recipe's renderer and seeds:
# models/recipes/ruclip-shapes-ru/train.sh): top-1 agreement over all
# pictures, and the cosine between fp32 and reduced image embeddings on the
# first 200 pictures of each set. PRECISIONS="bf16 int8 int8-mixed" (default); with
# RUCLIP_MAX_CPU_ISA=avx2 the kernels of an AVX2-only CPU (there bf16 runs fp32).
# Then OpenVINO's bf16 and int8 against its own fp32 the same way (bench/.venv).
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
  for precision in fp32 ${PRECISIONS:-bf16 int8 int8-mixed}; do
    "$ruclip" eval --model "$model" --data "$work/eval-$set/labels.csv" "${labels[@]}" --template "{}" \
      --precision "$precision" --json-only > "$work/$set-$precision.json"
  done
  images=()
  for f in $(tail -n +2 "$work/eval-$set/labels.csv" | head -200 | cut -d, -f1); do images+=(--image "$work/eval-$set/$f"); done
  for precision in fp32 ${PRECISIONS:-bf16 int8 int8-mixed}; do
    "$ruclip" embed --model "$model" --precision "$precision" "${images[@]}" > "$work/$set-$precision-embed.json"
  done
  python3 - "$work" "$set" ${PRECISIONS:-bf16 int8 int8-mixed} <<'PY'
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
# The peers' own reduced precisions, measured the same way: OpenVINO (PyPI, bench/.venv: bench/cpu.sh
# makes it) on this model's image tower exported to ONNX, at fp32, bf16 and int8 (NNCF, calibrated on
# pictures of another draw); top-1 agreement with its own fp32 over the same labels. Skipped, and said,
# without bench/.venv.
if [ -x bench/.venv/bin/python ]; then
  /usr/bin/python3 bench/export_onnx.py "$work/tower.onnx" --weights "$model" 2> /dev/null
  resolution="$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["image_resolution"])' "$model/config.json")"
  texts=()
  while IFS= read -r l; do texts+=(--text "$l"); done < models/recipes/ruclip-shapes-ru/labels.txt
  "$ruclip" embed --model "$model" "${texts[@]}" > "$work/labels-embed.json"
  for set in seen held; do
    for precision in fp32 ${OPENVINO_PRECISIONS:-bf16 int8}; do
      bench/.venv/bin/python bench/peers.py --engine openvino --model "$work/tower.onnx" --precision "$precision" \
        --resolution "$resolution" --embed "$work/eval-$set/labels.csv" > "$work/openvino-$set-$precision.json"
    done
    python3 - "$work" "$set" ${OPENVINO_PRECISIONS:-bf16 int8} <<'PY'
import json, math, sys
work, name, *reduced = sys.argv[1:]
labels = [l.strip() for l in open("models/recipes/ruclip-shapes-ru/labels.txt") if l.strip()]
def unit(v):
    n = math.sqrt(sum(x * x for x in v))
    return [x / n for x in v]
texts = [unit(v) for v in json.load(open(f"{work}/labels-embed.json"))["text"]]
truth = {l.split(",", 1)[0]: l.strip().split(",", 1)[1] for l in open(f"{work}/eval-{name}/labels.csv").readlines()[1:]}
def predictions(precision):
    d = json.load(open(f"{work}/openvino-{name}-{precision}.json"))
    out = {}
    for f, e in zip(d["files"], d["embeddings"]):
        e = unit(e)
        out[f] = max(range(len(labels)), key=lambda i: sum(a * b for a, b in zip(texts[i], e)))
    return d, out
a_doc, a = predictions("fp32")
fp32_top1 = sum(labels[a[f]] == truth[f] for f in a) / len(a)
for precision in reduced:
    b_doc, b = predictions(precision)
    print(json.dumps({"set": name, "implementation": b_doc["implementation"], "precision": precision,
                      "precision_running": b_doc["precision_running"], "images": len(a),
                      "top1_agreement": sum(a[f] == b[f] for f in a) / len(a), "fp32_top1": fp32_top1,
                      "top1": sum(labels[b[f]] == truth[f] for f in b) / len(b)}))
PY
  done
else
  echo "precision.sh: no bench/.venv (bash bench/cpu.sh makes it): OpenVINO's precisions not measured" >&2
fi
rm -rf "$work"
