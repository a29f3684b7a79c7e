#!/usr/bin/env python3
"""`ruclip serve` in a real browser: headless Chromium (Debian's chromium)
driven over the DevTools protocol (python3-websocket), on an index of three
live cameras (index_writer.py). A Russian query typed into the page and the
button clicked shows hits with loaded thumbnails, the right camera first;
choosing a camera keeps only its hits; the address holds the query; the JSON
API answers as `ruclip search`; with --token a request without it is
refused and the page opened with ?token= works; without a token, a request
naming another host (DNS rebinding) is refused; an upload too large is
refused from its headers; listening beyond loopback without a token is
refused before anything listens. Everything on
127.0.0.1. RUCLIP_SCREENSHOT=FILE.png saves the page after the search."""
import base64
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.error
import urllib.parse
import urllib.request

import websocket

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from shipped_model import skip_under_asan  # noqa: E402

skip_under_asan()
RUCLIP = os.environ["RUCLIP_EXE"]
# The server and `ruclip search` are compared to the last bit: the same fp32
# kernel in both (the one chosen by timing at load could differ between them).
os.environ["RUCLIP_FP32_KERNEL"] = "libtorch-blas"
WRITER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "index_writer.py")
CAMERAS = {"gate": "e11e1e", "yard": "1e50dc", "garage": "23a537"}  # red, blue, green


