#!/usr/bin/env python3
"""read_labels.py: a Python application reading ruclipfilter's labels.

    GST_PLUGIN_PATH=build/gst-plugin python3 examples/read_labels.py MODEL_DIR "кошка;собака" [VIDEO_FILE]
"""
import sys

import gi

gi.require_version("Gst", "1.0")
from gi.repository import Gst  # noqa: E402


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    model, labels = sys.argv[1], sys.argv[2]
    Gst.init(None)
    source = (f'filesrc location="{sys.argv[3]}" ! decodebin ! videoconvert' if len(sys.argv) > 3
              else "videotestsrc num-buffers=60 pattern=ball ! videoconvert")
    pipeline = Gst.parse_launch(
        f'{source} ! ruclipfilter model="{model}" labels="{labels}" interval=10 ! appsink name=sink sync=false')
    sink = pipeline.get_by_name("sink")
    pipeline.set_state(Gst.State.PLAYING)
    while (sample := sink.emit("pull-sample")) is not None:
        buf = sample.get_buffer()
        meta = buf.get_custom_meta("RuClipMeta")
        if meta is None:
            continue
        s = meta.get_structure()
        labels, scores = s.get_value("labels"), s.get_value("scores")
        pairs = "  ".join(f"{labels[i]} {scores[i]:.3f}" for i in range(len(labels)))
        fresh = " (analyzed)" if s.get_value("fresh") else ""
        print(f"pts {buf.pts / Gst.SECOND:.3f}s  frame {s.get_value('frame')}{fresh}: {pairs}")
    pipeline.set_state(Gst.State.NULL)


if __name__ == "__main__":
    main()
