#!/usr/bin/env python3
"""converge.py - convergence under heavy writes: tern and QEMU side by side,
one strategy at a time (issue 4's benchmark).

Scenarios (same guest image and kernel command line for both tools):
  a-2000     1 GiB guest, 256 MiB working set rewritten at 2000 MiB/s,
             uncapped loopback
  b-capped   1 GiB guest, 512 MiB working set rewritten as fast as the guest
             can, link capped at 100 MiB/s (tern bandwidth_mibs 100, QEMU
             max-bandwidth 100 MiB/s)

Variants (tool:name), each with its own parameters:
  tern:auto            the planner chooses (only the bandwidth set)
  tern:auto-converge   strategy auto-converge
  tern:xbzrle          strategy xbzrle
  qemu:auto-converge   capability auto-converge (QEMU's defaults)
  qemu:xbzrle          capability xbzrle (64 MiB cache)
  --postcopy adds tern:postcopy and qemu:postcopy (postcopy-ram, switched
  after the first pass); --channels N adds tern:channels (channels N) and
  qemu:multifd (multifd-channels N). Without it each tool has its default
  (tern: 2 channels; QEMU: no multifd).

For each run: total time, downtime (the tool's), guest-observed longest
stall (the larger of the guest's downtime as migrate.py measures it and the
longest maxstall_us the guest reported while migrating), the guest's own
rewrite rate before / during / after, bytes on the wire, and for tern the
planner's prediction. Repeats alternate the tool order; medians at the end.
Results go to bench/results/converge-<time>.json.

  bench/converge.py [--repeat N] [--scenario a-2000|b-capped ...]
                    [--variants tern:auto,qemu:auto-converge,...]
                    [--postcopy] [--channels N] [--timeout S] [--build DIR]
"""
import argparse
import copy
import json
import os
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import HERE, QEMU, default_build, median, now_ms, run_matrix  # noqa: E402
import migrate  # noqa: E402
from migrate import QemuRun, TernRun, fmt, machine_info  # noqa: E402

# name, memory, guest parameters, target rate (MiB/s, 0: max), cap (MiB/s, 0: none)
SCENARIOS = {
    "a-2000": ("1G", "tg.fill=0 tg.wss=256M tg.rate=2000", 2000, 0),
    "b-capped": ("1G", "tg.fill=0 tg.wss=512M tg.rate=max", 0, 100),
}
TERN_VARIANTS = {
    "auto": {},
    "auto-converge": {"strategy": "auto-converge"},
    "xbzrle": {"strategy": "xbzrle"},
    "postcopy": {"strategy": "postcopy"},
}
QEMU_VARIANTS = {
    "auto-converge": {"caps": ["auto-converge"]},
    "xbzrle": {"caps": ["xbzrle"], "params": {"xbzrle-cache-size": 64 << 20}},
    "postcopy": {"caps": ["postcopy-ram"], "postcopy": True},
}
DEFAULT_VARIANTS = "tern:auto,tern:auto-converge,tern:xbzrle,qemu:auto-converge,qemu:xbzrle"


class Variant:
    """One scenario run as one variant of a tool (mixed into its Run)."""

    def __init__(self, args, scen, variant, params, workdir):
        mem, cmd, rate, self.cap = SCENARIOS[scen]
        if params.get("channels"):
            # migrate.py's runs set channels up on both sides (QEMU's destination
            # needs multifd before -incoming): hand them this variant's count
            args = copy.copy(args)
            args.channels, args.compress = params["channels"], "none"
        super().__init__(args, (scen, mem, cmd, rate), workdir)
        self.variant, self.params = variant, params


class Tern(Variant, TernRun):

    def migrate(self):
        # TernRun.migrate posts {"uri", "downtime_ms"}: add ours through api_call
        orig = migrate.api_call

        def api_call(sock, method, path, body=None):
            if method == "POST" and path == "/vm/migrate":
                body = dict(body, **self.params)
                if self.cap:
                    body["bandwidth_mibs"] = self.cap
            return orig(sock, method, path, body)
        migrate.api_call = api_call
        try:
            r = super().migrate()
        finally:
            migrate.api_call = orig
        raw = r.get("raw", {})
        r.update({k: raw.get(k) for k in ("plan", "strategy", "predicted_total_ms",
                                           "predicted_downtime_ms",
                                           "initial_predicted_total_ms",
                                           "initial_predicted_downtime_ms")})
        return r


