#!/usr/bin/env bash
# The README's first command: installs what it needs, builds, and runs the
# main job: ruclipfilter labelling a live test pattern with Russian phrases.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh
export GST_PLUGIN_PATH="$PWD/build/gst-plugin${GST_PLUGIN_PATH:+:$GST_PLUGIN_PATH}"

model="${RUCLIP_MODEL:-$PWD/tests/data/ruclip-tiny-v2}"
labels="${RUCLIP_LABELS:-красный круг;синий квадрат;зелёный треугольник;белый фон}"
echo "model: $model"
echo "labels: $labels"
gst-launch-1.0 -m videotestsrc num-buffers=90 pattern=ball \
  ! "video/x-raw,format=I420,width=320,height=240,framerate=30/1" \
  ! ruclipfilter model="$model" labels="$labels" interval=15 top-k=3 post-messages=true \
  ! fakesink 2>&1 | grep --line-buffered -E 'ruclip|ERROR|error' || true
