"""harness.py - shared helpers for tern's process-level tests.

Tests are plain Python (stdlib only) that print TAP, one "ok"/"not ok" line
per case, so every case is counted. A case that needs /dev/kvm and finds
none is reported as "ok N - name # SKIP no /dev/kvm" and the reason is
printed loudly.
"""
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback

BUILD = os.environ.get("TERN_BUILD_DIR") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", "..", "build"))
SOURCE = os.environ.get("TERN_SOURCE_DIR") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
VMM = os.path.join(BUILD, "vmm", "tern-vmm")
CLI = os.path.join(BUILD, "cli", "tern")
GUEST = os.path.join(BUILD, "guest", "tern-guest.bin")
HAVE_KVM = os.path.exists("/dev/kvm")


class TestFailure(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise TestFailure(msg)


class Tap:
    """Collects cases; run() prints TAP and returns the exit status."""

    def __init__(self):
        self.cases = []

    def case(self, needs_kvm=True):
        def deco(fn):
            self.cases.append((fn, needs_kvm))
            return fn
        return deco

    def run(self):
        print(f"1..{len(self.cases)}", flush=True)
        failed = 0
        if not HAVE_KVM:
            print("# " + "=" * 60)
            print("# WARNING: /dev/kvm is absent: KVM test cases SKIP")
            print("# " + "=" * 60, flush=True)
        for i, (fn, needs_kvm) in enumerate(self.cases, 1):
            name = fn.__name__
            if needs_kvm and not HAVE_KVM:
                print(f"ok {i} - {name} # SKIP no /dev/kvm", flush=True)
                continue
            t0 = time.time()
            try:
                fn()
                print(f"ok {i} - {name} ({time.time() - t0:.1f}s)", flush=True)
            except Exception as e:  # noqa: BLE001 - report any failure
                failed += 1
                print(f"not ok {i} - {name}", flush=True)
                for line in (str(e) or repr(e)).splitlines() + \
                        traceback.format_exc().splitlines()[-6:]:
                    print(f"#   {line}", flush=True)
        return 1 if failed else 0


class Vmm:
    """One tern-vmm process with its serial console logged to a file."""

    def __init__(self, args, serial_file=True, api=True, workdir=None,
                 prefix=(), env=None):
        """prefix: a command to run tern-vmm under (e.g. ip netns exec NS);
        env: extra environment variables (e.g. TERN_FAULT)."""
        self.dir = workdir or tempfile.mkdtemp(prefix="tern-test-")
        self.serial = os.path.join(self.dir, "serial.log")
        self.api = os.path.join(self.dir, "vm.sock") if api else None
        self.stderr_path = os.path.join(self.dir, "stderr.log")
        cmd = list(prefix) + [VMM] + list(args)
        if serial_file:
            cmd += ["--serial", "file:" + self.serial]
        if self.api:
            cmd += ["--api", self.api]
        self.cmd = cmd
        self.errf = open(self.stderr_path, "w")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=self.errf,
                                     env=dict(os.environ, **env) if env else None)

    def output(self):
        try:
            with open(self.serial, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def stderr(self):
        with open(self.stderr_path, errors="replace") as f:
            return f.read()

    def wait_for(self, pattern, timeout=30, start=0):
        """Wait until the console matches `pattern` (regex) after offset
        `start`; returns the match. Fails if the process exits first."""
        rx = re.compile(pattern, re.M)
        deadline = time.time() + timeout
        while time.time() < deadline:
            out = self.output()
            m = rx.search(out, start)
            if m:
                return m
            if self.proc.poll() is not None:
                out = self.output()
                m = rx.search(out, start)
                if m:
                    return m
                raise TestFailure(
                    f"tern-vmm exited ({self.proc.returncode}) before /{pattern}/;"
                    f" stderr: {self.stderr()[-500:]!r}; console tail: {out[-300:]!r}")
            time.sleep(0.05)
        raise TestFailure(f"timeout ({timeout}s) waiting for /{pattern}/; "
                          f"console tail: {self.output()[-400:]!r}")

    def wait_api(self, timeout=10):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if os.path.exists(self.api):
                try:
                    st, body = self.call("GET", "/vm")
                    if st != 409:       # 409: the VM is still being set up
                        return st, body
                except OSError:
                    pass
            if self.proc.poll() is not None:
                raise TestFailure(f"tern-vmm exited: {self.stderr()[-500:]!r}")
            time.sleep(0.05)
        raise TestFailure("API socket never answered")

    def wait_api_socket(self, timeout=10):
        """Wait for the API socket (and, for --incoming, the listener)."""
        incoming = "--incoming" in self.cmd
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.api and os.path.exists(self.api) and \
                    (not incoming or "waiting for an incoming" in self.stderr()):
                return
            if self.proc.poll() is not None:
                raise TestFailure(f"tern-vmm exited: {self.stderr()[-500:]!r}")
            time.sleep(0.05)
        raise TestFailure("API socket never appeared")

    def call(self, method, path, body=None):
        return api_call(self.api, method, path, body)

    def wait_exit(self, timeout=30):
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise TestFailure(f"tern-vmm did not exit within {timeout}s")

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.errf.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.kill()


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout=10):
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        s.connect(self.path)
        self.sock = s


