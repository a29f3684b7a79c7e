#!/usr/bin/env python3
"""`ruclip index` and `ruclip search` end to end with the shipped model, on the
scenes video of test_tag.py (examples/make_test_video.sh: red 0-1.5 s, white
ball 1.5-3.5, blue 3.5-5, yellow ball on blue 5-6.5, green 6.5-8): each
colour/shape query in Russian finds its scene first, with its times; a picture
of a scene finds that scene; indexing is incremental; an interrupted run
(SIGKILL mid-file) finishes into the same database as an uninterrupted one;
bad databases, another model and undecodable files get clear errors; the HTML
page references thumbnails that exist."""
import json
import os
import re
import signal
import sqlite3
import struct
import subprocess
import tempfile
import time
import unittest

from shipped_model import MODEL, ROOT, skip_under_asan
from user_videos import make_user_videos

skip_under_asan()
RUCLIP = os.environ["RUCLIP_EXE"]
OTHER_MODEL = os.path.join(os.environ["RUCLIP_TEST_DATA"], "ruclip-tiny-v2")
EVERY = 0.5
SCENES = [("красный фон", 0.0, 1.5), ("белый круг", 1.5, 3.5), ("синий фон", 3.5, 5.0), ("жёлтый круг", 5.0, 6.5),
          ("зелёный фон", 6.5, 8.0)]
# The same kernels in every run of this test, so that two databases can be compared byte for byte.
ENV = dict(os.environ, RUCLIP_FP32_KERNEL="libtorch-blas")


def run(*args, check=True, timeout=300):
    p = subprocess.run([RUCLIP, *args], capture_output=True, text=True, timeout=timeout, env=ENV)
    if check and p.returncode != 0:
        raise AssertionError(f"ruclip {' '.join(args)}: exit {p.returncode}\n{p.stderr}")
    return p


def index(db, *videos, check=True):
    return run("index", "--model", MODEL, "--db", db, "--every", str(EVERY), *videos, check=check)


def search(db, *args, check=True):
    p = run("search", "--db", db, *args, check=check)
    return json.loads(p.stdout) if check else p


def gst(*pipeline):
    subprocess.run(["gst-launch-1.0", "-q", *pipeline], check=True, capture_output=True, timeout=300)


def dump(db):
    """Everything a search reads, in a comparable form."""
    con = sqlite3.connect(db)
    files = con.execute("SELECT id, name, size, mtime_ns, every, duration, samples FROM sources WHERE kind = 'file' "
                        "ORDER BY id").fetchall()
    samples = con.execute("SELECT id, source_id, time, embedding, thumbnail FROM samples ORDER BY id").fetchall()
    info = dict(con.execute("SELECT key, value FROM index_info").fetchall())
    con.close()
    return files, samples, info


