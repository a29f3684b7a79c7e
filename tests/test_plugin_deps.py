#!/usr/bin/env python3
"""Each element loads only its own dependencies: a pipeline of ruclipoverlay
and ruclippublish, without ruclipfilter, maps no LibTorch into the process
(read from /proc/self/maps after the pipeline ran), the overlay no
libmosquitto and the publisher no Pango; ruclipindex its store's libraries
(libpq, SQLite) and no LibTorch. A pipeline with ruclipfilter, the
control, does map LibTorch: the check can tell."""
import json
import os
import subprocess
import sys
import tempfile
import unittest

from shipped_model import MODEL, skip_under_asan

skip_under_asan()

# Runs one pipeline to EOS in a fresh process and prints the shared objects it mapped.
CHILD = r"""
import json, sys
import gi
gi.require_version("Gst", "1.0")
from gi.repository import Gst
Gst.init(None)
p = Gst.parse_launch(sys.argv[1])
p.set_state(Gst.State.PLAYING)
m = p.get_bus().timed_pop_filtered(120 * Gst.SECOND, Gst.MessageType.EOS | Gst.MessageType.ERROR)
p.set_state(Gst.State.NULL)
if m is None or m.type != Gst.MessageType.EOS:
    sys.exit("pipeline did not finish: " + (m.parse_error()[0].message if m else "hang guard"))
libs = sorted({line.split()[-1] for line in open("/proc/self/maps") if line.rstrip().endswith(".so") or ".so." in line})
print(json.dumps(libs))
"""


def mapped(pipeline):
    p = subprocess.run([sys.executable, "-c", CHILD, pipeline], capture_output=True, text=True, timeout=300)
    if p.returncode != 0:
        raise AssertionError(f"{pipeline}: {p.stderr}")
    return [os.path.basename(lib) for lib in json.loads(p.stdout.splitlines()[-1])]


def has(libs, prefix):
    return any(lib.startswith(prefix) for lib in libs)


class PluginDependencies(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.addCleanup(self.tmp.cleanup)
        self.out = os.path.join(self.tmp.name, "labels.jsonl")

    def test_overlay_and_publisher_load_no_libtorch(self):
        libs = mapped("videotestsrc num-buffers=5 ! video/x-raw,width=64,height=48 ! ruclipoverlay ! "
                      f"ruclippublish method=file location={self.out} ! fakesink")
        self.assertTrue(has(libs, "libgstruclipoverlay"), libs)
        self.assertTrue(has(libs, "libgstruclippublish"), libs)
        self.assertFalse(has(libs, "libtorch"), [l for l in libs if "torch" in l])
        self.assertFalse(has(libs, "libgstruclip.so"), libs)

    def test_each_loads_only_its_own(self):
        overlay = mapped("videotestsrc num-buffers=2 ! video/x-raw,width=64,height=48 ! ruclipoverlay ! fakesink")
        self.assertTrue(has(overlay, "libpango"), overlay)
        self.assertFalse(has(overlay, "libmosquitto"), overlay)
        publish = mapped(f"videotestsrc num-buffers=2 ! ruclippublish method=file location={self.out} ! fakesink")
        self.assertTrue(has(publish, "libmosquitto"), publish)
        self.assertFalse(has(publish, "libpango"), publish)
        self.assertFalse(has(publish, "libtorch"), publish)
        index = mapped(f"videotestsrc num-buffers=2 ! ruclipindex location={self.tmp.name}/i.db ! fakesink")
        self.assertTrue(has(index, "libgstruclipindex"), index)
        self.assertTrue(has(index, "libpq"), index)
        self.assertFalse(has(index, "libtorch"), index)
        self.assertFalse(has(index, "libmosquitto"), index)

    def test_control_ruclipfilter_loads_libtorch(self):
        libs = mapped("videotestsrc num-buffers=2 ! video/x-raw,width=64,height=48 ! "
                      f"ruclipfilter model={MODEL} labels=\"красный фон;синий фон\" ! fakesink")
        self.assertTrue(has(libs, "libtorch"), libs)


if __name__ == "__main__":
    unittest.main(verbosity=2)
