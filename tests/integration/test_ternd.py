#!/usr/bin/env python3
"""test_ternd.py - three ternd's, each in its own network namespace (a veth
into a shared bridge namespace, its own address, state and config dirs under
a temp dir), migrating the test guest between them peer to peer; refused
migrations with their reasons; a vetoing hook; a viewer and token-less TCP
clients refused (ternd's talk to each other with the peer_token); the
cluster's default CPU model; ternd killed while VMs run and while a
migration runs; the source tern-vmm killed mid-migration. Needs root."""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
from harness import BUILD, CLI, GUEST, Tap, check, run, tg_stats  # noqa: E402

TERND = os.path.join(BUILD, "ternd", "ternd")
VMM = os.path.join(BUILD, "vmm", "tern-vmm")
ADMIN, VIEWER, PEER = "admin-secret-1", "viewer-secret-1", "peer-secret-1"
tap = Tap()
TAG = f"tt{os.getpid() % 100000}"
NET = f"10.{200 + os.getpid() % 50}.{(os.getpid() // 50) % 250}"


def sh(*cmd):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode:
        raise RuntimeError(f"{' '.join(cmd)}: {r.stderr.strip()}")


class Host:
    def __init__(self, top, idx, **conf):
        self.name, self.ns = f"h{idx}", f"{TAG}h{idx}"
        self.ip = f"{NET}.{idx}"
        self.url = f"{self.ip}:7070"
        self.dir = os.path.join(top, self.name)
        self.hooks = os.path.join(self.dir, "hooks")
        os.makedirs(self.hooks)
        self.sock = os.path.join(self.dir, "run", "ternd.sock")
        keys = dict(host=self.name, cluster="test", listen=self.url,
                    state_dir=os.path.join(self.dir, "state"),
                    run_dir=os.path.join(self.dir, "run"), hooks_dir=self.hooks,
                    vmm=VMM, migration_address=self.ip,
                    migration_ports="47100-47120", peer_token=PEER,
                    keepalive_interval="1", keepalive_timeout="5", stop_timeout="5")
        keys.update(conf)
        self.conf = os.path.join(self.dir, "ternd.conf")
        with open(self.conf, "w") as f:
            for k, v in keys.items():
                f.write(f"{k} = {v}\n")
            f.write(f"token = admin:{ADMIN}\ntoken = viewer:{VIEWER}\n")
        self.proc = None

    def netns(self, hub):
        sh("ip", "netns", "add", self.ns)
        a, b = f"{TAG}{self.name}a", f"{TAG}{self.name}b"
        sh("ip", "link", "add", a, "type", "veth", "peer", "name", b)
        sh("ip", "link", "set", a, "netns", self.ns)
        sh("ip", "link", "set", b, "netns", hub)
        sh("ip", "-n", hub, "link", "set", b, "master", "br0", "up")
        sh("ip", "-n", self.ns, "addr", "add", f"{self.ip}/24", "dev", a)
        sh("ip", "-n", self.ns, "link", "set", a, "up")
        sh("ip", "-n", self.ns, "link", "set", "lo", "up")

    def start(self):
        self.log = open(os.path.join(self.dir, "ternd.log"), "a")
        self.proc = subprocess.Popen(["ip", "netns", "exec", self.ns, TERND, "--config", self.conf],
                                     stdout=self.log, stderr=self.log, stdin=subprocess.DEVNULL)
        for _ in range(100):
            if self.tern("host", "state").returncode == 0:
                return
            time.sleep(0.1)
        raise RuntimeError(f"{self.name}: ternd did not start: {open(self.log.name).read()[-500:]}")

    def kill(self, sig=signal.SIGKILL):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(10)
        self.proc = None

    def tern(self, *args, token=ADMIN, tcp=False, timeout=120):
        """The CLI on the unix socket (admin) or over TCP inside the namespace
        (token None: no token at all)."""
        if tcp:
            cmd = ["ip", "netns", "exec", self.ns, CLI, "--host", self.url]
            cmd += ["--token", token] if token is not None else []
        else:
            cmd = [CLI, "--host", self.sock]
        return run(cmd + list(args), timeout=timeout)

    def vms(self):
        r = self.tern("--json", "vm", "list")
        check(r.returncode == 0, f"{self.name} list: {r.stderr}")
        return {v["name"]: v for v in json.loads(r.stdout)["vms"]}

    def console(self, vm):
        path = os.path.join(self.dir, "state", "vms", vm, "console.log")
        try:
            return open(path, errors="replace").read()
        except FileNotFoundError:
            return ""


