#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets (tests/fuzz/corpus/<target>/).

Standard library only. The torch.save-style checkpoint is pickled with stand-in
classes named like torch's, so its bytes are what torch writes for a state
dict (protocol 2, persistent ids for storages, OrderedDict with _metadata).
"""
import collections
import io
import json
import os
import pickle
import shutil
import struct
import subprocess
import sys
import types
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "..", "data")
OUT = os.path.join(HERE, "corpus")

# Stand-ins with torch's names: pickle records module + qualified name only.
torch = types.ModuleType("torch")
torch_utils = types.ModuleType("torch._utils")
sys.modules["torch"], sys.modules["torch._utils"] = torch, torch_utils


def _rebuild_tensor_v2(*args):
    raise RuntimeError("never called")


_rebuild_tensor_v2.__module__ = "torch._utils"
torch_utils._rebuild_tensor_v2 = _rebuild_tensor_v2
for name in ("FloatStorage", "HalfStorage", "BFloat16Storage"):
    cls = type(name, (), {"__module__": "torch"})
    setattr(torch, name, cls)


class Storage:
    def __init__(self, kind, key, values, fmt):
        self.kind, self.key, self.data = kind, key, struct.pack("<%d%s" % (len(values), fmt), *values)
        self.numel = len(values)


class Tensor:
    def __init__(self, storage, offset, size, stride):
        self.args = (storage, offset, tuple(size), tuple(stride), False, collections.OrderedDict())

    def __reduce__(self):
        return (_rebuild_tensor_v2, self.args)


class Pickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, Storage):
            return ("storage", getattr(torch, obj.kind), obj.key, "cpu", obj.numel)
        return None


def checkpoint(tensors, storages, protocol=2):
    state = collections.OrderedDict(tensors)
    state._metadata = collections.OrderedDict({"": {"version": 1}})
    buf = io.BytesIO()
    Pickler(buf, protocol=protocol).dump(state)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as z:
        def entry(name, data):  # a fixed timestamp: the same seed bytes on every run
            z.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), data)
        entry("archive/data.pkl", buf.getvalue())
        entry("archive/byteorder", "little")
        for s in storages:
            entry(f"archive/data/{s.key}", s.data)
        entry("archive/version", "3\n")
    return out.getvalue()


class LegacyPickler(pickle.Pickler):
    """The persistent ids of torch.serialization._legacy_save (no storage views: torch >= 0.4)."""

    def persistent_id(self, obj):
        if isinstance(obj, Storage):
            return ("storage", getattr(torch, obj.kind), obj.key, "cpu", obj.numel, None)
        return None


def legacy_checkpoint(tensors, storages, protocol=2):
    """torch.save(..., _use_new_zipfile_serialization=False): five pickles, then each storage's count and bytes."""
    state = collections.OrderedDict(tensors)
    state._metadata = collections.OrderedDict({"": {"version": 1}})
    out = io.BytesIO()
    sys_info = {"protocol_version": 1001, "little_endian": True, "type_sizes": {"short": 2, "int": 4, "long": 4}}
    for header in (0x1950A86A20F9469CFC6C, 1001, sys_info):
        pickle.dump(header, out, protocol=protocol)
    LegacyPickler(out, protocol=protocol).dump(state)
    ordered = sorted(storages, key=lambda s: s.key)
    pickle.dump([s.key for s in ordered], out, protocol=protocol)
    for s in ordered:
        out.write(struct.pack("<q", s.numel) + s.data)
    return out.getvalue()


def safetensors(tensors):
    header, data = {}, b""
    for name, (dtype, shape, raw) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    header["__metadata__"] = {"format": "pt"}
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + data


