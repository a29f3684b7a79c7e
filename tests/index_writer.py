#!/usr/bin/env python3
"""A "machine" for tests/test_index_live.py: one process, one pipeline, live
videotestsrc cameras of solid colours, each through ruclipfilter (the shipped
model, one copy shared) into ruclipindex. Prints a JSON line of every
camera's writer counters every 0.2 s and at the end (after EOS):
{"cameras": {"a-red": {"stored": 12, "unchanged": 0, "dropped": 0}, ...}, "done": false}

    index_writer.py --location URI --seconds 4 --camera a-red:e11e1e --camera a-blue:1e50dc [--min-change 0]
"""
import argparse
import json
import sys

import gi

gi.require_version("Gst", "1.0")
from gi.repository import GLib, Gst  # noqa: E402

from shipped_model import MODEL  # noqa: E402

p = argparse.ArgumentParser()
p.add_argument("--location", required=True)
p.add_argument("--camera", action="append", required=True, help="NAME:RRGGBB")
p.add_argument("--seconds", type=float, default=4)
p.add_argument("--min-change", type=float, default=0.0)
p.add_argument("--queue-size", type=int, default=256)
p.add_argument("--size", default="160x120", help="WIDTHxHEIGHT of the cameras' frames")
args = p.parse_args()

Gst.init(None)
fps = 10
width, height = args.size.split("x")
branches = []
for spec in args.camera:
    name, rgb = spec.split(":")
    branches.append(
        f"videotestsrc is-live=true pattern=solid-color foreground-color=0xff{rgb} "
        f"num-buffers={int(args.seconds * fps)} ! video/x-raw,width={width},height={height},framerate={fps}/1 ! "
        f"ruclipfilter model={MODEL} labels=\"красный фон;синий фон\" interval-time=200000000 mode=async ! "
        f"ruclipindex name={name} camera={name} location=\"{args.location}\" min-change={args.min_change} "
        f"queue-size={args.queue_size} ! fakesink sync=false")
pipeline = Gst.parse_launch(" ".join(branches))
names = [spec.split(":")[0] for spec in args.camera]
loop = GLib.MainLoop()
failure = []


def report(done):
    cameras = {}
    for n in names:
        e = pipeline.get_by_name(n)
        cameras[n] = {k: e.get_property(f"rows-{k}") for k in ("stored", "unchanged", "dropped")}
    print(json.dumps({"cameras": cameras, "done": done}), flush=True)
    return True


def on_message(bus, msg):
    if msg.type == Gst.MessageType.EOS:
        loop.quit()
    elif msg.type == Gst.MessageType.ERROR:
        err, debug = msg.parse_error()
        failure.append(f"{msg.src.get_name()}: {err.message} ({debug})")
        loop.quit()
    elif msg.type == Gst.MessageType.WARNING:
        err, _ = msg.parse_warning()
        print(f"warning: {msg.src.get_name()}: {err.message}", file=sys.stderr, flush=True)


bus = pipeline.get_bus()
bus.add_signal_watch()
bus.connect("message", on_message)
GLib.timeout_add(200, report, False)
pipeline.set_state(Gst.State.PLAYING)
loop.run()
report(True)  # after EOS: every element flushed its queue
pipeline.set_state(Gst.State.NULL)
if failure:
    print("\n".join(failure), file=sys.stderr)
    sys.exit(1)
