"""A PostgreSQL server of the test's own: initdb into a temporary folder, on a
free port of 127.0.0.1 only, trust authentication for the user "ruclip",
stopped (and the folder removed) at the end. As root, the server runs as the
"postgres" user (PostgreSQL refuses to run as root). Debian: postgresql-15.

    with PostgresServer() as pg:
        uri = pg.uri("postgres")           # postgresql://ruclip@127.0.0.1:PORT/postgres
        pg.restart()                        # the same data, the same port
"""
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time


def _bin(name):
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not found:
        raise RuntimeError(f"PostgreSQL's {name} is missing: install postgresql-15 (scripts/install-deps.sh)")
    return found[-1]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresServer:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="ruclip-pg-")
        self.data = os.path.join(self.dir, "data")
        self.port = free_port()
        self.proc = None
        self.as_root = os.geteuid() == 0
        if self.as_root:
            shutil.chown(self.dir, "postgres", "postgres")
        self._run([_bin("initdb"), "-D", self.data, "-U", "ruclip", "-A", "trust", "-E", "UTF8", "--no-sync"])

    def _user(self):
        """Popen's arguments that run a program as "postgres" when we are root."""
        return {"user": "postgres", "group": "postgres", "extra_groups": []} if self.as_root else {}

    def _run(self, args):
        subprocess.run(args, check=True, capture_output=True, timeout=120, cwd=self.dir, **self._user())

    def uri(self, database="postgres"):
        return f"postgresql://ruclip@127.0.0.1:{self.port}/{database}"

    def start(self):
        with open(os.path.join(self.dir, "server.log"), "ab") as log:
            self.proc = subprocess.Popen(
                [_bin("postgres"), "-D", self.data, "-p", str(self.port), "-c", "listen_addresses=127.0.0.1",
                 "-c", f"unix_socket_directories={self.dir}", "-c", "fsync=off"],
                stdout=log, stderr=log, cwd=self.dir, **self._user())
        deadline = time.monotonic() + 60  # a hang guard
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("postgres exited: " + open(os.path.join(self.dir, "server.log")).read()[-2000:])
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    ready = subprocess.run([_bin("pg_isready"), "-h", "127.0.0.1", "-p", str(self.port)],
                                           capture_output=True)
                    if ready.returncode == 0:
                        return
            time.sleep(0.1)
        raise RuntimeError("postgres did not start")

    def stop(self, fast=True):
        if self.proc and self.proc.poll() is None:
            # SIGINT: the "fast" shutdown (clients disconnected, data kept).
            self.proc.send_signal(2 if fast else 15)
            self.proc.wait(timeout=60)
        self.proc = None

    def restart(self):
        self.stop()
        self.start()

    def sql(self, statement, database="postgres"):
        return subprocess.run([_bin("psql"), "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", self.uri(database), "-c",
                               statement], check=True, capture_output=True, text=True, timeout=60).stdout.strip()

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
