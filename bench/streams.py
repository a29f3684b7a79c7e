#!/usr/bin/env python3
"""Many camera streams in one process against one process per stream.

Each configuration runs in a fresh child process: N live 640x480 30 fps
streams (videotestsrc, a distinct solid colour each, I420), each through its
own ruclipfilter (sync mode, batch-size 8, interval I) into a fakesink, all
sharing one model; then, for comparison, the way users would otherwise run
it: N separate processes of one stream each, started together. After a
warm-up, frames analyzed are counted over the measured seconds.

Reported per configuration: aggregate analyzed frames/s, per-stream analysis
latency (sampling a frame to its result, the element's stats: the median of
the streams' p50 and the worst p95), peak resident memory (VmHWM; summed over
the processes of the separate runs), the CPU. The contenders alternate within
each round, so drift hits both.

  /usr/bin/python3 bench/streams.py [--model DIR] [--streams 1,2,4,8,16] [--intervals 1,10]
                                    [--separate 8] [--seconds 20] [--rounds 2] [--json OUT]

Without --model, a ViT-B/32-224 folder with random weights is written once to
/tmp/ruclip-bench-b32-224 (bench/make_checkpoint.py; Debian's python3-torch).
GST_PLUGIN_PATH must point at the built plugin (default: build/gst-plugin).
Every process runs the fp32 linear kernel RUCLIP_FP32_KERNEL names (default
onednn-f32): left to its load-time measurement, a process on a busy machine
may pick the other one, and the contenders would differ by more than sharing.
"""
import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COLOURS = ["0xffff0000", "0xff0000ff", "0xff00ff00", "0xffffff00", "0xff000000", "0xffffffff", "0xffff00ff",
           "0xff00ffff", "0xff808080", "0xff800000", "0xff008000", "0xff000080", "0xff808000", "0xff800080",
           "0xff008080", "0xffc0c0c0"]
LABELS = "красный фон;синий фон;зелёный фон;жёлтый фон;чёрный фон;белый фон"


def cpu():
    model, flags = "", set()
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name") and not model:
                model = line.split(":", 1)[1].strip()
            if line.startswith("flags") and not flags:
                flags = set(line.split(":", 1)[1].split())
    wanted = ["avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16"]
    return {"model": model, "flags": [f for f in wanted if f in flags], "cores": os.cpu_count(),
            "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE", "")}


def peak_rss_mib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def child(args):
    """Runs N streams in this process; prints one JSON line."""
    import gi
    gi.require_version("Gst", "1.0")
    from gi.repository import Gst
    Gst.init(None)
    pipelines, filters = [], []
    for i in range(args.streams):
        colour = COLOURS[(args.first + i) % len(COLOURS)]
        desc = (f"videotestsrc is-live=true pattern=solid-color foreground-color={colour} ! "
                f"video/x-raw,format=I420,width=640,height=480,framerate=30/1 ! "
                f"ruclipfilter name=rc model=\"{args.model}\" labels=\"{LABELS}\" mode=sync batch-size=8 "
                f"interval={args.interval} ! fakesink sync=false")
        p = Gst.parse_launch(desc)
        pipelines.append(p)
        filters.append(p.get_by_name("rc"))
    start = time.monotonic()
    for p in pipelines:
        if p.set_state(Gst.State.PLAYING) == Gst.StateChangeReturn.FAILURE:
            raise SystemExit("a pipeline did not start: is GST_PLUGIN_PATH set?")
    # Warm-up: until every stream has a result (the model is loaded) and a bit more.
    while any(f.get_property("frames-analyzed") == 0 for f in filters):
        time.sleep(0.05)
        if time.monotonic() - start > 300:
            raise SystemExit("no result after 300 s")
    if args.ready_file:  # separate processes: measure together once all are warm
        open(args.ready_file, "w").close()
        while not os.path.exists(args.go_file):
            time.sleep(0.02)
    time.sleep(args.warmup)
    before = [f.get_property("frames-analyzed") for f in filters]
    t0 = time.monotonic()
    time.sleep(args.seconds)
    after = [f.get_property("frames-analyzed") for f in filters]
    elapsed = time.monotonic() - t0
    stats = [f.get_property("stats") for f in filters]
    result = {
        "streams": args.streams,
        "interval": args.interval,
        "analyzed_per_s": sum(a - b for a, b in zip(after, before)) / elapsed,
        "per_stream_per_s": [(a - b) / elapsed for a, b in zip(after, before)],
        "p50_ms": [s.get_value("latency-p50-ms") for s in stats],
        "p95_ms": [s.get_value("latency-p95-ms") for s in stats],
        "model_instances": sorted({s.get_value("model-instance") for s in stats}),
        "batch_mean_frames": stats[0].get_value("batch-mean-frames"),
        "inference_ms": [s.get_value("inference-ms") for s in stats],
        "peak_rss_mib": peak_rss_mib(),
    }
    for p in pipelines:
        p.set_state(Gst.State.NULL)
    print(json.dumps(result), flush=True)


