#!/usr/bin/env python3
"""The RTSP server example (examples/rtsp_server.c) end to end: many cameras,
one model. The server serves four solid-colour live streams, each through its
own ruclipfilter with the shipped model; four RTSP clients in this process
watch them (one pipeline each), and the server's own result lines say that
every stream was analyzed, that each was named by its colour, and that all
four elements ran on one loaded model. Everything stays on 127.0.0.1, over
TCP."""
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import unittest

import gi

gi.require_version("Gst", "1.0")
from gi.repository import Gst  # noqa: E402
from shipped_model import MODEL, skip_under_asan  # noqa: E402

SERVER = os.environ.get("RUCLIP_RTSP_SERVER", "")
if not SERVER or not os.path.exists(SERVER):
    print("SKIP: examples/rtsp_server wasn't built (it needs gst-rtsp-server: libgstrtspserver-1.0-dev, "
          "from scripts/install-deps.sh; then reconfigure the build)")
    sys.exit(77)
skip_under_asan()

LABELS = "красный фон;синий фон;зелёный фон;чёрный фон;белый фон;жёлтый фон"
# The server's colour table begins red, blue, green, black.
EXPECTED = ["красный фон", "синий фон", "зелёный фон", "чёрный фон"]
STREAMS = len(EXPECTED)
MIN_RESULTS = 3   # results per stream the test waits for
HANG_GUARD_SECONDS = 240
START_SECONDS = 120  # hang guard for the server to listen

LISTENING = re.compile(r"^listening on rtsp://127\.0\.0\.1:(\d+)/stream(\d+)\b")
RESULT = re.compile(r"^stream(\d+) frame (\d+): (.+) ([0-9.]+) \(model instance (\d+)\)$")


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RtspServer(unittest.TestCase):
    def setUp(self):
        Gst.init(None)
        self.port = free_port()
        self.server = subprocess.Popen(
            [SERVER, "--model", MODEL, "--labels", LABELS, "--streams", str(STREAMS), "--port", str(self.port)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.addCleanup(self.stop_server)
        # Lines as they come, read on a thread so that a silent server can't
        # hang the test; stderr is kept for the failure messages.
        self.lines = queue.Queue()
        self.stderr = []
        threading.Thread(target=self.pump, args=(self.server.stdout, self.lines.put, None), daemon=True).start()
        threading.Thread(target=self.pump, args=(self.server.stderr, self.stderr.append, ""), daemon=True).start()
        self.clients = []

    @staticmethod
    def pump(stream, put, end):
        for line in stream:
            put(line.rstrip("\n"))
        put(end)

    def stop_server(self):
        """SIGTERM, then SIGKILL if it hasn't gone in 10 s: never leave it behind."""
        if self.server.poll() is None:
            self.server.send_signal(signal.SIGTERM)
            try:
                self.server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.server.kill()
                self.server.wait()
                self.fail("the server didn't stop on SIGTERM within 10 s")

    def stop_clients(self):
        for pipeline, _ in self.clients:
            pipeline.set_state(Gst.State.NULL)
        self.clients = []

    def next_line(self, deadline):
        try:
            line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            return ""
        if line is None:
            self.fail(f"the server exited ({self.server.wait()}): {'; '.join(self.stderr)}")
        return line

    def connect(self, stream):
        """One client: RTP/JPEG over the RTSP connection, decoded and counted."""
        pipeline = Gst.parse_launch(
            f"rtspsrc location=rtsp://127.0.0.1:{self.port}/stream{stream} latency=0 protocols=tcp ! "
            "rtpjpegdepay ! jpegdec ! fakesink name=sink signal-handoffs=true sync=false")
        frames = [0]
        pipeline.get_by_name("sink").connect("handoff", lambda *_: frames.__setitem__(0, frames[0] + 1))
        self.clients.append((pipeline, frames))
        self.assertNotEqual(pipeline.set_state(Gst.State.PLAYING), Gst.StateChangeReturn.FAILURE, stream)

    def client_errors(self):
        errors = []
        for i, (pipeline, _) in enumerate(self.clients):
            msg = pipeline.get_bus().pop_filtered(Gst.MessageType.ERROR)
            if msg:
                errors.append(f"stream{i}: {msg.parse_error()[0].message}")
        return errors

    def test_many_streams_one_model(self):
        deadline = time.monotonic() + START_SECONDS
        listening = {}
        while len(listening) < STREAMS:
            line = self.next_line(deadline)
            self.assertLess(time.monotonic(), deadline, f"no 'listening' lines: {listening}, {self.stderr}")
            if m := LISTENING.match(line):
                listening[int(m.group(2))] = int(m.group(1))
        self.assertEqual(listening, {i: self.port for i in range(STREAMS)})

        results = {i: [] for i in range(STREAMS)}
        try:
            for i in range(STREAMS):
                self.connect(i)
            # Until every stream has MIN_RESULTS: no rate is asserted, the
            # deadline is a hang guard for a stream that never gets a result.
            deadline = time.monotonic() + HANG_GUARD_SECONDS
            while any(len(r) < MIN_RESULTS for r in results.values()):
                self.assertLess(time.monotonic(), deadline, f"results so far: {results}; {self.stderr}")
                line = self.next_line(deadline)
                if m := RESULT.match(line):
                    results[int(m.group(1))].append((m.group(3), float(m.group(4)), int(m.group(5))))
                self.assertEqual(self.client_errors(), [])
            frames = [f[0] for _, f in self.clients]
        finally:
            self.stop_clients()
        self.stop_server()
        self.assertEqual(self.server.returncode, 0, f"the server's exit status; stderr: {'; '.join(self.stderr)}")

        for i in range(STREAMS):
            print(f"stream{i}: {frames[i]} frames received, results {results[i]}")
        # Every client got pictures, and every stream was analyzed.
        for i in range(STREAMS):
            self.assertGreater(frames[i], 0, f"client of stream{i} got no frames")
            self.assertGreaterEqual(len(results[i]), MIN_RESULTS, f"stream{i}: {results}")
        # Each stream is named by its own colour.
        for i, want in enumerate(EXPECTED):
            right = sum(label == want for label, _, _ in results[i])
            self.assertGreaterEqual(right, 0.99 * len(results[i]), f"stream{i} should be {want}: {results[i]}")
        # One loaded model: every element reports the same instance. 0 is
        # what the server prints when the element's stats has no
        # "model-instance" field.
        instances = {instance for r in results.values() for _, _, instance in r}
        self.assertNotIn(0, instances, "stats has no model-instance")
        self.assertEqual(len(instances), 1, f"the streams ran on {len(instances)} loaded models: {instances}")


if __name__ == "__main__":
    unittest.main(verbosity=2)
