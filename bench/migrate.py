#!/usr/bin/env python3
"""migrate.py - live migration benchmark: tern-vmm and QEMU side by side.

Each scenario boots tern-guest with the same kernel command line under each
tool, waits until the guest has filled its working set and runs steadily,
migrates it over loopback TCP (downtime limit 300 ms, no bandwidth cap) and
reads, for each run:

  total      total migration time as the tool reports it
  downtime   the tool's own downtime figure (tern: pause -> RUNNING from
             the destination; QEMU: vm_stop -> end of completion on the source)
  guest      downtime as the guest lived through it: the jump of
             (host arrival time - guest t_ms) between the source's STAT lines
             before the migration and the destination's first lines (the
             time the guest clock stood still, if the VMM froze it), plus
             the largest maxstall_us of the destination's first STAT
             interval (the stall the guest counted while its clock ran);
             see common.py
  wire       bytes sent, as the tool reports it (QEMU: ram.transferred)
  MiB/s      wire bytes / total time
  write      guest rewrite rate achieved during the migration (MiB/s of
             guest time, from the guest's cumulative writes_mib)

A run that has not finished after --timeout seconds is cancelled and shown
as "did not converge in N s". One table per run, then medians; all runs go
to bench/results/migrate-<time>.json, console logs to bench/results/logs-<time>/.

  bench/migrate.py [--repeat N] [--scenario NAME ...] [--tools tern,qemu]
                   [--timeout S] [--build DIR] [--channels N] [--compress M] [--tls]
                   [--prealloc] [--no-stream]

--channels N (with --compress none|zstd|lz4) migrates over N parallel page
channels: tern's `channels`/`compress`, QEMU's multifd capability with
multifd-channels/multifd-compression (its destination then starts with
-incoming defer); 0 turns them off for both. Without --channels each tool
runs with its own default (tern: 2 channels, QEMU: no multifd). The tool
column then reads e.g. tern/c2-lz4.

--prealloc starts both tools' destinations with their guest RAM allocated
up front (tern-vmm --incoming --memory SIZE --mem-prealloc; QEMU
-mem-prealloc), so pages land in memory the host already gave: what a
destination costs without the kernel's first-touch page faults.

When a throughput scenario (full-*) runs, the script also measures the bar
it is held to, one TCP stream on loopback (bench/tcp_baseline, built with
`make -C bench` if missing), before and after the migrations, and prints
each tool's median MiB/s as a share of that stream (into a reused buffer;
in brackets, unless --prealloc, into fresh memory with readv() as QEMU's
destination receives, and into fresh memory placed with UFFDIO_COPY as
tern's does). Unless --prealloc, it then measures the same stream into cold
memory (tcp_baseline -C 4G: fresh memory taken after 4 GiB were touched and
held, so none of it is memory a process freed a moment before; on this
host that memory comes back from the hypervisor page by page), and prints
the shares against that too.
--no-stream skips it.

--tls adds tern-tls and qemu-tls runs: the same migration over TLS 1.3 with
both sides authenticated, certificates made by `tern pki` (see make_pki).
"""
import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import (HERE, QEMU, QEMU_BASE, Console, Qmp, api_call,  # noqa: E402
                    default_build, free_port, loadavg, median, now_ms, run_matrix,
                    wait_path)

REPORT_MS = 250
DOWNTIME_MS = 300
QEMU_BW = 100 << 30                     # bytes/s: effectively unlimited
POLL_S = 0.05
# tern-vmm logs its phases (pass times, the destination's fill) to
# LOGDIR/<run>/{src,dst}.err, so a slow run can be read afterwards.
TERN_LOG_ENV = {"TERN_LOG": os.environ.get("TERN_LOG", "debug")}

