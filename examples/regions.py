#!/usr/bin/env python3
"""regions.py: ruclipfilter classifying boxes the application gives it, and
ruclipoverlay drawing them.

    GST_PLUGIN_PATH=build/gst-plugin python3 examples/regions.py MODEL_DIR "label;label;..." \
        [--boxes "x,y,w,h;x,y,w,h"] [--frames N] [--max-labels N] [--png OUT.png] [--show]

The picture: two solid colours side by side (--left, --right; default red and
blue, 320x240 in all), composed by compositor. An `identity` in front of
ruclipfilter calls back (signal "handoff") with each buffer, where the
application attaches one GstVideoRegionOfInterestMeta per box, as a detector
would (default: one box on each half). `ruclipfilter inference-region=roi-list`
classifies each box's crop; `ruclipoverlay` outlines the boxes and writes their
best labels beside them (--max-labels, default 1). Prints, per analyzed frame and region:

    frame 0 region 0 (20,40 120x160): красный фон 0.998, синий фон 0.001, ...

--png writes the drawn frame (the last one) as a PNG; --show also displays the video.

Debian 12's OpenCV plugin (gstreamer1.0-opencv) can find the boxes instead:
its facedetect attaches a "face" region per face (examples/faces_overlay.sh).
"""
import argparse
import os
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstVideo", "1.0")
from gi.repository import GLib, Gst, GstVideo  # noqa: E402

try:
    import ruclipmeta  # installed by meson install
except ImportError:  # a source tree
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "gst-plugin", "meta"))
    import ruclipmeta

WIDTH, HEIGHT = 320, 240


def parse_boxes(text):
    boxes = []
    for item in filter(None, (b.strip() for b in text.split(";"))):
        x, y, w, h = (int(v) for v in item.split(","))
        boxes.append((x, y, w, h))
    return boxes


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("labels")
    ap.add_argument("--boxes", default="20,40,120,160;180,40,120,160", help='"x,y,w,h;..." in the 320x240 frame')
    ap.add_argument("--left", default="0xffff0000", help="ARGB colour of the left half")
    ap.add_argument("--right", default="0xff0000ff", help="ARGB colour of the right half")
    ap.add_argument("--frames", type=int, default=1)
    ap.add_argument("--max-labels", type=int, default=1, help="labels drawn beside each box")
    ap.add_argument("--png", help="write the drawn frame (the last) here")
    ap.add_argument("--scoring", default="auto", choices=["auto", "softmax", "presence"], help="ruclipfilter scoring")
    ap.add_argument("--show", action="store_true", help="also display the video (autovideosink)")
    args = ap.parse_args()
    boxes = parse_boxes(args.boxes)

    Gst.init(None)
    half = f"video/x-raw,width={WIDTH // 2},height={HEIGHT},framerate=30/1"
    branches = ""
    if args.png:
        # Every frame into the same file: the last one stays. (pngenc snapshot=true
        # would end the stream after one frame, through tee.)
        branches += " t. ! queue ! videoconvert ! pngenc ! multifilesink name=png"
    if args.show:
        branches += " t. ! queue ! videoconvert ! autovideosink"
    pipeline = Gst.parse_launch(
        f"compositor name=c sink_1::xpos={WIDTH // 2} ! video/x-raw,width={WIDTH},height={HEIGHT} ! "
        "videoconvert ! video/x-raw,format=RGB ! identity name=boxes signal-handoffs=true ! "
        "ruclipfilter name=rc inference-region=roi-list ! "
        f"ruclipoverlay max-labels={args.max_labels} ! tee name=t "
        f"t. ! queue ! appsink name=sink sync=false emit-signals=true{branches} "
        f"videotestsrc pattern=solid-color foreground-color={args.left} num-buffers={args.frames} ! {half} ! c.sink_0 "
        f"videotestsrc pattern=solid-color foreground-color={args.right} num-buffers={args.frames} ! {half} ! c.sink_1")
    pipeline.get_by_name("rc").set_property("model", args.model)
    pipeline.get_by_name("rc").set_property("labels", args.labels)
    Gst.util_set_object_arg(pipeline.get_by_name("rc"), "scoring", args.scoring)
    if args.png:
        pipeline.get_by_name("png").set_property("location", args.png)

    def add_boxes(_identity, buffer):
        # The buffer identity hands over is the one going downstream: the
        # regions attached here are what ruclipfilter classifies.
        for i, (x, y, w, h) in enumerate(boxes):
            roi = GstVideo.buffer_add_video_region_of_interest_meta(buffer, "box", x, y, w, h)
            roi.id = i

    def print_regions(sink):
        # The result of an analyzed frame: one line per region.
        result = ruclipmeta.buffer_get_result(sink.emit("pull-sample").get_buffer())
        if result is not None and ruclipmeta.is_fresh(result):
            for r in ruclipmeta.regions(result):
                pairs = ", ".join(f"{l.label} {l.score:.3f}" for l in r.labels)
                print(f"frame {ruclipmeta.frame(result)} region {r.id} ({r.x},{r.y} {r.w}x{r.h}): {pairs}",
                      flush=True)
        return Gst.FlowReturn.OK

    loop = GLib.MainLoop()
    failure = []

    def on_message(_bus, msg):
        if msg.type == Gst.MessageType.ERROR:
            err, debug = msg.parse_error()
            failure.append(f"error: {err.message} ({debug})")
            loop.quit()
        elif msg.type == Gst.MessageType.EOS:
            loop.quit()

    pipeline.get_by_name("boxes").connect("handoff", add_boxes)
    pipeline.get_by_name("sink").connect("new-sample", print_regions)
    bus = pipeline.get_bus()
    bus.add_signal_watch()
    bus.connect("message", on_message)
    pipeline.set_state(Gst.State.PLAYING)
    loop.run()
    pipeline.set_state(Gst.State.NULL)
    bus.remove_signal_watch()
    if failure:
        sys.exit(failure[0])

if __name__ == "__main__":
    main()
