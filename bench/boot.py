#!/usr/bin/env python3
"""boot.py - start-up time and memory overhead: tern-vmm and QEMU.

For each run, one tool boots tern-guest (1 vCPU, --memory/-m given) with a
guest that touches almost nothing (tg.fill=0 tg.wss=4K tg.rate=0; note that
tg.wss=0 means "all memory"), and we read:

  boot ms    process start (just before exec) to the arrival of the guest's
             first console line, `TG BOOT`, on the host
  guest ms   the guest's own share of that (boot_ms in `TG INFO`)
  RSS        the process's total resident memory (sum of Rss in smaps) once
             the guest prints steady STAT lines
  guest RSS  Rss of the guest RAM mapping (the largest anonymous mapping at
             least as big as the guest memory)
  overhead   RSS - guest RSS: what the VMM itself keeps resident, including
             shared libraries; "anon" counts only anonymous memory outside
             the guest mapping (heap, stacks, device state), "private" the
             private pages (Private_Clean + Private_Dirty) outside it

Both run with their control socket (tern --api, QEMU -qmp), as they would
in a migration. Tools alternate run by run; medians over --repeat runs (default 5).
Results go to bench/results/boot-<time>.json.

  bench/boot.py [--repeat N] [--tools tern,qemu] [--memory 1G] [--build DIR]
"""
import argparse
import json
import os
import re
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import (HERE, QEMU, QEMU_BASE, Console, default_build,  # noqa: E402
                    loadavg, median)

CMDLINE = "tg.fill=0 tg.wss=4K tg.rate=0 tg.report_ms=200"
SIZES = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}


def parse_size(s):
    m = re.fullmatch(r"(\d+)([KMG]?)", s)
    if not m:
        raise argparse.ArgumentTypeError(f"bad size {s!r}")
    return int(m.group(1)) * SIZES.get(m.group(2), 1)


def smaps(pid):
    """[(start, end, fields dict in KiB, pathname)] from /proc/PID/smaps."""
    maps, cur = [], None
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            head = line.split()
            if re.match(r"^[0-9a-f]+-[0-9a-f]+ ", line):
                a, b = (int(x, 16) for x in head[0].split("-"))
                cur = (a, b, {}, head[5] if len(head) > 5 else "")
                maps.append(cur)
            elif cur and len(head) >= 2 and head[0].endswith(":") and head[1].isdigit():
                cur[2][head[0][:-1]] = int(head[1])
    return maps


def memory_view(pid, guest_bytes):
    maps = smaps(pid)
    anon = [m for m in maps if m[3] in ("", "[heap]") or m[3].startswith("/memfd:")
            or m[3].startswith("/dev/zero")]
    big = [m for m in anon if m[1] - m[0] >= guest_bytes]
    guest = max(big, key=lambda m: m[1] - m[0]) if big else None

    def total(key, skip=None):
        return sum(m[2].get(key, 0) for m in maps if m is not skip)

    def private(m):
        return m[2].get("Private_Clean", 0) + m[2].get("Private_Dirty", 0)

    g = guest[2] if guest else {}
    top = sorted((m for m in maps if m is not guest), key=lambda m: -m[2].get("Rss", 0))[:8]
    return {
        "top_mappings": [f"{m[2].get('Rss', 0)} KiB {m[3] or '[anon]'}" for m in top],
        "rss_kib": total("Rss"),
        "guest_map_kib": (guest[1] - guest[0]) // 1024 if guest else None,
        "guest_rss_kib": g.get("Rss", 0),
        "overhead_rss_kib": total("Rss", guest),
        "overhead_anon_kib": total("Anonymous", guest),
        "overhead_private_kib": sum(private(m) for m in maps if m is not guest),
        "vmrss_kib": int(re.search(r"VmRSS:\s+(\d+)",
                                   open(f"/proc/{pid}/status").read()).group(1)),
    }


def tern_cmd(args, guest, workdir):
    return [os.path.join(args.build, "vmm", "tern-vmm"), "--kernel", guest,
            "--memory", args.memory, "--vcpus", "1", "--serial", "stdio",
            "--cmdline", CMDLINE, "--api", os.path.join(workdir, "tern.sock")]


def qemu_cmd(args, guest, workdir):
    return [QEMU] + QEMU_BASE + ["-m", args.memory, "-smp", "1", "-kernel", guest,
                                 "-append", CMDLINE, "-serial", "stdio", "-qmp",
                                 f"unix:{os.path.join(workdir, 'qemu.qmp')},server=on,wait=off"]


