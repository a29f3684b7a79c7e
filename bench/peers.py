#!/usr/bin/env python3
"""The CPU peers: ONNX Runtime and OpenVINO (both from PyPI) running the
reference's image tower exported to ONNX (bench/export_onnx.py), timed the way
bench/reference.py times the reference: batches of random preprocessed pixels
for SECONDS after two warm-up runs, one synchronous call per batch.

  bench/.venv/bin/python bench/peers.py --engine onnxruntime|openvino --model TOWER.onnx
        [--precision fp32|bf16|int8] [--geometry vit-b32-224] [--batch 8] [--seconds 10]
        [--threads N] [--spinning 1] [--inter-op 1] [--execution-mode sequential|parallel]
        [--calibration FOLDER] [--check REFERENCE.json]
  bench/.venv/bin/python bench/peers.py --engine openvino --model TOWER.onnx --precision P
        --resolution R --embed LABELS.csv          (embeddings of pictures instead of timing)

ONNX Runtime: CPU execution provider, all graph optimizations, N intra-op
threads, one inter-op thread, sequential (what bench/ort-threads.sh found
fastest; the options try others); fp32 only (its CPU kernels have no
bf16 path for this graph; int8 would need its own quantizer).
OpenVINO: the CPU plugin compiles the ONNX file itself; fp32 and bf16 through
INFERENCE_PRECISION_HINT (bf16 only where the CPU has it natively: the plugin
says which precision it runs, reported as "precision_running"); int8: NNCF
post-training quantization of the same graph (model_type TRANSFORMER), with
--calibration pictures (default: the shipped model's evaluation pictures,
drawn by `ruclip synth --style eval` into a temporary folder), cached beside
TOWER.onnx as TOWER.int8.xml and made in a process of its own (--quantize-only),
so that quantizing does not count in the timed process's peak RSS.
--check compares the fp32 output against PyTorch's (export_onnx.py
--reference-out) before timing. --embed prints {"files", "embeddings"}: the
tower's output for each picture of a `file,label` table (relative to its
folder), preprocessed as the calibration pictures are (bench/precision.sh
compares the peers' precisions with it). Prints one JSON line.
"""
import argparse
import glob
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from timing import time_batches  # noqa: E402

RESOLUTION = {"vit-b32-224": 224, "vit-b32-384": 384, "vit-b16-224": 224, "vit-b16-384": 384,
              "vit-l14-224": 224, "vit-l14-336": 336}
