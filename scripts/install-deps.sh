#!/usr/bin/env bash
# Installs the Debian 12 packages the project builds, tests and runs with.
# Idempotent: when everything is there it only checks, without touching apt.
set -euo pipefail

packages=(
  # toolchain
  g++ pkg-config cmake meson ninja-build python3
  # a virtual environment for PyPI's torch (scripts/build-libtorch2.sh)
  python3-venv
  # LibTorch (CPU) and the BLAS it is fast with: without libopenblas0-pthread
  # it falls back to the reference BLAS, far slower.
  libtorch-dev libopenblas0-pthread
  # oneDNN's headers: the core calls the libdnnl.so.2 LibTorch runs on directly
  libdnnl-dev
  # core
  nlohmann-json3-dev libzip-dev libsentencepiece-dev sentencepiece libglib2.0-dev libopencv-dev
  # the CRC-32 of checkpoints' stored tensors (core/src/io/checkpoint.cpp)
  libdeflate-dev
  # the GPT-2 tokenizer's pre-tokenizer pattern (ruCLIP v1, core/src/text/gpt2_tokenizer.cpp)
  libpcre2-dev
  # GStreamer plugin and its clients
  libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev gstreamer1.0-tools
  gstreamer1.0-plugins-base gstreamer1.0-plugins-good python3-gi python3-gst-1.0
  gir1.2-gstreamer-1.0 gir1.2-gst-plugins-base-1.0
  # users' video files: demuxers for MP4/MKV/WebM/AVI (plugins-good), MPEG-TS and the
  # H.264/H.265 parsers (plugins-bad), decoders for H.264, H.265, MPEG-4, VP8/9, AV1
  # (gstreamer1.0-libav: FFmpeg's; plugins-good: libvpx; plugins-bad: aom's AV1);
  # ffmpeg makes such files in the tests (tests/test_tag.py, tests/test_index.py)
  gstreamer1.0-plugins-bad gstreamer1.0-libav ffmpeg
  # ruclipfilter on CUDA shares its context through GStreamer's CUDA library
  # (gstreamer-cuda-1.0; its .pc asks for GL and GLES: libgl-dev, libgles-dev)
  libgstreamer-plugins-bad1.0-dev libgl-dev libgles-dev
  # examples/rtsp_server.c: an RTSP server on gst-rtsp-server (its clients' rtspsrc,
  # rtpjpegdepay and the server's jpegenc, rtpjpegpay are in gstreamer1.0-plugins-good)
  libgstrtspserver-1.0-dev
  # ruclippublish (gst-plugin/gstruclippublish.cpp): MQTT through libmosquitto; the
  # broker, its command-line clients and openssl (TLS certificates) for its test
  # (tests/test_publish.py)
  libmosquitto-dev mosquitto mosquitto-clients openssl
  # ruclipoverlay (gst-plugin/gstruclipoverlay.cpp): draws the labels with Pango/Cairo;
  # DejaVu has the Cyrillic glyphs ("Sans" resolves to it)
  libpango1.0-dev libcairo2-dev fonts-dejavu-core
  # `ruclip index` / `ruclip search` (tools/ruclip/index_command.cpp): the index is one
  # SQLite file; FAISS serves the approximate search past what an exact scan serves
  libsqlite3-dev libfaiss-dev
  # the index shared by many machines (index/src/postgres_store.cpp): libpq; the
  # tests start their own PostgreSQL server (tests/postgres_server.py)
  libpq-dev postgresql-15
  # `ruclip serve` (tools/ruclip/serve_command.cpp): HTTP through libsoup 3; its page is
  # tested in headless Chromium over the DevTools protocol (python3-websocket)
  libsoup-3.0-dev chromium python3-websocket
  # tests (clang and its runtime: the libFuzzer targets, scripts/fuzz.sh)
  libgtest-dev valgrind fortunes-ru clang libclang-rt-14-dev
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
