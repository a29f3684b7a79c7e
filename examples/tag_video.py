#!/usr/bin/env python3
"""tag_video.py: labels over time for a video file, as JSON.

    GST_PLUGIN_PATH=build/gst-plugin python3 examples/tag_video.py MODEL_DIR "label;label;..." VIDEO \
        [--every SECONDS] [--top-k K] > labels.json

Decodes the file as fast as it can (no clock), lets ruclipfilter analyze at
most one frame per --every seconds of video (interval-time), and prints
{"file", "model", "labels", "every", "frames": [{"time", "frame", "labels": [{"label", "probability"}]}]}.
"""
import argparse
import json
import os
import sys

import gi

gi.require_version("Gst", "1.0")
from gi.repository import Gst  # noqa: E402

try:
    import ruclipmeta  # installed by meson install
except ImportError:  # a source tree
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "gst-plugin", "meta"))
    import ruclipmeta


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("labels")
    ap.add_argument("video")
    ap.add_argument("--every", type=float, default=0.5, help="seconds of video between analyses")
    ap.add_argument("--top-k", type=int, default=3)
    args = ap.parse_args()

    Gst.init(None)
    pipeline = Gst.parse_launch(
        f'filesrc name=src ! decodebin ! videoconvert ! video/x-raw,format=I420 ! '
        f'ruclipfilter name=rc mode=sync top-k={args.top_k} interval-time={int(args.every * Gst.SECOND)} ! '
        'appsink name=sink sync=false')
    pipeline.get_by_name("src").set_property("location", args.video)
    pipeline.get_by_name("rc").set_property("model", args.model)
    pipeline.get_by_name("rc").set_property("labels", args.labels)
    sink = pipeline.get_by_name("sink")
    bus = pipeline.get_bus()
    pipeline.set_state(Gst.State.PLAYING)

    frames = []
    while True:
        sample = sink.emit("try-pull-sample", Gst.SECOND // 10)
        if sample is None:
            msg = bus.pop_filtered(Gst.MessageType.ERROR)
            if msg is not None:
                err, _ = msg.parse_error()
                pipeline.set_state(Gst.State.NULL)
                sys.exit(f"{args.video}: {err.message}")
            if sink.get_property("eos"):
                break
            continue
        result = ruclipmeta.buffer_get_result(sample.get_buffer())
        if result is None or not ruclipmeta.is_fresh(result):
            continue  # later buffers repeat the last result
        frames.append({
            "time": round(ruclipmeta.source_pts(result) / Gst.SECOND, 3),
            "frame": ruclipmeta.frame(result),
            "labels": [{"label": l.label, "probability": round(l.score, 4)} for l in ruclipmeta.labels(result)],
        })
    pipeline.set_state(Gst.State.NULL)
    # One frame per line: readable, and still one JSON document.
    head = {"file": args.video, "model": args.model, "labels": args.labels.split(";"), "every": args.every}
    print(json.dumps(head, ensure_ascii=False)[:-1] + ', "frames": [')
    print(",\n".join(json.dumps(f, ensure_ascii=False) for f in frames))
    print("]}")


if __name__ == "__main__":
    main()