def wait_for(what, check, timeout=60):
    """Polls `check` until it returns a true value (`timeout` is a hang guard)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"hang guard: {what}")


class Serve:
    def __init__(self, db, *extra):
        self.p = subprocess.Popen([RUCLIP, "serve", "--db", db, "--listen", "127.0.0.1:0", *extra],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.p.stdout.readline()
        if not line:
            raise AssertionError("ruclip serve: " + self.p.stderr.read())
        self.url = json.loads(line)["listening"]

    def get(self, path, headers=None):
        req = urllib.request.Request(self.url + path.lstrip("/"), headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return r.status, r.read(), r.headers
        except urllib.error.HTTPError as e:
            return e.code, e.read(), e.headers

    def stop(self):
        self.p.terminate()
        self.p.wait(timeout=30)
        self.p.stdout.close()
        self.p.stderr.close()


class Browser:
    """Headless Chromium, one page, over the DevTools protocol."""

    def __init__(self, tmp):
        self.profile = tempfile.mkdtemp(prefix="chromium-", dir=tmp)  # its own: no stale port file
        # DevTools listens on 127.0.0.1 only (Chromium's default), on a port it picks.
        args = ["chromium", "--headless=new", "--disable-gpu", "--no-first-run", "--no-default-browser-check",
                "--disable-extensions", "--disable-background-networking", "--window-size=1280,900",
                f"--user-data-dir={self.profile}", "--remote-debugging-port=0", "about:blank"]
        if os.geteuid() == 0:
            args.insert(1, "--no-sandbox")  # Chromium's sandbox refuses root
        self.p = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port_file = os.path.join(self.profile, "DevToolsActivePort")
        def port():
            try:
                with open(port_file) as f:
                    return f.read().split("\n")[0]
            except OSError:
                return None
        port = wait_for("Chromium's DevTools port", port)
        def page_targets():
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as r:
                    return [t for t in json.load(r) if t["type"] == "page"]
            except OSError:
                return None  # not answering yet
        pages = wait_for("a page target", page_targets)
        self.ws = websocket.create_connection(pages[0]["webSocketDebuggerUrl"], timeout=60)
        self.next_id = 0

    def call(self, method, **params):
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == self.next_id:
                if "error" in msg:
                    raise AssertionError(f"{method}: {msg['error']}")
                return msg["result"]

    def eval(self, expression):
        r = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in r:
            raise AssertionError(f"{expression}: {r['exceptionDetails']}")
        return r["result"].get("value")

    def open(self, url):
        self.call("Page.navigate", url=url)
        wait_for("the page", lambda: self.eval("document.readyState") == "complete")

    def click(self, selector):
        box = self.eval(f"(() => {{ const r = document.querySelector({json.dumps(selector)}).getBoundingClientRect();"
                        " return [r.x + r.width / 2, r.y + r.height / 2]; })()")
        for kind in ("mousePressed", "mouseReleased"):
            self.call("Input.dispatchMouseEvent", type=kind, x=box[0], y=box[1], button="left", clickCount=1)

    def type(self, selector, text):
        self.click(selector)
        self.call("Input.insertText", text=text)

    def hits(self):
        return self.eval("[...document.querySelectorAll('.hit')].map(f => ({camera: f.dataset.camera, "
                         "loaded: f.querySelector('img').complete && f.querySelector('img').naturalWidth > 0}))")

    def close(self):
        self.ws.close()
        self.p.terminate()
        self.p.wait(timeout=30)


class SearchPage(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="ruclip-serve-")
        cls.db = os.path.join(cls.tmp, "cameras.db")
        args = [sys.executable, WRITER, "--location", cls.db, "--seconds", "2", "--size", "320x240"]
        for name, rgb in CAMERAS.items():
            args += ["--camera", f"{name}:{rgb}"]
        subprocess.run(args, check=True, capture_output=True, timeout=300)
        cls.server = Serve(cls.db)

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_a_query_typed_in_the_browser_finds_its_camera(self):
        browser = Browser(self.tmp)
        try:
            browser.open(self.server.url)
            wait_for("the cameras in the filter", lambda: browser.eval("document.getElementById('camera').options.length") == 4)
            browser.type("#q", "синий фон")
            browser.click("button[type=submit]")
            # Every thumbnail loads (the wait is a hang guard; a broken image never loads).
            hits = wait_for("hits with their thumbnails",
                            lambda: (h := browser.hits()) and all(x["loaded"] for x in h) and h)
            self.assertEqual(hits[0]["camera"], "yard")
            self.assertIn("q=" + urllib.parse.quote("синий фон").replace("%20", "+"), browser.eval("location.search"))
            if os.environ.get("RUCLIP_SCREENSHOT"):
                shot = browser.call("Page.captureScreenshot", format="png")
                with open(os.environ["RUCLIP_SCREENSHOT"], "wb") as f:
                    f.write(base64.b64decode(shot["data"]))
            # A filter: only the chosen camera's hits.
            browser.eval("(() => { const s = document.getElementById('camera'); s.value = 'gate';"
                         " s.dispatchEvent(new Event('change')); })()")
            hits = wait_for("filtered hits", lambda: (h := browser.hits()) and all(x["camera"] == "gate" for x in h) and h)
            self.assertTrue(hits)
            # A result opens its frame and its neighbours in time.
            browser.click(".hit")
            strip = wait_for("neighbours", lambda: browser.eval("document.querySelectorAll('#viewer .strip img').length"))
            self.assertGreaterEqual(strip, 2)
            # The larger frame: 320 pixels wide as the camera's, where the thumbnail is 192.
            large = wait_for("the larger frame", lambda: browser.eval(
                "(() => { const i = document.querySelector('#viewer img.large');"
                " return i.complete && i.naturalWidth; })()"))
            self.assertEqual(large, 320)
            # The address alone repeats a search.
            browser.open(self.server.url + "?q=" + urllib.parse.quote("зелёный фон"))
            hits = wait_for("hits from the address", lambda: browser.hits())
            self.assertEqual(hits[0]["camera"], "garage")
        finally:
            browser.close()

    def test_api_answers_as_ruclip_search(self):
        status, body, _ = self.server.get("/api/search?q=" + urllib.parse.quote("красный фон") + "&top=3")
        self.assertEqual(status, 200)
        api = json.loads(body)
        cli = json.loads(subprocess.run([RUCLIP, "search", "--db", self.db, "красный фон", "--top", "3"],
                                        capture_output=True, text=True, check=True, timeout=300).stdout)
        self.assertEqual(api["hits"], cli["hits"])
        self.assertEqual(api["hits"][0]["camera"], "gate")
        status, body, _ = self.server.get("/api/cameras")
        self.assertEqual(sorted(s["name"] for s in json.loads(body)["sources"]), sorted(CAMERAS))
        # Bad input: a clear error, never a crash; thumbnails by id only.
        status, body, _ = self.server.get("/api/search?q=x&since=yesterday")
        self.assertEqual(status, 400)
        self.assertIn("--since", json.loads(body)["error"])
        for path in ("/api/thumbnail/..%2F..%2Fetc%2Fpasswd", "/api/thumbnail/%2Fetc%2Fpasswd",
                     "/api/thumbnail/999999", "/api/thumbnail/-1", "/api/thumbnail/1.jpg"):
            status, body, _ = self.server.get(path)
            self.assertIn(status, (400, 404), path)  # libsoup refuses some paths itself (400)
            self.assertNotIn(b"root:", body)
        status, body, headers = self.server.get(f"/api/thumbnail/{api['hits'][0]['sample']}")
        self.assertEqual(status, 200)
        self.assertEqual(headers["Content-Type"], "image/jpeg")
        self.assertEqual(body[:2], b"\xff\xd8")
        self.assertEqual(self.server.p.poll(), None)  # still serving

    def test_rows_added_while_serving_are_found(self):
        db = os.path.join(self.tmp, "growing.db")
        subprocess.run([sys.executable, WRITER, "--location", db, "--seconds", "1", "--camera", "gate:e11e1e"],
                       check=True, capture_output=True, timeout=300)
        server = Serve(db)
        try:
            query = "/api/search?q=" + urllib.parse.quote("фиолетовый фон")
            first = json.loads(server.get(query)[1])
            self.assertEqual({h["camera"] for h in first["hits"]}, {"gate"})
            self.assertEqual(json.loads(server.get(query)[1])["synced"], 0)  # nothing new: nothing read
            subprocess.run([sys.executable, WRITER, "--location", db, "--seconds", "1", "--camera", "porch:8c32be"],
                           check=True, capture_output=True, timeout=300)
            grown = json.loads(server.get(query)[1])
            self.assertGreater(grown["synced"], 0)
            self.assertEqual(grown["samples"], first["samples"] + grown["synced"])
            self.assertEqual(grown["hits"][0]["camera"], "porch")
        finally:
            server.stop()

    def test_token_is_checked_on_every_request(self):
        server = Serve(self.db, "--token", "s3cret-токен")
        try:
            for path in ("/", "/api/cameras", "/api/thumbnail/1", "/api/search?q=x"):
                status, _, _ = server.get(path)
                self.assertEqual(status, 401, path)
            status, _, _ = server.get("/api/cameras", {"Authorization": "Bearer wrong"})
            self.assertEqual(status, 401)
            status, _, _ = server.get("/api/cameras", {"Authorization": "Bearer s3cret-токен".encode().decode("latin-1")})
            self.assertEqual(status, 200)
            status, _, headers = server.get("/?token=" + urllib.parse.quote("s3cret-токен"))
            self.assertEqual(status, 200)
            self.assertIn("HttpOnly", headers["Set-Cookie"])
            # The browser, given the address with the token, searches with the cookie.
            browser = Browser(self.tmp)
            try:
                browser.open(server.url + "?token=" + urllib.parse.quote("s3cret-токен") + "&q=" +
                             urllib.parse.quote("красный фон"))
                hits = wait_for("hits with the token", lambda: browser.hits())
                self.assertEqual(hits[0]["camera"], "gate")
            finally:
                browser.close()
        finally:
            server.stop()

    def test_requests_for_other_hosts_and_huge_bodies_are_refused(self):
        # A page that rebound its DNS name to 127.0.0.1 sends its own name: refused.
        status, body, _ = self.server.get("/api/cameras", {"Host": "evil.example:80"})
        self.assertEqual(status, 403)
        status, _, _ = self.server.get("/api/cameras", {"Host": "localhost"})
        self.assertEqual(status, 200)
        # A huge upload is refused from its headers, before any body is sent
        # (a client that asks first, as curl does for large bodies).
        port = int(self.server.url.rstrip("/").rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=60) as c:
            c.sendall(b"POST /api/search HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/png\r\n"
                      b"Content-Length: 4000000000\r\nExpect: 100-continue\r\n\r\n")
            answer = c.recv(4096).decode("latin-1")
        self.assertIn(" 413 ", answer.splitlines()[0])
        self.assertEqual(self.server.p.poll(), None)

    def test_beyond_loopback_needs_a_token(self):
        p = subprocess.run([RUCLIP, "serve", "--db", self.db, "--listen", "0.0.0.0:0"], capture_output=True,
                           text=True, timeout=60)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("--token", p.stderr)
        self.assertEqual(p.stdout, "")  # never listened


if __name__ == "__main__":
    unittest.main(verbosity=2)
