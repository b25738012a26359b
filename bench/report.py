#!/usr/bin/env python3
"""report.py - Markdown tables from migrate.py results, for docs/benchmarks.md.

  bench/report.py bench/results/migrate-A.json [migrate-B.json ...]

Runs from all the files given are pooled. One row per (scenario, tool) shows
medians over the completed runs, the range of the 1-minute load average
before the runs, and, on tern's rows, the ratios tern / QEMU of the medians.
"""
import json
import sys

sys.path.insert(0, __import__("os").path.dirname(__file__))
from common import median  # noqa: E402


def fmt(v, spec):
    return "-" if v is None else format(v, spec)


def main():
    if len(sys.argv) < 2:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    runs = []
    for p in sys.argv[1:]:
        with open(p) as f:
            runs += json.load(f)["runs"]
    scens = list(dict.fromkeys(r["scenario"] for r in runs))
    print("| scenario | tool | done | total s | downtime ms | guest ms | wire MiB "
          "| MiB/s | write MiB/s | load | total ratio | downtime ratio | guest ratio |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    med = {}
    for scen in scens:
        for tool in ("qemu", "tern"):
            rs = [r for r in runs if r["scenario"] == scen and r["tool"] == tool]
            ok = [r for r in rs if r["state"] == "completed"]
            if not rs:
                continue
            m = {k: median([r.get(k) for r in ok]) for k in
                 ("total_ms", "downtime_ms", "guest_downtime_ms", "wire_bytes",
                  "write_rate_mibs")}
            m["tput"] = median([r["wire_bytes"] / 2**20 / (r["total_ms"] / 1000)
                                for r in ok if r.get("total_ms")])
            med[scen, tool] = m
            loads = [r["load_before"][0] for r in rs]
            ratio = ["", "", ""]
            q = med.get((scen, "qemu"))
            if tool == "tern" and q:
                ratio = [fmt(m[k] / q[k], ".2f") if m[k] is not None and q[k] else "-"
                         for k in ("total_ms", "downtime_ms", "guest_downtime_ms")]
            states = {r["state"] for r in rs if r["state"] != "completed"}
            done = f"{len(ok)}/{len(rs)}" + (f" ({', '.join(sorted(states))})" if states else "")
            print(f"| {scen} | {tool} | {done} | {fmt(m['total_ms'] and m['total_ms'] / 1000, '.3f')} "
                  f"| {fmt(m['downtime_ms'], '.0f')} | {fmt(m['guest_downtime_ms'], '.0f')} "
                  f"| {fmt(m['wire_bytes'] and m['wire_bytes'] / 2**20, '.1f')} "
                  f"| {fmt(m['tput'], '.0f')} | {fmt(m['write_rate_mibs'], '.0f')} "
                  f"| {min(loads):.1f}-{max(loads):.1f} | " + " | ".join(ratio) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
