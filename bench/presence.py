#!/usr/bin/env python3
"""Presence against the softmax and a raw cosine threshold, measured on the
shipped model (docs/tagging-and-search.md, "Presence").

1. Pictures: the model's evaluation sets (`ruclip synth --style eval`, as
   models/recipes/ruclip-shapes-ru/train.sh draws them), seen and held-out
   colour-shape pairs, 96x72 and 160x120. `ruclip eval --presence` scores
   every label alone as a query on every picture: presence at 0.5 (the
   default), the softmax over all 32 labels at 0.5, and the raw cosine at the
   threshold with the best F1 on the seen pictures of the same size (tuned
   there, applied to held-out ones).
   The same presence with the built-in neutral background instead of the
   model's own (--builtin-background).
2. Videos: the scenes video (examples/make_test_video.sh) tagged with one
   label at a time, `ruclip tag --label L`: each scene's label must give
   exactly its own span, boundaries within one interval, and labels of no
   scene no segment at all.
3. The stream baseline: a "camera" on a scene the model half-reads as «синий
   круг» (a big blue square, seen-pairs picture 13) for 6 s, two blue circles
   (picture 688) for 3 s, the square again for 6 s; «синий круг» alone with
   and without --presence-baseline 6.

    python3 bench/presence.py [--out bench/results-presence.json]
Needs a build (scripts/build.sh): RUCLIP_EXE and GST_PLUGIN_PATH default to ./build."""
import argparse
import datetime
import json
import os
import platform
import re
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL = os.path.join(ROOT, "models", "ruclip-shapes-ru")
RUCLIP = os.environ.get("RUCLIP_EXE", os.path.join(ROOT, "build", "tools", "ruclip"))
EVERY = 0.5
# examples/make_test_video.sh: (label, start, end) of each scene; "белый круг" is a white ball on black.
SCENES = [("красный фон", 0.0, 1.5), ("белый круг", 1.5, 3.5), ("синий фон", 3.5, 5.0), ("жёлтый круг", 5.0, 6.5),
          ("зелёный фон", 6.5, 8.0)]
ABSENT = ["красный круг", "фиолетовая звезда", "оранжевый фон", "зелёный треугольник", "синий квадрат"]


def cpu():
    text = open("/proc/cpuinfo").read()
    flags = re.search(r"flags\s*:\s*(.*)", text).group(1).split()
    return {"model": re.search(r"model name\s*:\s*(.*)", text).group(1),
            "family": int(re.search(r"cpu family\s*:\s*(\d+)", text).group(1)),
            "model_number": int(re.search(r"^model\s*:\s*(\d+)", text, re.M).group(1)),
            "flags": [f for f in ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile") if f in flags],
            "cores": os.cpu_count()}


def run(cmd):
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)}: exit {p.returncode}\n{p.stderr}")
    return p.stdout


def pictures(work):
    labels = json.load(open(os.path.join(MODEL, "eval", "eval-held.json")))["labels"]
    label_args = [a for l in labels for a in ("--label", l)]
    sets = {"seen": ("seen", 1500, 2), "held-out": ("held", 1000, 3)}
    out = {}
    for size, extra in (("96x72", []), ("160x120", ["--width", "160", "--height", "120"])):
        cosine_threshold = None
        for name, (pairs, count, seed) in sets.items():  # seen first: it sets the cosine threshold
            folder = os.path.join(work, f"{pairs}-{size}")
            run([RUCLIP, "synth", "--out", folder, "--count", str(count), "--style", "eval", "--pairs", pairs,
                 "--solid", "no", "--jpeg-quality", "75", "--seed", str(seed)] + extra)
            cmd = [RUCLIP, "eval", "--model", MODEL, "--data", os.path.join(folder, "labels.csv"), "--presence",
                   "--json-only"] + label_args
            if cosine_threshold is not None:
                cmd += ["--cosine-threshold", repr(cosine_threshold)]
            d = json.loads(run(cmd))["detection"]
            d["presence_builtin_background"] = json.loads(run(cmd + ["--builtin-background"]))["detection"]["presence"]
            if cosine_threshold is None:
                cosine_threshold = d["cosine_best_threshold"]
                d["cosine"] = json.loads(run(cmd + ["--cosine-threshold", repr(cosine_threshold)]))["detection"]["cosine"]
            out[f"{name} {size}"] = {"images": count, **d}
            print(f"{name} {size}: presence F1 {d['presence']['f1']:.3f} AUROC {d['presence']['auroc']:.4f} | "
                  f"softmax(all 32) F1 {d['softmax_all_labels']['f1']:.3f} AUROC {d['softmax_all_labels']['auroc']:.4f} | "
                  f"cosine F1 {d['cosine']['f1']:.3f} at {d['cosine']['threshold']:.3f} AUROC {d['cosine']['auroc']:.4f} | "
                  f"presence, built-in background F1 {d['presence_builtin_background']['f1']:.3f}",
                  file=sys.stderr)
    return out