def run_child(model, streams, interval, first, seconds, warmup, extra=()):
    cmd = [sys.executable, os.path.abspath(__file__), "--child", "--model", model, "--streams", str(streams),
           "--interval", str(interval), "--first", str(first), "--seconds", str(seconds), "--warmup", str(warmup),
           *extra]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)


def one_process(model, streams, interval, seconds, warmup):
    p = run_child(model, streams, interval, 0, seconds, warmup)
    out, _ = p.communicate()
    if p.returncode != 0:
        raise SystemExit(f"{streams} streams, interval {interval}: child failed")
    r = json.loads(out)
    r["kind"] = "one process"
    return r


def separate_processes(model, n, interval, seconds, warmup, tmp):
    go = os.path.join(tmp, f"go-{n}-{interval}-{time.time_ns()}")
    procs, ready = [], []
    for i in range(n):
        ready.append(f"{go}.ready{i}")
        procs.append(run_child(model, 1, interval, i, seconds, warmup, ["--ready-file", ready[-1], "--go-file", go]))
    while not all(os.path.exists(r) for r in ready):
        if any(p.poll() is not None for p in procs):
            raise SystemExit("a separate process failed")
        time.sleep(0.05)
    open(go, "w").close()
    results = []
    for p in procs:
        out, _ = p.communicate()
        results.append(json.loads(out))
    for path in ready + [go]:
        os.remove(path)
    return {"kind": "separate processes", "streams": n, "interval": interval,
            "analyzed_per_s": sum(r["analyzed_per_s"] for r in results),
            "per_stream_per_s": [r["analyzed_per_s"] for r in results],
            "p50_ms": [r["p50_ms"][0] for r in results], "p95_ms": [r["p95_ms"][0] for r in results],
            "model_instances": [], "peak_rss_mib": sum(r["peak_rss_mib"] for r in results),
            "batch_mean_frames": statistics.mean(r["batch_mean_frames"] for r in results),
            "inference_ms": [r["inference_ms"][0] for r in results]}


def ensure_model(path):
    if os.path.exists(os.path.join(path, "config.json")):
        return path
    print(f"writing a random ViT-B/32-224 model to {path}", file=sys.stderr)
    subprocess.run(["/usr/bin/python3", os.path.join(ROOT, "bench", "make_checkpoint.py"), path], check=True)
    return path


