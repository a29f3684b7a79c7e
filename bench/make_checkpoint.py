#!/usr/bin/env python3
"""A full-size ruCLIP model folder with random weights, to measure loading.

Writes OUT/ like the published ai-forever/ruclip-vit-base-patch32-224 (or
another published geometry): pytorch_model.bin through torch.save of a state
dict with upstream's names and shapes (the ones ClipWeights::parameters() in
core/src/nn/clip_weights.cpp reads; geometry as published_geometry() in
core/src/io/config.cpp), config.json as published, and a tokenizer (by default the
test model's bpe.model: 3000 tokens, which fit the 49408-token vocabulary).

  /usr/bin/python3 bench/make_checkpoint.py OUT [--geometry vit-b32-224] [--seed 0]
  build/tools/ruclip embed --model OUT --image tests/data/ruclip-tiny-v2/images/...

The weights are random (normal, std 0.02; LayerNorm 1/0): the numbers the
model gives mean nothing, only the file's layout and size matter. Needs
Debian's python3-torch.
"""
import argparse
import collections
import json
import os
import shutil

import torch

# name: embed_dim, resolution, vision_layers, vision_width, patch, text_width, text_heads
# (config.cpp's kGeometries); all have a 77-token context, a 49408-token
# vocabulary and 12 text layers.
GEOMETRIES = {
    "vit-b32-224": (512, 224, 12, 768, 32, 512, 8),
    "vit-b32-384": (512, 384, 12, 768, 32, 512, 8),
    "vit-b16-224": (512, 224, 12, 768, 16, 512, 8),
    "vit-b16-384": (512, 384, 12, 768, 16, 512, 8),
    "vit-l14-224": (768, 224, 24, 1024, 14, 768, 12),
    "vit-l14-336": (768, 336, 24, 1024, 14, 768, 12),
}
CONTEXT, VOCAB, TEXT_LAYERS = 77, 49408, 12
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def config_json(geometry):
    embed_dim, resolution, vision_layers, vision_width, patch, text_width, text_heads = GEOMETRIES[geometry]
    # Field order and values as in the published config.json.
    return collections.OrderedDict([
        ("embed_dim", embed_dim),
        ("image_resolution", resolution),
        ("vision_layers", vision_layers),
        ("vision_width", vision_width),
        ("vision_patch_size", patch),
        ("context_length", CONTEXT),
        ("vocab_size", VOCAB),
        ("transformer_width", text_width),
        ("transformer_heads", text_heads),
        ("transformer_layers", TEXT_LAYERS),
        ("mean", [0.48145466, 0.4578275, 0.40821073]),
        ("std", [0.26862954, 0.26130258, 0.27577711]),
    ])


def block_shapes(prefix, layers, d):
    for i in range(layers):
        p = f"{prefix}.resblocks.{i}."
        yield p + "ln_1.weight", (d,)
        yield p + "ln_1.bias", (d,)
        yield p + "attn.in_proj_weight", (3 * d, d)
        yield p + "attn.in_proj_bias", (3 * d,)
        yield p + "attn.out_proj.weight", (d, d)
        yield p + "attn.out_proj.bias", (d,)
        yield p + "ln_2.weight", (d,)
        yield p + "ln_2.bias", (d,)
        yield p + "mlp.c_fc.weight", (4 * d, d)
        yield p + "mlp.c_fc.bias", (4 * d,)
        yield p + "mlp.c_proj.weight", (d, 4 * d)
        yield p + "mlp.c_proj.bias", (d,)


def parameter_shapes(geometry):
    """Upstream ruclip.model.CLIP's state_dict names and shapes, in its order:
    a module's own parameters first, then its submodules in creation order."""
    embed_dim, resolution, vision_layers, vw, patch, tw, _ = GEOMETRIES[geometry]
    grid = resolution // patch
    yield "positional_embedding", (CONTEXT, tw)
    yield "text_projection", (tw, embed_dim)
    yield "logit_scale", ()
    yield "visual.class_embedding", (vw,)
    yield "visual.positional_embedding", (grid * grid + 1, vw)
    yield "visual.proj", (vw, embed_dim)
    yield "visual.conv1.weight", (vw, 3, patch, patch)
    yield "visual.ln_pre.weight", (vw,)
    yield "visual.ln_pre.bias", (vw,)
    yield from block_shapes("visual.transformer", vision_layers, vw)
    yield "visual.ln_post.weight", (vw,)
    yield "visual.ln_post.bias", (vw,)
    yield from block_shapes("transformer", TEXT_LAYERS, tw)
    yield "token_embedding.weight", (VOCAB, tw)
    yield "ln_final.weight", (tw,)
    yield "ln_final.bias", (tw,)


def state_dict(geometry, seed):
    generator = torch.Generator().manual_seed(seed)
    return collections.OrderedDict((name, tensor_for(name, shape, generator))
                                   for name, shape in parameter_shapes(geometry))


def tensor_for(name, shape, generator):
    if name == "logit_scale":
        return torch.tensor(4.6052)  # log(100), as the published models have it
    if ".ln_" in name or name.startswith("ln_"):
        return torch.ones(shape) if name.endswith(".weight") else torch.zeros(shape)
    return torch.randn(shape, generator=generator) * 0.02


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out")
    parser.add_argument("--geometry", default="vit-b32-224", choices=sorted(GEOMETRIES))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tokenizer", default=os.path.join(ROOT, "tests/data/ruclip-tiny-v2/bpe.model"),
                        help="bpe.model (YouTokenToMe) to copy; at most 49408 tokens")
    args = parser.parse_args()

    os.makedirs(args.out, exist_ok=True)
    weights = state_dict(args.geometry, args.seed)
    torch.save(weights, os.path.join(args.out, "pytorch_model.bin"))
    with open(os.path.join(args.out, "config.json"), "w") as f:
        json.dump(config_json(args.geometry), f, indent=2)
        f.write("\n")
    shutil.copyfile(args.tokenizer, os.path.join(args.out, "bpe.model"))
    size = os.path.getsize(os.path.join(args.out, "pytorch_model.bin"))
    print(json.dumps({"out": args.out, "geometry": args.geometry, "tensors": len(weights),
                      "parameters": sum(t.numel() for t in weights.values()), "bytes": size}))


if __name__ == "__main__":
    main()