def write(target, name, data):
    os.makedirs(os.path.join(OUT, target), exist_ok=True)
    with open(os.path.join(OUT, target, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def gpt2_seeds():
    """fuzz_gpt2: the first byte picks text (0), merges.txt (1) or vocab.json (2)."""
    v1 = os.path.join(DATA, "ruclip-v1-tiny")
    with open(os.path.join(v1, "expected.json"), encoding="utf-8") as f:
        expected = json.load(f)
    for i, entry in enumerate(expected["texts"]):
        write("gpt2", f"text{i:02d}.txt", "\0" + entry["text"])
    write("gpt2", "specials.txt", "\0<s> кот </s>\t<pad><|endoftext|> it's 42\u00a0\u180e\x1c")
    with open(os.path.join(v1, "merges.txt"), "rb") as f:
        merges = f.read()
    write("gpt2", "merges.txt", b"\1" + merges)
    write("gpt2", "merges-head.txt", b"\1" + b"".join(merges.splitlines(keepends=True)[:40]))
    with open(os.path.join(v1, "vocab.json"), "rb") as f:
        write("gpt2", "vocab.json", b"\2" + f.read())


def main():
    # Each seed is (re)written under its own name; nothing else is touched:
    # corpus/ also holds the inputs fuzzing runs found and minimized into it.
    os.makedirs(OUT, exist_ok=True)
    s0 = Storage("FloatStorage", "0", [0.5, -1.0, 2.0, 3.5, 0.25, 8.0], "f")
    s1 = Storage("HalfStorage", "1", [0x3C00, 0xC000, 0x3800], "H")
    s2 = Storage("BFloat16Storage", "2", [0x3F80, 0x4000], "H")
    tensors = {"a.weight": Tensor(s0, 0, [2, 3], [3, 1]), "a.t": Tensor(s0, 1, [2, 2], [1, 3]),
               "half": Tensor(s1, 0, [3], [1]), "bf16": Tensor(s2, 0, [2], [1]), "scale": Tensor(s0, 5, [], [])}
    write("checkpoint", "state_dict_p2.bin", checkpoint(tensors, [s0, s1, s2]))
    write("checkpoint", "state_dict_p4.bin", checkpoint(tensors, [s0, s1, s2], protocol=4))
    write("checkpoint", "legacy_p2.bin", legacy_checkpoint(tensors, [s0, s1, s2]))
    write("checkpoint", "legacy_p4.bin", legacy_checkpoint(tensors, [s0, s1, s2], protocol=4))

    f32 = struct.pack("<4f", 1, 2, 3, 4)
    write("safetensors", "small.safetensors",
          safetensors({"w": ("F32", [2, 2], f32), "h": ("F16", [2], struct.pack("<2H", 0x3C00, 0x4000)),
                       "b": ("BF16", [1], struct.pack("<H", 0x3F80))}))

    tiny = os.path.join(DATA, "ruclip-tiny-v2")
    with open(os.path.join(tiny, "config.json")) as f:
        config = json.load(f)
    write("config", "config.json", json.dumps(config))
    config.update({"tokenizer": "sentencepiece", "templates": ["{}", "это {}"], "eos_id": 3})
    write("config", "extended.json", json.dumps(config))
    with open(os.path.join(DATA, "ruclip-v1-tiny", "config.json"), "rb") as f:
        write("config", "v1.json", f.read())  # ruCLIP v1's nested format

    yttm = "4 2\n9601 4\n1072 5\n1073 6\n1074 7\n5 6 8\n4 8 9\n1 0 2 3\n"
    write("yttm", "small.model", yttm)
    with open(os.path.join(tiny, "bpe.model"), "rb") as f:
        write("yttm", "tiny.model", f.read())

    with open(os.path.join(DATA, "yttm", "lines.txt"), encoding="utf-8") as f:
        lines = f.read().splitlines()
    for i, line in enumerate(lines[:40]):
        write("tokenizer", f"line{i:02d}.txt", line)
    write("tokenizer", "mixed.txt", "Ёлка и ЁЖИК, İstanbul ΣΟΦΙΑ ☃ \t 12")
    gpt2_seeds()
    write("labels", "labels.txt", "# животные\nкошка\n\n  собака  \r\n#\nгрузовик\n")
    write("labels", "list.txt", "человек;автомобиль; пустая улица;;")

    corpus = os.path.join(OUT, "spm-corpus.txt")
    with open(corpus, "w", encoding="utf-8") as f:
        f.write("\n".join(lines[:300]))
    subprocess.run(["spm_train", f"--input={corpus}", f"--model_prefix={OUT}/spm", "--vocab_size=120",
                    "--model_type=bpe", "--minloglevel=2"], check=True, capture_output=True)
    os.makedirs(os.path.join(OUT, "sentencepiece"), exist_ok=True)
    shutil.move(f"{OUT}/spm.model", os.path.join(OUT, "sentencepiece", "bpe120.model"))
    for leftover in (corpus, f"{OUT}/spm.vocab"):
        os.remove(leftover)


if __name__ == "__main__":
    main()