FLAGS_OF_INTEREST = ["avx2", "fma", "f16c", "avx512f", "avx512dq", "avx512bw", "avx512vl", "avx512_vnni",
                     "avx_vnni", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8"]
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# CLIP's normalization (the published ruCLIP configs use the same numbers).
MEAN = np.array([0.48145466, 0.4578275, 0.40821073], dtype=np.float32).reshape(3, 1, 1)
STD = np.array([0.26862954, 0.26130258, 0.27577711], dtype=np.float32).reshape(3, 1, 1)


def cpu_info():
    text = open("/proc/cpuinfo").read()
    field = {}
    for line in text.splitlines():
        if ":" in line:
            k, v = line.split(":", 1)
            field.setdefault(k.strip(), v.strip())
    flags = set(field.get("flags", "").split())
    return {"model": field.get("model name", ""), "flags": [f for f in FLAGS_OF_INTEREST if f in flags]}


def calibration_pixels(folder, resolution, count=128):
    """The first `count` .jpg pictures under `folder`, preprocessed."""
    files = sorted(glob.glob(os.path.join(folder, "**", "*.jpg"), recursive=True))[:count]
    if not files:
        raise SystemExit(f"peers.py: no .jpg pictures under {folder}")
    return preprocessed(files, resolution)


def preprocessed(files, resolution):
    """Resize the shorter side (bicubic), centre crop, normalize: Pillow, as upstream's transform."""
    from PIL import Image
    out = []
    for f in files:
        im = Image.open(f).convert("RGB")
        scale = resolution / min(im.size)
        im = im.resize((max(resolution, round(im.size[0] * scale)), max(resolution, round(im.size[1] * scale))),
                       Image.BICUBIC)
        left, top = (im.size[0] - resolution) // 2, (im.size[1] - resolution) // 2
        im = im.crop((left, top, left + resolution, top + resolution))
        x = np.asarray(im, dtype=np.float32).transpose(2, 0, 1) / 255.0
        out.append(((x - MEAN) / STD)[None])
    return out


def default_calibration(work):
    ruclip = os.environ.get("RUCLIP", os.path.join(ROOT, "build", "tools", "ruclip"))
    folder = os.path.join(work, "calibration")
    subprocess.run([ruclip, "synth", "--out", folder, "--count", "128", "--style", "eval", "--pairs", "all",
                    "--jpeg-quality", "75", "--width", "160", "--height", "120", "--seed", "7"],
                   check=True, capture_output=True)
    return folder


def onnxruntime_session(args, result):
    import onnxruntime as ort
    if args.precision != "fp32":
        raise SystemExit(f"peers.py: ONNX Runtime runs this graph in fp32 only, not {args.precision}")
    so = ort.SessionOptions()
    so.intra_op_num_threads = args.threads
    so.inter_op_num_threads = args.inter_op
    so.execution_mode = (ort.ExecutionMode.ORT_PARALLEL if args.execution_mode == "parallel"
                         else ort.ExecutionMode.ORT_SEQUENTIAL)
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.add_session_config_entry("session.intra_op.allow_spinning", str(args.spinning))
    session = ort.InferenceSession(args.model, so, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    result.update({"implementation": f"onnxruntime {ort.__version__} CPU (PyPI)", "inter_op_threads": args.inter_op,
                   "intra_op_spinning": args.spinning, "execution_mode": args.execution_mode,
                   "precision_running": "fp32"})
    return lambda x: session.run(None, {name: x})[0]


def int8_path(args):
    return os.path.splitext(args.model)[0] + ".int8.xml"


def quantize(args):
    """TOWER.int8.xml: NNCF's post-training quantization of the ONNX tower."""
    import nncf
    import openvino as ov
    with tempfile.TemporaryDirectory() as work:
        folder = args.calibration or default_calibration(work)
        pixels = calibration_pixels(folder, args.resolution)
        quantized = nncf.quantize(ov.Core().read_model(args.model), nncf.Dataset(pixels),
                                  model_type=nncf.ModelType.TRANSFORMER, subset_size=len(pixels))
    ov.save_model(quantized, int8_path(args))


def openvino_model(args, result):
    import openvino as ov
    core = ov.Core()
    model_path = args.model
    if args.precision == "int8":
        model_path = int8_path(args)
        if not os.path.exists(model_path) or os.path.getmtime(model_path) < os.path.getmtime(args.model):
            cmd = [sys.executable, os.path.abspath(__file__), "--engine", "openvino", "--precision", "int8",
                   "--model", args.model, "--resolution", str(args.resolution), "--quantize-only"]
            subprocess.run(cmd + (["--calibration", args.calibration] if args.calibration else []), check=True,
                           stdout=subprocess.DEVNULL)
        import importlib.metadata
        result["nncf"] = importlib.metadata.version("nncf")
    config = {"INFERENCE_NUM_THREADS": args.threads, "PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": 1,
              "INFERENCE_PRECISION_HINT": "bf16" if args.precision == "bf16" else "f32"}
    compiled = core.compile_model(core.read_model(model_path), "CPU", config)
    request = compiled.create_infer_request()
    running = compiled.get_property("INFERENCE_PRECISION_HINT")
    result.update({"implementation": f"openvino {ov.__version__.split('-')[0]} CPU (PyPI)",
                   "precision_running": ("int8 (NNCF), the rest " if args.precision == "int8" else "") +
                                        (running.to_string() if hasattr(running, "to_string") else str(running)),
                   "model_file": os.path.basename(model_path)})

    def run(x):
        request.infer({0: x})
        return request.get_output_tensor(0).data.copy()
    return run


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--engine", required=True, choices=["onnxruntime", "openvino"])
    p.add_argument("--model", required=True, help="the tower's .onnx (bench/export_onnx.py)")
    p.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "int8"])
    p.add_argument("--geometry", default="vit-b32-224", choices=sorted(RESOLUTION))
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--seconds", type=float, default=10)
    p.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    p.add_argument("--spinning", type=int, default=1, help="ONNX Runtime: intra-op threads busy-wait between ops")
    p.add_argument("--inter-op", type=int, default=1, help="ONNX Runtime: inter-op threads")
    p.add_argument("--execution-mode", default="sequential", choices=["sequential", "parallel"], help="ONNX Runtime")
    p.add_argument("--calibration", help="OpenVINO int8: a folder of .jpg pictures for NNCF")
    p.add_argument("--check", help="JSON of export_onnx.py --reference-out: compare outputs first")
    p.add_argument("--quantize-only", action="store_true", help="OpenVINO int8: write TOWER.int8.xml and stop")
    p.add_argument("--resolution", type=int, help="the tower's input size (default: the geometry's)")
    p.add_argument("--embed", help="a file,label table of pictures: print their embeddings instead of timing")
    args = p.parse_args()
    args.resolution = args.resolution or RESOLUTION[args.geometry]
    if args.quantize_only:
        return quantize(args)
    result = {"geometry": args.geometry, "batch": args.batch, "precision": args.precision, "threads": args.threads,
              "cpu": cpu_info()}
    run = (onnxruntime_session if args.engine == "onnxruntime" else openvino_model)(args, result)
    if args.check:
        ref = json.load(open(args.check))
        got = run(np.array(ref["input"], dtype=np.float32).reshape(ref["shape"]))
        want = np.array(ref["output"], dtype=np.float32).reshape(got.shape)
        result["check_max_abs_diff"] = float(np.abs(got - want).max())
        if args.precision == "fp32" and result["check_max_abs_diff"] > 1e-3:
            raise SystemExit(f"peers.py: {args.engine} output differs from PyTorch's by {result['check_max_abs_diff']}")
    if args.embed:
        folder = os.path.dirname(os.path.abspath(args.embed))
        with open(args.embed) as f:
            files = [line.split(",", 1)[0] for line in f.read().splitlines()[1:] if line]
        embeddings = []
        for i in range(0, len(files), 32):
            batch = np.concatenate(preprocessed([os.path.join(folder, f) for f in files[i:i + 32]], args.resolution))
            embeddings += run(batch).tolist()
        print(json.dumps({**result, "files": files, "embeddings": embeddings}))
        return 0
    resolution = args.resolution
    pixels = np.random.default_rng(0).standard_normal((args.batch, 3, resolution, resolution), dtype=np.float32)
    result.update(time_batches(lambda: run(pixels), args.batch, args.seconds))
    print(json.dumps(result))


if __name__ == "__main__":
    sys.exit(main())