class Index(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.TemporaryDirectory()
        d = cls.dir.name
        cls.video = os.path.join(d, "scenes.webm")
        subprocess.run(["bash", os.path.join(ROOT, "examples", "make_test_video.sh"), cls.video], check=True,
                       capture_output=True, timeout=300)
        cls.db = os.path.join(d, "scenes.db")
        out = json.loads(index(cls.db, cls.video).stdout)
        cls.index_report = out

    @classmethod
    def tearDownClass(cls):
        cls.dir.cleanup()

    def path(self, name):
        return os.path.join(self.dir.name, name)

    def copy_of_video(self, name):
        """A copy of the scenes video under another name (a file an index hasn't seen)."""
        copy = self.path(name + ".webm")
        with open(self.video, "rb") as src, open(copy, "wb") as dst:
            dst.write(src.read())
        return copy

    def test_indexed_every_sample(self):
        self.assertEqual(self.index_report["files"][0]["status"], "indexed")
        files, samples, info = dump(self.db)
        self.assertEqual(len(files), 1)
        self.assertEqual([s[2] for s in samples], [i * EVERY for i in range(16)])
        dim = int(info["dim"])
        for s in samples:
            self.assertEqual(len(s[3]), 4 * dim)
            e = struct.unpack(f"{dim}f", s[3])
            self.assertAlmostEqual(sum(x * x for x in e), 1.0, places=4)  # normalized
            self.assertEqual(s[4][:2], b"\xff\xd8")  # a JPEG
        self.assertEqual(info["model"], os.path.abspath(MODEL))

    def check_first_hit(self, out, start, end, what, video=None):
        hit = out["hits"][0]
        self.assertEqual(hit["file"], os.path.abspath(video or self.video), what)
        self.assertLessEqual(abs(hit["start"] - start), EVERY + 1e-6, f"{what}: {hit}")
        self.assertLessEqual(abs(hit["end"] - end), EVERY + 1e-6, f"{what}: {hit}")
        self.assertLessEqual(hit["start"], hit["time"])
        self.assertLess(hit["time"], hit["end"])

    def test_text_queries_find_their_scene_first(self):
        for label, start, end in SCENES:
            for storage in ("float32", "float16"):
                out = search(self.db, label, "--storage", storage)
                self.assertEqual(out["query"], label)
                self.assertEqual(out["samples"], 16)
                self.check_first_hit(out, start, end, f"{label} ({storage})")
                scores = [h["score"] for h in out["hits"]]
                self.assertEqual(scores, sorted(scores, reverse=True))
                # Hits don't overlap: each sample belongs to one at most.
                spans = sorted((h["start"], h["end"]) for h in out["hits"])
                for a, b in zip(spans, spans[1:]):
                    self.assertLessEqual(a[1], b[0] + 1e-6)

    def test_approximate_search_agrees_and_is_kept(self):
        db = self.path("approximate.db")
        copy = self.copy_of_video("approximate")
        index(db, copy)
        p = run("search", "--db", db, "--approximate", "белый круг")
        self.assertIn("building the approximate index", p.stderr)
        self.assertTrue(os.path.exists(db + ".faiss"))
        approx = json.loads(p.stdout)
        exact = search(db, "белый круг")
        # 16 samples: every list is probed, so it is exact here.
        self.assertEqual([(h["start"], h["end"]) for h in approx["hits"]], [(h["start"], h["end"]) for h in exact["hits"]])
        for a, e in zip(approx["hits"], exact["hits"]):
            self.assertAlmostEqual(a["score"], e["score"], places=5)
        p = run("search", "--db", db, "--approximate", "синий фон")
        self.assertNotIn("building", p.stderr)  # the saved index was reused
        self.check_first_hit(json.loads(p.stdout), 3.5, 5.0, "approximate", video=copy)
        # New samples make the saved index stale: it is rebuilt.
        index(db, self.video)
        p = run("search", "--db", db, "--approximate", "синий фон")
        self.assertIn("building the approximate index of 32 samples", p.stderr)
        # A damaged saved index is an error that says what to do.
        with open(db + ".faiss", "r+b") as f:
            header = f.readline() + f.readline()
            f.seek(len(header) + 4)
            f.write(b"\xff" * 64)
        p = run("search", "--db", db, "--approximate", "синий фон", check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn(db + ".faiss", p.stderr)

    def test_vector_file_is_mapped_and_remade(self):
        db = self.path("vectors.db")
        copy = self.copy_of_video("vectors")
        index(db, copy)
        first = search(db, "синий фон")
        vectors = db + ".f32.vectors"
        self.assertTrue(os.path.exists(vectors))
        made = os.stat(vectors).st_mtime_ns
        inode = os.stat(vectors).st_ino
        self.assertEqual(first["synced"], 16)  # read from the database
        again = search(db, "синий фон")  # from the mapped file
        self.assertEqual(again.pop("synced"), 0)
        first.pop("synced")
        self.assertEqual(again, first)
        self.assertEqual(os.stat(vectors).st_mtime_ns, made)  # not rewritten
        # float16 has its own file, and the same first hit.
        half = search(db, "синий фон", "--storage", "float16")
        self.assertTrue(os.path.exists(db + ".f16.vectors"))
        self.assertEqual(half["hits"][0]["start"], first["hits"][0]["start"])
        # New samples: only they are read, and appended to the file in place.
        index(db, self.video)
        out = search(db, "синий фон")
        self.assertEqual(out.pop("synced"), 16)
        self.assertEqual(out["samples"], 32)
        self.assertNotEqual(os.stat(vectors).st_mtime_ns, made)
        self.assertEqual(os.stat(vectors).st_ino, inode)
        # The same as a cache made from scratch.
        for ext in (".f32.vectors", ".rows"):
            os.remove(db + ext)
        fresh = search(db, "синий фон")
        self.assertEqual(fresh.pop("synced"), 32)
        self.assertEqual(fresh, out)
        # A damaged (truncated) file is not used: the search reads the database and remakes it.
        with open(vectors, "r+b") as f:
            f.truncate(5000)
        again = search(db, "синий фон")
        self.assertEqual(again.pop("synced"), 32)
        self.assertEqual(again, out)
        self.assertGreater(os.path.getsize(vectors), 5000)

    def test_image_query_finds_the_same_scene(self):
        picture = self.path("yellow-ball.png")
        gst("videotestsrc", "pattern=ball", "foreground-color=0xffffff00", "background-color=0xff0000ff",
            "num-buffers=1", "!", "video/x-raw,width=320,height=240", "!", "videoconvert", "!", "pngenc", "!",
            "filesink", f"location={picture}")
        out = search(self.db, "--image", picture)
        self.assertEqual(out["image"], picture)
        self.check_first_hit(out, 5.0, 6.5, "image query")
        # The text query of the same scene agrees.
        self.assertEqual(search(self.db, "жёлтый круг")["hits"][0]["start"], out["hits"][0]["start"])

    def test_users_formats(self):
        """H.264/MP4, H.265/MKV, H.264/MPEG-TS, MPEG-4/AVI, VP9/WebM, AV1/MKV (made by ffmpeg): every sample indexed, and each
        scene's query finds that scene in every one of them."""
        folder = self.path("formats")
        os.makedirs(folder)
        videos = make_user_videos(self.video, folder)
        db = self.path("formats.db")
        report = json.loads(index(db, *videos).stdout)
        self.assertEqual([f["status"] for f in report["files"]], ["indexed"] * len(videos))
        files, samples, _ = dump(db)
        self.assertEqual(sorted(f[1] for f in files), sorted(os.path.abspath(v) for v in videos))
        self.assertEqual(len(samples), 16 * len(videos))
        for label, start, end in SCENES:
            hits = search(db, label, "--top", "100")["hits"]
            for video in videos:
                best = next(h for h in hits if h["file"] == os.path.abspath(video))
                self.assertLessEqual(abs(best["start"] - start), EVERY + 1e-6, f"{label} in {video}: {best}")
                self.assertLessEqual(abs(best["end"] - end), EVERY + 1e-6, f"{label} in {video}: {best}")

    def test_top_limits_hits(self):
        self.assertEqual(len(search(self.db, "синий фон", "--top", "2")["hits"]), 2)

    def test_html_page_references_thumbnails_that_exist(self):
        page = self.path("hits.html")
        out = search(self.db, "белый круг", "--top", "3", "--html", page)
        with open(page, encoding="utf-8") as f:
            html = f.read()
        self.assertIn("белый круг", html)
        images = re.findall(r'<img src="([^"]+)"', html)
        self.assertEqual(len(images), len(out["hits"]))
        for src in images:
            self.assertFalse(os.path.isabs(src), src)  # relative: the page opens wherever it is moved
            with open(os.path.join(self.dir.name, src), "rb") as f:
                self.assertEqual(f.read(2), b"\xff\xd8", src)

    def test_incremental(self):
        db = self.path("incremental.db")
        copy = self.copy_of_video("copy")
        self.assertEqual(json.loads(index(db, copy).stdout)["files"][0]["status"], "indexed")
        before = dump(db)
        again = json.loads(index(db, copy).stdout)
        self.assertEqual(again["files"][0]["status"], "unchanged")
        self.assertEqual(dump(db), before)
        st = os.stat(copy)
        os.utime(copy, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # "changed"
        self.assertEqual(json.loads(index(db, copy).stdout)["files"][0]["status"], "updated")
        files, samples, _ = dump(db)
        self.assertEqual(len(files), 1)
        self.assertEqual(len(samples), 16)

    def test_bad_files_are_reported_and_skipped(self):
        db = self.path("bad.db")
        junk = self.path("junk.webm")
        with open(junk, "wb") as f:
            f.write(b"this is not a video" * 100)
        p = index(db, junk, self.video, self.path("missing.webm"), check=False)
        self.assertEqual(p.returncode, 1)
        report = {os.path.basename(f["file"]): f for f in json.loads(p.stdout)["files"]}
        self.assertEqual(report["junk.webm"]["status"], "failed")
        self.assertIn("junk.webm", report["junk.webm"]["error"])
        self.assertEqual(report["missing.webm"]["status"], "failed")
        self.assertIn("no such file", report["missing.webm"]["error"])
        self.assertEqual(report["scenes.webm"]["status"], "indexed")
        self.assertIn("junk.webm", p.stderr)
        files, _, _ = dump(db)
        self.assertEqual([os.path.basename(f[1]) for f in files], ["scenes.webm"])

    def test_interrupted_run_continues_to_the_same_database(self):
        long_video = self.path("long.webm")
        # 40 s of a moving ball at 0.5 s: 80 samples, long enough to be killed inside.
        gst("videotestsrc", "pattern=ball", "num-buffers=1200", "!", "video/x-raw,width=160,height=120,framerate=30/1",
            "!", "vp8enc", "deadline=1", "!", "webmmux", "!", "filesink", f"location={long_video}")
        videos = [self.video, long_video]
        whole = self.path("whole.db")
        index(whole, *videos)
        for attempt in range(3):
            cut = self.path(f"cut{attempt}.db")
            p = subprocess.Popen([RUCLIP, "index", "--model", MODEL, "--db", cut, "--every", str(EVERY), *videos],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
            line = p.stderr.readline()  # "[1/2] .../scenes.webm: 16 samples": the long one has started
            self.assertIn("[1/2]", line)
            time.sleep(0.05)
            p.send_signal(signal.SIGKILL)
            p.wait()
            p.stdout.close()
            p.stderr.close()
            files, _, _ = dump(cut)
            if len(files) == 1:
                break  # killed inside the long file, as meant
        self.assertEqual([os.path.basename(f[1]) for f in files], ["scenes.webm"], "the kill came too late")
        out = json.loads(index(cut, *videos).stdout)
        self.assertEqual([f["status"] for f in out["files"]], ["unchanged", "indexed"])
        self.assertEqual(dump(cut), dump(whole))

    def test_another_model_is_refused(self):
        db = self.path("model.db")
        index(db, self.video)
        p = run("index", "--model", OTHER_MODEL, "--db", db, self.video, check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("another model", p.stderr)
        self.assertIn(os.path.abspath(MODEL), p.stderr)
        p = run("search", "--db", db, "--model", OTHER_MODEL, "кот", check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("another model", p.stderr)

    def test_bad_databases(self):
        garbage = self.path("garbage.db")
        with open(garbage, "wb") as f:
            f.write(os.urandom(8192))
        p = search(garbage, "кот", check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn(garbage, p.stderr)
        self.assertIn("not a database", p.stderr)
        # A valid SQLite file that is not an index.
        other = self.path("other.db")
        con = sqlite3.connect(other)
        con.execute("CREATE TABLE t(x)")
        con.commit()
        con.close()
        p = search(other, "кот", check=False)
        self.assertIn("not a ruclip index", p.stderr)
        # The index with its pages damaged past the header.
        broken = self.path("broken.db")
        with open(self.db, "rb") as f:
            data = bytearray(f.read())
        for i in range(4096, len(data), 97):
            data[i] ^= 0x5A
        with open(broken, "wb") as f:
            f.write(data)
        p = search(broken, "кот", check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn(broken, p.stderr)
        self.assertNotIn("Traceback", p.stderr)
        self.assertGreater(len(p.stderr.strip()), 0)
        p = search(self.path("nowhere.db"), "кот", check=False)
        self.assertIn("no such file", p.stderr)

    def test_usage_errors(self):
        p = search(self.db, check=False)
        self.assertIn("TEXT or --image", p.stderr)
        p = search(self.db, "кот", "--storage", "int4", check=False)
        self.assertIn("--storage", p.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
