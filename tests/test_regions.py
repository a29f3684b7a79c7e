#!/usr/bin/env python3
"""The regions example end to end (examples/regions.py) with the shipped
model: boxes the application attaches on two solid colours side by side are
classified by ruclipfilter inference-region=roi-list as those colours, and
ruclipoverlay outlines each box in the picture (its PNG, read back by
GStreamer's own decoder) without painting over the inside."""
import os
import re
import subprocess
import sys
import tempfile
import unittest

import gi

gi.require_version("Gst", "1.0")
from gi.repository import Gst  # noqa: E402

from shipped_model import MODEL, ROOT, skip_under_asan  # noqa: E402

skip_under_asan()
EXAMPLE = os.path.join(ROOT, "examples", "regions.py")
LABELS = "красный фон;синий фон;зелёный фон;чёрный фон;белый круг;жёлтый круг"
LINE = re.compile(r"^frame (\d+) region (\d+) \((\d+),(\d+) (\d+)x(\d+)\): (.+)$")
BAR = (0x4C, 0xAF, 0x50)  # ruclipoverlay's default bar-color, the box outlines


def run(*args):
    p = subprocess.run([sys.executable, EXAMPLE, MODEL, LABELS, *args], capture_output=True, text=True, timeout=300)
    if p.returncode != 0:
        raise AssertionError(f"regions.py {' '.join(args)}: {p.returncode}\n{p.stderr}")
    regions = []
    for line in p.stdout.splitlines():
        m = LINE.match(line)
        if not m:
            raise AssertionError(f"unexpected line: {line!r}")
        best = m.group(7).split(", ")[0].rsplit(" ", 1)
        regions.append({"frame": int(m.group(1)), "id": int(m.group(2)),
                        "box": tuple(int(m.group(i)) for i in range(3, 7)), "best": best[0], "score": float(best[1])})
    return regions


def read_png(path):
    """(width, height, RGB bytes) of a PNG."""
    p = Gst.parse_launch("filesrc name=src ! pngdec ! videoconvert ! video/x-raw,format=RGB ! appsink name=sink")
    p.get_by_name("src").set_property("location", path)
    p.set_state(Gst.State.PLAYING)
    sample = p.get_by_name("sink").emit("try-pull-sample", 10 * Gst.SECOND)
    p.set_state(Gst.State.NULL)
    assert sample is not None, f"{path}: not decoded"
    s = sample.get_caps().get_structure(0)
    width, height = s.get_value("width"), s.get_value("height")
    buf = sample.get_buffer()
    ok, info = buf.map(Gst.MapFlags.READ)
    data = bytes(info.data)
    buf.unmap(info)
    stride = len(data) // height
    return width, height, lambda x, y: tuple(data[y * stride + 3 * x:y * stride + 3 * x + 3])


def near(a, b, tolerance=40):
    return all(abs(int(u) - int(v)) <= tolerance for u, v in zip(a, b))


class Regions(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        Gst.init(None)

    def test_red_and_blue_boxes(self):
        with tempfile.TemporaryDirectory() as d:
            png = os.path.join(d, "regions.png")
            regions = run("--frames", "2", "--png", png)
            self.assertEqual([(r["frame"], r["id"]) for r in regions], [(0, 0), (0, 1), (1, 0), (1, 1)])
            for r in regions:
                self.assertEqual(r["best"], "красный фон" if r["id"] == 0 else "синий фон", r)
                self.assertGreater(r["score"], 0.5, r)
            self.assertEqual(regions[0]["box"], (20, 40, 120, 160))
            self.assertEqual(regions[1]["box"], (180, 40, 120, 160))
            width, height, at = read_png(png)
        self.assertEqual((width, height), (320, 240))
        for (x, y, w, h), inside in (((20, 40, 120, 160), (255, 0, 0)), ((180, 40, 120, 160), (0, 0, 255))):
            # The outline on every edge, the inside as it was.
            for px, py in ((x + w // 2, y + h - 1), (x, y + h // 2), (x + w - 1, y + h // 2), (x + w // 2, y)):
                self.assertTrue(near(at(px, py), BAR), f"outline at {px},{py}: {at(px, py)}")
            self.assertTrue(near(at(x + w // 2, y + h // 2), inside, 8), at(x + w // 2, y + h // 2))
            # The label tag above the box: dark background behind light text.
            self.assertLess(sum(at(x + 1, y - 2)), sum(inside) - 60)
        # Outside the boxes and tags: untouched.
        self.assertTrue(near(at(5, 230), (255, 0, 0), 8))
        self.assertTrue(near(at(315, 230), (0, 0, 255), 8))

    def test_presence_of_one_label_per_box(self):
        # One label: a softmax would give each box 1.0; presence tells the red box from the blue one.
        p = subprocess.run([sys.executable, EXAMPLE, MODEL, "красный фон"], capture_output=True, text=True, timeout=300)
        self.assertEqual(p.returncode, 0, p.stderr)
        scores = {}
        for line in p.stdout.splitlines():
            m = LINE.match(line)
            self.assertIsNotNone(m, line)
            label, score = m.group(7).rsplit(" ", 1)
            self.assertEqual(label, "красный фон")
            scores[int(m.group(2))] = float(score)
        self.assertGreater(scores[0], 0.5, "the red box")
        self.assertLess(scores[1], 0.5, "the blue box")
        # softmax over one label is refused, not reported as 1.0.
        p = subprocess.run([sys.executable, EXAMPLE, MODEL, "красный фон", "--scoring", "softmax"], capture_output=True,
                           text=True, timeout=300)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("always 1.0", p.stderr)

    def test_other_colours_and_boxes(self):
        regions = run("--left", "0xff00ff00", "--right", "0xff000000", "--boxes", "10,10,100,100;200,120,100,100")
        self.assertEqual([(r["id"], r["box"], r["best"]) for r in regions],
                         [(0, (10, 10, 100, 100), "зелёный фон"), (1, (200, 120, 100, 100), "чёрный фон")])


if __name__ == "__main__":
    unittest.main(verbosity=2)