def one_run(args, tool, workdir):
    guest = os.path.join(args.build, "guest", "tern-guest.bin")
    cmd = (tern_cmd if tool == "tern" else qemu_cmd)(args, guest, workdir)
    r = {"tool": tool, "load_before": loadavg()}
    c = Console(cmd, os.path.join(workdir, f"{tool}.log"),
                os.path.join(workdir, f"{tool}.err"))
    try:
        i = c.wait_line(r"^TG BOOT", timeout=60)
        r["boot_ms"] = round(c.lines[i][0] - c.t_start, 1)
        j = c.wait_line(r"^TG INFO", timeout=10, start=i)
        m = re.search(r"boot_ms=(\d+)", c.lines[j][1])
        r["guest_boot_ms"] = int(m.group(1)) if m else None
        k = c.wait_line(r"^TG STAT", timeout=60, start=j)
        c.wait_line(r"^TG STAT", timeout=10, start=k + 1)
        r.update(memory_view(c.proc.pid, parse_size(args.memory)))
    except Exception as e:  # noqa: BLE001 - a failed run is a result too
        r["error"] = str(e)
    finally:
        c.kill()
    return r


def mib(kib):
    return "-" if kib is None else f"{kib / 1024:.1f}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--tools", default="tern,qemu")
    ap.add_argument("--memory", default="1G")
    ap.add_argument("--build", default=default_build())
    ap.add_argument("--out", default=os.path.join(HERE, "results"))
    args = ap.parse_args()
    tools = args.tools.split(",")
    if any(t not in ("tern", "qemu") for t in tools):
        ap.error("--tools takes tern and/or qemu")
    if "qemu" in tools and not shutil.which(QEMU):
        ap.error(f"{QEMU} not found")
    if not os.path.exists("/dev/kvm"):
        print("boot.py: /dev/kvm is missing", file=sys.stderr)
        return 77

    workdir = tempfile.mkdtemp(prefix="tern-bench-boot-")
    runs = []
    hdr = (f"{'tool':<5} {'boot ms':>8} {'guest ms':>8} {'RSS MiB':>8} {'guest MiB':>9} "
           f"{'ovh MiB':>8} {'anon':>6} {'private':>7} {'load':>5}")
    print(hdr, flush=True)
    for rep in range(args.repeat):
        for tool in (tools if rep % 2 == 0 else tools[::-1]):
            r = one_run(args, tool, workdir)
            r["repeat"] = rep
            runs.append(r)
            if "error" in r:
                print(f"{tool:<5} error: {r['error']}", flush=True)
                continue
            print(f"{tool:<5} {r['boot_ms']:>8.0f} {r['guest_boot_ms'] or 0:>8} "
                  f"{mib(r['rss_kib']):>8} {mib(r['guest_rss_kib']):>9} "
                  f"{mib(r['overhead_rss_kib']):>8} {mib(r['overhead_anon_kib']):>6} "
                  f"{mib(r['overhead_private_kib']):>7} {r['load_before'][0]:>5.2f}",
                  flush=True)
    summary = []
    print(f"\nmedians over {args.repeat} run(s):\n{hdr}")
    for tool in tools:
        ok = [r for r in runs if r["tool"] == tool and "error" not in r]
        s = {"tool": tool, "runs": len(ok)}
        for k in ("boot_ms", "guest_boot_ms", "rss_kib", "guest_rss_kib", "overhead_rss_kib",
                  "overhead_anon_kib", "overhead_private_kib", "vmrss_kib", "guest_map_kib"):
            s[k] = median([r.get(k) for r in ok])
        s["load_before"] = median([r["load_before"][0] for r in ok])
        summary.append(s)
        if ok:
            print(f"{tool:<5} {s['boot_ms']:>8.0f} {s['guest_boot_ms'] or 0:>8.0f} "
                  f"{mib(s['rss_kib']):>8} {mib(s['guest_rss_kib']):>9} "
                  f"{mib(s['overhead_rss_kib']):>8} {mib(s['overhead_anon_kib']):>6} "
                  f"{mib(s['overhead_private_kib']):>7} {s['load_before']:>5.2f}")
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, time.strftime("boot-%Y%m%d-%H%M%S.json"))
    with open(path, "w") as f:
        json.dump({"memory": args.memory, "cmdline": CMDLINE, "runs": runs,
                   "summary": summary}, f, indent=1)
    print(f"\nresults: {path}\nconsole logs: {workdir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
