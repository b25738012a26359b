#!/usr/bin/env python3
"""test_netfault.py - migrations over a real, breakable network.

The destination tern-vmm runs in one network namespace and the source in
another, joined by a veth pair. Cutting the link (`ip link set ... down`)
for less than the keepalive allows (interval x count) only stalls the
migration; cutting it for longer aborts it: the source keeps running the
guest and the destination exits non-zero. `tc netem` latency and loss only
slow it down. The test guest verifies every page wherever the VM runs.

Needs root (ip netns); without it every case is skipped loudly. Names are
unique per run and everything is removed even when a case fails.
"""
import os
import random
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from harness import (CLI, GUEST, Tap, TestFailure, Vmm, VmmPair, check,  # noqa: E402
                     check_no_errors, run, wait_full_sweep)

tap = Tap()
GUEST_ARGS = ["--kernel", GUEST, "--memory", "64M", "--cmdline",
              "tg.wss=16M tg.rate=4 tg.report_ms=200"]


def sh(*cmd, check_rc=True):
    r = subprocess.run(list(cmd), capture_output=True, text=True, timeout=30)
    if check_rc and r.returncode != 0:
        raise TestFailure(f"{' '.join(cmd)}: {r.stderr.strip()}")
    return r


def netns_usable():
    name = f"tnfprobe{os.getpid()}"
    r = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True)
    if r.returncode != 0:
        return r.stderr.strip() or "ip netns add failed"
    subprocess.run(["ip", "netns", "del", name], capture_output=True)
    return None


class Net:
    """Two namespaces, a (source side) and b (destination side), joined by
    a veth pair with addresses 10.R.S.1 and 10.R.S.2."""

    def __init__(self):
        tag = f"{os.getpid() % 100000}{random.randrange(100)}"
        self.ns_a, self.ns_b = f"tnf-{tag}-a", f"tnf-{tag}-b"
        self.if_a, self.if_b = f"tnfa{tag}"[:15], f"tnfb{tag}"[:15]
        net = f"10.{random.randrange(100, 250)}.{random.randrange(1, 250)}"
        self.ip_a, self.ip_b = net + ".1", net + ".2"
        try:
            sh("ip", "netns", "add", self.ns_a)
            sh("ip", "netns", "add", self.ns_b)
            sh("ip", "link", "add", self.if_a, "netns", self.ns_a, "type", "veth",
               "peer", "name", self.if_b, "netns", self.ns_b)
            for ns, dev, ip in ((self.ns_a, self.if_a, self.ip_a),
                                (self.ns_b, self.if_b, self.ip_b)):
                sh("ip", "-n", ns, "addr", "add", ip + "/24", "dev", dev)
                sh("ip", "-n", ns, "link", "set", dev, "up")
                sh("ip", "-n", ns, "link", "set", "lo", "up")
        except Exception:
            self.close()
            raise

    def exec_a(self):
        return ["ip", "netns", "exec", self.ns_a]

    def exec_b(self):
        return ["ip", "netns", "exec", self.ns_b]

    def link(self, up):
        sh("ip", "-n", self.ns_a, "link", "set", self.if_a, "up" if up else "down")

    def impair(self, delay_ms, loss_pct):
        """netem delay and loss both ways. A kernel without sch_netem gets
        the nearest we can do: loss from an nftables rule dropping that share
        of incoming packets on each side, and queueing delay from a token
        bucket (tbf). Returns what was applied (a test prints it)."""
        ends = ((self.ns_a, self.if_a), (self.ns_b, self.if_b))
        r = sh("ip", "netns", "exec", self.ns_a, "tc", "qdisc", "replace", "dev", self.if_a,
               "root", "netem", "delay", f"{delay_ms}ms", "loss", f"{loss_pct}%", check_rc=False)
        if r.returncode == 0:
            sh("ip", "netns", "exec", self.ns_b, "tc", "qdisc", "replace", "dev", self.if_b,
               "root", "netem", "delay", f"{delay_ms}ms", "loss", f"{loss_pct}%")
            return f"netem delay {delay_ms} ms, loss {loss_pct}% each way"
        applied = []
        if shutil.which("nft"):
            for ns, dev in ends:
                sh("ip", "netns", "exec", ns, "nft",
                   f"add table inet tnf; add chain inet tnf in {{ type filter hook input "
                   f"priority 0; }}; add rule inet tnf in iifname {dev} "
                   f"numgen random mod 1000 < {int(loss_pct * 10)} drop")
            applied.append(f"nftables drops {loss_pct}% of packets each way")
        for ns, dev in ends:
            sh("ip", "netns", "exec", ns, "tc", "qdisc", "replace", "dev", dev, "root",
               "tbf", "rate", "400mbit", "burst", "32kb", "latency", f"{delay_ms}ms")
        applied.append(f"tbf 400 Mbit/s, up to {delay_ms} ms queueing each way")
        print(f"# WARNING: no sch_netem in this kernel ({r.stderr.strip()}): "
              f"instead {'; '.join(applied)}", flush=True)
        return "; ".join(applied)

    def close(self):
        for ns in (self.ns_a, self.ns_b):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class NetPair(VmmPair):
    """Source VMM in namespace a, destination (--incoming) in b."""

    state_timeout = 90
    state_poll = 0.1

    def __init__(self, net, keepalive=None):
        self.net = net
        self.uri = f"tcp:{net.ip_b}:4444"
        ka = ["--keepalive-interval", str(keepalive[0]),
              "--keepalive-count", str(keepalive[1])] if keepalive else []
        self.ka = ka
        self.dst = Vmm(["--incoming", self.uri] + ka, prefix=net.exec_b())
        self.src = Vmm(GUEST_ARGS, prefix=net.exec_a())

    def start(self, *extra):
        self.dst.wait_api_socket()
        self.src.wait_for(r"^TG FILLED", timeout=60)
        r = run([CLI, "--vmm", self.src.api, "migrate", self.uri] + self.ka + list(extra))
        check(r.returncode == 0, f"migrate start: {r.stdout} {r.stderr}")


