#!/usr/bin/env python3
"""`ruclip tag` end to end with the shipped model, on a WebM made with
GStreamer's own encoder (examples/make_test_video.sh): a red screen (0-1.5 s),
a white ball on black (1.5-3.5 s), a blue screen (3.5-5 s), a yellow ball on
blue (5-6.5 s), a green screen (6.5-8 s). Every scene must come out as one
segment with its label, its boundaries within one sampling interval, in every
output format; the WebVTT is read back by GStreamer's own subtitle parser.
Bad input: a missing file, a file with no video, an undecodable one."""
import csv
import io
import json
import os
import subprocess
import sys
import tempfile
import unittest

from shipped_model import MODEL, ROOT, skip_under_asan
from user_videos import make_user_videos

skip_under_asan()
RUCLIP = os.environ["RUCLIP_EXE"]
EVERY = 0.5
SCENES = [("красный фон", 0.0, 1.5), ("белый круг", 1.5, 3.5), ("синий фон", 3.5, 5.0), ("жёлтый круг", 5.0, 6.5),
          ("зелёный фон", 6.5, 8.0)]
LABELS = ["красный фон", "синий фон", "зелёный фон", "чёрный фон", "белый круг", "жёлтый круг"]


def tag(*args, check=True):
    cmd = [RUCLIP, "tag", "--model", MODEL, "--every", str(EVERY), "--min-duration", "1"]
    for label in LABELS:
        cmd += ["--label", label]
    p = subprocess.run(cmd + list(args), capture_output=True, text=True, timeout=300)
    if check and p.returncode != 0:
        raise AssertionError(f"{' '.join(cmd + list(args))}: {p.returncode}\n{p.stderr}")
    return p