def summary_row(rs):
    # min-max over rounds; latencies: median of the streams' p50, worst p95.
    fps = [r["analyzed_per_s"] for r in rs]
    p50 = [statistics.median(r["p50_ms"]) for r in rs]
    p95 = [max(r["p95_ms"]) for r in rs]
    rss = [r["peak_rss_mib"] for r in rs]
    batch = [r["batch_mean_frames"] for r in rs]
    span = lambda v, fmt: (fmt % min(v)) if len(v) == 1 or fmt % min(v) == fmt % max(v) else (fmt % min(v)) + "–" + (fmt % max(v))
    return (f"{span(fps, '%.1f')} | {span(p50, '%.0f')} | {span(p95, '%.0f')} | {span(rss, '%.0f')} | "
            f"{span(batch, '%.1f')}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model")
    ap.add_argument("--streams", default="1,2,4,8,16")
    ap.add_argument("--intervals", default="1,10")
    ap.add_argument("--separate", default="8", help="stream counts also run as separate processes")
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--warmup", type=float, default=5)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--json", help="also write every measurement here")
    ap.add_argument("--report", help="print the table of a --json file written before, and stop")
    # internal: one configuration
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--interval", type=int, default=1, help=argparse.SUPPRESS)
    ap.add_argument("--first", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--ready-file", help=argparse.SUPPRESS)
    ap.add_argument("--go-file", help=argparse.SUPPRESS)
    args = ap.parse_args()
    os.environ.setdefault("GST_PLUGIN_PATH", os.path.join(ROOT, "build", "gst-plugin"))
    os.environ.setdefault("RUCLIP_FP32_KERNEL", "onednn-f32")
    if args.child:
        args.streams = int(args.streams)
        return child(args)

    if args.report:
        with open(args.report) as f:
            saved = json.load(f)
        return report(saved["header"], saved["results"])
    model = ensure_model(args.model or "/tmp/ruclip-bench-b32-224")
    counts = [int(s) for s in args.streams.split(",")]
    intervals = [int(i) for i in args.intervals.split(",")]
    separate = [int(s) for s in args.separate.split(",") if s]
    header = {"date": datetime.datetime.now().isoformat(timespec="seconds"), "cpu": cpu(),
              "kernel": platform.release(), "model": model, "seconds": args.seconds, "rounds": args.rounds,
              "fp32_kernel": os.environ["RUCLIP_FP32_KERNEL"]}
    print(json.dumps(header), flush=True)
    results = []
    for rnd in range(args.rounds):
        for interval in intervals:
            order = counts if rnd % 2 == 0 else list(reversed(counts))
            for n in order:
                contenders = [("one", n)] + ([("separate", n)] if n in separate else [])
                if rnd % 2:
                    contenders.reverse()
                for kind, k in contenders:
                    r = (one_process(model, k, interval, args.seconds, args.warmup) if kind == "one" else
                         separate_processes(model, k, interval, args.seconds, args.warmup, "/tmp"))
                    r["round"] = rnd
                    results.append(r)
                    print(json.dumps(r), flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"header": header, "results": results}, f, indent=1)
    report(header, results)


def report(header, results):
    """The table and the issue's targets, from the medians over rounds."""
    counts = sorted({r["streams"] for r in results})
    intervals = sorted({r["interval"] for r in results})
    print(f"\n{header['cpu']['model']} ({', '.join(header['cpu']['flags'])}; {header['cpu']['cores']} cores), "
          f"{header['date']}, {header['seconds']:.0f} s per measurement, {header['rounds']} rounds (min–max)")
    print("| streams | interval | how | analyzed frames/s | latency p50 ms | p95 ms | peak RSS MiB | frames per model call |")
    print("|---|---|---|---|---|---|---|---|")
    for interval in intervals:
        for n in counts:
            for kind in ("one process", "separate processes"):
                rs = [r for r in results if r["streams"] == n and r["interval"] == interval and r["kind"] == kind]
                if rs:
                    print(f"| {n} | {interval} | {kind} | {summary_row(rs)} |")

    def med(n, i, kind, key):
        v = [r[key] for r in results if r["streams"] == n and r["interval"] == i and r["kind"] == kind]
        return statistics.median(v) if v else None

    saturated = med(1, 1, "one process", "analyzed_per_s")  # one stream analyzing every frame it can
    for interval in intervals:
        one, eight = med(1, interval, "one process", "peak_rss_mib"), med(8, interval, "one process", "peak_rss_mib")
        if one is None or eight is None:
            continue
        print(f"interval {interval}: RSS 8 streams {eight:.0f} MiB vs 1 stream + 7 x 30 MiB = {one + 210:.0f}: "
              f"{'met' if eight <= one + 210 else 'missed'}")
        f8 = med(8, interval, "one process", "analyzed_per_s")
        if saturated:
            print(f"interval {interval}: 8 streams {f8:.1f} frames/s vs one saturated stream (interval 1) "
                  f"{saturated:.1f}: {f8 / saturated:.2f}x")
        fs, rs = med(8, interval, "separate processes", "analyzed_per_s"), med(8, interval, "separate processes", "peak_rss_mib")
        if fs:
            print(f"interval {interval}: 8 separate processes {fs:.1f} frames/s, {rs:.0f} MiB: one process is "
                  f"{f8 / fs:.2f}x the frames/s at {eight / rs:.2f}x the memory")


if __name__ == "__main__":
    main()
