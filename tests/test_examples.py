#!/usr/bin/env python3
"""examples/classify_frame.cpp (the C++ API in one page) against `ruclip
classify` of a picture file of the same colour. The video-tagging example end to end: a WebM file made with GStreamer's own
encoder (examples/make_test_video.sh) tagged by examples/tag_video.py with
the shipped model. The file is a red screen (0-1.5 s), a white ball on black
(1.5-3.5 s), a blue screen (3.5-5 s), a yellow ball on blue (5-6.5 s) and a
green screen (6.5-8 s)."""
import json
import os
import subprocess
import sys
import tempfile
import unittest

from shipped_model import MODEL, ROOT, skip_under_asan

skip_under_asan()
LABELS = "красный фон;синий фон;зелёный фон;чёрный фон;белый круг;жёлтый круг"


class ClassifyFrame(unittest.TestCase):
    def test_agrees_with_ruclip_classify(self):
        phrases = ["красный фон", "синий фон", "зелёный фон"]
        for rgb, want in (((255, 0, 0), "красный фон"), ((0, 0, 255), "синий фон"), ((0, 255, 0), "зелёный фон")):
            p = subprocess.run([os.environ["RUCLIP_CLASSIFY_FRAME"], MODEL, *map(str, rgb)], capture_output=True,
                               text=True, timeout=120)
            self.assertEqual(p.returncode, 0, p.stderr)
            rows = [line.split("\t") for line in p.stdout.splitlines()]
            self.assertEqual(sorted(r[0] for r in rows), sorted(phrases))
            self.assertEqual(rows[0][0], want, p.stdout)
            # The same picture as a file, through the CLI (OpenCV decoding, the same preprocessing).
            with tempfile.TemporaryDirectory() as d:
                ppm = os.path.join(d, "frame.ppm")
                with open(ppm, "wb") as f:
                    f.write(b"P6 320 240 255\n" + bytes(rgb) * (320 * 240))
                cmd = [os.environ["RUCLIP_EXE"], "classify", "--model", MODEL, "--device", "cpu", ppm]
                for phrase in phrases:
                    cmd += ["--label", phrase]
                out = json.loads(subprocess.run(cmd, check=True, capture_output=True, timeout=120).stdout)
            want_scores = {l["label"]: l["probability"] for l in out["images"][0]["labels"]}
            for label, probability, _ in rows:
                self.assertAlmostEqual(float(probability), want_scores[label], delta=1e-4, msg=label)

    def test_usage(self):
        p = subprocess.run([os.environ["RUCLIP_CLASSIFY_FRAME"]], capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 2)
        self.assertIn("usage:", p.stderr)
        p = subprocess.run([os.environ["RUCLIP_CLASSIFY_FRAME"], "/nonexistent"], capture_output=True, text=True,
                           timeout=60)
        self.assertEqual(p.returncode, 1)
        self.assertIn("/nonexistent", p.stderr)


class TagVideo(unittest.TestCase):
    def test_labels_over_time(self):
        with tempfile.TemporaryDirectory() as d:
            video = os.path.join(d, "test.webm")
            subprocess.run(["bash", os.path.join(ROOT, "examples", "make_test_video.sh"), video], check=True,
                           capture_output=True, timeout=300)
            p = subprocess.run([sys.executable, os.path.join(ROOT, "examples", "tag_video.py"), MODEL, LABELS, video,
                                "--every", "0.5"], capture_output=True, timeout=300)
            self.assertEqual(p.returncode, 0, p.stderr.decode())
            result = json.loads(p.stdout)
        frames = result["frames"]
        self.assertEqual(len(frames), 16)  # 8 s, one analysis per 0.5 s
        self.assertEqual([f["time"] for f in frames], [i * 0.5 for i in range(16)])
        best = {f["time"]: f["labels"][0]["label"] for f in frames}
        for t in (0.0, 0.5, 1.0):
            self.assertEqual(best[t], "красный фон", t)
        for t in (3.5, 4.0, 4.5):
            self.assertEqual(best[t], "синий фон", t)
        for t in (6.5, 7.0, 7.5):
            self.assertEqual(best[t], "зелёный фон", t)
        # The white ball: a white circle while it is in the centre square, black background otherwise.
        self.assertTrue({best[t] for t in (1.5, 2.0, 2.5, 3.0)} <= {"белый круг", "чёрный фон"})
        self.assertIn("белый круг", {best[t] for t in (1.5, 2.0, 2.5, 3.0)})
        self.assertIn("жёлтый круг", {best[t] for t in (5.0, 5.5, 6.0)})


if __name__ == "__main__":
    unittest.main(verbosity=2)