# name, memory, guest parameters, target rewrite rate (MiB/s)
SCENARIOS = [
    ("idle-1g", "1G", "tg.fill=0 tg.wss=16M tg.rate=0", 0),
    ("idle-4g", "4G", "tg.fill=0 tg.wss=16M tg.rate=0", 0),
    ("idle-1g-256m", "1G", "tg.fill=0 tg.wss=256M tg.rate=0", 0),
    ("dirty-100", "1G", "tg.fill=0 tg.wss=256M tg.rate=100", 100),
    ("dirty-500", "1G", "tg.fill=0 tg.wss=256M tg.rate=500", 500),
    ("dirty-2000", "1G", "tg.fill=0 tg.wss=256M tg.rate=2000", 2000),
]
# run only when named with --scenario: all of 1 GiB non-zero, idle (a
# longer transfer for the throughput target). In full-1g the idle vCPU spins
# in ring 3 and holds one of the host's CPUs for the whole migration; in
# full-1g-halt it sleeps in hlt between its batches of work (tg.idle=halt),
# as an idle Linux guest does.
EXTRA = [
    ("full-1g", "1G", "tg.fill=0 tg.wss=1G tg.rate=0", 0),
    ("full-1g-halt", "1G", "tg.fill=0 tg.wss=1G tg.rate=0 tg.idle=halt", 0),
]


class Run:
    """One migration of one scenario with one tool; subclasses start the
    processes and drive the migration."""

    tool = None

    def __init__(self, args, scen, workdir):
        self.args = args
        self.name, self.memory, params, self.rate = scen
        self.cmdline = f"{params} tg.report_ms={REPORT_MS}"
        self.dir = workdir
        os.makedirs(workdir, exist_ok=True)
        self.port = free_port()
        self.uri = f"tcp:127.0.0.1:{self.port}"
        self.guest = os.path.join(args.build, "guest", "tern-guest.bin")
        self.src = self.dst = None
        if args.channels is not None:
            self.tool = f"{self.tool}/c{args.channels}-{args.compress}"

    def path(self, name):
        return os.path.join(self.dir, name)

    def wait_steady(self):
        """TG FILLED, then a few STAT lines at the target rate."""
        i = self.src.wait_line(r"^TG FILLED", timeout=300)
        self.src.wait_line(r"^TG STAT ", timeout=30, start=i)
        deadline = time.monotonic() + 10
        while True:
            st = self.src.stats(i)
            if len(st) >= 4 and (not self.rate or
                                 st[-1].get("rate_mibs", 0) >= 0.9 * self.rate):
                return
            if len(st) >= 4 and time.monotonic() > deadline:
                return          # the guest cannot reach the rate: go anyway
            time.sleep(0.05)

    def execute(self):
        res = {"scenario": self.name, "tool": self.tool, "memory": self.memory,
               "cmdline": self.cmdline, "load_before": loadavg()}
        try:
            self.start()
            self.wait_steady()
            self.t0 = now_ms()
            res.update(self.migrate())
            self.t1 = now_ms()
            if res["state"] == "completed":
                self.dst.wait_line(r"^TG STAT ", timeout=30)
                time.sleep(6 * REPORT_MS / 1000.0)
            res.update(self.guest_view(res["state"] == "completed"))
        except Exception as e:  # noqa: BLE001 - a broken run is a result too
            res.setdefault("state", "error")
            res["error"] = str(e)
        finally:
            self.stop()
        res["load_after"] = loadavg()
        return res

    def guest_view(self, completed):
        pre = [s for s in self.src.stats() if s["host_ms"] < self.t0]
        out = {"pre_rate_mibs": median([s.get("rate_mibs") for s in pre[-4:]]),
               "pre_maxstall_ms": median([s.get("maxstall_us", 0) / 1000 for s in pre[-4:]]),
               "src_bad_lines": self.src.bad_lines()[:5]}
        if not pre:
            return out
        a = pre[-1]
        if completed:
            dst = self.dst.stats()
            out["dst_bad_lines"] = self.dst.bad_lines()[:5]
            out["dst_errors"] = max([s.get("errors", 0) for s in dst] or [0])
            if dst:
                off_pre = min(s["host_ms"] - s["t_ms"] for s in pre[-6:])
                off_post = min(s["host_ms"] - s["t_ms"] for s in dst[:6])
                out["clock_lag_ms"] = round(off_post - off_pre, 1)
                out["dst_first_stall_ms"] = dst[0].get("maxstall_us", 0) / 1000
                # a negative lag is arrival jitter, not time the guest lost
                out["guest_downtime_ms"] = round(max(0.0, out["clock_lag_ms"]) +
                                                 out["dst_first_stall_ms"], 1)
                b = dst[0]
        else:
            during = [s for s in self.src.stats() if s["host_ms"] >= self.t0]
            b = during[-1] if during else None
        if b and b["t_ms"] > a["t_ms"]:
            out["write_rate_mibs"] = round((b["writes_mib"] - a["writes_mib"]) * 1000.0 /
                                           (b["t_ms"] - a["t_ms"]), 1)
        return out

    def stop(self):
        for c in (self.src, self.dst):
            if c:
                c.kill()


