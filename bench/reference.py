#!/usr/bin/env python3
"""The reference: ruCLIP's image tower as the Python package runs it.

upstream ruclip.model.CLIP.encode_image is OpenAI CLIP's VisionTransformer on
PyTorch: a strided conv for the patches, class token and positional
embedding, ln_pre, pre-LN residual blocks with nn.MultiheadAttention and
QuickGELU, ln_post on the class token, projection. Its LayerNorm casts its
input to float32 and back. This file rebuilds that module structure (not our
C++ code) with random weights of a published geometry and times it the way an
application would: torch.no_grad(), a batch of preprocessed pixels.

  /usr/bin/python3 bench/reference.py --geometry vit-b32-224 --batch 8 --seconds 10 [--bf16]

Thread settings must be fixed before torch is imported, so run it with the
environment you want to measure (bench/cpu.sh tries several):
  OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=2 /usr/bin/python3 bench/reference.py ...
Prints one JSON line. Needs Debian's python3-torch.
"""
import argparse
import json
import os
import sys

import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from timing import time_batches  # noqa: E402

# width, layers, patch, resolution, embed_dim of the published image towers
GEOMETRIES = {
    "vit-b32-224": (768, 12, 32, 224, 512),
    "vit-b32-384": (768, 12, 32, 384, 512),
    "vit-b16-224": (768, 12, 16, 224, 512),
    "vit-b16-384": (768, 12, 16, 384, 512),
    "vit-l14-224": (1024, 24, 14, 224, 768),
    "vit-l14-336": (1024, 24, 14, 336, 768),
}


class LayerNorm(nn.LayerNorm):
    """CLIP's LayerNorm: computes in float32 whatever the input type."""

    def forward(self, x):
        return super().forward(x.type(torch.float32)).type(x.dtype)


class QuickGELU(nn.Module):
    def forward(self, x):
        return x * torch.sigmoid(1.702 * x)


class Block(nn.Module):
    def __init__(self, width, heads):
        super().__init__()
        self.attn = nn.MultiheadAttention(width, heads)
        self.ln_1 = LayerNorm(width)
        self.mlp = nn.Sequential(nn.Linear(width, width * 4), QuickGELU(), nn.Linear(width * 4, width))
        self.ln_2 = LayerNorm(width)

    def forward(self, x):  # x: [L, N, D], sequence first as upstream
        h = self.ln_1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        return x + self.mlp(self.ln_2(x))


class VisionTower(nn.Module):
    def __init__(self, width, layers, patch, resolution, embed_dim):
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, kernel_size=patch, stride=patch, bias=False)
        scale = width ** -0.5
        grid = resolution // patch
        self.class_embedding = nn.Parameter(scale * torch.randn(width))
        self.positional_embedding = nn.Parameter(scale * torch.randn(grid * grid + 1, width))
        self.ln_pre = LayerNorm(width)
        self.blocks = nn.Sequential(*[Block(width, width // 64) for _ in range(layers)])
        self.ln_post = LayerNorm(width)
        self.proj = nn.Parameter(scale * torch.randn(width, embed_dim))

    def forward(self, pixels):
        x = self.conv1(pixels.type(self.conv1.weight.dtype))
        x = x.reshape(x.shape[0], x.shape[1], -1).permute(0, 2, 1)
        cls = self.class_embedding.to(x.dtype) + torch.zeros(x.shape[0], 1, x.shape[-1], dtype=x.dtype)
        x = torch.cat([cls, x], dim=1) + self.positional_embedding.to(x.dtype)
        x = self.ln_pre(x).permute(1, 0, 2)
        x = self.blocks(x).permute(1, 0, 2)
        return self.ln_post(x[:, 0, :]) @ self.proj


class TextTower(nn.Module):
    """ruCLIP's text transformer (its parameters; built for --whole-model, to
    hold what `ruclip bench` holds: the memory comparison is whole model to
    whole model)."""

    def __init__(self, width=512, layers=12, context=77, vocab=49408, embed_dim=512):
        super().__init__()
        self.token_embedding = nn.Embedding(vocab, width)
        self.positional_embedding = nn.Parameter(torch.empty(context, width).normal_(std=0.01))
        self.blocks = nn.Sequential(*[Block(width, width // 64) for _ in range(layers)])
        self.ln_final = LayerNorm(width)
        self.text_projection = nn.Parameter(torch.empty(width, embed_dim).normal_(std=width ** -0.5))


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--geometry", default="vit-b32-224", choices=sorted(GEOMETRIES))
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--seconds", type=float, default=10)
    p.add_argument("--bf16", action="store_true", help="cast the module to bfloat16 (upstream has no such path)")
    p.add_argument("--whole-model", action="store_true",
                   help="also build the text tower (not timed): peak RSS of the whole CLIP, as ruclip bench holds it")
    args = p.parse_args()
    torch.manual_seed(0)
    width, layers, patch, resolution, embed_dim = GEOMETRIES[args.geometry]
    model = VisionTower(width, layers, patch, resolution, embed_dim).eval()
    text_tower = TextTower(width=embed_dim, embed_dim=embed_dim).eval() if args.whole_model else None
    result = {
        "implementation": "reference (PyTorch %s, ruclip's module structure)" % torch.__version__,
        "geometry": args.geometry,
        "batch": args.batch,
        "precision": "bf16" if args.bf16 else "fp32",
        "whole_model": text_tower is not None,
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
        "OPENBLAS_NUM_THREADS": os.environ.get("OPENBLAS_NUM_THREADS"),
        "torch_threads": torch.get_num_threads(),
    }
    pixels = torch.randn(args.batch, 3, resolution, resolution)
    if args.bf16:
        model = model.to(torch.bfloat16)
    try:
        with torch.no_grad():
            result.update(time_batches(lambda: model(pixels), args.batch, args.seconds))
    except RuntimeError as e:
        result["error"] = str(e).splitlines()[0]
    print(json.dumps(result))


if __name__ == "__main__":
    main()
