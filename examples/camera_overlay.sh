#!/usr/bin/env bash
# Live labels on the camera picture: ruclipfilter labels the frames of
# /dev/video0 without ever making one wait (mode=async), ruclipoverlay draws
# the latest labels with their scores in a corner. The one-liner it runs:
#
#   gst-launch-1.0 v4l2src ! videoconvert ! \
#     ruclipfilter model=MODEL labels="человек;собака;пустая комната" mode=async ! \
#     ruclipoverlay title=MODEL-NAME ! videoconvert ! autovideosink
#
#   examples/camera_overlay.sh [MODEL [LABELS]]
#   examples/camera_overlay.sh --faces MODEL [LABELS]
#
# --faces classifies each face instead of the frame: Debian 12's OpenCV plugin
# (apt-get install gstreamer1.0-opencv opencv-data) has facedetect, which
# attaches a GstVideoRegionOfInterestMeta of type "face" per face it finds;
# ruclipfilter inference-region=roi-list classifies each one's crop and
# ruclipoverlay outlines the boxes with their best labels beside them:
#
#   gst-launch-1.0 v4l2src ! videoconvert ! facedetect display=false updates=none ! \
#     ruclipfilter model=MODEL labels="человек в очках;человек без очков" inference-region=roi-list interval=5 ! \
#     ruclipoverlay ! videoconvert ! autovideosink
#
# (roi-list analyzes in sync mode: interval=5 classifies every fifth frame; the
# frames between carry that result.) examples/regions.py gives the boxes from
# the application instead.
#
# Without a camera (no /dev/video0) the source is videotestsrc's moving ball,
# live (no faces there: --faces draws nothing). The defaults are the shipped toy
# model (models/ruclip-shapes-ru) and its colours-and-shapes labels; for a camera
# give a real ruCLIP model (e.g. ai-forever's ruclip-vit-base-patch32-384 folder)
# and your labels. RUCLIP_SINK replaces autovideosink (e.g. "fakesink" on a
# machine without a display), RUCLIP_NUM_BUFFERS stops after that many frames.
set -euo pipefail
cd "$(dirname "$0")/.."
export GST_PLUGIN_PATH="$PWD/build/gst-plugin${GST_PLUGIN_PATH:+:$GST_PLUGIN_PATH}"
faces=false
if [ "${1:-}" = "--faces" ]; then
  faces=true
  shift
  if ! gst-inspect-1.0 facedetect >/dev/null 2>&1; then
    echo "no facedetect element: apt-get install gstreamer1.0-opencv opencv-data" >&2
    exit 1
  fi
fi
model="${1:-$PWD/models/ruclip-shapes-ru}"
sink="${RUCLIP_SINK:-autovideosink}"
frames="${RUCLIP_NUM_BUFFERS:+num-buffers=$RUCLIP_NUM_BUFFERS}"
# Each word one argument (gst-launch-1.0 keeps the spaces inside one).
if [ -e /dev/video0 ]; then
  source=(v4l2src device=/dev/video0 $frames)
else
  echo "no /dev/video0: videotestsrc instead" >&2
  source=(videotestsrc pattern=ball is-live=true $frames ! video/x-raw,width=640,height=480,framerate=30/1)
fi
if $faces; then
  labels="${2:-человек в очках;человек без очков;улыбающийся человек}"
  analysis=(facedetect display=false updates=none !
    ruclipfilter "model=$model" "labels=$labels" inference-region=roi-list interval=5 ! ruclipoverlay)
else
  labels="${2:-белый круг;жёлтый круг;красный круг;синий круг;красный фон;синий фон;зелёный фон;чёрный фон}"
  analysis=(ruclipfilter "model=$model" "labels=$labels" mode=async ! ruclipoverlay "title=$(basename "$model")")
fi
# shellcheck disable=SC2086  # $sink: a sink and its properties
exec gst-launch-1.0 -e "${source[@]}" ! videoconvert ! "${analysis[@]}" ! videoconvert ! $sink
