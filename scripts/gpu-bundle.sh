#!/usr/bin/env bash
# Packs what scripts/gpu-check.sh runs on a GPU machine into
# gpu-bundle/ruclip-gpu-bundle.tar.xz (at most 48 MiB: it travels with the
# repository to a machine that takes 64 MiB in all). That machine has
# PyPI's torch 2.11 (CUDA 13.0), nvcc and a driver, but no Debian packages and
# no GStreamer; so the bundle holds:
#   bin/   the check programs, built here against the same torch wheel
#          (./build-torch2, scripts/build-libtorch2.sh; the project's own
#          libraries are static in them);
#   lib/   every shared library they and the element step need that is
#          neither glibc's nor torch's nor CUDA's (Debian's, copied from here);
#   gst/   GStreamer's runtime pieces: gst-launch-1.0, gst-inspect-1.0, the
#          plugin scanner, core/base/nvcodec plugins and ours.
# The torch libraries come from the GPU machine's own torch at run time.
# Prints the bundle's path as its last line.
set -euo pipefail
cd "$(dirname "$0")/.."
limit_mib=48
build=build-torch2
[ -x "$build/tests/test_gpu" ] || bash scripts/build-libtorch2.sh
ninja -C "$build" tests/test_gpu tests/test_cuda_preprocess bench/gpu/ruclip-gpu-bench gst-plugin/libgstruclip.so > /dev/null

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage"/{bin,lib,gst/plugins,gst/libexec}
cp "$build/tests/test_gpu" "$build/tests/test_cuda_preprocess" "$build/bench/gpu/ruclip-gpu-bench" "$stage/bin/"
gst_dir=$(pkg-config --variable=pluginsdir gstreamer-1.0)
cp "$build/gst-plugin/libgstruclip.so" "$stage/gst/plugins/"
for p in coreelements videotestsrc videoconvertscale app nvcodec; do cp "$gst_dir/libgst$p.so" "$stage/gst/plugins/"; done
cp "$(command -v gst-launch-1.0)" "$(command -v gst-inspect-1.0)" "$stage/gst/"
cp "$(pkg-config --variable=pluginscannerdir gstreamer-1.0)/gst-plugin-scanner" "$stage/gst/libexec/"

# Shared libraries: what ldd resolves for each binary and plugin, less glibc,
# the C++ runtime, and what torch's wheel and the GPU machine's CUDA provide.
torch_lib=$(meson introspect "$build" --buildoptions | python3 -c 'import json,sys; print([o["value"] for o in json.load(sys.stdin) if o["name"]=="libtorch"][0])')/lib
skip='^(linux-vdso|ld-linux|libc\.so|libm\.so|libdl\.so|librt\.so|libpthread\.so|libstdc\+\+|libgcc_s|libcuda\.so|libnvidia|libtorch|libc10|libgomp|libcudart|libcublas|libcudnn|libnccl|libcufft|libcurand|libcusparse|libcusolver|libnvrtc|libnvJitLink|libcupti|libcufile|libnvshmem|libcaffe2|libshm)'
for f in "$stage"/bin/* "$stage"/gst/gst-* "$stage"/gst/libexec/* "$stage"/gst/plugins/*.so; do
  LD_LIBRARY_PATH="$PWD/$build/gst-plugin/meta:$torch_lib" ldd "$f"
done | awk '/=> \// {print $1, $3}' | sort -u | while read -r name path; do
  if [[ $name =~ $skip ]]; then continue; fi
  [[ $path == "$PWD"/* ]] && [[ $name != libgstruclipmeta* ]] && continue
  cp -L "$path" "$stage/lib/$name"
done

strip --strip-unneeded "$stage"/bin/* "$stage"/gst/plugins/*.so "$stage"/lib/*.so* 2> /dev/null || true
echo "$(git rev-parse --short HEAD 2>/dev/null || echo unknown) $(date -u +%Y-%m-%dT%H:%M:%SZ)" > "$stage/VERSION"

mkdir -p gpu-bundle
out=gpu-bundle/ruclip-gpu-bundle.tar.xz
tar -C "$stage" -cf - . | xz -T0 -6 > "$out.tmp"
mv "$out.tmp" "$out"
size=$(stat -c %s "$out")
if ((size > limit_mib * 1024 * 1024)); then
  echo "gpu-bundle: $out is $((size / 1024 / 1024)) MiB, over the $limit_mib MiB it may take" >&2
  exit 1
fi
echo "gpu-bundle: $((size / 1024)) KiB, $(tar -tJf "$out" | grep -c -v '/$') files" >&2
readlink -f "$out"
