#!/usr/bin/env python3
"""The test command's closing line, counted per test case: GoogleTest cases
from each gtest binary's own summary, unittest cases from each Python test's
'Ran N tests' line, and any other test (or one whose output has no summary)
as one case by meson's verdict. A skipped case counts as skipped, never as
passed; a test meson failed counts at least one failure whatever it printed.

  test_summary.py TESTLOG.json [TESTLOG.json...] [EXTRA_VERDICT...]

TESTLOG.json: meson's log of one build's run (build/meson-logs/testlog.json);
EXTRA_VERDICT: exit statuses of further checks (the fuzz run), one case each.
"""
import json
import os
import re
import sys

GTEST = {k: re.compile(rf"^\[  {k:<8}\] (\d+) tests?", re.M) for k in ("PASSED", "SKIPPED", "FAILED")}
UNITTEST_RAN = re.compile(r"^Ran (\d+) tests? in", re.M)
UNITTEST_END = re.compile(r"^(OK|FAILED)(?: \((.*)\))?\s*$", re.M)


def count(test):
    """(passed, failed, skipped) of one meson test."""
    out = (test.get("stdout") or "") + "\n" + (test.get("stderr") or "")
    verdict = test["result"]
    meson_ok = verdict in ("OK", "EXPECTEDFAIL")
    if GTEST["PASSED"].search(out) or GTEST["FAILED"].search(out) or GTEST["SKIPPED"].search(out):
        p, s, f = (int(m.group(1)) if (m := GTEST[k].search(out)) else 0 for k in ("PASSED", "SKIPPED", "FAILED"))
    elif (ran := UNITTEST_RAN.search(out)) and (end := UNITTEST_END.search(out, ran.end())):
        fields = dict(kv.split("=") for kv in (end.group(2) or "").split(", ") if "=" in kv)
        s = int(fields.get("skipped", 0))
        f = int(fields.get("failures", 0)) + int(fields.get("errors", 0))
        p = int(ran.group(1)) - s - f
    else:
        return (1, 0, 0) if meson_ok else (0, 0, 1) if verdict == "SKIP" else (0, 1, 0)
    if not meson_ok and f == 0:
        f = 1  # crashed, timed out or failed after its summary
    return p, f, s


def main():
    logs = [a for a in sys.argv[1:] if a.endswith(".json")]
    codes = [a for a in sys.argv[1:] if not a.endswith(".json")]
    passed = failed = skipped = 0
    for log in logs:
        if not os.path.exists(log):  # that build or its run broke off before testing
            print(f"{log}: missing, counted as one failure", file=sys.stderr)
            failed += 1
            continue
        for t in (json.loads(line) for line in open(log) if line.strip()):
            p, f, s = count(t)
            passed, failed, skipped = passed + p, failed + f, skipped + s
            if s:
                print(f"{log}: {t['name']}: {s} skipped", file=sys.stderr)
    for code in codes:
        passed, failed = (passed + 1, failed) if code == "0" else (passed, failed + 1)
    print(f"{passed} passed, {failed} failed, {skipped} skipped")


if __name__ == "__main__":
    main()
