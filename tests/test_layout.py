#!/usr/bin/env python3
"""The architecture the tree shows, checked: the inference library (core/)
includes nothing from the tools library or the CLI, nor OpenCV, GStreamer or
the plugin; the result format's field names are spelled only in
gst-plugin/meta (its C and Python readers), never as string literals in the
elements, the CLI or the examples."""
import os
import re
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOURCE = re.compile(r"\.(c|cc|cpp|cu|h|hpp|py)$")
INCLUDE = re.compile(r'^\s*#\s*include\s*[<"]([^>"]+)[>"]', re.M)
# Every field of the result, message, region and segment structures (ruclipmeta.h).
FIELDS = ["labels", "scores", "cosines", "smoothed-scores", "source-pts", "frame", "fresh", "model", "embedding",
          "regions", "timestamp", "running-time", "roi-type", "event", "start-pts", "end-pts", "start-running-time",
          "end-running-time", "mean-score", "peak-score", "frames", "RuClipMeta", "ruclip-region", "ruclip-segment"]
# A field named as a literal in a structure access: gst_structure_get_*(s, "frame", ...),
# s.get_value("frame"), get_custom_meta("RuClipMeta"), gst_structure_has_name(s, "ruclip-segment").
NAMES = "|".join(map(re.escape, FIELDS))
ACCESS = re.compile(r'(gst_structure_\w+|gst_buffer_\w*custom_meta|\.(get_value|get_string|get_uint64|get_double|'
                    r'get_boolean|get_int|get_uint|has_field|get_custom_meta|get_name\(\) *==))\s*\(?[^;\n]*?"(' +
                    NAMES + r')"')


def sources(*folders):
    for folder in folders:
        for dirpath, _, files in os.walk(os.path.join(ROOT, folder)):
            for f in files:
                if SOURCE.search(f):
                    path = os.path.join(dirpath, f)
                    yield os.path.relpath(path, ROOT), open(path, encoding="utf-8").read()


class Layout(unittest.TestCase):
    def test_core_includes_nothing_from_tools_opencv_or_gstreamer(self):
        seen = 0
        for path, text in sources("core"):
            for header in INCLUDE.findall(text):
                seen += 1
                self.assertFalse(header.startswith(("ruclip/tools/", "tools/", "opencv", "gst/", "cli.h")),
                                 f"{path} includes {header}")
                self.assertNotIn("ruclipmeta", header, path)
        self.assertGreater(seen, 100)  # the walk found the sources

    def test_core_build_uses_no_tools_folder(self):
        with open(os.path.join(ROOT, "core", "meson.build")) as f:
            build = f.read()
        self.assertNotIn("tools_inc", build)
        self.assertNotIn("opencv", build)

    def test_result_fields_are_spelled_only_in_the_meta(self):
        offenders = []
        checked = 0
        for path, text in sources("gst-plugin", "tools/ruclip", "examples"):
            if path.startswith(os.path.join("gst-plugin", "meta") + os.sep):
                continue
            checked += 1
            for m in ACCESS.finditer(text):
                offenders.append(f"{path}:{text.count(chr(10), 0, m.start()) + 1}: {m.group(0)}")
        self.assertGreater(checked, 10)
        self.assertEqual(offenders, [])

    def test_the_check_finds_a_literal_access(self):
        for line in ('gst_structure_get_uint64 (s, "frame", &frame);', 's.get_value("labels")',
                     'buf.get_custom_meta("RuClipMeta")', 'gst_structure_has_name (s, "ruclip-segment")'):
            self.assertTrue(ACCESS.search(line), line)


if __name__ == "__main__":
    unittest.main(verbosity=2)
