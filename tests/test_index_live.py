#!/usr/bin/env python3
"""Live cameras into one index, end to end with the real parts: a PostgreSQL
server of the test's own (postgres_server.py), "machines" that are processes
running live pipelines (index_writer.py: videotestsrc ! ruclipfilter !
ruclipindex), and `ruclip search` / `ruclip prune` from another process.
Two machines with three cameras each write into one PostgreSQL index, and a
Russian query finds each camera's scene on that camera within the time it
ran; the server restarted mid-stream loses nothing the writers acknowledged;
a writer killed with SIGKILL loses at most its queue; min-change stores a
static scene once; prune removes a camera's rows; `ruclip index` adds a file
to the same PostgreSQL index the cameras write; the same on SQLite."""
import datetime
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from postgres_server import PostgresServer  # noqa: E402
from shipped_model import MODEL, skip_under_asan  # noqa: E402

skip_under_asan()
RUCLIP = os.environ["RUCLIP_EXE"]
WRITER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "index_writer.py")
# The shipped model's solid screens (models/ruclip-shapes-ru), in its canonical colours.
MACHINE_A = {"a-red": ("e11e1e", "красный фон"), "a-blue": ("1e50dc", "синий фон"),
             "a-green": ("23a537", "зелёный фон")}
MACHINE_B = {"b-yellow": ("f0d719", "жёлтый фон"), "b-purple": ("8c32be", "фиолетовый фон"),
             "b-orange": ("f08214", "оранжевый фон")}


def parse_time(text):
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