class Cluster:
    def __init__(self):
        self.top = tempfile.mkdtemp(prefix="tern-ternd-")
        self.hub = f"{TAG}hub"
        self.hosts = []

    def __enter__(self):
        sh("ip", "netns", "add", self.hub)
        sh("ip", "-n", self.hub, "link", "add", "br0", "type", "bridge")
        sh("ip", "-n", self.hub, "link", "set", "br0", "up")
        h2 = dict(default_cpu_model="x86-64-v1")
        h3 = dict(cpu_models="host-model", reserved_memory="1000T")
        for i, conf in enumerate([{}, h2, h3], 1):
            h = Host(self.top, i, **conf)
            h.netns(self.hub)
            self.hosts.append(h)
            h.start()
        return self

    def __exit__(self, *exc):
        for h in self.hosts:
            h.kill(signal.SIGTERM)
        for p in vmm_pids(self.top):
            os.kill(p, signal.SIGKILL)
        for h in self.hosts:
            subprocess.run(["ip", "netns", "del", h.ns], capture_output=True)
        subprocess.run(["ip", "netns", "del", self.hub], capture_output=True)
        shutil.rmtree(self.top, ignore_errors=True)


def vmm_pids(top, vm=None):
    """Live tern-vmm processes whose API socket lies under `top`."""
    out = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmd = open(f"/proc/{pid}/cmdline", "rb").read().decode(errors="replace").split("\0")
        except OSError:
            continue
        if cmd and cmd[0] == VMM and any(a.startswith(top) and (vm is None or a.endswith(f"/{vm}.sock"))
                                         for a in cmd):
            out.append(int(pid))
    return out


def vmm_args(top, vm):
    """The argv of the one tern-vmm running `vm` under `top`."""
    pids = vmm_pids(top, vm)
    check(len(pids) == 1, f"{vm}: {len(pids)} tern-vmm processes")
    return open(f"/proc/{pids[0]}/cmdline", "rb").read().decode().split("\0")


def define_start(h, name, **extra):
    spec = dict(name=name, memory="128M", vcpus=1, kernel=GUEST,
                cmdline="tg.wss=8M tg.rate=50 tg.report_ms=300")
    spec.update(extra)
    path = os.path.join(h.dir, f"{name}.json")
    with open(path, "w") as f:
        json.dump(spec, f)
    r = h.tern("vm", "define", path)
    check(r.returncode == 0, f"define: {r.stderr}")
    r = h.tern("vm", "start", name)
    check(r.returncode == 0, f"start: {r.stderr}")
    wait_stats(h, name, 0)