def wait_sweep(vm, start, pool_of, timeout=60):
    wait_full_sweep(vm, start, pool_of, timeout, poll=0.2)


def check_completed_on_dst(p):
    m = p.wait_state({"completed", "failed", "cancelled", "unconfirmed"})
    check(m["state"] == "completed", f"migration {m['state']}: {m.get('error')}")
    check(p.src.wait_exit(20) == 0, f"source exit: {p.src.stderr()[-300:]}")
    st, info = p.dst.call("GET", "/vm")
    check(st == 200 and info["state"] == "running", f"destination {st} {info}")
    p.dst.wait_for(r"^TG STAT ", timeout=20)
    wait_sweep(p.dst, 0, p.src)
    check_no_errors(p.dst.output(), "destination")
    return m


def rx_bytes(net):
    r = sh("ip", "netns", "exec", net.ns_b, "cat",
           f"/sys/class/net/{net.if_b}/statistics/rx_bytes")
    return int(r.stdout)


def seconds_until_data(net, timeout):
    """After the link came back: seconds until the destination's side of
    the link received 256 KiB more (retransmission backoff shows here)."""
    t0, b0 = time.time(), rx_bytes(net)
    while time.time() - t0 < timeout:
        if rx_bytes(net) - b0 > 256 << 10:
            return time.time() - t0
        time.sleep(0.05)
    return None


SKIP = None


def needs_netns(fn):
    def wrapped():
        if SKIP:
            print(f"# SKIP {fn.__name__}: ip netns not permitted: {SKIP}", flush=True)
            return
        fn()
    wrapped.__name__ = fn.__name__
    return wrapped


@tap.case()
@needs_netns
def short_outage_stalls_then_completes():
    # keepalive 5 s x 5 (the default); the link is down for 5 s mid pass 1
    with Net() as net, NetPair(net) as p:
        p.start("--bandwidth", "8")
        p.wait_state({"active"})
        time.sleep(1.0)
        net.link(False)
        time.sleep(5)
        stalled = p.status()
        net.link(True)
        check(stalled["state"] == "active", f"state during the outage: {stalled}")
        resumed = seconds_until_data(net, 25)
        print(f"# outage 5 s: data flowed again "
              f"{resumed if resumed is None else round(resumed, 2)} s after the link came back",
              flush=True)
        m = check_completed_on_dst(p)
        print(f"# completed: {m['transferred_bytes'] >> 20} MiB in {m['elapsed_ms']} ms", flush=True)


@tap.case()
@needs_netns
def long_outage_aborts_source_keeps_running():
    # keepalive 1 s x 3 on both sides; the link is down for 8 s
    with Net() as net, NetPair(net, keepalive=(1, 3)) as p:
        p.start("--bandwidth", "4")
        p.wait_state({"active"})
        time.sleep(1.0)
        net.link(False)
        t_cut = time.time()
        m = p.wait_state({"completed", "failed", "cancelled", "unconfirmed"}, timeout=30)
        t_fail = time.time() - t_cut
        rc = p.dst.wait_exit(30)
        t_dst = time.time() - t_cut
        time.sleep(max(0.0, 8 - (time.time() - t_cut)))
        net.link(True)
        print(f"# keepalive 1x3: source failed {t_fail:.1f} s after the cut "
              f"({m.get('error')!r}); destination exited {rc} after {t_dst:.1f} s", flush=True)
        check(m["state"] == "failed", f"state {m}")
        check(rc == 1, f"destination exit {rc}")
        err = p.dst.stderr().strip().splitlines()[-1]
        check("incoming migration failed" in err, f"destination stderr {err!r}")
        check(not os.path.exists(p.dst.api), "destination left its API socket behind")
        n = len(p.src.output())
        p.src.wait_for(r"^TG STAT ", timeout=20, start=n)
        st, info = p.src.call("GET", "/vm")
        check(info["state"] == "running", f"source VM {info['state']}")
        wait_sweep(p.src, n, p.src)
        check_no_errors(p.src.output(), "source")


@tap.case()
@needs_netns
def latency_and_loss_complete():
    with Net() as net, NetPair(net) as p:
        how = net.impair(20, 1)
        p.start()
        m = check_completed_on_dst(p)
        print(f"# {how}: {m['transferred_bytes'] >> 20} MiB in "
              f"{m['elapsed_ms']} ms, downtime {m['downtime_ms']} ms", flush=True)


if __name__ == "__main__":
    SKIP = netns_usable()
    if SKIP:
        print("# " + "=" * 60)
        print(f"# WARNING: ip netns is not permitted here ({SKIP}): cases SKIP")
        print("# " + "=" * 60, flush=True)
    sys.exit(tap.run())