class TernRun(Run):
    tool = "tern"

    def vmm_extra(self):
        return []

    def start(self):
        vmm = os.path.join(self.args.build, "vmm", "tern-vmm")
        self.src_api, self.dst_api = self.path("src.sock"), self.path("dst.sock")
        prealloc = (["--memory", self.memory, "--mem-prealloc"]
                    if getattr(self.args, "prealloc", False) else [])
        self.dst = Console([vmm, "--incoming", self.uri, "--serial", "stdio",
                            "--api", self.dst_api] + prealloc + self.vmm_extra(),
                           self.path("dst.log"), self.path("dst.err"), env=TERN_LOG_ENV)
        deadline = time.monotonic() + 20
        while "waiting for an incoming" not in self.dst.stderr():
            if self.dst.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"destination not listening: {self.dst.stderr()[-300:]!r}")
            time.sleep(0.02)
        self.src = Console([vmm, "--kernel", self.guest, "--memory", self.memory,
                            "--vcpus", "1", "--serial", "stdio", "--api", self.src_api,
                            "--cmdline", self.cmdline] + self.vmm_extra(),
                           self.path("src.log"), self.path("src.err"), env=TERN_LOG_ENV)
        wait_path(self.src_api, self.src.proc)

    def migrate(self):
        body = {"uri": self.uri, "downtime_ms": DOWNTIME_MS}
        if self.args.channels is not None:
            body.update(channels=self.args.channels, compress=self.args.compress)
        st, r = api_call(self.src_api, "POST", "/vm/migrate", body)
        if st != 200:
            raise RuntimeError(f"migrate refused: {st} {r}")
        deadline = time.monotonic() + self.args.timeout
        cancelled, m = False, {}
        while True:
            try:
                st, m = api_call(self.src_api, "GET", "/vm/migration")
            except OSError as e:
                raise RuntimeError(f"source API gone during migration ({e}); last {m}")
            if m.get("state") in ("completed", "failed", "cancelled", "unconfirmed"):
                break
            if not cancelled and time.monotonic() > deadline:
                api_call(self.src_api, "POST", "/vm/migration/cancel")
                cancelled = True
            time.sleep(POLL_S)
        state = m["state"]
        if cancelled and state != "completed":
            state = "timeout"
        # how long the destination's first writes took a page: warm or cold memory
        place = re.search(r"UFFDIO_COPY took [\d.]+ ms, ([\d.]+) us a page", self.dst.stderr())
        return {"state": state, "total_ms": m.get("elapsed_ms"),
                "dst_place_us_per_page": float(place.group(1)) if place else None,
                "downtime_ms": m.get("downtime_ms") if state == "completed" else None,
                "wire_bytes": m.get("transferred_bytes"),
                "pages_normal": m.get("pages_normal"), "pages_zero": m.get("pages_zero"),
                "passes": m.get("pass"),
                "tool_mibs": round(m.get("throughput_bps", 0) / 2**20, 1), "raw": m}


