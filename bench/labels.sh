#!/usr/bin/env bash
# Ready to classify with a big label set: `ruclip classify` with 200 Russian
# labels x upstream's six templates (1200 texts) on a full-size ViT-B/32-224
# model (random weights, bench/make_checkpoint.py), one image; and loading
# that model and embedding one image. Wall time and peak RSS of each command,
# on this CPU and with the instruction set capped to AVX2 (RUCLIP_MAX_CPU_ISA,
# a Zen 3 / Haswell-class CPU's kernels; OpenBLAS keeps its own choice).
#   bash bench/labels.sh [MODEL_DIR]   (default /tmp/ruclip-b32-224-random, made if absent)
# Labels: 2-3 word phrases from Debian's fortunes-ru, the same every run. The
# model's tokenizer is the test model's 3000-token one, which cuts Russian
# into more (so longer) pieces than the published 49408-token vocabulary.
set -euo pipefail
cd "$(dirname "$0")/.."
model="${1:-/tmp/ruclip-b32-224-random}"
ruclip="${RUCLIP:-build/tools/ruclip}"
dpkg-query -W -f='${Status}' fortunes-ru 2>/dev/null | grep -q "install ok installed" ||
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends fortunes-ru
[ -f "$model/pytorch_model.bin" ] || /usr/bin/python3 bench/make_checkpoint.py "$model" >&2
image=tests/data/ruclip-tiny-v2/images/img1_64x48_RGB.png
mapfile -t labels < <(python3 - <<'PY'
import glob, random, re
words = []
for path in sorted(glob.glob("/usr/share/games/fortunes/ru/*.u8")):
    words += re.findall(r"[а-яё]{3,}", open(path, encoding="utf-8", errors="ignore").read().lower())
rng = random.Random(7)
seen = set()
while len(seen) < 200:
    i = rng.randrange(len(words) - 3)
    seen.add(" ".join(words[i:i + rng.choice((2, 3))]))
print("\n".join(sorted(seen)))
PY
)
args=()
for l in "${labels[@]}"; do args+=(--label "$l"); done
echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(date -u +%F)" >&2
for cap in all avx2; do
  for what in classify embed; do
    if [ "$what" = classify ]; then cmd=("$ruclip" classify --model "$model" "${args[@]}" --top-k 3 "$image")
    else cmd=("$ruclip" embed --model "$model" --image "$image"); fi
    /usr/bin/time -f "%e %M" -o /tmp/labels-time.txt env RUCLIP_MAX_CPU_ISA="$cap" "${cmd[@]}" > /tmp/labels-out.json
    read -r seconds kib < /tmp/labels-time.txt
    python3 -c "import json,sys; print(json.dumps({'command': sys.argv[1], 'labels': int(sys.argv[2]), 'isa_cap': sys.argv[3],
      'seconds': float(sys.argv[4]), 'peak_rss_mib': round(int(sys.argv[5]) / 1024)}))" \
      "$what" "$([ "$what" = classify ] && echo ${#labels[@]} || echo 0)" "$cap" "$seconds" "$kib"
  done
done