class Tag(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.TemporaryDirectory()
        cls.video = os.path.join(cls.dir.name, "scenes.webm")
        subprocess.run(["bash", os.path.join(ROOT, "examples", "make_test_video.sh"), cls.video], check=True,
                       capture_output=True, timeout=300)

    @classmethod
    def tearDownClass(cls):
        cls.dir.cleanup()

    def check_segments(self, segments, what):
        """(label, start, end) per segment: one per scene, in order, boundaries within one interval."""
        self.assertEqual([s[0] for s in segments], [s[0] for s in SCENES], what)
        for (label, start, end), (_, want_start, want_end) in zip(segments, SCENES):
            self.assertLessEqual(abs(start - want_start), EVERY + 1e-6, f"{what}: {label} starts at {start}")
            self.assertLessEqual(abs(end - want_end), EVERY + 1e-6, f"{what}: {label} ends at {end}")

    def test_json(self):
        out = json.loads(tag(self.video).stdout)
        self.assertEqual(out["labels"], LABELS)
        f = out["files"][0]
        self.assertTrue(f["ok"])
        self.assertAlmostEqual(f["duration"], 8.0, delta=0.1)
        self.check_segments([(s["label"], s["start"], s["end"]) for s in f["segments"]], "json")
        for s in f["segments"]:
            self.assertGreater(s["frames"], 0)
            self.assertGreaterEqual(s["peak_score"], s["mean_score"])
            self.assertGreaterEqual(s["mean_score"], 0.5)
        # Per-sample scores: one per 0.5 s, every label scored.
        self.assertEqual([s["time"] for s in f["samples"]], [i * EVERY for i in range(16)])
        for s in f["samples"]:
            self.assertEqual(sorted(s["scores"]), sorted(LABELS))

    def test_jsonl_and_csv(self):
        lines = [json.loads(l) for l in tag(self.video, "--format", "jsonl").stdout.splitlines()]
        self.check_segments([(l["label"], l["start"], l["end"]) for l in lines], "jsonl")
        self.assertTrue(all(l["file"] == self.video for l in lines))
        rows = list(csv.DictReader(io.StringIO(tag(self.video, "--format", "csv").stdout)))
        self.check_segments([(r["label"], float(r["start"]), float(r["end"])) for r in rows], "csv")

    def parse_srt(self, text):
        out = []
        for block in text.strip().split("\n\n"):
            lines = block.splitlines()
            self.assertEqual(lines[0], str(len(out) + 1))
            start, end = lines[1].split(" --> ")
            t = lambda v: sum(float(x) * m for x, m in zip(v.replace(",", ".").split(":"), (3600, 60, 1)))
            out.append((lines[2].rsplit(" (", 1)[0], t(start), t(end)))
        return out

    def test_srt(self):
        self.check_segments(self.parse_srt(tag(self.video, "--format", "srt").stdout), "srt")

    def test_vtt_parses_as_webvtt(self):
        vtt = os.path.join(self.dir.name, "scenes.vtt")
        tag(self.video, "--format", "vtt", "--output", vtt)
        with open(vtt, encoding="utf-8") as f:
            self.assertTrue(f.read().startswith("WEBVTT\n\n"))
        # GStreamer's subparse reads it as WebVTT: one text buffer per cue, with its times.
        import gi
        gi.require_version("Gst", "1.0")
        from gi.repository import Gst
        Gst.init(None)
        pipeline = Gst.parse_launch(f'filesrc location="{vtt}" ! subparse name=parse ! appsink name=sink sync=false')
        sink = pipeline.get_by_name("sink")
        pipeline.set_state(Gst.State.PLAYING)
        cues = []
        while True:
            sample = sink.emit("try-pull-sample", 10 * Gst.SECOND)
            if sample is None:
                break
            buf = sample.get_buffer()
            ok, info = buf.map(Gst.MapFlags.READ)
            text = bytes(info.data).decode("utf-8").strip()
            buf.unmap(info)
            caps = sample.get_caps().get_structure(0)
            cues.append((text.rsplit(" (", 1)[0], buf.pts / Gst.SECOND, (buf.pts + buf.duration) / Gst.SECOND,
                         caps.get_name()))
        pipeline.set_state(Gst.State.NULL)
        self.assertTrue(cues, "subparse read no cue")
        self.assertTrue(all(c[3] == "text/x-raw" for c in cues))
        self.check_segments([c[:3] for c in cues], "vtt via subparse")

    def test_users_formats(self):
        """H.264/MP4, H.265/MKV, H.264/MPEG-TS, MPEG-4/AVI, VP9/WebM, AV1/MKV (made by ffmpeg): the same
        segments as the VP8 WebM."""
        videos = make_user_videos(self.video, self.dir.name)
        files = json.loads(tag(*videos).stdout)["files"]
        self.assertEqual([f["file"] for f in files], videos)
        for f in files:
            self.assertTrue(f["ok"], f)
            self.assertAlmostEqual(f["duration"], 8.0, delta=0.1, msg=f["file"])
            self.check_segments([(s["label"], s["start"], s["end"]) for s in f["segments"]], f["file"])

    def test_several_files_and_folders(self):
        folder = os.path.join(self.dir.name, "folder")
        for name in ("scenes.webm", os.path.join("more", "again.webm")):
            os.makedirs(os.path.dirname(os.path.join(folder, name)), exist_ok=True)
            with open(self.video, "rb") as a, open(os.path.join(folder, name), "wb") as b:
                b.write(a.read())
        with open(os.path.join(folder, "notes.txt"), "w") as f:
            f.write("not a video: skipped by extension")
        out_dir = os.path.join(self.dir.name, "subs")
        tag(folder, "--format", "vtt", "--output", out_dir)  # the folder and its subfolder: both videos
        self.assertEqual(sorted(os.listdir(out_dir)), ["again.vtt", "scenes.vtt"])
        for name in ("again.vtt", "scenes.vtt"):
            with open(os.path.join(out_dir, name), encoding="utf-8") as f:
                self.assertEqual(f.read().count(" --> "), len(SCENES))

    def test_bad_input_is_named_and_the_rest_still_tagged(self):
        audio = os.path.join(self.dir.name, "audio.ogg")
        subprocess.run(["gst-launch-1.0", "-q", "audiotestsrc", "num-buffers=20", "!", "audioconvert", "!",
                        "vorbisenc", "!", "oggmux", "!", "filesink", f"location={audio}"], check=True, timeout=60)
        garbage = os.path.join(self.dir.name, "garbage.mp4")
        with open(garbage, "wb") as f:
            f.write(os.urandom(20000))
        missing = os.path.join(self.dir.name, "missing.mp4")
        p = tag(missing, audio, garbage, self.video, check=False)
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn(f"{missing}: no such file", p.stderr)
        self.assertIn(f"{audio}: no video stream", p.stderr)
        self.assertIn(f"{garbage}:", p.stderr)
        files = json.loads(p.stdout)["files"]
        self.assertEqual([f["ok"] for f in files], [False, False, False, True])
        self.check_segments([(s["label"], s["start"], s["end"]) for s in files[3]["segments"]], "after bad files")
        # Settings no file can be tagged with: one clear error, exit 1; bad usage: exit 2.
        p = subprocess.run([RUCLIP, "tag", "--model", "/nonexistent/model", "--label", "a", self.video],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 1)
        self.assertIn("Cannot load model '/nonexistent/model'", p.stderr)
        p = tag(self.video, "--format", "doc", check=False)
        self.assertEqual(p.returncode, 2)
        self.assertIn("--format: expected json, jsonl, vtt, srt or csv", p.stderr)
        p = tag(self.video, "--label-thresholds", "красный фон:2", check=False)
        self.assertEqual(p.returncode, 2)
        self.assertIn("not a score between 0 and 1", p.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