def wait_stats(h, vm, start, n=2, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        stats = tg_stats(h.console(vm)[start:])
        if len(stats) >= n:
            check(all(s["errors"] == "0" for s in stats), f"{h.name}: guest errors: {stats[-1]}")
            return stats
        time.sleep(0.2)
    raise AssertionError(f"{h.name}/{vm}: no TG STAT lines; console: {h.console(vm)[-300:]!r}")


def migrate(src, dst, vm, *extra):
    return src.tern("vm", "migrate", vm, "--to", dst.url, *extra, tcp=True)


def check_moved(src, dst, vm, top):
    check(vm not in src.vms(), f"{vm} still on {src.name}")
    check(dst.vms()[vm]["state"] == "running", f"{dst.name}: {dst.vms()[vm]}")
    check(len(vmm_pids(top, vm)) == 1, f"{vm}: {len(vmm_pids(top, vm))} tern-vmm copies")
    wait_stats(dst, vm, 0, n=3)


@tap.case()
def migrates_there_and_back_with_pages_verified():
    with Cluster() as c:
        h1, h2, _ = c.hosts
        # a named model migrates too; so does preallocated memory
        define_start(h1, "vm1", cpu_model="x86-64-v1", memory_prealloc=True)
        check("--mem-prealloc" in vmm_args(c.top, "vm1"), "source started without --mem-prealloc")
        r = migrate(h1, h2, "vm1", "--check")
        check(r.returncode == 0 and "OK" in r.stdout, f"check: {r.stdout} {r.stderr}")
        r = migrate(h1, h2, "vm1", "--wait", "--bandwidth", "32")
        check(r.returncode == 0 and "migration completed" in r.stdout, f"migrate: {r.stdout} {r.stderr}")
        check(re.search(r"\[#*\.*\] +\d+% ", r.stdout), f"no progress bar: {r.stdout}")
        check(re.search(r"total [\d.]+ s, downtime \d+ ms, [\d.]+ \w+ sent", r.stdout),
              f"no engine summary: {r.stdout}")
        check_moved(h1, h2, "vm1", c.top)
        check(h2.vms()["vm1"]["definition"]["cpu_model"] == "x86-64-v1", "model changed on the way")
        args = vmm_args(c.top, "vm1")   # the destination held the RAM before the stream
        check("--incoming" in args and "--mem-prealloc" in args and
              args[args.index("--memory") + 1] == "131072K", f"destination argv: {args}")
        r = migrate(h2, h1, "vm1", "--wait")
        check(r.returncode == 0, f"migrate back: {r.stdout} {r.stderr}")
        check_moved(h2, h1, "vm1", c.top)
        ev = h1.tern("events", "--vm", "vm1").stdout
        for kind in ("defined", "started", "migration_started", "migrated", "migrated_in"):
            check(kind in ev, f"event {kind} missing: {ev}")


@tap.case()
def refused_migrations_name_every_reason():
    with Cluster() as c:
        h1, h2, h3 = c.hosts
        r = h3.tern("host", "maintenance", "on")
        check(r.returncode == 0, r.stderr)
        define_start(h1, "big", cpu_model="x86-64-v1")   # h3 offers host-model only
        r = migrate(h1, h3, "big", "--check")
        check(r.returncode == 1, f"check exit {r.returncode}: {r.stdout}")
        for want in ("maintenance", "memory", "cpu-model"):
            check(f"FAIL {want}" in r.stdout, f"no {want} failure: {r.stdout}")
        r = migrate(h1, h3, "big")
        check(r.returncode == 1 and "pre-migration checks failed" in r.stderr, r.stderr)
        check(h1.vms()["big"]["state"] == "running", "big not running on h1 any more")
        define_start(h1, "pinned", migration_mode="pinned", pinned_hosts=["h1"])
        r = migrate(h1, h2, "pinned")
        check(r.returncode == 1 and "pinned" in r.stderr, r.stderr)
        define_start(h1, "frozen", migration_mode="none")
        r = migrate(h1, h2, "frozen")
        check(r.returncode == 1 and "'none'" in r.stderr, r.stderr)
        check(not h2.vms(), f"h2 got VMs: {h2.vms()}")


@tap.case()
def hook_vetoes_and_viewer_is_refused():
    with Cluster() as c:
        h1, h2, _ = c.hosts
        hook = os.path.join(h2.hooks, "10-window")
        with open(hook, "w") as f:
            f.write('#!/bin/sh\n[ "$2" = before_migration ] || exit 0\n'
                    'echo "no migrations during the backup window" >&2\nexit 1\n')
        os.chmod(hook, 0o755)
        define_start(h1, "vm1")
        r = migrate(h1, h2, "vm1", "--wait")
        check(r.returncode == 1 and "backup window" in r.stderr, f"{r.stdout} {r.stderr}")
        check(h1.vms()["vm1"]["state"] == "running" and not h2.vms(), "VM moved despite the veto")
        check(not vmm_pids(c.top + "/h2"), "h2 left a receiving tern-vmm")
        os.unlink(hook)
        r = h1.tern("vm", "migrate", "vm1", "--to", h2.url, token=VIEWER, tcp=True)
        check(r.returncode == 1 and "only an admin" in r.stderr, r.stderr)
        r = h1.tern("vm", "list", token=VIEWER, tcp=True)
        check(r.returncode == 0 and "vm1" in r.stdout, r.stderr)
        r = h1.tern("vm", "list", token="wrong", tcp=True)
        check(r.returncode == 1 and "token" in r.stderr, r.stderr)
        r = h1.tern("vm", "list", token=None, tcp=True)
        check(r.returncode == 1 and "token" in r.stderr, f"no token: {r.stderr}")
        r = h1.tern("vm", "list", token=PEER, tcp=True)     # another ternd: admin
        check(r.returncode == 0 and "vm1" in r.stdout, f"peer token: {r.stderr}")
        # the cluster's default CPU model (h2) applies to a spec without one
        r = h2.tern("--json", "host", "facts")
        check(json.loads(r.stdout).get("default_cpu_model") == "x86-64-v1", f"facts: {r.stdout[:300]}")
        spec = os.path.join(h2.dir, "d.json")
        with open(spec, "w") as f:
            json.dump(dict(name="dflt", memory="64M", kernel=GUEST), f)
        r = h2.tern("vm", "define", spec)
        check(r.returncode == 0, f"define: {r.stderr}")
        check(h2.vms()["dflt"]["definition"]["cpu_model"] == "x86-64-v1", f"{h2.vms()['dflt']}")
        with open(spec, "w") as f:
            json.dump(dict(name="-bad", memory="1K", kernel="x", cpu_model="Pentium"), f)
        r = h2.tern("vm", "define", spec)
        for field in ("name", "memory", "kernel", "cpu_model"):
            check(f"  {field}: " in r.stderr, f"define: no {field} error: {r.stderr}")


def follow_json_does_not_repeat(h):
    """`tern --json events --follow` prints each event once."""
    p = subprocess.Popen([CLI, "--host", h.sock, "--json", "events", "--follow"],
                         stdout=subprocess.PIPE, text=True)
    time.sleep(1)
    h.tern("vm", "pause", "vm1")
    h.tern("vm", "resume", "vm1")
    time.sleep(1)
    p.terminate()
    out = p.communicate(timeout=10)[0]
    ids = [e["id"] for line in out.splitlines() if line.strip()
           for e in json.loads(line)["events"]]
    check(len(ids) == len(set(ids)), f"events repeated: {ids}")
    check(len(ids) >= 3, f"too few events followed: {out[-300:]}")


@tap.case()
def killed_ternd_readopts_running_vms():
    with Cluster() as c:
        h1 = c.hosts[0]
        define_start(h1, "vm1")
        pid = h1.vms()["vm1"]["pid"]
        h1.kill()
        off = len(h1.console("vm1"))
        wait_stats(h1, "vm1", off)          # the VM ran on without its daemon
        h1.start()
        v = h1.vms()["vm1"]
        check(v["state"] == "running" and v["pid"] == pid, f"after restart: {v}")
        check("adopted" in h1.tern("events", "--vm", "vm1").stdout, "no adopted event")
        follow_json_does_not_repeat(h1)
        r = h1.tern("vm", "stop", "vm1", "--timeout", "2", "--force")
        check(r.returncode == 0 and not vmm_pids(c.top, "vm1"), f"stop: {r.stderr}")
        check(h1.vms()["vm1"]["state"] == "stopped", "not stopped")


@tap.case()
def ternd_killed_during_migration_leaves_one_copy():
    with Cluster() as c:
        h1, h2, _ = c.hosts
        define_start(h1, "vm1")
        r = migrate(h1, h2, "vm1", "--bandwidth", "16")
        check(r.returncode == 0, f"migrate: {r.stderr}")
        time.sleep(1)
        h1.kill()
        deadline = time.time() + 90
        while time.time() < deadline and len(vmm_pids(c.top, "vm1")) != 1:
            time.sleep(0.5)
        h1.start()
        deadline = time.time() + 30
        while time.time() < deadline and ("vm1" in h1.vms()) == ("vm1" in h2.vms()):
            time.sleep(0.5)
        pids = vmm_pids(c.top, "vm1")
        check(len(pids) == 1, f"{len(pids)} copies run")
        on = h2 if "vm1" in h2.vms() else h1
        other = h1 if on is h2 else h2
        check("vm1" not in other.vms(), "both ternd's list vm1")
        check(on.vms()["vm1"]["state"] == "running" and on.vms()["vm1"]["pid"] == pids[0],
              f"{on.name}'s view: {on.vms()['vm1']} vs pid {pids}")
        wait_stats(on, "vm1", len(on.console("vm1")), n=1)


@tap.case()
def source_vmm_killed_during_migration_stops_the_vm():
    with Cluster() as c:
        h1, h2, _ = c.hosts
        define_start(h1, "vm1")
        src = h1.vms()["vm1"]["pid"]
        r = migrate(h1, h2, "vm1", "--bandwidth", "8")
        check(r.returncode == 0, f"migrate: {r.stderr}")
        time.sleep(1)
        check(h1.vms()["vm1"]["migrating"], "migration over too soon to test")
        os.kill(src, signal.SIGKILL)
        deadline = time.time() + 30
        while time.time() < deadline and (h1.vms()["vm1"]["migrating"] or h2.vms()
                                          or vmm_pids(c.top, "vm1")):
            time.sleep(0.3)
        v = h1.vms()["vm1"]
        check(v["state"] == "stopped" and not v["migrating"] and v["pid"] == 0, f"h1: {v}")
        check("lost" in v.get("last_migration", ""), f"last_migration: {v}")
        check(not h2.vms(), f"h2 kept {h2.vms()}")
        check(not vmm_pids(c.top, "vm1"), "a tern-vmm for vm1 still runs")
        check("migration_failed" in h1.tern("events", "--vm", "vm1").stdout, "no event")
        r = h1.tern("vm", "start", "vm1")                   # the definition is intact
        check(r.returncode == 0, f"restart: {r.stderr}")


if __name__ == "__main__":
    if os.geteuid() != 0:
        print("1..0 # SKIP needs root for ip netns")
        sys.exit(0)
    sys.exit(tap.run())