class QemuRun(Run):
    tool = "qemu"

    def qemu_cmd(self, qmp):
        return [QEMU] + QEMU_BASE + ["-m", self.memory, "-smp", "1",
                                     "-kernel", self.guest, "-append", self.cmdline,
                                     "-serial", "stdio",
                                     "-qmp", f"unix:{qmp},server=on,wait=off"]

    def start(self):
        mfd = bool(self.args.channels)
        self.dst = Console(self.qemu_cmd(self.path("dst.qmp")) +
                           (["-mem-prealloc"] if getattr(self.args, "prealloc", False) else []) +
                           ["-incoming", "defer" if mfd else self.uri],
                           self.path("dst.log"), self.path("dst.err"))
        self.dst_qmp = Qmp(self.path("dst.qmp"), self.dst.proc)
        if mfd:
            self.multifd(self.dst_qmp)
            self.dst_qmp.cmd("migrate-incoming", uri=self.uri)
        self.src = Console(self.qemu_cmd(self.path("src.qmp")),
                           self.path("src.log"), self.path("src.err"))
        self.qmp = Qmp(self.path("src.qmp"), self.src.proc)

    def multifd(self, qmp):
        qmp.cmd("migrate-set-capabilities",
                capabilities=[{"capability": "multifd", "state": True}])
        qmp.cmd("migrate-set-parameters", **{"multifd-channels": self.args.channels,
                                             "multifd-compression": self.args.compress})

    def migrate(self):
        if self.args.channels:
            self.multifd(self.qmp)
        self.qmp.cmd("migrate-set-parameters", **{"max-bandwidth": QEMU_BW,
                                                   "downtime-limit": DOWNTIME_MS})
        self.qmp.cmd("migrate", uri=self.uri)
        deadline = time.monotonic() + self.args.timeout
        cancelled = False
        while True:
            m = self.qmp.cmd("query-migrate")
            if m.get("status") in ("completed", "failed", "cancelled"):
                break
            if not cancelled and time.monotonic() > deadline:
                self.qmp.cmd("migrate_cancel")
                cancelled = True
            time.sleep(POLL_S)
        state = m["status"]
        if cancelled and state != "completed":
            state = "timeout"
        ram = m.get("ram", {})
        return {"state": state, "total_ms": m.get("total-time"),
                "downtime_ms": m.get("downtime") if state == "completed" else None,
                "wire_bytes": ram.get("transferred"),
                "pages_normal": ram.get("normal"), "pages_zero": ram.get("duplicate"),
                "passes": ram.get("dirty-sync-count"), "setup_ms": m.get("setup-time"),
                "tool_mibs": round(ram.get("mbps", 0) * 1e6 / 8 / 2**20, 1),
                "raw": m}

    def stop(self):
        for q in ("qmp", "dst_qmp"):
            if hasattr(self, q):
                try:
                    getattr(self, q).cmd("quit")
                except Exception:  # noqa: BLE001 - it may be gone already
                    pass
                getattr(self, q).close()
        super().stop()


class TernTlsRun(TernRun):
    """tern over TLS 1.3 (both sides authenticated), certificates from
    `tern pki` in args.pki."""
    tool = "tern-tls"

    def vmm_extra(self):
        d = self.args.pki
        return ["--tls-cert", f"{d}/server-cert.pem", "--tls-key", f"{d}/server-key.pem",
                "--tls-ca", f"{d}/ca-cert.pem"]


class QemuTlsRun(QemuRun):
    """QEMU's TLS migration: tls-creds-x509 objects (endpoint=server on the
    destination, client on the source, verify-peer on) over the same files."""
    tool = "qemu-tls"

    def creds(self, endpoint):
        return ["-object", f"tls-creds-x509,id=tls0,endpoint={endpoint},"
                f"dir={self.args.pki},verify-peer=on"]

    def start(self):
        self.dst = Console(self.qemu_cmd(self.path("dst.qmp")) + self.creds("server") +
                           ["-incoming", "defer"], self.path("dst.log"), self.path("dst.err"))
        self.dst_qmp = Qmp(self.path("dst.qmp"), self.dst.proc)
        self.dst_qmp.cmd("migrate-set-parameters", **{"tls-creds": "tls0"})
        self.dst_qmp.cmd("migrate-incoming", uri=self.uri)
        self.src = Console(self.qemu_cmd(self.path("src.qmp")) + self.creds("client"),
                           self.path("src.log"), self.path("src.err"))
        self.qmp = Qmp(self.path("src.qmp"), self.src.proc)

    def migrate(self):
        self.qmp.cmd("migrate-set-parameters", **{"tls-creds": "tls0",
                                                   "tls-hostname": "127.0.0.1"})
        return super().migrate()


def make_pki(args):
    """One CA and one host certificate (127.0.0.1) named as QEMU wants them:
    ca-cert.pem, server-cert.pem/-key.pem, client-cert.pem/-key.pem."""
    import tempfile
    d = tempfile.mkdtemp(prefix="tern-bench-pki-")
    tern = os.path.join(args.build, "cli", "tern")
    subprocess.run([tern, "pki", "init", "--dir", d], check=True, capture_output=True)
    subprocess.run([tern, "pki", "issue", "host", "--ip", "127.0.0.1", "--dir", d],
                   check=True, capture_output=True)
    os.rename(f"{d}/ca.pem", f"{d}/ca-cert.pem")
    for role in ("server", "client"):
        shutil.copy(f"{d}/host.pem", f"{d}/{role}-cert.pem")
        shutil.copy(f"{d}/host-key.pem", f"{d}/{role}-key.pem")
    return d


