#!/usr/bin/env bash
# The one prepared check for a lent GPU machine (docs/building.md, "GPU").
#
#   bash scripts/gpu-check.sh OUT_DIR             # on the GPU machine
#   bash scripts/gpu-check.sh --dry-run OUT_DIR   # here and in CI: all that needs no GPU
#
# It unpacks gpu-bundle/ruclip-gpu-bundle.tar.xz (scripts/gpu-bundle.sh, built
# here) and runs its programs against that machine's own torch (the python3
# that has torch 2.11). Steps, each of which must pass (none may skip):
#   1. versions: glibc, torch, CUDA, driver, GPU; no GPU visible is a failure;
#   2. the CUDA preprocessing kernels against the CPU code, bit for bit
#      (test_cuda_preprocess);
#   3. the model on CUDA (test_gpu): parity with the upstream fixtures (v2 and
#      v1 tiny) in fp32 (1e-4), fp16 and bf16 (cosine >= 0.999, upstream's
#      ranking); encode_frames on 1080p NV12/I420 against the CPU path;
#      concurrent encode_frames;
#   4. ruclipfilter device=cuda, sync and async, on frames in system memory
#      and in CUDA memory (cudaupload, which must have taken the model's CUDA
#      context from the element);
#   5. the benchmark (ruclip-gpu-bench) into OUT_DIR/gpu-bench.json.
# Logs of each step go to OUT_DIR too. About 5 minutes on an H100.
set -uo pipefail
cd "$(dirname "$0")/.."
dry=0
if [ "${1:-}" = --dry-run ]; then dry=1; shift; fi
out=${1:?usage: gpu-check.sh [--dry-run] OUT_DIR}
mkdir -p "$out"
out=$(readlink -f "$out")
bundle_file=gpu-bundle/ruclip-gpu-bundle.tar.xz
[ -f "$bundle_file" ] || { echo "gpu-check: $bundle_file missing: run scripts/gpu-bundle.sh first" >&2; exit 2; }

failed=()
step() {  # step NAME COMMAND...: runs it, its output to OUT_DIR/NAME.log and the terminal's tail
  local name=$1; shift
  echo "== $name"
  if "$@" > "$out/$name.log" 2>&1; then
    tail -n 15 "$out/$name.log"; echo "-- $name: ok"
  else
    tail -n 40 "$out/$name.log"; echo "-- $name: FAILED"; failed+=("$name")
  fi
}

bundle=$(mktemp -d)
trap 'rm -rf "$bundle"' EXIT
tar -C "$bundle" -xJf "$bundle_file"
echo "bundle: $(cat "$bundle/VERSION")"

# The torch to run against: the GPU machine's python3 (dry run: the venv
# scripts/build-libtorch2.sh made).
python=python3
[ "$dry" = 1 ] && python=${RUCLIP_TORCH_VENV:-/opt/ruclip/torch-2.11.0}/bin/python3
torch_dir=$("$python" -c 'import os, torch; print(os.path.dirname(torch.__file__))') ||
  { echo "gpu-check: $python has no torch" >&2; exit 2; }
export LD_LIBRARY_PATH="$bundle/lib:$torch_dir/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export RUCLIP_TEST_DATA=$PWD/tests/data
export GST_PLUGIN_SYSTEM_PATH_1_0=$bundle/gst/plugins GST_PLUGIN_PATH_1_0= GST_PLUGIN_SCANNER_1_0=$bundle/gst/libexec/gst-plugin-scanner
export GST_REGISTRY_1_0=$bundle/registry.bin

