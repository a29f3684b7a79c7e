#!/usr/bin/env python3
"""ruclippublish end to end: ruclipfilter's results (and "ruclip-segment"
events) as JSON documents in a file and on a real MQTT broker.

The broker is Debian's mosquitto, started by the test on a free 127.0.0.1
port with persistence in a temporary folder; a persistent QoS 1 subscriber
(mosquitto_sub -c) collects what arrives, so that a broker restart keeps what
it had queued. Run by meson with GST_PLUGIN_PATH pointing at the built plugin
(meson test -C build publish)."""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import unittest
from datetime import datetime, timedelta, timezone

import gi

gi.require_version("Gst", "1.0")
from gi.repository import Gst  # noqa: E402
from shipped_model import MODEL, skip_under_asan  # noqa: E402

MOSQUITTO = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if os.path.exists("/usr/sbin/mosquitto") else None)
if not MOSQUITTO or not shutil.which("mosquitto_sub") or not shutil.which("mosquitto_pub"):
    print("SKIP: needs the mosquitto broker and its clients (Debian mosquitto, mosquitto-clients: "
          "scripts/install-deps.sh)")
    raise SystemExit(77)
skip_under_asan()

LABELS = ["красный фон", "синий фон"]
RED = "videotestsrc pattern=solid-color foreground-color=0xffff0000"
WALL_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def end_process(process, timeout=5):
    """SIGTERM, then SIGKILL if it hasn't gone in `timeout` s: never left behind."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class Broker:
    """mosquitto on 127.0.0.1:port, persistence in `folder`, `extra` configuration lines; stop() always ends it."""

    def __init__(self, folder, port, extra=""):
        self.port = port
        self.config = os.path.join(folder, "mosquitto.conf")
        self.log = os.path.join(folder, "broker.log")
        with open(self.config, "w") as f:
            f.write(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence true\n"
                    f"persistence_location {folder}/\n")
            if os.geteuid() == 0:
                # As root it would switch to the user mosquitto, who can't write the folder.
                f.write("user root\n")
            f.write(extra)
        self.process = None

    def start(self):
        with open(self.log, "a") as log:
            self.process = subprocess.Popen([MOSQUITTO, "-c", self.config], stdout=log, stderr=log)
        deadline = time.monotonic() + 60  # a hang guard
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"mosquitto exited: {open(self.log).read()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("mosquitto did not listen within 60 s")

    def freeze(self):
        """SIGSTOP: connections stay open, nothing is read or acknowledged."""
        self.process.send_signal(signal.SIGSTOP)

    def kill(self):
        """SIGKILL (also when frozen): what it had received and not handled is gone, nothing is saved."""
        self.process.kill()
        self.process.wait()
        self.process = None

    def stop(self):
        """SIGTERM: it saves its queued messages (persistence) and goes."""
        if self.process:
            end_process(self.process)
        self.process = None


class Subscriber:
    """mosquitto_sub -c (a persistent QoS 1 session) on ruclip/#: every message as (topic, payload).
    client_args: more options for it and mosquitto_pub (TLS)."""

    def __init__(self, port, client_args=()):
        self.port = port
        self.client_args = list(client_args)
        self.messages = []
        self.lock = threading.Lock()
        self.process = subprocess.Popen(
            ["mosquitto_sub", "-h", "127.0.0.1", "-p", str(port), "-t", "ruclip/#", "-q", "1", "-c", "-i",
             "test-sub", "-v"] + self.client_args,
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, encoding="utf-8")
        self.pump_thread = threading.Thread(target=self.pump, daemon=True)
        self.pump_thread.start()
        self.wait_ready()

    def pump(self):
        for line in self.process.stdout:
            topic, _, payload = line.rstrip("\n").partition(" ")
            with self.lock:
                self.messages.append((topic, payload))

    def wait_ready(self):
        """Subscribed once a probe published now comes back."""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(self.port), "-t", "ruclip/probe", "-q",
                            "1", "-m", "probe"] + self.client_args, check=True, timeout=10)
            if self.wait_for(lambda m: ("ruclip/probe", "probe") in m, 0.5):
                return
        raise RuntimeError("the subscriber didn't get the probe in 10 s")

    def wait_for(self, predicate, seconds):
        deadline = time.monotonic() + seconds
        while True:
            with self.lock:
                if predicate(self.messages):
                    return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)

    def documents(self):
        with self.lock:
            return [(t, json.loads(p)) for t, p in self.messages if t != "ruclip/probe"]

    def wait_analyses(self, frames, seconds, topic=None):
        """The analyses come so far (on `topic` if given) by frame, once those of `frames` are
        among them or `seconds` have passed."""
        deadline = time.monotonic() + seconds
        while True:
            came = analyses(d for t, d in self.documents() if topic in (None, t))
            if set(came) >= set(frames) or time.monotonic() >= deadline:
                return came
            time.sleep(0.05)

    def stop(self):
        end_process(self.process)
        self.pump_thread.join(timeout=5)
        self.process.stdout.close()


class Run:
    """A pipeline run to EOS or an error, its warnings, errors and infos as (text, debug).
    play=False: call play() after setting things up on run.pipeline."""

    def __init__(self, desc, timeout=30, during=None, play=True):
        self.pipeline = Gst.parse_launch(desc)
        self.warnings, self.errors, self.infos = [], [], []
        self.eos = False
        if play:
            self.play(timeout, during)

    def play(self, timeout=30, during=None):
        bus = self.pipeline.get_bus()
        self.pipeline.set_state(Gst.State.PLAYING)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if during:
                during(self)
            msg = bus.timed_pop_filtered(50 * Gst.MSECOND, Gst.MessageType.EOS | Gst.MessageType.ERROR |
                                         Gst.MessageType.WARNING | Gst.MessageType.INFO)
            if msg is None:
                continue
            if msg.type == Gst.MessageType.EOS:
                self.eos = True
                break
            kind = {Gst.MessageType.ERROR: self.errors, Gst.MessageType.WARNING: self.warnings,
                    Gst.MessageType.INFO: self.infos}[msg.type]
            error, debug = (msg.parse_error() if msg.type == Gst.MessageType.ERROR else
                            msg.parse_warning() if msg.type == Gst.MessageType.WARNING else msg.parse_info())
            kind.append((error.message, debug or ""))
            if msg.type == Gst.MessageType.ERROR:
                break

    def element(self, name):
        return self.pipeline.get_by_name(name)

    def close(self):
        self.pipeline.set_state(Gst.State.NULL)


def analyses(documents):
    """Analysis documents by frame: at least once means duplicates may come; they must agree."""
    by_frame = {}
    for doc in documents:
        if doc["type"] == "analysis":
            if doc["frame"] in by_frame:
                assert by_frame[doc["frame"]]["labels"] == doc["labels"], doc
            by_frame[doc["frame"]] = doc
    return by_frame


class Publish(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        Gst.init(None)

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="ruclip-publish-")
        self.addCleanup(shutil.rmtree, self.tmp, True)

    def labelled(self, publish, frames=30, live=False, filter_extra="", sink="fakesink", play=True, timeout=30):
        """A red screen of `frames` frames (live: at 30 fps) through ruclipfilter (every 3rd frame analyzed),
        `ruclippublish name=pub {publish}` and `sink`: the run (to EOS unless play=False), closed at cleanup."""
        live_props, rate = (" is-live=true", ",framerate=30/1") if live else ("", "")
        run = Run(f"{RED} num-buffers={frames}{live_props} ! video/x-raw,width=160,height=120{rate} ! "
                  f'ruclipfilter model="{MODEL}" labels="{";".join(LABELS)}" interval=3 {filter_extra} ! '
                  f"ruclippublish name=pub {publish} ! {sink}", timeout=timeout, play=play)
        self.addCleanup(run.close)
        if play:
            self.assertTrue(run.eos, run.errors)
        return run

    def start_broker(self, extra="", client_args=()):
        broker = Broker(self.tmp, free_port(), extra)
        self.addCleanup(broker.stop)  # runs after the subscriber's cleanup (LIFO)
        broker.start()
        subscriber = Subscriber(broker.port, client_args)
        self.addCleanup(subscriber.stop)
        return broker, subscriber

    def check_analysis(self, doc, stream):
        self.assertEqual(list(doc), ["type", "stream", "pts", "running_time", "wall_time", "frame", "labels",
                                     "scoring", "model"])
        self.assertEqual(doc["scoring"], "softmax")
        self.assertEqual(doc["stream"], stream)
        self.assertRegex(doc["wall_time"], WALL_TIME)
        made = datetime.strptime(doc["wall_time"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
        self.assertLess(abs(datetime.now(timezone.utc) - made), timedelta(minutes=2))
        self.assertEqual(doc["model"], MODEL)
        self.assertEqual(sorted(label["label"] for label in doc["labels"]), sorted(LABELS))
        scores = [label["score"] for label in doc["labels"]]
        self.assertEqual(scores, sorted(scores, reverse=True))
        self.assertAlmostEqual(sum(scores), 1.0, places=5)
        for label in doc["labels"]:
            self.assertTrue(-1.0 <= label["cosine"] <= 1.0)
        self.assertIsInstance(doc["pts"], float)
        self.assertIsInstance(doc["running_time"], float)

    # (a) file: one JSON line per analysis, UTF-8 as it is.
    def test_file(self):
        out = os.path.join(self.tmp, "labels.jsonl")
        stream_ids = []

        def note_stream_start(pad, info):
            event = info.get_event()
            if event.type == Gst.EventType.STREAM_START:
                stream_ids.append(event.parse_stream_start())
            return Gst.PadProbeReturn.OK

        run = self.labelled(f'method=file location="{out}"', sink="fakesink name=sink", play=False)
        run.element("sink").get_static_pad("sink").add_probe(Gst.PadProbeType.EVENT_DOWNSTREAM, note_stream_start)
        run.play()
        self.assertTrue(run.eos, run.errors)
        self.assertEqual(run.errors, [])
        self.assertEqual(run.element("pub").get_property("documents-published"), 10)
        with open(out, "rb") as f:
            raw = f.read()
        lines = raw.decode("utf-8").splitlines()
        self.assertEqual(len(lines), 10)
        self.assertIn("красный фон".encode(), raw)  # not \u-escaped
        self.assertNotIn(b"\\u", raw)
        docs = [json.loads(line) for line in lines]
        self.assertEqual([d["frame"] for d in docs], list(range(0, 30, 3)))
        self.assertEqual(len(stream_ids), 1)
        for d in docs:
            self.check_analysis(d, stream_ids[0])  # the STREAM_START event's stream id
            self.assertAlmostEqual(d["pts"], d["frame"] / 30, places=9)
            self.assertAlmostEqual(d["running_time"], d["pts"], places=9)
            self.assertEqual(d["labels"][0]["label"], "красный фон")  # a red screen

        # Appended, not overwritten: a second run with a stream-id adds 10 lines.
        self.labelled(f'method=file stream-id=камера-1 location="{out}"')
        with open(out, encoding="utf-8") as f:
            docs = [json.loads(line) for line in f]
        self.assertEqual(len(docs), 20)
        self.assertEqual({d["stream"] for d in docs[10:]}, {"камера-1"})

    # async mode: results ride on later buffers (fresh=false); still one document per analysis.
    def test_file_async_one_document_per_analysis(self):
        out = os.path.join(self.tmp, "async.jsonl")
        on_buffers = []  # the result of each buffer, as (frame, fresh)

        def note_result(pad, info):
            meta = info.get_buffer().get_custom_meta("RuClipMeta")
            if meta:
                s = meta.get_structure()
                on_buffers.append((s.get_value("frame"), s.get_value("fresh")))
            return Gst.PadProbeReturn.OK

        run = self.labelled(f'method=file location="{out}"', frames=60, live=True, filter_extra="mode=async",
                            sink="fakesink name=sink", play=False)
        run.element("sink").get_static_pad("sink").add_probe(Gst.PadProbeType.BUFFER, note_result)
        run.play()
        self.assertTrue(run.eos, run.errors)
        with open(out, encoding="utf-8") as f:
            frames = [json.loads(line)["frame"] for line in f]
        # Results ride on later buffers, each on several; one document per result, in order.
        self.assertGreater(len(on_buffers), len(set(on_buffers)))
        self.assertFalse(any(fresh for _, fresh in on_buffers))
        self.assertEqual(frames, sorted({frame for frame, _ in on_buffers}))
        self.assertGreaterEqual(len(frames), 5)

    # (b) MQTT, QoS 1, a live source: every analysis arrives, on ruclip/<stream>.
    def test_mqtt_qos1_live(self):
        broker, sub = self.start_broker()
        run = self.labelled(f"method=mqtt address=127.0.0.1:{broker.port} qos=1", frames=90, live=True)
        self.assertEqual(run.warnings, [])
        pub = run.element("pub")
        self.assertEqual(pub.get_property("documents-published"), 30)  # acknowledged before EOS went on
        self.assertEqual(pub.get_property("documents-dropped"), 0)
        self.assertTrue(pub.get_property("connected"))
        expected = set(range(0, 90, 3))
        self.assertEqual(set(sub.wait_analyses(expected, 10)), expected)
        docs = sub.documents()
        for topic, d in docs:
            self.assertEqual(topic, "ruclip/" + d["stream"])
            self.check_analysis(d, docs[0][1]["stream"])

        # QoS 0, a topic of its own, a given client id: sent once each (the broker is right here).
        run0 = self.labelled(f"method=mqtt address=127.0.0.1:{broker.port} qos=0 topic=ruclip/test/qos0 "
                             "client-id=ruclip-test-qos0 stream-id=cam0")
        self.assertEqual(run0.element("pub").get_property("documents-published"), 10)
        self.assertEqual(set(sub.wait_analyses(range(0, 30, 3), 10, "ruclip/test/qos0")), set(range(0, 30, 3)))
        qos0 = [d for t, d in sub.documents() if t == "ruclip/test/qos0"]
        self.assertEqual(sorted(d["frame"] for d in qos0), list(range(0, 30, 3)))  # each once
        self.assertEqual({d["stream"] for d in qos0}, {"cam0"})

    # (c) The broker goes away at the 30th frame of a live 10 s stream and comes back at the 150th:
    # the 120 frames between can only pass if the stream never waits for the broker (were it to
    # wait, frame 150 would never come and the run's hang guard would end it).
    def test_mqtt_broker_restart(self):
        broker, sub = self.start_broker()
        handoffs = []
        marks = {}

        def on_handoff(sink, buffer, pad):
            handoffs.append(time.monotonic())
            if len(handoffs) == 30:
                broker.stop()
                marks["stopped"] = len(handoffs)
            elif len(handoffs) == 150:
                broker.start()
                marks["restarted"] = len(handoffs)

        run = self.labelled(f"method=mqtt address=127.0.0.1:{broker.port} qos=1", frames=300, live=True,
                            sink="fakesink name=sink sync=true signal-handoffs=true", play=False)
        run.element("sink").connect("handoff", on_handoff)
        run.play(timeout=120)
        self.assertTrue(run.eos, run.errors)
        self.assertEqual(marks, {"stopped": 30, "restarted": 150})
        pub = run.element("pub")
        self.assertEqual(pub.get_property("documents-dropped"), 0)
        self.assertEqual(pub.get_property("documents-published"), 100)  # all acknowledged before EOS
        self.assertTrue(any(f"127.0.0.1:{broker.port}" in text and "Lost the connection" in text
                            for text, _ in run.warnings), run.warnings)
        self.assertFalse(any("not delivered" in text for text, _ in run.warnings), run.warnings)
        self.assertTrue(any("again" in text for text, _ in run.infos), run.infos)
        self.assertEqual(len(handoffs), 300)

        expected = set(range(0, 300, 3))
        self.assertEqual(set(sub.wait_analyses(expected, 20)), expected)

    # Documents sent and never acknowledged are sent again on the next connection: the broker freezes
    # (SIGSTOP: what is sent to it meanwhile is never read) and is killed, then a new one starts.
    def test_mqtt_unacknowledged_resent(self):
        broker, sub = self.start_broker()
        # A clean restart first, so that the subscriber's session is on disk for the broker started after the kill.
        broker.stop()
        broker.start()
        sub.wait_ready()
        marks = {}

        def freeze_then_kill(sink, buffer, pad):  # by frame count, so that no timing decides it
            marks["frames"] = marks.get("frames", 0) + 1
            if marks["frames"] == 30:
                broker.freeze()
                marks["frozen"] = marks["frames"]
            elif marks["frames"] == 75:
                broker.kill()
                broker.start()
                marks["restarted"] = marks["frames"]

        run = self.labelled(f"method=mqtt address=127.0.0.1:{broker.port} qos=1", frames=150, live=True,
                            sink="fakesink name=sink sync=true signal-handoffs=true", play=False)
        run.element("sink").connect("handoff", freeze_then_kill)
        run.play(timeout=120)
        self.assertTrue(run.eos, run.errors)
        self.assertIn("restarted", marks)
        pub = run.element("pub")
        self.assertEqual((pub.get_property("documents-published"), pub.get_property("documents-dropped")), (50, 0))
        expected = set(range(0, 150, 3))
        self.assertEqual(set(sub.wait_analyses(expected, 20)), expected)

    # TLS with a client certificate: a CA, a server and a client certificate made here with openssl.
    def test_mqtt_tls(self):
        pem = {name: os.path.join(self.tmp, name) for name in
               ("ca.pem", "ca.key", "server.pem", "server.key", "client.pem", "client.key")}

        def openssl(*args):
            subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)

        openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", pem["ca.key"], "-out", pem["ca.pem"],
                "-days", "2", "-subj", "/CN=ruclip test CA")
        ext = os.path.join(self.tmp, "san.ext")
        with open(ext, "w") as f:
            f.write("subjectAltName=IP:127.0.0.1\n")
        for who, cn in (("server", "127.0.0.1"), ("client", "ruclip-test-client")):
            csr = os.path.join(self.tmp, who + ".csr")
            openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", pem[who + ".key"], "-out", csr, "-subj",
                    "/CN=" + cn)
            openssl("x509", "-req", "-in", csr, "-CA", pem["ca.pem"], "-CAkey", pem["ca.key"], "-CAcreateserial",
                    "-out", pem[who + ".pem"], "-days", "2", "-extfile", ext)
        broker, sub = self.start_broker(
            f"cafile {pem['ca.pem']}\ncertfile {pem['server.pem']}\nkeyfile {pem['server.key']}\n"
            "require_certificate true\n",
            ["--cafile", pem["ca.pem"], "--cert", pem["client.pem"], "--key", pem["client.key"]])
        tls = f"tls-ca-file={pem['ca.pem']} tls-cert-file={pem['client.pem']} tls-key-file={pem['client.key']}"
        run = self.labelled(f"method=mqtt address=127.0.0.1:{broker.port} {tls} stream-id=tls")
        self.assertEqual(run.warnings, [])
        self.assertEqual(run.element("pub").get_property("documents-published"), 10)
        self.assertEqual(set(sub.wait_analyses(range(0, 30, 3), 10)), set(range(0, 30, 3)))

        # Without the client certificate the broker turns it away: a warning, the stream goes on.
        run = self.labelled(f"method=mqtt address=127.0.0.1:{broker.port} tls-ca-file={pem['ca.pem']} flush-timeout=0")
        self.assertTrue(any(f"127.0.0.1:{broker.port}" in text for text, _ in run.warnings), run.warnings)

    # (d) What goes wrong: an absent broker is a warning; bad settings are errors at start.
    def test_unreachable_broker(self):
        port = free_port()
        run = self.labelled(f"method=mqtt address=127.0.0.1:{port} max-queue=4 flush-timeout=300000000")
        self.assertEqual(run.errors, [])
        texts = [text for text, _ in run.warnings]
        self.assertTrue(any(f"127.0.0.1:{port}" in t and "isn't reachable" in t and "keeps trying" in t
                            for t in texts), texts)
        self.assertTrue(any("4 document(s) not delivered" in t for t in texts), texts)
        pub = run.element("pub")
        self.assertEqual(pub.get_property("documents-dropped"), 6)  # 10 analyses, 4 fit
        self.assertEqual(pub.get_property("documents-published"), 0)
        self.assertFalse(pub.get_property("connected"))

    def start_error(self, publish_props):
        run = Run(f"videotestsrc num-buffers=5 ! ruclippublish {publish_props} ! fakesink", timeout=10)
        self.addCleanup(run.close)
        self.assertFalse(run.eos)
        self.assertEqual(len(run.errors), 1, run.errors)
        return run.errors[0]

    def test_bad_settings(self):
        text, debug = self.start_error("method=mqtt topic=a/#/b")
        self.assertIn("'topic'", text)
        self.assertIn("a/#/b", text)
        self.assertIn("wildcards", text)

        text, debug = self.start_error("method=mqtt address=nohost:notaport")
        self.assertIn("'address'", text)
        self.assertIn("nohost:notaport", text)
        self.assertIn("notaport", debug)

        text, debug = self.start_error("method=mqtt address=127.0.0.1:70000")
        self.assertIn("'address'", text)
        self.assertIn("65535", debug)

        path = os.path.join(self.tmp, "no-such-folder", "labels.jsonl")
        text, debug = self.start_error(f'method=file location="{path}"')
        self.assertIn(path, text)
        self.assertIn("No such file", debug)

        text, debug = self.start_error("method=mqtt tls-ca-file=/nonexistent/ca.pem")
        self.assertIn("/nonexistent/ca.pem", text)

    # (e) A "ruclip-segment" event becomes one "segment" document and goes on unchanged.
    # The whole chain: ruclipfilter segments=true sends its segment events, and ruclippublish
    # writes them between the analyses, in stream order.
    def test_filter_segments_to_file(self):
        out = os.path.join(self.tmp, "segments.jsonl")
        scenes = ("concat name=c ! ruclipfilter segments=true labels=\"красный фон;синий фон\" "
                  f"model=\"{MODEL}\" interval=3 ! ruclippublish method=file stream-id=cam location=\"{out}\" ! "
                  "fakesink "
                  "videotestsrc num-buffers=30 pattern=solid-color foreground-color=0xffff0000 ! "
                  "video/x-raw,width=160,height=120,framerate=30/1 ! c. "
                  "videotestsrc num-buffers=30 pattern=solid-color foreground-color=0xff0000ff ! "
                  "video/x-raw,width=160,height=120,framerate=30/1 ! c.")
        run = Run(scenes)
        run.close()
        self.assertTrue(run.eos, run.errors)
        with open(out, encoding="utf-8") as f:
            docs = [json.loads(line) for line in f]
        # concat restarts PTS with each source: the running time is the timeline here.
        segments = [(d["event"], d["label"], round(d["running_time"], 6)) for d in docs if d["type"] == "segment"]
        self.assertEqual(segments, [("start", "красный фон", 0.0), ("start", "синий фон", 1.0),
                                    ("end", "красный фон", 1.0), ("end", "синий фон", 2.0)])
        self.assertEqual(len([d for d in docs if d["type"] == "analysis"]), 20)

    def test_segment_events(self):
        out = os.path.join(self.tmp, "segments.jsonl")
        pipeline = Gst.parse_launch(
            f'appsrc name=src format=time caps=application/x-test ! ruclippublish method=file location="{out}" '
            "stream-id=cam9 ! fakesink name=sink")
        self.addCleanup(pipeline.set_state, Gst.State.NULL)
        forwarded = []

        def probe(pad, info):
            event = info.get_event()
            if event.type == Gst.EventType.CUSTOM_DOWNSTREAM:
                forwarded.append(event.get_structure().to_string())
            return Gst.PadProbeReturn.OK

        pipeline.get_by_name("sink").get_static_pad("sink").add_probe(Gst.PadProbeType.EVENT_DOWNSTREAM, probe)
        src = pipeline.get_by_name("src")
        pipeline.set_state(Gst.State.PLAYING)

        def segment(event, start, end, mean, peak, frames):
            return Gst.Structure.new_from_string(
                f'ruclip-segment, event=(string){event}, label=(string)"красный фон", '
                f"start-pts=(guint64){start}, end-pts=(guint64){end}, start-running-time=(guint64){start}, "
                f"end-running-time=(guint64){end}, mean-score=(double){mean}, peak-score=(double){peak}, "
                f'frames=(guint64){frames}, model=(string)"{MODEL}"')

        none = Gst.CLOCK_TIME_NONE
        sent = [segment("start", 1 * Gst.SECOND, none, 0.9, 0.95, 1),
                segment("end", 1 * Gst.SECOND, 2500 * Gst.MSECOND, 0.93, 0.99, 16),
                segment("middle", 0, 0, 0.0, 0.0, 0)]  # not a segment event: forwarded, not published
        other = Gst.Structure.new_empty("something-else")
        for i, s in enumerate(sent + [other]):
            src.send_event(Gst.Event.new_custom(Gst.EventType.CUSTOM_DOWNSTREAM, s.copy()))
            buf = Gst.Buffer.new_wrapped(b"x")
            buf.pts = i * Gst.SECOND
            self.assertEqual(src.emit("push-buffer", buf), Gst.FlowReturn.OK)
        src.emit("end-of-stream")
        msg = pipeline.get_bus().timed_pop_filtered(10 * Gst.SECOND, Gst.MessageType.EOS | Gst.MessageType.ERROR)
        self.assertIsNotNone(msg)
        self.assertEqual(msg.type, Gst.MessageType.EOS, msg)

        self.assertEqual(forwarded, [s.to_string() for s in sent + [other]])
        with open(out, encoding="utf-8") as f:
            docs = [json.loads(line) for line in f]
        self.assertEqual(len(docs), 2)
        start, end = docs
        keys = ["type", "stream", "pts", "running_time", "wall_time", "event", "label", "start", "end", "mean_score",
                "peak_score", "scoring", "frames", "model"]
        self.assertEqual(list(start), keys)
        self.assertEqual(list(end), keys)
        self.assertEqual((start["type"], start["event"], start["stream"], start["label"]),
                         ("segment", "start", "cam9", "красный фон"))
        self.assertEqual((start["pts"], start["running_time"], start["start"], start["end"]), (1.0, 1.0, 1.0, None))
        self.assertEqual((start["mean_score"], start["peak_score"], start["frames"]), (0.9, 0.95, 1))
        self.assertEqual((end["event"], end["pts"], end["running_time"], end["start"], end["end"]),
                         ("end", 2.5, 2.5, 1.0, 2.5))
        self.assertEqual((end["mean_score"], end["peak_score"], end["frames"], end["model"]), (0.93, 0.99, 16, MODEL))
        for d in docs:
            self.assertRegex(d["wall_time"], WALL_TIME)


if __name__ == "__main__":
    unittest.main(verbosity=2)
