#!/usr/bin/env bash
# Makes docs/similarity.png, the README's similarity picture (the ruCLIP
# article's matrix of images against captions), with the project's own tools:
# `ruclip synth` draws a set of shape pictures (the evaluation renderer, 160x120,
# a fixed seed), the first picture of each of five labels is taken, and
# `ruclip similarity --png` scores the five labels against the five pictures
# with the shipped model (models/ruclip-shapes-ru).
#
#   scripts/similarity-picture.sh [OUT.png]   (default docs/similarity.png; needs a build: scripts/build.sh)
#
# RUCLIP_MODEL overrides the model; RUCLIP_LABELS (';'-separated) the labels,
# each of which must be a label `ruclip synth` draws.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-docs/similarity.png}"
ruclip=build/tools/ruclip
if [ ! -x "$ruclip" ]; then
  echo "no $ruclip: run scripts/build.sh first" >&2
  exit 1
fi
model="${RUCLIP_MODEL:-$PWD/models/ruclip-shapes-ru}"
# Colour-shape pairs the shipped model saw in training (models/ruclip-shapes-ru/README.md).
IFS=';' read -r -a labels <<< "${RUCLIP_LABELS:-красный круг;синий квадрат;жёлтый треугольник;зелёная звезда;фиолетовый круг}"

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
"$ruclip" synth --out "$tmp/synth" --count 400 --style eval --width 160 --height 120 --seed 3 > /dev/null
args=()
for label in "${labels[@]}"; do
  # labels.csv: file,label; the first picture of this label.
  file="$(awk -F, -v l="$label" '$2 == l { print $1; exit }' "$tmp/synth/labels.csv")"
  if [ -z "$file" ]; then
    echo "ruclip synth drew no picture labelled '$label'" >&2
    exit 1
  fi
  # A stable name: the picture's file name is not shown, but the JSON on stdout names it.
  cp "$tmp/synth/$file" "$tmp/$(( ${#args[@]} / 2 )).png"
  args+=(--image "$tmp/$(( ${#args[@]} / 2 )).png")
done
for label in "${labels[@]}"; do args+=(--text "$label"); done
mkdir -p "$(dirname "$out")"
"$ruclip" similarity --model "$model" --png "$out" "${args[@]}" > "$tmp/similarity.json"
echo "$out: $(stat -c %s "$out") bytes"