TOOLS = {"tern": TernRun, "qemu": QemuRun, "tern-tls": TernTlsRun, "qemu-tls": QemuTlsRun}


def fmt(v, spec=".0f", none="-"):
    return none if v is None else format(v, spec)


def result_text(r, timeout):
    if r["state"] == "completed":
        bad = (r.get("dst_errors") or 0) + len(r.get("dst_bad_lines") or [])
        place = (f" (first writes {r['dst_place_us_per_page']:.1f} us a page)"
                 if r.get("dst_place_us_per_page") is not None else "")
        return ("ok" + place) if not bad else f"GUEST ERRORS ({r.get('dst_bad_lines')})"
    if r["state"] == "timeout":
        return f"did not converge in {timeout} s"
    return r["state"] + (f": {r['error'][:60]}" if r.get("error") else "")


HEADER = (f"{'scenario':<13} {'tool':<5} {'total s':>8} {'downtime':>9} {'guest':>7} "
          f"{'wire MiB':>9} {'MiB/s':>6} {'write':>6} {'load':>5}  result")


def row(r, timeout):
    mib = r["wire_bytes"] / 2**20 if r.get("wire_bytes") is not None else None
    tput = mib / (r["total_ms"] / 1000) if mib is not None and r.get("total_ms") else None
    total = r["total_ms"] / 1000 if r.get("total_ms") is not None else None
    return (f"{r['scenario']:<13} {r['tool']:<5} {fmt(total, '.3f'):>8} "
            f"{fmt(r.get('downtime_ms')):>9} {fmt(r.get('guest_downtime_ms')):>7} "
            f"{fmt(mib, '.1f'):>9} {fmt(tput):>6} {fmt(r.get('write_rate_mibs')):>6} "
            f"{r['load_before'][0]:>5.2f}  {result_text(r, timeout)}")


def summarize(runs, timeout):
    """One median line per (scenario, tool) over its completed runs."""
    out = []
    for scen in dict.fromkeys(r["scenario"] for r in runs):
        for tool in dict.fromkeys(r["tool"] for r in runs):
            rs = [r for r in runs if r["scenario"] == scen and r["tool"] == tool]
            ok = [r for r in rs if r["state"] == "completed"]
            if not rs:
                continue
            s = {"scenario": scen, "tool": tool, "runs": len(rs), "completed": len(ok),
                 "load_before": [median([r["load_before"][i] for r in rs]) for i in range(3)]}
            for k in ("total_ms", "downtime_ms", "guest_downtime_ms", "clock_lag_ms",
                      "dst_first_stall_ms", "wire_bytes", "write_rate_mibs",
                      "pre_rate_mibs", "pre_maxstall_ms", "passes", "tool_mibs",
                      "dst_place_us_per_page"):
                s[k] = median([r.get(k) for r in ok])
            s["state"] = "completed" if ok else rs[0]["state"]
            if not ok:
                s["write_rate_mibs"] = median([r.get("write_rate_mibs") for r in rs])
            out.append(s)
    return out


def ratios(summary):
    """tern / QEMU for total time and downtime, where both completed."""
    lines = []
    for s in summary:
        if s["tool"] != "tern":
            continue
        q = next((x for x in summary if x["scenario"] == s["scenario"]
                  and x["tool"] == "qemu"), None)
        if not q or not s["completed"] or not q["completed"]:
            continue
        def ratio(k):
            return fmt(s[k] / q[k], ".2f") if s.get(k) is not None and q.get(k) else "-"
        lines.append(f"{s['scenario']:<13} total {ratio('total_ms'):>6}   "
                     f"downtime {ratio('downtime_ms'):>6}   guest {ratio('guest_downtime_ms'):>6}")
    return lines


STREAM_RE = r"^(reuse|fresh|uffd)\s+no-spin\s.*median ([\d.]+) GiB/s"
COLD_RE = r"^cold: first touch of [\d.]+ GiB held, GiB/s per GiB:(( [\d.]+)+)"


