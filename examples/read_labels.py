#!/usr/bin/env python3
"""read_labels.py: a Python application reading ruclipfilter's labels.

    GST_PLUGIN_PATH=build/gst-plugin python3 examples/read_labels.py MODEL_DIR "кошка;собака" [VIDEO_FILE]
"""
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
        result = ruclipmeta.buffer_get_result(buf)
        if result is None:
            continue
        pairs = "  ".join(f"{l.label} {l.score:.3f}" for l in ruclipmeta.labels(result))
        fresh = " (analyzed)" if ruclipmeta.is_fresh(result) else ""
        print(f"pts {buf.pts / Gst.SECOND:.3f}s  frame {ruclipmeta.frame(result)}{fresh}: {pairs}")
    pipeline.set_state(Gst.State.NULL)


if __name__ == "__main__":
    main()