class Qemu(Variant, QemuRun):

    def migrate(self):
        caps = self.params.get("caps", [])
        if caps:
            self.qmp.cmd("migrate-set-capabilities",
                         capabilities=[{"capability": c, "state": True} for c in caps])
            if "postcopy-ram" in caps:
                self.dst_qmp.cmd("migrate-set-capabilities",
                                 capabilities=[{"capability": "postcopy-ram", "state": True}])
        extra = dict(self.params.get("params", {}))
        if extra:
            self.qmp.cmd("migrate-set-parameters", **extra)
        old = migrate.QEMU_BW
        migrate.QEMU_BW = (self.cap << 20) if self.cap else old
        try:
            if self.params.get("postcopy"):
                return self.migrate_postcopy()
            return super().migrate()
        finally:
            migrate.QEMU_BW = old

    def migrate_postcopy(self):
        """Start, and switch to post-copy once the first pass is over."""
        params = {"max-bandwidth": migrate.QEMU_BW, "downtime-limit": migrate.DOWNTIME_MS}
        if self.cap:
            # QEMU's post-copy phase is not held to max-bandwidth: cap it too, as tern's is
            params["max-postcopy-bandwidth"] = self.cap << 20
        self.qmp.cmd("migrate-set-parameters", **params)
        self.qmp.cmd("migrate", uri=self.uri)
        switched = False
        deadline = time.monotonic() + self.args.timeout
        while True:
            m = self.qmp.cmd("query-migrate")
            if m.get("status") in ("completed", "failed", "cancelled"):
                break
            if not switched and m.get("ram", {}).get("dirty-sync-count", 0) >= 2:
                self.qmp.cmd("migrate-start-postcopy")
                switched = True
            if time.monotonic() > deadline:
                self.qmp.cmd("migrate_cancel")
            time.sleep(migrate.POLL_S)
        ram = m.get("ram", {})
        return {"state": m["status"], "total_ms": m.get("total-time"),
                "downtime_ms": m.get("downtime"), "wire_bytes": ram.get("transferred"),
                "passes": ram.get("dirty-sync-count"), "raw": m}


def guest_rates(run, res):
    """Guest rewrite rate before / during / after, longest stall seen."""
    src = run.src.stats() if run.src else []
    during = [s for s in src if run.t0 <= s["host_ms"] <= getattr(run, "t1", now_ms())]
    res["during_rate_mibs"] = median([s.get("rate_mibs") for s in during])
    res["during_maxstall_ms"] = max([s.get("maxstall_us", 0) / 1000 for s in during] or [0])
    if res["state"] == "completed" and run.dst:
        dst = run.dst.stats()
        # skip the first second: the guest there first touches its pages
        res["after_rate_mibs"] = median([s.get("rate_mibs") for s in dst[4:]])
    res["longest_stall_ms"] = max(res.get("guest_downtime_ms") or 0, res["during_maxstall_ms"])


def execute(run):
    """Run.execute, plus the guest's view during and after."""
    res = {"scenario": run.name, "tool": run.tool, "variant": run.variant,
           "memory": run.memory, "cmdline": run.cmdline, "load_before": os.getloadavg()}
    try:
        run.start()
        run.wait_steady()
        run.t0 = now_ms()
        res.update(run.migrate())
        run.t1 = now_ms()
        if res["state"] == "completed":
            run.dst.wait_line(r"^TG STAT ", timeout=30)
            time.sleep(16 * migrate.REPORT_MS / 1000.0)
        res.update(run.guest_view(res["state"] == "completed"))
        guest_rates(run, res)
    except Exception as e:  # noqa: BLE001 - a broken run is a result too
        res.setdefault("state", "error")
        res["error"] = str(e)
    finally:
        run.stop()
    res.pop("raw", None)
    return res


HEADER = (f"{'scenario':<9} {'variant':<19} {'total s':>8} {'down ms':>8} {'stall ms':>9} "
          f"{'wire MiB':>9} {'pre':>5} {'during':>6} {'after':>5} {'predicted':>12}  result")


def row(r, timeout):
    mib = r["wire_bytes"] / 2**20 if r.get("wire_bytes") is not None else None
    total = r["total_ms"] / 1000 if r.get("total_ms") is not None else None
    pred = "-"
    if r.get("initial_predicted_total_ms"):
        pred = (f"{r['initial_predicted_total_ms'] / 1000:.0f}s/"
                f"{r.get('initial_predicted_downtime_ms') or 0}ms")
    res = migrate.result_text(r, timeout) if r["state"] in ("completed", "timeout") else \
        r["state"] + (": " + r.get("error", "")[:60] if r.get("error") else "")
    if r.get("plan"):
        res += f" [{r['plan']}]"
    return (f"{r['scenario']:<9} {r['tool'] + ':' + r['variant']:<19} {fmt(total, '.2f'):>8} "
            f"{fmt(r.get('downtime_ms')):>8} {fmt(r.get('longest_stall_ms')):>9} "
            f"{fmt(mib, '.0f'):>9} {fmt(r.get('pre_rate_mibs')):>5} "
            f"{fmt(r.get('during_rate_mibs')):>6} {fmt(r.get('after_rate_mibs')):>5} "
            f"{pred:>12}  {res}")


