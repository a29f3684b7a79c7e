#!/usr/bin/env python3
"""What the search index costs on each engine (docs/tagging-and-search.md,
"Index cost"): `ruclip bench-index` on a SQLite file and on a PostgreSQL
database of a server started here (tests/postgres_server.py: a free port of
127.0.0.1, a temporary folder, stopped at the end): ingest from 16 writers,
then search at ROWS samples (first sync, query, an incremental sync of 1000
new rows). One JSON line per phase and engine, with the CPU, appended to OUT.

    /usr/bin/python3 bench/index.py [--rows 1000000] [--out bench/results-index.jsonl]

Needs some 5 GiB of disk in $TMPDIR for 10^6 rows of 512 floats per engine."""
import argparse
import datetime
import json
import os
import re
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))
from postgres_server import PostgresServer  # noqa: E402

p = argparse.ArgumentParser()
p.add_argument("--rows", type=int, default=1000000)
p.add_argument("--seconds", type=float, default=10)
p.add_argument("--out", default=os.path.join(ROOT, "bench", "results-index.jsonl"))
args = p.parse_args()
ruclip = os.environ.get("RUCLIP", os.path.join(ROOT, "build", "tools", "ruclip"))
cpuinfo = open("/proc/cpuinfo").read()
cpu = {"model": re.search(r"model name\s*:\s*(.*)", cpuinfo).group(1),
       "family": int(re.search(r"cpu family\s*:\s*(\d+)", cpuinfo).group(1)),
       "model_number": int(re.search(r"^model\s*:\s*(\d+)", cpuinfo, re.M).group(1)),
       "flags": [f for f in ("avx2", "fma", "f16c", "avx512f", "avx512_vnni", "avx512_bf16")
                 if f in re.search(r"flags\s*:\s*(.*)", cpuinfo).group(1).split()],
       "cpus": os.cpu_count()}
date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")
print(f"bench/index.py: {args.rows} rows, {cpu}", file=sys.stderr)


def run(engine, location, cache):
    out = subprocess.run([ruclip, "bench-index", "--db", location, "--rows", str(args.rows), "--streams", "16",
                          "--seconds", str(args.seconds)], check=True, capture_output=True, text=True,
                         env=dict(os.environ, RUCLIP_CACHE_DIR=cache)).stdout
    with open(args.out, "a") as f:
        for line in out.splitlines():
            d = json.loads(line)
            d.update(engine=engine, date=date, cpu=cpu)
            print(json.dumps(d, ensure_ascii=False))
            f.write(json.dumps(d, ensure_ascii=False) + "\n")


with tempfile.TemporaryDirectory() as tmp:
    run("sqlite", os.path.join(tmp, "index.db"), os.path.join(tmp, "cache"))
    os.remove(os.path.join(tmp, "index.db"))
    for leftover in os.listdir(tmp):
        if leftover.startswith("index.db"):
            os.remove(os.path.join(tmp, leftover))
    with PostgresServer() as pg:
        pg.sql("CREATE DATABASE bench")
        run("postgresql", pg.uri("bench"), os.path.join(tmp, "cache"))
