#!/usr/bin/env bash
# Builds the project against the LibTorch inside PyPI's torch==2.11.0, the CUDA
# 13.0 build the GPU machine runs (docs/building.md), into ./build-torch2,
# beside the Debian build in ./build. The wheel goes into a virtual environment
# of its own (RUCLIP_TORCH_VENV, default /opt/ruclip/torch-2.11.0), never into
# the system Python; one already there is reused. Every CUDA source is
# compiled (-Dcuda=enabled); nothing needs a GPU to build.
set -euo pipefail
cd "$(dirname "$0")/.."
torch_version=2.11.0
venv=${RUCLIP_TORCH_VENV:-/opt/ruclip/torch-$torch_version}
build=build-torch2

bash scripts/install-deps.sh
if ! "$venv/bin/python3" -m pip show torch 2>/dev/null | grep -qx "Version: $torch_version"; then
  echo "installing torch==$torch_version into $venv"
  /usr/bin/python3 -m venv "$venv"
  "$venv/bin/python3" -m pip install -q --no-compile --disable-pip-version-check "torch==$torch_version"
fi
torch_dir=$("$venv/bin/python3" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/torch
[ -f "$torch_dir/share/cmake/Torch/TorchConfig.cmake" ] || { echo "build-libtorch2: no LibTorch in $torch_dir" >&2; exit 1; }

# TorchConfig's CUDA part looks for the toolkit through nvcc.
export PATH="$PATH:/usr/local/cuda/bin"
if [ ! -f "$build/build.ninja" ]; then
  rm -rf "$build"
  meson setup "$build" --buildtype=release -Dlibtorch="$torch_dir" -Dcuda=enabled
fi
ninja -C "$build" -j "$(nproc)"