def run_baseline(modes, extra=()):
    """bench/tcp_baseline, 3 runs of 1 GiB per mode, no spinner: its output
    and the median GiB/s of each mode ({} if it cannot be built or run)."""
    exe = os.path.join(HERE, "tcp_baseline")
    try:
        if not os.path.exists(exe):
            subprocess.run(["make", "-s", "-C", HERE, "tcp_baseline"], check=True,
                           capture_output=True, timeout=120)
        out = subprocess.run([exe, "-s", "1G", "-r", "3", "-m", modes, "-p", "nospin",
                              *extra],
                             check=True, capture_output=True, text=True,
                             timeout=600).stdout
    except (OSError, subprocess.SubprocessError) as e:
        print(f"migrate.py: no TCP stream baseline: {e}", file=sys.stderr)
        return "", {}
    return out, {m.group(1): float(m.group(2)) for m in re.finditer(STREAM_RE, out, re.M)}


def measure_stream():
    """One TCP stream on loopback, GiB/s: {"reuse": x, "fresh": y, "uffd": z}
    (medians of 3 runs of 1 GiB each), or None."""
    _, got = run_baseline("reuse,fresh,uffd")
    return got if len(got) == 3 else None


def measure_cold_stream():
    """The stream into cold memory (tcp_baseline -C 4G): {"fresh": x,
    "uffd": y, "touch": [GiB/s of each GiB held first]}, or None."""
    out, got = run_baseline("fresh,uffd", ("-C", "4G"))
    touch = re.search(COLD_RE, out, re.M)
    if len(got) != 2 or not touch:
        return None
    return dict(got, touch=[float(x) for x in touch.group(1).split()])


def stream_lines(summary, before, after, prealloc, cold=None):
    """Each throughput scenario's median MiB/s as a share of one TCP stream
    (mean of the measurements before and after the migrations); also of the
    streams into fresh memory (readv, UFFDIO_COPY) unless the destinations
    were preallocated, and into cold memory where it was measured."""
    have = [x for x in (before, after) if x]
    if not have:
        return []
    reuse = sum(x["reuse"] for x in have) / len(have) * 1024
    fresh = sum(x["fresh"] for x in have) / len(have) * 1024
    uffd = sum(x["uffd"] for x in have) / len(have) * 1024
    lines = [f"one TCP stream: {reuse:.0f} MiB/s into a reused buffer, {fresh:.0f} MiB/s "
             f"into fresh memory, {uffd:.0f} MiB/s into fresh memory by UFFDIO_COPY "
             f"(before / after: " +
             " / ".join(f"{x['reuse']:.2f}, {x['fresh']:.2f}, {x['uffd']:.2f}"
                        if x else "-" for x in (before, after)) + " GiB/s)"]
    if cold:
        lines.append(f"into cold memory: {cold['fresh'] * 1024:.0f} MiB/s, "
                     f"{cold['uffd'] * 1024:.0f} MiB/s by UFFDIO_COPY (first touch of the "
                     f"4 GiB held before: " + ", ".join(f"{x:.2f}" for x in cold["touch"]) +
                     " GiB/s per GiB)")
    for s in summary:
        if not s["scenario"].startswith("full-") or not s["completed"] or \
                not s.get("wire_bytes") or not s.get("total_ms"):
            continue
        mibs = s["wire_bytes"] / 2**20 / (s["total_ms"] / 1000)
        extra = ""
        if not prealloc:
            shares = f"fresh memory: {100 * mibs / fresh:.0f} %, by UFFDIO_COPY: {100 * mibs / uffd:.0f} %"
            if cold:
                shares += f"; cold memory: {100 * mibs / (cold['uffd'] * 1024):.0f} % by UFFDIO_COPY"
            extra = f" ({shares})"
        lines.append(f"{s['scenario']:<13} {s['tool']:<5} {mibs:6.0f} MiB/s = "
                     f"{100 * mibs / reuse:3.0f} % of the stream{extra}")
    return lines


