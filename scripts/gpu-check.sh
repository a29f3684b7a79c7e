#!/usr/bin/env bash
# On a machine with an NVIDIA GPU and the CUDA toolkit: builds only the CUDA
# preprocessing test (core/src/image/cuda) and runs it, printing its [ parity ] and
# [ timing ] lines. Non-interactive; about a minute. `--direct` skips meson.
#
# With the project's dependencies installed (scripts/install-deps.sh) it uses
# meson in ./build-cuda. Otherwise (a bare GPU image: nvcc but no LibTorch,
# OpenCV, ...) it compiles the four files the test needs straight with nvcc into
# ./build-cuda-direct, with GoogleTest if installed, else tests/mini_gtest.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/cuda/bin"
command -v nvcc > /dev/null || { echo "gpu-check: nvcc not found: install the CUDA toolkit" >&2; exit 2; }
nvidia-smi -L || echo "gpu-check: nvidia-smi failed (is there a GPU and a driver?)"
nvcc --version | tail -n 2

setup_log=${TMPDIR:-/tmp}/ruclip-gpu-check-setup.log
if [ "${1:-}" != --direct ] && command -v meson > /dev/null && command -v ninja > /dev/null &&
   { [ -f build-cuda/build.ninja ] ||  # else absent, or a failed setup to redo
     { rm -rf build-cuda && meson setup build-cuda -Dcuda=enabled -Dgst_plugin=disabled > "$setup_log" 2>&1; }; }; then
  meson configure build-cuda -Dcuda=enabled
  ninja -C build-cuda -j "$(nproc)" tests/test_cuda_preprocess
  test_exe=build-cuda/tests/test_cuda_preprocess
else
  [ "${1:-}" = --direct ] || echo "gpu-check: no meson build here (see $setup_log); building the test directly"
  out=build-cuda-direct
  mkdir -p "$out"
  gtest=(-Itests/mini_gtest)
  if [ -f /usr/include/gtest/gtest.h ] && ls /usr/lib/*/libgtest_main.* /usr/lib/libgtest_main.* > /dev/null 2>&1; then
    gtest=(-lgtest_main -lgtest -lpthread)
  fi
  # SASS for the GPU at hand (sm_90 on an H100/H200), PTX for anything else.
  nvcc -std=c++17 -O3 -Xcompiler=-Wall,-Wextra \
    -gencode=arch=compute_80,code=sm_80 -gencode=arch=compute_90,code=sm_90 \
    -gencode=arch=compute_75,code=compute_75 \
    -Icore/include -Icore/src -Icore/src/image/cuda -o "$out/test_cuda_preprocess" \
    core/src/image/preprocess.cpp core/src/image/cuda/preprocess_plan.cpp core/src/image/cuda/preprocess.cu \
    tests/test_cuda_preprocess.cpp "${gtest[@]}"
  test_exe=$out/test_cuda_preprocess
fi

# libcudart.so for the meson build, when ldconfig does not know the toolkit.
export LD_LIBRARY_PATH="${LD_LIBRARY_PATH:+$LD_LIBRARY_PATH:}/usr/local/cuda/lib64"
"$test_exe"
