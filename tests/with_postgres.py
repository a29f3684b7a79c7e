#!/usr/bin/env python3
"""Runs a command with a PostgreSQL server of its own (postgres_server.py):
RUCLIP_TEST_POSTGRES=postgresql://ruclip@127.0.0.1:PORT/postgres in its
environment; the command's exit status is this one's."""
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from postgres_server import PostgresServer  # noqa: E402

with PostgresServer() as pg:
    rc = subprocess.run(sys.argv[1:], env=dict(os.environ, RUCLIP_TEST_POSTGRES=pg.uri())).returncode
sys.exit(rc)
