#!/usr/bin/env bash
# Makes docs/overlay.png, the README's picture of ruclipoverlay, with the
# project's own pipeline: four of the demo's scenes (scripts/demo.sh: a red
# screen, a white ball on black, a yellow ball on blue, a green screen; 320x240)
# each go through the shipped model (models/ruclip-shapes-ru) in ruclipfilter
# and through ruclipoverlay, and compositor tiles the four results into one
# 640x480 frame that pngenc writes.
#
#   scripts/overlay-picture.sh [OUT.png]      (default docs/overlay.png; needs a build: scripts/build.sh)
#
# RUCLIP_MODEL and RUCLIP_LABELS override the model and the labels, as in demo.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-docs/overlay.png}"
if [ ! -e build/gst-plugin/libgstruclip.so ]; then
  echo "no build/gst-plugin/libgstruclip.so: run scripts/build.sh first" >&2
  exit 1
fi
export GST_PLUGIN_PATH="$PWD/build/gst-plugin${GST_PLUGIN_PATH:+:$GST_PLUGIN_PATH}"

model="${RUCLIP_MODEL:-$PWD/models/ruclip-shapes-ru}"
labels="${RUCLIP_LABELS:-белый круг;жёлтый круг;красный круг;синий круг;красный фон;синий фон;зелёный фон;чёрный фон}"
caps="video/x-raw,width=320,height=240,framerate=30/1"
# One analyzed frame per scene; the four elements share one loaded model. Sans 10
# keeps the panel (title and three labels) above the ball, which starts in the middle.
label="ruclipfilter model=\"$model\" labels=\"$labels\" ! ruclipoverlay title=ruclip-shapes-ru font-desc=\"Sans 10\" ! videoconvert"
mkdir -p "$(dirname "$out")"
gst-launch-1.0 -q \
  compositor name=tile sink_1::xpos=320 sink_2::ypos=240 sink_3::xpos=320 sink_3::ypos=240 ! \
    video/x-raw,width=640,height=480 ! videoconvert ! video/x-raw,format=RGB ! \
    pngenc snapshot=true compression-level=9 ! filesink location="$out" \
  videotestsrc pattern=solid-color foreground-color=0xffff0000 num-buffers=1 ! $caps ! $label ! tile.sink_0 \
  videotestsrc pattern=ball num-buffers=1 ! $caps ! $label ! tile.sink_1 \
  videotestsrc pattern=ball foreground-color=0xffffff00 background-color=0xff0000ff num-buffers=1 ! $caps ! \
    $label ! tile.sink_2 \
  videotestsrc pattern=solid-color foreground-color=0xff00ff00 num-buffers=1 ! $caps ! $label ! tile.sink_3
echo "$out: $(stat -c %s "$out") bytes"
