#!/usr/bin/env bash
# Reproduces models/ruclip-shapes-ru: data, tokenizer, training, evaluation.
#   bash models/recipes/ruclip-shapes-ru/train.sh [OUT_DIR]   (default: models/ruclip-shapes-ru)
# Needs the build (bash scripts/build.sh) and Debian's sentencepiece and fortunes-ru.
# Every step is seeded; the numbers in the model card come from this script.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
ruclip="$root/build/tools/ruclip"
out="${1:-$root/models/ruclip-shapes-ru}"
work="${WORK:-$(mktemp -d /tmp/ruclip-shapes.XXXXXX)}"
echo "work folder: $work" >&2

# 1. Data: 20000 training pictures of the seen colour-shape pairs (train renderer),
#    and evaluation sets from the other renderer (96x72, other sizes and
#    positions, JPEG quality 75): seen pairs, held-out pairs, solid screens.
"$ruclip" synth --out "$work/train" --count 20000 --style train --pairs seen --seed 1 > /dev/null
"$ruclip" synth --out "$work/eval-seen" --count 1500 --style eval --pairs seen --solid no --jpeg-quality 75 --seed 2 > /dev/null
"$ruclip" synth --out "$work/eval-held" --count 1000 --style eval --pairs held --solid no --jpeg-quality 75 --seed 3 > /dev/null
#    The same pictures drawn on a 160x120 canvas (the element test's size),
#    where JPEG blurs small shapes less.
"$ruclip" synth --out "$work/eval-seen-160" --count 1500 --style eval --pairs seen --solid no --jpeg-quality 75 \
  --width 160 --height 120 --seed 2 > /dev/null
"$ruclip" synth --out "$work/eval-held-160" --count 1000 --style eval --pairs held --solid no --jpeg-quality 75 \
  --width 160 --height 120 --seed 3 > /dev/null