def machine_info():
    info = {"kernel": platform.release(), "cpus": os.cpu_count()}
    try:
        with open("/proc/cpuinfo") as f:
            info["cpu"] = next(l.split(":", 1)[1].strip() for l in f
                               if l.startswith("model name"))
        with open("/proc/meminfo") as f:
            info["mem_kib"] = int(f.readline().split()[1])
    except (OSError, StopIteration):
        pass
    return info


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--scenario", action="append",
                    help="scenario name (repeatable); default all of: " +
                    ", ".join(s[0] for s in SCENARIOS) + "; extra: " +
                    ", ".join(s[0] for s in EXTRA))
    ap.add_argument("--tools", default="tern,qemu")
    ap.add_argument("--timeout", type=int, default=30,
                    help="seconds before a migration is cancelled (default 30)")
    ap.add_argument("--build", default=default_build())
    ap.add_argument("--out", default=os.path.join(HERE, "results"))
    ap.add_argument("--channels", type=int, default=None,
                    help="parallel page channels (tern `channels`, QEMU multifd); 0 = off; "
                    "default: each tool's own default (tern 2, QEMU off)")
    ap.add_argument("--compress", default="none", choices=["none", "zstd", "lz4"],
                    help="per-batch compression with --channels")
    ap.add_argument("--prealloc", action="store_true",
                    help="destinations preallocate guest RAM before the source connects "
                    "(tern-vmm --memory --mem-prealloc, QEMU -mem-prealloc)")
    ap.add_argument("--tls", action="store_true",
                    help="also run each tool over TLS (tern-tls, qemu-tls)")
    ap.add_argument("--no-stream", action="store_true",
                    help="do not measure one TCP stream around throughput scenarios")
    args = ap.parse_args()

    scens = [s for s in SCENARIOS + EXTRA
             if s[0] in (args.scenario or [x[0] for x in SCENARIOS])]
    if args.scenario and len(scens) != len(set(args.scenario)):
        ap.error(f"unknown scenario; known: {', '.join(s[0] for s in SCENARIOS + EXTRA)}")
    tools = args.tools.split(",")
    if args.tls:
        tools = [x for t in tools for x in (t, t + "-tls") if x in TOOLS]
    if any(t not in TOOLS for t in tools):
        ap.error("--tools takes tern, qemu, tern-tls, qemu-tls")
    args.pki = make_pki(args) if any(t.endswith("-tls") for t in tools) else None
    if any(t.startswith("qemu") for t in tools) and not shutil.which(QEMU):
        ap.error(f"{QEMU} not found")
    if not os.path.exists("/dev/kvm"):
        print("migrate.py: /dev/kvm is missing", file=sys.stderr)
        return 77

    stamp = time.strftime("%Y%m%d-%H%M%S")
    logdir = os.path.join(args.out, f"logs-{stamp}")
    def run_one(scen, tool, rep):
        wd = os.path.join(logdir, f"{scen[0]}-{tool}-{rep}")
        return TOOLS[tool](args, scen, wd).execute()

    streams = [None, None]
    want_stream = not args.no_stream and any(s[0].startswith("full-") for s in scens)
    if want_stream:
        streams[0] = measure_stream()
    print(HEADER, flush=True)
    runs = run_matrix(args.repeat, scens, tools, run_one, lambda r: row(r, args.timeout))

    summary = summarize(runs, args.timeout)
    cold = None
    if want_stream:
        streams[1] = measure_stream()
        if not args.prealloc:
            cold = measure_cold_stream()
    print(f"\nmedians over {args.repeat} run(s) (completed runs only):")
    print(HEADER)
    for s in summary:
        s2 = dict(s, load_before=s["load_before"])
        if s["completed"] < s["runs"]:
            s2["state"] = "completed" if s["completed"] else s["state"]
        print(row(s2, args.timeout) + f" ({s['completed']}/{s['runs']} completed)")
    rl = ratios(summary)
    if rl:
        print("\ntern / QEMU (medians):")
        print("\n".join(rl))
    sl = stream_lines(summary, *streams, args.prealloc, cold)
    if sl:
        print("\nthroughput against " + "\n".join(sl))
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, f"migrate-{stamp}.json")
    with open(path, "w") as f:
        json.dump({"machine": machine_info(), "build": args.build, "timeout_s": args.timeout,
                   "prealloc": args.prealloc,
                   "report_ms": REPORT_MS, "downtime_limit_ms": DOWNTIME_MS,
                   "stream_gibs": {"before": streams[0], "after": streams[1], "cold": cold},
                   "runs": runs, "summary": summary}, f, indent=1)
    print(f"\nresults: {path}\nconsole logs: {logdir}")
    if args.pki:
        shutil.rmtree(args.pki, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
