#!/usr/bin/env python3
"""A real client: a PyGObject application reading ruclipfilter's labels.

It reads RuClipMeta from each buffer (buf.get_custom_meta("RuClipMeta")),
the "ruclip" bus messages, and checks that both say the same thing.
Run by meson with GST_PLUGIN_PATH pointing at the built plugin.
"""
import math
import os
import sys
import unittest

import gi

gi.require_version("Gst", "1.0")
from gi.repository import Gst  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "gst-plugin", "meta"))
import ruclipmeta  # noqa: E402

MODEL = os.path.join(os.environ["RUCLIP_TEST_DATA"], "ruclip-tiny-v2")
LABELS = ["кошка", "собака", "самолёт", "грузовик"]


def as_list(value):
    # Gst.ValueArray (python3-gst-1.0 overrides) behaves like a sequence.
    return [value[i] for i in range(len(value))]


def structure_fields(s):
    return {
        "labels": as_list(s.get_value("labels")),
        "scores": as_list(s.get_value("scores")),
        "cosines": as_list(s.get_value("cosines")),
        "frame": s.get_value("frame"),
        "source-pts": s.get_value("source-pts"),
        "fresh": s.get_value("fresh"),
        "model": s.get_value("model"),
    }


class PythonClient(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        Gst.init(None)

    def run_pipeline(self, props, n=12):
        pipeline = Gst.parse_launch(
            f"videotestsrc num-buffers={n} pattern=smpte ! "
            "video/x-raw,format=BGRx,width=96,height=64,framerate=30/1 ! "
            f'ruclipfilter model="{MODEL}" labels="{";".join(LABELS)}" post-messages=true {props} ! '
            "appsink name=sink sync=false emit-signals=false"
        )
        sink = pipeline.get_by_name("sink")
        bus = pipeline.get_bus()
        pipeline.set_state(Gst.State.PLAYING)
        metas = []
        while True:
            sample = sink.emit("pull-sample")
            if sample is None:
                break
            buf = sample.get_buffer()
            meta = buf.get_custom_meta("RuClipMeta")
            metas.append((buf.pts, structure_fields(meta.get_structure()) if meta else None))
        messages = []
        while True:
            msg = bus.pop_filtered(Gst.MessageType.ELEMENT | Gst.MessageType.ERROR)
            if msg is None:
                break
            self.assertNotEqual(msg.type, Gst.MessageType.ERROR, msg)
            s = msg.get_structure()
            if s.get_name() == "ruclip":
                messages.append(structure_fields(s) | {"timestamp": s.get_value("timestamp")})
        pipeline.set_state(Gst.State.NULL)
        return metas, messages

    def test_every_analyzed_buffer_has_labels(self):
        metas, messages = self.run_pipeline("interval=3")
        self.assertEqual(len(metas), 12)
        for i, (pts, m) in enumerate(metas):
            self.assertIsNotNone(m, f"buffer {i} has no RuClipMeta")
            self.assertEqual(sorted(m["labels"]), sorted(LABELS))
            self.assertAlmostEqual(sum(m["scores"]), 1.0, places=5)
            self.assertEqual(m["scores"], sorted(m["scores"], reverse=True))
            self.assertTrue(all(-1.0 <= c <= 1.0 for c in m["cosines"]))
            self.assertEqual(m["fresh"], i % 3 == 0)
            self.assertEqual(m["frame"], i - i % 3)
            self.assertEqual(m["model"], MODEL)
            if m["fresh"]:
                self.assertEqual(m["source-pts"], pts)
        # One message per analysis, carrying the same result as the meta.
        self.assertEqual(len(messages), 4)
        fresh = [m for _, m in metas if m["fresh"]]
        for msg, meta in zip(messages, fresh):
            self.assertEqual(msg["labels"], meta["labels"])
            for a, b in zip(msg["scores"], meta["scores"]):
                self.assertTrue(math.isclose(a, b, abs_tol=1e-12))
            self.assertEqual(msg["timestamp"], meta["source-pts"])

    def test_the_python_module_reads_what_the_fields_say(self):
        """gst-plugin/meta/ruclipmeta.py against the raw structure fields, on metas, messages and segments."""
        pipeline = Gst.parse_launch(
            "videotestsrc num-buffers=12 pattern=smpte ! video/x-raw,format=BGRx,width=96,height=64,framerate=30/1 ! "
            f'ruclipfilter model="{MODEL}" labels="{";".join(LABELS)}" post-messages=true interval=2 '
            "attach-embedding=true segments=true segment-start=0.2 segment-end=0.1 ! appsink name=sink sync=false")
        sink = pipeline.get_by_name("sink")
        pipeline.set_state(Gst.State.PLAYING)
        checked = 0
        while (sample := sink.emit("pull-sample")) is not None:
            r = ruclipmeta.buffer_get_result(sample.get_buffer())
            self.assertIsNotNone(r)
            raw = structure_fields(r)
            self.assertEqual([l.label for l in ruclipmeta.labels(r)], raw["labels"])
            self.assertEqual([l.score for l in ruclipmeta.labels(r)], raw["scores"])
            self.assertEqual([l.cosine for l in ruclipmeta.labels(r)], raw["cosines"])
            self.assertEqual((ruclipmeta.frame(r), ruclipmeta.source_pts(r), ruclipmeta.is_fresh(r),
                              ruclipmeta.model(r)), (raw["frame"], raw["source-pts"], raw["fresh"], raw["model"]))
            self.assertEqual(ruclipmeta.embedding(r), as_list(r.get_value("embedding")))
            self.assertEqual(ruclipmeta.smoothed_scores(r), as_list(r.get_value("smoothed-scores")))
            self.assertIsNone(ruclipmeta.regions(r))
            checked += 1
        self.assertEqual(checked, 12)
        bus = pipeline.get_bus()
        results = segments = 0
        while (msg := bus.pop_filtered(Gst.MessageType.ELEMENT)) is not None:
            s = msg.get_structure()
            if ruclipmeta.is_result(s):
                results += 1
                self.assertEqual(ruclipmeta.timestamp(s), s.get_value("timestamp"))
                self.assertEqual(ruclipmeta.running_time(s), s.get_value("running-time"))
            elif (seg := ruclipmeta.segment(s)) is not None:
                segments += 1
                self.assertEqual(seg.is_start, s.get_value("event") == "start")
                self.assertEqual((seg.label, seg.start_pts, seg.end_pts, seg.frames, seg.mean_score, seg.model),
                                 (s.get_value("label"), s.get_value("start-pts"), s.get_value("end-pts"),
                                  s.get_value("frames"), s.get_value("mean-score"), s.get_value("model")))
        pipeline.set_state(Gst.State.NULL)
        self.assertEqual(results, 6)
        self.assertGreater(segments, 0)

    def test_top_k_and_properties(self):
        metas, _ = self.run_pipeline("top-k=2", n=3)
        for _, m in metas:
            self.assertEqual(len(m["labels"]), 2)
        element = Gst.ElementFactory.make("ruclipfilter", None)
        element.set_property("labels", "а;б")
        self.assertEqual(element.get_property("labels"), "а;б")
        self.assertEqual(element.get_property("interval"), 1)


if __name__ == "__main__":
    unittest.main(verbosity=2)
