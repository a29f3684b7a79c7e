#!/usr/bin/env bash
# Makes a small WebM video (VP8) with GStreamer's own encoders: a red screen,
# a white ball on black, a blue screen, a yellow ball on blue, a green screen.
# 8 seconds at 30 fps, 320x240.
#   bash examples/make_test_video.sh OUT.webm
set -euo pipefail
out="${1:?usage: make_test_video.sh OUT.webm}"
caps="video/x-raw,width=320,height=240,framerate=30/1"
gst-launch-1.0 -q concat name=c ! videoconvert ! vp8enc deadline=1 target-bitrate=400000 ! webmmux ! \
  filesink location="$out" \
  videotestsrc pattern=solid-color foreground-color=0xffff0000 num-buffers=45 ! "$caps" ! c. \
  videotestsrc pattern=ball num-buffers=60 ! "$caps" ! c. \
  videotestsrc pattern=solid-color foreground-color=0xff0000ff num-buffers=45 ! "$caps" ! c. \
  videotestsrc pattern=ball foreground-color=0xffffff00 background-color=0xff0000ff num-buffers=45 ! "$caps" ! c. \
  videotestsrc pattern=solid-color foreground-color=0xff00ff00 num-buffers=45 ! "$caps" ! c.
echo "$out"