KEYS = ("total_ms", "downtime_ms", "longest_stall_ms", "guest_downtime_ms", "wire_bytes",
        "pre_rate_mibs", "during_rate_mibs", "after_rate_mibs",
        "initial_predicted_total_ms", "initial_predicted_downtime_ms")


def summarize(runs):
    out = []
    for key in dict.fromkeys((r["scenario"], r["tool"], r["variant"]) for r in runs):
        rs = [r for r in runs if (r["scenario"], r["tool"], r["variant"]) == key]
        ok = [r for r in rs if r["state"] == "completed"]
        s = {"scenario": key[0], "tool": key[1], "variant": key[2], "runs": len(rs),
             "completed": len(ok), "state": "completed" if ok else rs[0]["state"],
             "plan": ok[0].get("plan") if ok else None}
        for k in KEYS:
            s[k] = median([r.get(k) for r in ok])
        out.append(s)
    return out


def target(summary):
    """(b): tern auto <= half QEMU auto-converge's time, stall < 300 ms."""
    t = next((s for s in summary if s["scenario"] == "b-capped" and s["tool"] == "tern"
              and s["variant"] == "auto" and s["completed"]), None)
    q = next((s for s in summary if s["scenario"] == "b-capped" and s["tool"] == "qemu"
              and s["variant"] == "auto-converge"), None)
    if not t or not q:
        return None
    if not q["completed"]:
        return f"target (b): QEMU auto-converge did not complete; tern auto {t['total_ms']/1000:.1f} s"
    ok = t["total_ms"] * 2 <= q["total_ms"] and (t["longest_stall_ms"] or 0) < 300
    return (f"target (b): tern auto {t['total_ms']/1000:.1f} s, stall {t['longest_stall_ms']:.0f} ms"
            f" vs QEMU auto-converge {q['total_ms']/1000:.1f} s: {'met' if ok else 'NOT met'}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--scenario", action="append", choices=list(SCENARIOS))
    ap.add_argument("--variants", default=DEFAULT_VARIANTS)
    ap.add_argument("--postcopy", action="store_true", help="add the post-copy variants")
    ap.add_argument("--channels", type=int, default=0, dest="channel_variants",
                    help="add parallel-stream variants with N channels")
    ap.add_argument("--timeout", type=int, default=180)
    ap.add_argument("--build", default=default_build())
    ap.add_argument("--out", default=os.path.join(HERE, "results"))
    args = ap.parse_args()
    args.channels = None    # each tool's default; the variants below set their own

    variants = [tuple(v.split(":", 1)) for v in args.variants.split(",") if v]
    tern_v, qemu_v = dict(TERN_VARIANTS), dict(QEMU_VARIANTS)
    if args.postcopy:
        variants += [("tern", "postcopy"), ("qemu", "postcopy")]
    if args.channel_variants:
        tern_v["channels"] = {"channels": args.channel_variants}
        qemu_v["multifd"] = {"channels": args.channel_variants}
        variants += [("tern", "channels"), ("qemu", "multifd")]
    for tool, name in variants:
        if name not in (tern_v if tool == "tern" else qemu_v):
            ap.error(f"unknown variant {tool}:{name}")
    if any(t == "qemu" for t, _ in variants) and not shutil.which(QEMU):
        ap.error(f"{QEMU} not found")
    if not os.path.exists("/dev/kvm"):
        print("converge.py: /dev/kvm is missing", file=sys.stderr)
        return 77

    stamp = time.strftime("%Y%m%d-%H%M%S")
    logdir = os.path.join(args.out, f"converge-logs-{stamp}")
    def run_one(scen, variant, rep):
        tool, name = variant
        wd = os.path.join(logdir, f"{scen}-{tool}-{name}-{rep}")
        cls, params = (Tern, tern_v[name]) if tool == "tern" else (Qemu, qemu_v[name])
        return execute(cls(args, scen, name, params, wd))

    print(HEADER, flush=True)
    runs = run_matrix(args.repeat, args.scenario or list(SCENARIOS), variants, run_one,
                      lambda r: row(r, args.timeout))

    summary = summarize(runs)
    print(f"\nmedians over {args.repeat} run(s) (completed runs only):")
    print(HEADER)
    for s in summary:
        print(row(dict(s, load_before=(0, 0, 0)), args.timeout) +
              f" ({s['completed']}/{s['runs']} completed)")
    t = target(summary)
    if t:
        print("\n" + t)
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, f"converge-{stamp}.json")
    with open(path, "w") as f:
        json.dump({"machine": machine_info(), "build": args.build, "timeout_s": args.timeout,
                   "runs": runs, "summary": summary}, f, indent=1)
    print(f"\nresults: {path}\nconsole logs: {logdir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
