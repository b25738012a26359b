"""common.py - shared pieces of tern's benchmark scripts (stdlib only).

Process consoles read through a pipe with a host timestamp on every line,
a QMP client for QEMU, an HTTP-over-unix-socket client for tern-vmm's API,
the tern-guest `TG STAT` parser, and small statistics helpers.

Why consoles are piped and timestamped: the guest's stall counter
(`maxstall_us`) reads the TSC, and whether the guest TSC keeps running
across a migration depends on the VMM and the host (tern and QEMU both
restore the saved TSC; on this kvm_pvm host the ring-3 guest was seen
reading a TSC that kept running). So the downtime the guest lived through
is measured both ways: the jump of (host arrival time - guest t_ms) across
the migration (time the guest clock stood still) plus the stall the guest
counted on the destination while its clock ran.
"""
import json
import os
import re
import socket
import statistics
import subprocess
import threading
import time

# The tern-vmm API client and the port picker are the integration tests' own.
sys_path_added = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                              "tests", "integration")
import sys  # noqa: E402
sys.path.insert(0, sys_path_added)
from harness import api_call, free_port  # noqa: E402,F401

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.dirname(HERE)
QEMU = "qemu-system-x86_64"
QEMU_BASE = ["-enable-kvm", "-cpu", "host,-arch-capabilities", "-nic", "none",
             "-display", "none", "-device", "isa-debug-exit,iobase=0x501,iosize=2"]


def default_build():
    """The build directory: $TERN_BUILD_DIR, else <source>/build."""
    return os.environ.get("TERN_BUILD_DIR") or os.path.join(SOURCE, "build")


def now_ms():
    return time.monotonic() * 1000.0


def loadavg():
    """The 1/5/15-minute load averages, as `uptime` shows them."""
    with open("/proc/loadavg") as f:
        return [float(x) for x in f.read().split()[:3]]


def run_matrix(repeat, scenarios, variants, run_one, row):
    """run_one(scenario, variant, rep) for each, `repeat` times, the variants
    in reverse order on odd repeats; prints row(result) as each ends."""
    runs = []
    for rep in range(repeat):
        order = variants if rep % 2 == 0 else variants[::-1]
        for scen in scenarios:
            for variant in order:
                r = run_one(scen, variant, rep)
                r["repeat"] = rep
                runs.append(r)
                print(row(r), flush=True)
    return runs


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


class Console:
    """A child process whose stdout is a serial console: every line is kept
    with the host time (ms, monotonic) at which it arrived, and copied to a
    log file with that time in front."""

    def __init__(self, cmd, log_path, stderr_path, env=None):
        self.lines = []                 # (host_ms, text)
        self.log = open(log_path, "w")
        self.errf = open(stderr_path, "w")
        self.stderr_path = stderr_path
        self.cmd = cmd
        self.t_start = now_ms()
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=self.errf,
                                     env=dict(os.environ, **env) if env else None)
        self.thread = threading.Thread(target=self._reader, daemon=True)
        self.thread.start()

    def _reader(self):
        for raw in iter(self.proc.stdout.readline, b""):
            t = now_ms()
            text = raw.decode(errors="replace").rstrip("\r\n")
            self.lines.append((t, text))
            self.log.write(f"{t - self.t_start:10.1f} {text}\n")
        self.log.flush()

    def stderr(self):
        with open(self.stderr_path, errors="replace") as f:
            return f.read()

    def wait_line(self, pattern, timeout, start=0):
        """Index of the first line at or after `start` matching `pattern`."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        i = start
        while True:
            while i < len(self.lines):
                if rx.search(self.lines[i][1]):
                    return i
                i += 1
            if self.proc.poll() is not None:
                self.thread.join(1)
                if i < len(self.lines):
                    continue
                raise RuntimeError(f"{self.cmd[0]} exited ({self.proc.returncode}) "
                                   f"before /{pattern}/: {self.stderr()[-400:]!r}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"timeout {timeout}s waiting for /{pattern}/")
            time.sleep(0.02)

    def stats(self, start=0):
        """Parsed TG STAT lines from index `start`: dicts with 'host_ms'."""
        out = []
        for t, text in self.lines[start:]:
            if text.startswith("TG STAT "):
                d = {}
                for kv in text.split()[2:]:
                    k, _, v = kv.partition("=")
                    if v.isdigit():
                        d[k] = int(v)
                d["host_ms"] = t
                out.append(d)
        return out

    def bad_lines(self):
        return [l for _, l in self.lines
                if l.startswith(("TG ERROR", "TG FAULT", "TG PANIC", "TG WARN"))]

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            pass
        self.thread.join(2)
        self.log.close()
        self.errf.close()


def wait_path(path, proc, timeout=20):
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if proc.poll() is not None:
            raise RuntimeError(f"process exited ({proc.returncode}) before {path} appeared")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{path} never appeared")
        time.sleep(0.02)


class Qmp:
    """Minimal QMP client: one command at a time, events are dropped."""

    def __init__(self, path, proc, timeout=20):
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self.sock.connect(path)
                break
            except OSError:
                self.sock.close()
                if proc.poll() is not None:
                    raise RuntimeError(f"QEMU exited ({proc.returncode}) before QMP answered")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"QMP socket {path} never answered")
                time.sleep(0.05)
        self.sock.settimeout(30)
        self.buf = b""
        self._read()                    # greeting
        self.cmd("qmp_capabilities")

    def _read(self):
        while b"\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise RuntimeError("QMP connection closed")
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        return json.loads(line)

    def cmd(self, name, **args):
        msg = {"execute": name}
        if args:
            msg["arguments"] = args
        self.sock.sendall(json.dumps(msg).encode() + b"\n")
        while True:
            r = self._read()
            if "return" in r:
                return r["return"]
            if "error" in r:
                raise RuntimeError(f"QMP {name}: {r['error'].get('desc')}")

    def close(self):
        self.sock.close()