versions() {
  ldd --version | head -n 1
  "$python" -c 'import torch; print("torch", torch.__version__, "CUDA", torch.version.cuda, "cuDNN", torch.backends.cudnn.version()); print("GPU visible to torch:", torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")'
  command -v nvcc > /dev/null && nvcc --version | tail -n 2
  if [ "$dry" = 1 ]; then echo "dry run: no GPU needed"; return 0; fi
  nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv || return 1
  "$python" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' || { echo "no GPU visible"; return 1; }
}
# Every library of every program resolves, and from the bundle, torch's
# folders or the few that any Linux with a driver has (glibc, the C++
# runtime, the driver; CUDA's libraries, torch's or the toolkit's): here too,
# where Debian's own copies would hide a gap.
libraries() {
  local cuda='^lib(cudart|cublas|cublasLt|cudnn|nccl|cufft|curand|cusparse|cusolver|nvrtc|nvJitLink|cupti|cufile|nvshmem)'
  local missing=0 system='^/(usr/)?lib(64)?/(x86_64-linux-gnu/)?(ld-linux|libc\.so|libm\.so|libdl\.so|librt\.so|libpthread\.so|libstdc\+\+|libgcc_s|libcuda\.so|libnvidia)'
  for f in "$bundle"/bin/* "$bundle"/gst/gst-* "$bundle"/gst/libexec/* "$bundle"/gst/plugins/*.so; do
    local lib arrow where _
    while read -r lib arrow where _; do
      [ "$arrow" = "=>" ] || continue
      case $where in
        "$bundle"/* | "$torch_dir"/* | "$(dirname "$torch_dir")"/nvidia/*) ;;
        *) [[ $where =~ $system || $lib =~ $cuda ]] || { echo "$f: $lib => $where (not in the bundle)"; missing=1; } ;;
      esac
    done < <(ldd "$f")
  done
  return $missing
}
# A gtest program whose cases all ran and passed: a skipped case fails the step.
no_skips() {
  local log=$1; shift
  "$@" 2>&1 | tee "$log.full"
  local rc=${PIPESTATUS[0]}
  if grep -q '^\[  SKIPPED \]' "$log.full"; then echo "a case skipped: this check counts that as a failure"; return 1; fi
  return "$rc"
}

# The element on CUDA memory: passes, and cudaupload allocated the frames in
# the model's own CUDA context, which the element offered it (its log says).
in_model_context() {
  GST_DEBUG=ruclipfilter:4 "$@" 2>&1 | tee "$out/element-context.log.full"
  local rc=${PIPESTATUS[0]}
  grep -q "frames in the model's own CUDA context" "$out/element-context.log.full" ||
    { echo "the frames were not in the model's CUDA context"; return 1; }
  return "$rc"
}

step versions versions
step libraries libraries
if [ "$dry" = 1 ]; then
  step gpu-tests-listed "$bundle/bin/test_gpu" --gtest_list_tests
  step kernels-cpu-emulation "$bundle/bin/test_cuda_preprocess" --gtest_filter='CudaPreprocessPlan.*'
  step element-plugins "$bundle/gst/gst-inspect-1.0" ruclipfilter
  step bench-on-cpu "$bundle/bin/ruclip-gpu-bench" --device cpu --quick --out "$out/gpu-bench-dry.json" \
    --tokenizer tests/data/ruclip-tiny-v2/bpe.model
else
  step kernels no_skips "$out/kernels" "$bundle/bin/test_cuda_preprocess"
  step model no_skips "$out/model" "$bundle/bin/test_gpu"
  # The element on CUDA, sync and async: frames from system memory, and
  # from CUDA memory (cudaupload), read in place.
  for mode in sync async; do
    step "element-system-memory-$mode" "$bundle/gst/gst-launch-1.0" -q \
      videotestsrc num-buffers=120 pattern=smpte ! video/x-raw,format=NV12,width=1920,height=1080,framerate=30/1 ! \
      ruclipfilter model=tests/data/ruclip-tiny-v2 device=cuda labels="полосы;кошка" mode=$mode ! fakesink
    step "element-cuda-memory-$mode" in_model_context "$bundle/gst/gst-launch-1.0" -q \
      videotestsrc num-buffers=120 pattern=smpte ! video/x-raw,format=NV12,width=1920,height=1080,framerate=30/1 ! \
      cudaupload ! "video/x-raw(memory:CUDAMemory)" ! \
      ruclipfilter model=tests/data/ruclip-tiny-v2 device=cuda labels="полосы;кошка" mode=$mode ! fakesink
  done
  step bench "$bundle/bin/ruclip-gpu-bench" --out "$out/gpu-bench.json" --tokenizer tests/data/ruclip-tiny-v2/bpe.model
fi

if ((${#failed[@]})); then
  echo "gpu-check: FAILED: ${failed[*]}"
  exit 1
fi
echo "gpu-check: all steps passed$([ "$dry" = 1 ] && echo ' (dry run: nothing ran on a GPU)')"
