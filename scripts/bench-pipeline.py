#!/usr/bin/env python3
"""Pipeline benchmark: 1080p video -> ruclipfilter -> fakesink.

For each pixel format and interval: frames/s of the whole pipeline, and from
the element's own 'stats' property the milliseconds it spends on a
passed-through frame and on a sampled (analyzed) one, of which preprocessing.
One JSON object per line on stdout.

  python3 scripts/bench-pipeline.py [--model DIR] [--frames 300] \
      [--format I420 --format NV12] [--interval 1 --interval 30] [--mode sync] [--precision fp32]

Needs the build (bash scripts/build.sh); uses ./build/gst-plugin.
"""
import argparse
import json
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("GST_PLUGIN_PATH", os.path.join(ROOT, "build", "gst-plugin"))

import gi  # noqa: E402

gi.require_version("Gst", "1.0")
from gi.repository import Gst  # noqa: E402


def run(args, fmt, interval):
    # videotestsrc pattern=black costs a memset per frame, so the pipeline's
    # frames/s is mostly the element's; the content doesn't change the work.
    desc = (
        f"videotestsrc num-buffers={args.frames} pattern=black ! "
        f"video/x-raw,format={fmt},width={args.width},height={args.height},framerate=30/1 ! "
        f"ruclipfilter name=f model=\"{args.model}\" labels=\"{args.labels}\" interval={interval} "
        f"mode={args.mode} precision={args.precision} num-threads={args.threads} ! fakesink sync=false"
    )
    pipeline = Gst.parse_launch(desc)
    start = time.monotonic()
    pipeline.set_state(Gst.State.PLAYING)
    msg = pipeline.get_bus().timed_pop_filtered(Gst.CLOCK_TIME_NONE, Gst.MessageType.EOS | Gst.MessageType.ERROR)
    seconds = time.monotonic() - start
    if msg.type == Gst.MessageType.ERROR:
        err, dbg = msg.parse_error()
        sys.exit(f"pipeline failed: {err.message} ({dbg})")
    stats = pipeline.get_by_name("f").get_property("stats")
    pipeline.set_state(Gst.State.NULL)
    sampled_ms = stats.get_value("sampled-ms")
    return {
        "format": fmt,
        "size": f"{args.width}x{args.height}",
        "interval": interval,
        "mode": args.mode,
        "precision": args.precision,
        "frames": stats.get_value("frames"),
        "frames_per_second": stats.get_value("frames") / seconds,
        "passthrough_ms": stats.get_value("passthrough-ms"),
        "sampled_ms": sampled_ms,
        "preprocess_ms": stats.get_value("preprocess-ms"),
        "inference_ms": stats.get_value("inference-ms"),
        "preprocess_share_of_sampled": stats.get_value("preprocess-ms") / sampled_ms if sampled_ms else 0,
    }


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=os.path.join(ROOT, "models", "ruclip-shapes-ru"))
    p.add_argument("--labels", default="красный круг;синий квадрат;зелёный треугольник;жёлтая звезда")
    p.add_argument("--frames", type=int, default=300)
    p.add_argument("--width", type=int, default=1920)
    p.add_argument("--height", type=int, default=1080)
    p.add_argument("--format", action="append")
    p.add_argument("--interval", action="append", type=int)
    p.add_argument("--mode", default="sync", choices=["sync", "async"])
    p.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"])
    p.add_argument("--threads", type=int, default=0)
    args = p.parse_args()
    Gst.init(None)
    for fmt in args.format or ["I420", "NV12"]:
        for interval in args.interval or [1, 30]:
            print(json.dumps(run(args, fmt, interval)), flush=True)


if __name__ == "__main__":
    main()
