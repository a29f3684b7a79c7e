#!/usr/bin/env bash
# The README's first command: installs what it needs, builds, and runs the
# main job on the model shipped in models/: videotestsrc draws a red screen,
# a white ball on black, a blue screen, a yellow ball on blue and a green
# screen; ruclipfilter labels the frames; the labels are printed per frame.
# RUCLIP_MODEL and RUCLIP_LABELS override the model and the labels.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh
export GST_PLUGIN_PATH="$PWD/build/gst-plugin${GST_PLUGIN_PATH:+:$GST_PLUGIN_PATH}"

model="${RUCLIP_MODEL:-$PWD/models/ruclip-shapes-ru}"
labels="${RUCLIP_LABELS:-белый круг;жёлтый круг;красный круг;синий круг;красный фон;синий фон;зелёный фон;чёрный фон}"
caps="video/x-raw,width=320,height=240,framerate=30/1"
scenes="videotestsrc pattern=solid-color foreground-color=0xffff0000 num-buffers=30 ! $caps ! c.
  videotestsrc pattern=ball num-buffers=60 ! $caps ! c.
  videotestsrc pattern=solid-color foreground-color=0xff0000ff num-buffers=30 ! $caps ! c.
  videotestsrc pattern=ball foreground-color=0xffffff00 background-color=0xff0000ff num-buffers=60 ! $caps ! c.
  videotestsrc pattern=solid-color foreground-color=0xff00ff00 num-buffers=30 ! $caps ! c.
  concat name=c"
echo "model:  $model"
echo "labels: $labels"
echo "every 10th frame of: red screen, white ball on black, blue screen, yellow ball on blue, green screen"
./build/examples/read_labels "$model" "$labels" "$scenes" 10