def videos(work):
    video = os.path.join(work, "scenes.webm")
    run(["bash", os.path.join(ROOT, "examples", "make_test_video.sh"), video])
    results = []
    for label in [s[0] for s in SCENES] + ABSENT:
        d = json.loads(run([RUCLIP, "tag", "--model", MODEL, "--every", str(EVERY), "--label", label, video]))
        found = [(s["start"], s["end"]) for s in d["files"][0]["segments"]]
        want = [(s, e) for l, s, e in SCENES if l == label]
        ok = len(found) == len(want) and all(abs(a - c) <= EVERY + 1e-6 and abs(b - e) <= EVERY + 1e-6
                                              for (a, b), (c, e) in zip(found, want))
        results.append({"label": label, "scoring": d["scoring"], "expected": want, "found": found, "ok": ok})
        print(f"video, «{label}» alone: {found} (expected {want}) {'ok' if ok else 'WRONG'}", file=sys.stderr)
    return results


def camera(work):
    seen = os.path.join(work, "seen-160x120")  # drawn by pictures()
    labels = dict(line.split(",", 1) for line in open(os.path.join(seen, "labels.csv")).read().splitlines()[1:])
    square, circles = "images/000013.jpg", "images/000688.jpg"
    assert labels[square] == "синий квадрат" and labels[circles] == "синий круг", "the synth pictures changed"
    video = os.path.join(work, "camera.mp4")
    inputs = []
    for picture, seconds in ((square, 6), (circles, 3), (square, 6)):
        inputs += ["-loop", "1", "-t", str(seconds), "-framerate", "10", "-i", os.path.join(seen, picture)]
    run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", *inputs, "-filter_complex",
         "[0:v][1:v][2:v]concat=n=3:v=1[v]", "-map", "[v]", "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt",
         "yuv420p", video])
    out = {}
    for warmup in (0, 6):
        d = json.loads(run([RUCLIP, "tag", "--model", MODEL, "--every", str(EVERY), "--label", "синий круг",
                            "--presence-baseline", str(warmup), video]))
        f = d["files"][0]
        out[f"baseline {warmup}"] = {"segments": [(s["start"], s["end"]) for s in f["segments"]],
                                     "presence": [round(s["scores"]["синий круг"], 3) for s in f["samples"]]}
        print(f"camera, «синий круг», --presence-baseline {warmup}: {out[f'baseline {warmup}']['segments']}",
              file=sys.stderr)
    found = out["baseline 6"]["segments"]
    out["ok"] = len(found) == 1 and abs(found[0][0] - 6) <= EVERY + 1e-6 and abs(found[0][1] - 9) <= EVERY + 1e-6
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "results-presence.json"))
    args = ap.parse_args()
    os.environ.setdefault("GST_PLUGIN_PATH", os.path.join(ROOT, "build", "gst-plugin"))
    with tempfile.TemporaryDirectory() as work:
        result = {"date": datetime.date.today().isoformat(), "cpu": cpu(), "machine": platform.machine(),
                  "model": "models/ruclip-shapes-ru", "pictures": pictures(work), "videos": videos(work),
                  "camera": camera(work)}
    with open(args.out, "w") as f:
        json.dump(result, f, ensure_ascii=False, indent=1)
        f.write("\n")
    return 0 if all(v["ok"] for v in result["videos"]) and result["camera"]["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
