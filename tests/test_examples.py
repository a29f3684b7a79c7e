#!/usr/bin/env python3
"""The video-tagging example end to end: a WebM file made with GStreamer's own
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