class LiveIndex(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="ruclip-live-")
        cls.env = dict(os.environ, RUCLIP_CACHE_DIR=os.path.join(cls.tmp, "cache"))
        cls.pg = PostgresServer()
        cls.pg.start()

    @classmethod
    def tearDownClass(cls):
        cls.pg.stop()
        shutil.rmtree(cls.pg.dir, ignore_errors=True)
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def database(self, name):
        self.pg.sql(f"DROP DATABASE IF EXISTS {name}")
        self.pg.sql(f"CREATE DATABASE {name}")
        return self.pg.uri(name)

    def writer(self, location, cameras, seconds, *extra):
        args = [sys.executable, WRITER, "--location", location, "--seconds", str(seconds), *extra]
        for name, (rgb, _) in cameras.items():
            args += ["--camera", f"{name}:{rgb}"]
        return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=self.env)

    def finish(self, p, timeout=180):
        out, err = p.communicate(timeout=timeout)
        self.assertEqual(p.returncode, 0, err)
        lines = [json.loads(line) for line in out.splitlines()]
        self.assertTrue(lines and lines[-1]["done"], out)
        return lines[-1]["cameras"]

    def ruclip(self, *args, check=True):
        p = subprocess.run([RUCLIP, *args], capture_output=True, text=True, timeout=300, env=self.env)
        if check:
            self.assertEqual(p.returncode, 0, p.stderr)
            return json.loads(p.stdout)
        return p

    def pg_counts(self, database):
        rows = self.pg.sql("SELECT s.name, count(*) FROM samples JOIN sources s ON s.id = samples.source_id "
                           "GROUP BY s.name", database)
        return {line.split("|")[0]: int(line.split("|")[1]) for line in rows.splitlines() if line}

    def check_scenes(self, location, cameras, start, end):
        for camera, (_, query) in cameras.items():
            out = self.ruclip("search", "--db", location, query, "--top", "3")
            hits = out["hits"]
            self.assertTrue(hits, query)
            self.assertEqual(hits[0]["camera"], camera, f"{query}: {hits}")
            t = parse_time(hits[0]["wall_time"])
            self.assertGreaterEqual(t, start - 1, query)
            self.assertLessEqual(t, end + 1, query)
            self.assertGreater(parse_time(hits[0]["end_wall_time"]), parse_time(hits[0]["start_wall_time"]))

    def test_two_machines_into_one_postgresql_index(self):
        uri = self.database("two_machines")
        start = time.time()
        a = self.writer(uri, MACHINE_A, 4)
        b = self.writer(uri, MACHINE_B, 4)
        stored = {**self.finish(a), **self.finish(b)}
        end = time.time()
        counts = self.pg_counts("two_machines")
        for camera in {**MACHINE_A, **MACHINE_B}:
            self.assertGreater(stored[camera]["stored"], 5, camera)
            self.assertEqual(counts[camera], stored[camera]["stored"], camera)  # acknowledged == in the index
            self.assertEqual(stored[camera]["dropped"], 0, camera)
        self.check_scenes(uri, {**MACHINE_A, **MACHINE_B}, start, end)
        # Filters: a camera's own rows only; a time range before the run has none.
        out = self.ruclip("search", "--db", uri, "красный фон", "--camera", "b-yellow", "--camera", "b-purple")
        self.assertTrue(out["hits"])
        self.assertTrue(all(h["camera"] in ("b-yellow", "b-purple") for h in out["hits"]), out["hits"])
        out = self.ruclip("search", "--db", uri, "красный фон", "--until", "1h")
        self.assertEqual(out["hits"], [])
        out = self.ruclip("search", "--db", uri, "красный фон", "--since", "10m")
        self.assertEqual(out["hits"][0]["camera"], "a-red")
        # A later search reads only the rows added since (the cache syncs by id).
        self.assertEqual(out["synced"], 0)
        p = self.ruclip("search", "--db", uri, "кот", "--camera", "nowhere", check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("nowhere", p.stderr)

    def test_server_restart_mid_stream_loses_nothing_acknowledged(self):
        uri = self.database("restart")
        cameras = dict(list(MACHINE_A.items())[:2])
        w = self.writer(uri, cameras, 9)
        # Restart once rows are flowing.
        for line in w.stdout:
            if min(c["stored"] for c in json.loads(line)["cameras"].values()) >= 3:
                break
        before = self.pg_counts("restart")
        self.pg.stop()
        time.sleep(1.5)  # frames queue meanwhile
        self.pg.start()
        restarted = time.time()
        stored = self.finish(w)
        counts = self.pg_counts("restart")
        for camera in cameras:
            self.assertGreaterEqual(counts[camera], stored[camera]["stored"], camera)
            self.assertGreater(counts[camera], before[camera], camera)
            self.assertEqual(stored[camera]["dropped"], 0, camera)
        latest = self.pg.sql("SELECT max(wall_time) FROM samples", "restart")
        self.assertGreater(int(latest) / 1e6, restarted - 1)

    def test_killed_writer_loses_at_most_its_queue(self):
        uri = self.database("killed")
        cameras = dict(list(MACHINE_B.items())[:1])
        w = self.writer(uri, cameras, 30)
        last = None
        for line in w.stdout:
            last = json.loads(line)["cameras"]
            if last["b-yellow"]["stored"] >= 6:
                break
        w.send_signal(signal.SIGKILL)
        w.wait()
        w.stdout.close()
        w.stderr.close()
        self.assertGreaterEqual(self.pg_counts("killed")["b-yellow"], last["b-yellow"]["stored"])

    def test_min_change_stores_a_static_scene_once(self):
        uri = self.database("static")
        cameras = dict(list(MACHINE_A.items())[:1])
        stored = self.finish(self.writer(uri, cameras, 3, "--min-change", "0.01"))
        self.assertEqual(stored["a-red"]["stored"], 1)
        self.assertGreater(stored["a-red"]["unchanged"], 5)
        self.assertEqual(self.pg_counts("static"), {"a-red": 1})

    def test_prune_removes_a_cameras_rows(self):
        uri = self.database("prune")
        stored = self.finish(self.writer(uri, dict(list(MACHINE_A.items())[:2]), 2))
        self.ruclip("search", "--db", uri, "синий фон")  # a cache to invalidate
        out = self.ruclip("prune", "--db", uri, "--older-than", "0s", "--camera", "a-red")
        self.assertEqual(out["removed"], stored["a-red"]["stored"])
        self.assertEqual(self.pg_counts("prune"), {"a-blue": stored["a-blue"]["stored"]})
        out = self.ruclip("search", "--db", uri, "красный фон")
        self.assertTrue(all(h["camera"] == "a-blue" for h in out["hits"]), out["hits"])
        self.assertEqual(out["samples"], stored["a-blue"]["stored"])
        p = self.ruclip("prune", "--db", uri, "--older-than", "yesterday", check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("--older-than", p.stderr)

    def test_files_and_cameras_in_one_postgresql_index(self):
        uri = self.database("files_and_cameras")
        video = os.path.join(self.tmp, "blue.webm")
        subprocess.run(["gst-launch-1.0", "-q", "videotestsrc", "pattern=solid-color", "foreground-color=0xff1e50dc",
                        "num-buffers=30", "!", "video/x-raw,width=160,height=120,framerate=10/1", "!", "vp8enc",
                        "deadline=1", "!", "webmmux", "!", "filesink", f"location={video}"], check=True,
                       capture_output=True, timeout=120)
        self.finish(self.writer(uri, dict(list(MACHINE_A.items())[:1]), 2))
        report = self.ruclip("index", "--model", MODEL, "--db", uri, "--every", "0.5", video)
        self.assertEqual(report["files"][0]["status"], "indexed")
        self.assertEqual(self.pg_counts("files_and_cameras")[video], report["files"][0]["samples"])
        hit = self.ruclip("search", "--db", uri, "синий фон")["hits"][0]
        self.assertEqual(hit["file"], video)
        self.assertEqual(hit["start"], 0)
        hit = self.ruclip("search", "--db", uri, "красный фон")["hits"][0]
        self.assertEqual(hit["camera"], "a-red")

    def test_serve_answers_again_after_the_server_restarts(self):
        uri = self.database("serve_restart")
        self.finish(self.writer(uri, dict(list(MACHINE_A.items())[:1]), 2))
        serve = subprocess.Popen([RUCLIP, "serve", "--db", uri, "--listen", "127.0.0.1:0"], stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True, env=self.env)
        try:
            url = json.loads(serve.stdout.readline())["listening"]
            query = url + "api/search?q=" + urllib.parse.quote("красный фон")
            with urllib.request.urlopen(query, timeout=60) as r:
                self.assertEqual(json.load(r)["hits"][0]["camera"], "a-red")
            self.pg.restart()
            with urllib.request.urlopen(query, timeout=60) as r:  # a new connection, once
                self.assertEqual(json.load(r)["hits"][0]["camera"], "a-red")
        finally:
            serve.terminate()
            serve.wait(timeout=30)
            serve.stdout.close()
            serve.stderr.close()

    def test_sqlite_index(self):
        db = os.path.join(self.tmp, "live.db")
        start = time.time()
        stored = self.finish(self.writer(db, MACHINE_A, 3))
        end = time.time()
        self.check_scenes(db, MACHINE_A, start, end)
        out = self.ruclip("prune", "--db", db, "--older-than", "0s")
        self.assertEqual(out["removed"], sum(c["stored"] for c in stored.values()))
        self.assertEqual(out["samples"], 0)


if __name__ == "__main__":
    unittest.main(verbosity=2)
