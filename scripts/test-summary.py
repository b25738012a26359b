#!/usr/bin/env python3
"""test-summary.py - count test cases across meson test logs.

A test that speaks TAP counts each "ok"/"not ok" line as a case ("# SKIP"
counts as skipped); any other test counts as one case from its result. A
TAP test whose process failed without a failing case line (crash, plan
mismatch) adds one failure. Prints per-build lines and, last, exactly:
    N passed, N failed, N skipped
Exit status 1 if anything failed.
"""
import json
import os
import re
import sys

TAP = re.compile(r"^(not ok|ok)\b(.*)$")


def count(log):
    p = f = s = 0
    failed_names = []
    with open(log) as fh:
        for line in fh:
            t = json.loads(line)
            res = t.get("result", "")
            out = t.get("stdout") or ""
            cases = [TAP.match(l.strip()) for l in out.splitlines()]
            cases = [c for c in cases if c]
            if cases and res != "SKIP":
                tp = tf = ts = 0
                for c in cases:
                    if re.search(r"#\s*SKIP", c.group(2), re.I):
                        ts += 1
                    elif c.group(1) == "ok":
                        tp += 1
                    else:
                        tf += 1
                        failed_names.append(t["name"] + ":" + c.group(2).strip())
                if res not in ("OK", "EXPECTEDFAIL") and tf == 0:
                    tf = 1
                    failed_names.append(t["name"] + " (" + res + ")")
                p, f, s = p + tp, f + tf, s + ts
            elif res in ("OK", "EXPECTEDFAIL"):
                p += 1
            elif res == "SKIP":
                s += 1
            else:
                f += 1
                failed_names.append(t["name"] + " (" + res + ")")
    return p, f, s, failed_names


def main():
    tp = tf = ts = 0
    for d in sys.argv[1:]:
        log = os.path.join(d, "meson-logs", "testlog.json")
        if not os.path.exists(log):
            print(f"{d}: no test log (build failed?)")
            tf += 1
            continue
        p, f, s, names = count(log)
        print(f"{d}: {p} passed, {f} failed, {s} skipped")
        for n in names:
            print(f"  FAILED {n}")
        tp, tf, ts = tp + p, tf + f, ts + s
    print(f"{tp} passed, {tf} failed, {ts} skipped")
    return 1 if tf else 0


if __name__ == "__main__":
    sys.exit(main())
