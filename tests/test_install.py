#!/usr/bin/env python3
"""`meson install` as a user gets it: the build installed (meson install
--destdir) and laid over the real /usr/local and GStreamer's plugin folder in
a private mount namespace (overlayfs: nothing on the machine changes), where
with no GST_PLUGIN_PATH and the build folder hidden:
- gst-inspect-1.0 finds ruclipfilter, ruclipoverlay and ruclippublish, loaded
  from the installed plugin files;
- the installed `ruclip tag` tags a video with the shipped model (the
  installed plugin and SentencePiece module);
- an application builds against pkg-config gstreamer-ruclip-1.0 and reads
  the labels (examples/read_labels.c), and Python imports ruclipmeta.
Needs root and mount namespaces (as CI and the test command run)."""
import json
import os
import re
import subprocess
import sys
import tempfile
import unittest

from shipped_model import MODEL, ROOT, skip_under_asan

skip_under_asan()
BUILD = os.environ["RUCLIP_BUILD_ROOT"]


def installed_paths():
    """Where the build installs the ruclip binary and the plugins (meson introspect)."""
    out = json.loads(subprocess.run(["meson", "introspect", BUILD, "--installed"], check=True, capture_output=True,
                                    text=True, timeout=60).stdout)
    dest = {os.path.basename(src): dst for src, dst in out.items()}
    return dest["ruclip"], os.path.dirname(dest["libgstruclip.so"])


class Install(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.dest = os.path.join(cls.tmp.name, "dest")
        subprocess.run(["meson", "install", "-C", BUILD, "--destdir", cls.dest, "--no-rebuild", "--quiet"],
                       check=True, capture_output=True, timeout=300)
        cls.ruclip, cls.plugins = installed_paths()
        cls.video = os.path.join(cls.tmp.name, "scenes.webm")
        subprocess.run(["bash", os.path.join(ROOT, "examples", "make_test_video.sh"), cls.video], check=True,
                       capture_output=True, timeout=300)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def run_installed(self, script):
        """`script` (bash) with the installed files laid over the system's, as a user's machine has them."""
        prefix = os.path.dirname(os.path.dirname(self.ruclip))
        mounts = ""
        for target in (prefix, self.plugins):
            layer = self.dest + target
            mounts += (f"mkdir -p {target} && mount -t overlay overlay -o lowerdir={layer}:{target} {target} "
                       "|| exit 90\n")
        # The build folder hidden: nothing may come from it.
        mounts += f"mount -t tmpfs none {BUILD} || exit 90\n"
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("GST_PLUGIN", "RUCLIP_", "LD_"))}
        env["GST_REGISTRY_1_0"] = os.path.join(self.tmp.name, "registry.bin")
        p = subprocess.run(["unshare", "--mount", "--propagation", "private", "bash", "-euo", "pipefail", "-c",
                            mounts + "cd /\n" + script], capture_output=True, text=True, timeout=300, env=env)
        if p.returncode == 90:
            self.fail(f"cannot lay the installed files over the system's (root and mount namespaces needed): "
                      f"{p.stderr}")
        return p

    def test_gst_inspect_finds_the_installed_elements(self):
        for element, plugin in (("ruclipfilter", "libgstruclip.so"), ("ruclipoverlay", "libgstruclipoverlay.so"),
                                ("ruclippublish", "libgstruclippublish.so")):
            p = self.run_installed(f"gst-inspect-1.0 {element}")
            self.assertEqual(p.returncode, 0, p.stderr)
            loaded = re.search(r"^  Filename +(\S+)$", p.stdout, re.M).group(1)
            self.assertEqual(os.path.realpath(loaded), os.path.realpath(os.path.join(self.plugins, plugin)))

    def test_installed_ruclip_tags_a_video(self):
        p = self.run_installed(f"{self.ruclip} tag --model {MODEL} --label 'красный фон' --label 'синий фон' "
                               f"--label 'белый круг' --every 0.5 {self.video}")
        self.assertEqual(p.returncode, 0, p.stderr)
        f = json.loads(p.stdout)["files"][0]
        self.assertTrue(f["ok"], f)
        self.assertEqual([s["label"] for s in f["segments"]][:2], ["красный фон", "белый круг"])

    def test_an_application_builds_against_the_installed_meta(self):
        exe = os.path.join(self.tmp.name, "read_labels")
        p = self.run_installed(
            f"cc {ROOT}/examples/read_labels.c -o {exe} $(pkg-config --cflags --libs gstreamer-ruclip-1.0 "
            "gstreamer-app-1.0) -Wl,-rpath,$(pkg-config --variable=libdir gstreamer-ruclip-1.0)\n"
            f"{exe} {MODEL} 'красный фон;синий фон' 'videotestsrc num-buffers=12 pattern=blue ! videoconvert' 4\n"
            "/usr/bin/python3 -c 'import ruclipmeta; print(ruclipmeta.__file__)'")
        self.assertEqual(p.returncode, 0, p.stderr)
        lines = p.stdout.splitlines()
        best = [m.group(1) for l in lines if (m := re.search(r"frame +\d+:  (\S+ \S+) ", l))]
        self.assertEqual(best, ["синий фон"] * 3, p.stdout)
        self.assertTrue(lines[-1].startswith(os.path.dirname(os.path.dirname(self.ruclip))), lines[-1])


if __name__ == "__main__":
    unittest.main(verbosity=2)
