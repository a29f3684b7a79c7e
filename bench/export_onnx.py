#!/usr/bin/env python3
"""Exports the reference's image tower to ONNX for the ONNX Runtime contender.

The module is bench/reference.py's VisionTower with the same random init
(torch.manual_seed(0), same construction order), so ORT runs the very network
the reference times. The batch axis is dynamic; the resolution is fixed by the
geometry.

  /usr/bin/python3 bench/export_onnx.py OUT.onnx [--geometry vit-b32-224 | --weights MODEL_DIR]
        [--opset 14] [--reference-out CHECK.json]

--weights: a v2 model folder's own image tower instead (its config.json
geometry, the visual.* tensors of its model.safetensors): for measuring the
peers' reduced precisions on a real model (bench/precision.sh).

Needs Debian's python3-torch only: torch 1.13 serializes ONNX in C++, the
`onnx` Python package is not required. --reference-out also writes a batch-2
input and PyTorch's output for it; `bench/peers.py --check CHECK.json`
compares ONNX Runtime's or OpenVINO's output against it (bench/cpu.sh does, in round 1).
"""
import argparse
import json
import os
import struct
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from reference import GEOMETRIES, VisionTower  # noqa: E402


def load_tower(folder):
    """The VisionTower of a v2 folder: geometry from config.json, weights from model.safetensors."""
    c = json.load(open(os.path.join(folder, "config.json")))
    model = VisionTower(c["vision_width"], c["vision_layers"], c["vision_patch_size"], c["image_resolution"],
                        c["embed_dim"]).eval()
    with open(os.path.join(folder, "model.safetensors"), "rb") as f:
        header = json.loads(f.read(struct.unpack("<Q", f.read(8))[0]))
        data = f.read()
    renames = [("visual.transformer.resblocks.", "blocks."), (".mlp.c_fc.", ".mlp.0."), (".mlp.c_proj.", ".mlp.2."),
               ("visual.", "")]
    state = {}
    for key, info in header.items():
        if not key.startswith("visual."):
            continue
        if info["dtype"] != "F32":
            raise SystemExit(f"export_onnx.py: {key} is {info['dtype']}, only F32 is read")
        name = key
        for old, new in renames:
            name = name.replace(old, new)
        begin, end = info["data_offsets"]
        state[name] = torch.frombuffer(bytearray(data[begin:end]), dtype=torch.float32).reshape(info["shape"])
    model.load_state_dict(state, strict=True)
    return model, c["image_resolution"]


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", help="path of the .onnx file to write")
    p.add_argument("--geometry", default="vit-b32-224", choices=sorted(GEOMETRIES))
    # torch 1.13's exporter writes opsets 9-17 (default 14); 14 and 17 both export
    # this tower and give the same output in ONNX Runtime 1.30; 1.32 checked at 14.
    p.add_argument("--weights", help="a v2 model folder whose own image tower to export")
    p.add_argument("--opset", type=int, default=14)
    p.add_argument("--reference-out", help="also write a batch-2 input and the reference's output (.json) "
                                           "for bench/peers.py --check")
    args = p.parse_args()
    torch.manual_seed(0)
    if args.weights:
        model, resolution = load_tower(args.weights)
    else:
        width, layers, patch, resolution, embed_dim = GEOMETRIES[args.geometry]
        model = VisionTower(width, layers, patch, resolution, embed_dim).eval()
    example = torch.randn(2, 3, resolution, resolution)
    with torch.no_grad():
        torch.onnx.export(model, (example,), args.out, opset_version=args.opset,
                          input_names=["pixels"], output_names=["embedding"],
                          dynamic_axes={"pixels": {0: "batch"}, "embedding": {0: "batch"}},
                          do_constant_folding=True)
        if args.reference_out:
            import json
            with open(args.reference_out, "w") as f:
                json.dump({"input": example.flatten().tolist(), "shape": list(example.shape),
                           "output": model(example).flatten().tolist()}, f)
    print(f"{args.out}: {args.weights or args.geometry}, opset {args.opset}, torch {torch.__version__}, "
          f"{os.path.getsize(args.out) / 2**20:.0f} MiB", file=sys.stderr)


if __name__ == "__main__":
    main()