def api_call(sock, method, path, body=None):
    """Returns (status, parsed JSON or raw text)."""
    c = UnixHTTPConnection(sock)
    hdrs = {}
    if body is not None and not isinstance(body, (bytes, str)):
        body = json.dumps(body)
    if body is not None:
        hdrs["Content-Type"] = "application/json"
    c.request(method, path, body=body, headers=hdrs)
    r = c.getresponse()
    data = r.read().decode(errors="replace")
    c.close()
    try:
        return r.status, json.loads(data)
    except ValueError:
        return r.status, data


def run(cmd, timeout=30, input=None):
    """Run a command; returns CompletedProcess with text output."""
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                          input=input)


def migrate_wait(vm, port, timeout=120):
    """`tern migrate tcp:127.0.0.1:PORT --wait` from vm's API socket."""
    return run([CLI, "--vmm", vm.api, "migrate", f"tcp:127.0.0.1:{port}", "--wait"],
               timeout=timeout)


def tg_stats(text):
    """Parse 'TG STAT' lines into dicts."""
    out = []
    text = text[:text.rfind("\n") + 1]     # a line still being written is not parsed
    for line in text.splitlines():
        if line.startswith("TG STAT "):
            out.append(dict(kv.split("=", 1) for kv in line.split()[2:] if "=" in kv))
    return out


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def tg_last(text, cpu=None):
    """The last STAT line (of one CPU, if given)."""
    stats = [s for s in tg_stats(text) if cpu is None or s["cpu"] == str(cpu)]
    return stats[-1] if stats else None


def check_no_errors(text, where):
    bad = [l for l in text.splitlines() if l.startswith(("TG ERROR", "TG FAULT"))]
    check(not bad, f"{where}: guest reported {bad[:3]}")
    stats = tg_stats(text)
    check(all(s["errors"] == "0" for s in stats), f"{where}: STAT lines with errors")


SWEEP_MS = 2000     # tern-guest's default tg.sweep_ms


def wait_full_sweep(vm, start, booted_on, timeout=120, poll=0.2):
    """Wait until the guest running in `vm` has checked every page it owns
    after console offset `start`: each CPU's STAT lines there show at least
    its share of the pool verified and more than one background sweep
    period (tg.sweep_ms, default) of guest time. Pool size and CPU count
    come from the console of `booted_on`, where the guest booted."""
    boot = booted_on.output()
    m = re.search(r"pool_mib=(\d+)", boot)
    n = re.search(r"^TG BOOT cpus=(\d+)", boot, re.M)
    check(m is not None and n is not None,
          "no TG BOOT cpus= / TG INFO pool_mib= on the console the guest booted on")
    ncpus = int(n.group(1))
    share = -(-int(m.group(1)) // ncpus)
    deadline = time.time() + timeout
    while time.time() < deadline:
        first, last = {}, {}
        for st in tg_stats(vm.output()[start:]):
            first.setdefault(st["cpu"], st)
            last[st["cpu"]] = st
        if len(last) == ncpus and all(
                int(last[c]["verified_mib"]) - int(first[c]["verified_mib"]) >= share and
                int(last[c]["t_ms"]) - int(first[c]["t_ms"]) > SWEEP_MS for c in last):
            return
        time.sleep(poll)
    raise TestFailure(f"guest did not verify a full sweep within {timeout}s")


class VmmPair:
    """A source VMM (self.src) migrating to a destination (self.dst):
    the migration's status as the source sees it, and cleanup."""

    state_timeout = 60      # default for wait_state, seconds
    state_poll = 0.05

    def status(self):
        st, m = self.src.call("GET", "/vm/migration")
        check(st == 200, f"migration status: {st} {m}")
        return m

    def wait_state(self, states, timeout=None):
        deadline = time.time() + (timeout or self.state_timeout)
        while time.time() < deadline:
            m = self.status()
            if m["state"] in states:
                return m
            time.sleep(self.state_poll)
        raise TestFailure(f"migration never reached {states}: {self.status()}")

    def close(self):
        self.src.kill()
        self.dst.kill()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Pair(VmmPair):
    """A source VMM running the test guest and a destination waiting on
    --incoming, each with its own console log and API socket."""

    def __init__(self, guest_cmdline, memory="256M", vcpus=1, dst_env=None):
        self.port = free_port()
        self.uri = f"tcp:127.0.0.1:{self.port}"
        self.dst = Vmm(["--incoming", self.uri], env=dst_env)
        self.src = Vmm(["--kernel", GUEST, "--memory", memory, "--vcpus", str(vcpus),
                        "--cmdline", guest_cmdline])

    def wait_ready(self, stats_per_cpu=1, timeout=120):
        self.dst.wait_api_socket()
        self.src.wait_for(r"^TG FILLED", timeout=timeout)
        self.src.wait_for(r"^TG STAT ", timeout=30)

    def migrate(self, *extra, wait=True, timeout=120):
        cmd = [CLI, "--vmm", self.src.api, "migrate", self.uri] + list(extra)
        if wait:
            cmd.append("--wait")
        return run(cmd, timeout=timeout)
