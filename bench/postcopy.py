#!/usr/bin/env python3
"""postcopy.py - post-copy fault latency and downtime on the 20 MiB/s scenario.

A 256 MiB test guest writes a 64 MiB working set as fast as it can
(tg.wss=64M tg.rate=max), far faster than the link capped at 20 MiB/s, so
pre-copy cannot converge; the migration switches to post-copy after pass 1
(`migrate-postcopy`). For each run it prints the downtime (pause -> the
destination runs) and the destination's fault figures (faults, request ->
page placed latency: median, average, max), and writes them as JSON.

  TERN_BUILD_DIR=build python3 bench/postcopy.py [--repeat N] [--bandwidth MIBS]
"""
import argparse
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "integration"))
from harness import CLI, Pair, run  # noqa: E402

HOT = "tg.wss=64M tg.rate=max tg.fill=0 tg.report_ms=250"
FINAL = ("completed", "failed", "cancelled", "unconfirmed", "postcopy-failed", "postcopy-paused")


def one(bandwidth):
    with Pair(HOT, memory="256M") as p:
        p.wait_ready()
        r = p.migrate("--bandwidth", str(bandwidth), "--auto-converge", "off", "--postcopy",
                      wait=False)
        if r.returncode:
            raise RuntimeError(r.stderr)
        p.wait_state(("active",), timeout=30)
        run([CLI, "--vmm", p.src.api, "migrate-postcopy"])
        m = p.wait_state(FINAL, timeout=300)
        keys = ("state", "downtime_ms", "elapsed_ms", "postcopy_faults", "postcopy_requests",
                "postcopy_bg_pages", "postcopy_fault_p50_us", "postcopy_fault_avg_us",
                "postcopy_fault_max_us")
        return {k: m.get(k) for k in keys}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--bandwidth", type=int, default=20, help="MiB/s (default 20)")
    args = ap.parse_args()
    runs = []
    print(f"{'run':>3} {'state':<10} {'downtime ms':>11} {'faults':>7} {'p50 us':>7} "
          f"{'avg us':>7} {'max us':>7} {'total s':>7}  load", flush=True)
    for i in range(args.repeat):
        r = one(args.bandwidth)
        r["load"] = os.getloadavg()[0]
        runs.append(r)
        print(f"{i + 1:>3} {r['state']:<10} {r['downtime_ms']:>11} {r['postcopy_faults']:>7} "
              f"{r['postcopy_fault_p50_us']:>7} {r['postcopy_fault_avg_us']:>7} "
              f"{r['postcopy_fault_max_us']:>7} {r['elapsed_ms'] / 1000:>7.1f}  {r['load']:.1f}",
              flush=True)
    ok = [r for r in runs if r["state"] == "completed"]
    if ok:
        med = {k: statistics.median(r[k] for r in ok) for k in
               ("downtime_ms", "postcopy_fault_p50_us", "postcopy_fault_max_us")}
        print(f"median of {len(ok)}: downtime {med['downtime_ms']:.0f} ms, fault latency "
              f"median {med['postcopy_fault_p50_us']:.0f} us, max {med['postcopy_fault_max_us']:.0f} us")
    out = os.path.join(os.path.dirname(__file__), "results",
                       time.strftime("postcopy-%Y%m%d-%H%M%S.json"))
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w") as f:
        json.dump({"bandwidth_mibs": args.bandwidth, "runs": runs}, f, indent=1)
    print(f"wrote {out}")
    return 0 if len(ok) == len(runs) else 1


if __name__ == "__main__":
    sys.exit(main())