# 2. Tokenizer: SentencePiece BPE on the captions plus the Russian corpus of
#    fortunes-ru, lower-cased as the processor lower-cases text.
{
  tail -n +2 "$work/train/captions.csv" | cut -d, -f2-
  for f in /usr/share/games/fortunes/ru/*; do
    case "$f" in *.dat|*.u8) ;; *) grep -v '^%$' "$f" ;; esac
  done
} | python3 -c "import sys; [print(l.rstrip().lower()) for l in sys.stdin if l.strip()]" > "$work/corpus.txt"
spm_train --input="$work/corpus.txt" --model_prefix="$work/sentencepiece" --vocab_size=4000 --model_type=bpe \
  --character_coverage=1.0 --pad_id=0 --unk_id=1 --bos_id=2 --eos_id=3 --minloglevel=2 > /dev/null 2>&1

# 3. Training from scratch (contrastive, both towers), in stages:
#    a. 12 epochs of plainly shuffled batches of the varied captions: colours,
#       counts, backgrounds, positions are learned; shapes hardly (~0.4).
#    b. 6 epochs on the short labels ("красный круг") with rows grouped by
#       colour (--group 32: blocks of one colour per batch), so that inside a
#       block only the shape tells pictures apart.
#    c. 4 epochs on both, captions and labels, grouped the same way, to keep
#       the varied captions' wording (and the held-out pairs) in view.
"$ruclip" train --data "$work/train" --out "$work/stage1" --config "$here/config.json" \
  --tokenizer "$work/sentencepiece.model" --epochs 12 --batch 256 --lr 7e-4 --warmup 50 --seed 1 \
  --log-every 50 > "$work/train-stage1.json"
python3 "$here/group_by_colour.py" "$work/train" 1 --labels
python3 "$here/group_by_colour.py" "$work/train" 1 --both
"$ruclip" train --data "$work/train/labels-by-colour.csv" --out "$work/stage2" --init "$work/stage1" \
  --epochs 6 --batch 256 --lr 5e-4 --warmup 20 --group 32 --seed 1 --log-every 50 > "$work/train-stage2.json"
"$ruclip" train --data "$work/train/both-by-colour.csv" --out "$work/stage3" --init "$work/stage2" \
  --epochs 4 --batch 256 --lr 4e-4 --warmup 20 --group 32 --seed 1 --log-every 50 > "$work/train-stage3.json"
#    d-h. More of stage c with more, smaller steps (what moved shape most):
#       2 epochs of a 6-epoch schedule at batch 128, then 2 epochs each at
#       batch 64, at batch 32 (one colour per batch: shape rises, colour
#       slips), and twice at batch 64 again (colour back).
"$ruclip" train --data "$work/train/both-by-colour.csv" --out "$work/stage4" --init "$work/stage3" \
  --epochs 2 --schedule-epochs 6 --batch 128 --lr 3e-4 --warmup 20 --group 32 --seed 2 --log-every 50 > "$work/train-stage4.json"
"$ruclip" train --data "$work/train/both-by-colour.csv" --out "$work/stage5" --init "$work/stage4" \
  --epochs 2 --batch 64 --lr 3e-4 --warmup 20 --group 32 --seed 3 --log-every 100 > "$work/train-stage5.json"
"$ruclip" train --data "$work/train/both-by-colour.csv" --out "$work/stage6" --init "$work/stage5" \
  --epochs 2 --batch 32 --lr 3e-4 --warmup 20 --group 32 --seed 4 --log-every 100 > "$work/train-stage6.json"
"$ruclip" train --data "$work/train/both-by-colour.csv" --out "$work/stage7" --init "$work/stage6" \
  --epochs 2 --batch 64 --lr 2e-4 --warmup 20 --group 32 --seed 5 --log-every 100 > "$work/train-stage7.json"
"$ruclip" train --data "$work/train/both-by-colour.csv" --out "$work/stage8" --init "$work/stage7" \
  --epochs 2 --batch 64 --lr 2e-4 --warmup 20 --group 32 --seed 6 --log-every 100 > "$work/train-stage8.json"

#    i. New pictures for every epoch from here on. By stage h the model had
#       learned the 20 000 training pictures by heart: shape right on 0.94 of
#       them, on 0.79 of new pictures from the same renderer. Pictures cost
#       ~1 s per thousand, so each epoch draws 20 000 of its own (seed 100+k),
#       captions and labels grouped by colour as in c. Nine one-epoch runs
#       (lr 2e-4 for the first four, 4e-4 after) ...
fresh_pictures() {  # fresh_pictures SEED: a new training set in $work/fresh
  rm -rf "$work/fresh"
  "$ruclip" synth --out "$work/fresh" --count 20000 --style train --pairs seen --seed "$1" > /dev/null
  python3 "$here/group_by_colour.py" "$work/fresh" "$1" --both
}
prev="$work/stage8"
for k in $(seq 1 9); do
  fresh_pictures $((100 + k))
  lr=$([ "$k" -le 4 ] && echo 2e-4 || echo 4e-4)
  "$ruclip" train --data "$work/fresh/both-by-colour.csv" --out "$work/fresh$k" --init "$prev" \
    --epochs 1 --batch 64 --lr "$lr" --warmup 20 --group 32 --seed $((100 + k)) --log-every 100 > "$work/train-fresh$k.json"
  prev="$work/fresh$k"
done
#    j. ... then one 24-epoch cosine schedule at lr 4e-4 (seeds 201-224),
#       every epoch on new pictures: the run is resumed with the next
#       epoch's pictures as its data, so the optimizer state and the
#       schedule carry on.
schedule() {  # schedule OUT FROM EPOCHS LR SEED_BASE
  local out="$1" from="$2" epochs="$3" lr="$4" base="$5"
  cp -r "$from" "$out"
  python3 -c "import json,sys; p=sys.argv[1]; s=json.load(open(p)); s['step']=0; json.dump(s, open(p,'w'))" \
    "$out/train_state.json"
  for j in $(seq 1 "$epochs"); do
    fresh_pictures $((base + j))
    "$ruclip" train --data "$work/fresh/both-by-colour.csv" --out "$out" --resume --epochs "$j" --schedule-epochs "$epochs" \
      --batch 64 --lr "$lr" --warmup 20 --group 32 --seed "$base" --log-every 100 > "$work/train-schedule$base-$j.json"
  done
}
schedule "$work/model" "$prev" 24 4e-4 200

# 4. The model folder: weights, config, tokenizer (no optimizer state).
mkdir -p "$out/eval"
cp "$work/model/model.safetensors" "$work/model/config.json" "$work/model/sentencepiece.model" "$out/"
cp "$work"/train-stage*.json "$out/eval/"
for k in $(seq 1 9); do cat "$work/train-fresh$k.json"; done > "$out/eval/train-fresh.jsonl"
for j in $(seq 1 24); do cat "$work/train-schedule200-$j.json"; done > "$out/eval/train-schedule.jsonl"

# 5. Zero-shot evaluation over all 32 colour x shape labels.
labels=()
while IFS= read -r l; do labels+=(--label "$l"); done < "$here/labels.txt"
for set in seen held seen-160 held-160; do
  "$ruclip" eval --model "$out" --data "$work/eval-$set/labels.csv" "${labels[@]}" --template "{}" --json-only \
    > "$out/eval/eval-$set.json"
  python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(sys.argv[2], 'top1', round(d['top1'],4), 'top5', round(d['top5'],4))" \
    "$out/eval/eval-$set.json" "$set"
done
