#!/usr/bin/env python3
"""test_crash_matrix.py - kill (or stop) either side of a migration at each
step of the protocol and check what is left: never two running VMs, the VM
running on the side that owned it when the other side died, every page of
it verified by the test guest, no stray tern-vmm process, no files left but
the API socket of a SIGKILLed process (stale: it refuses connections, and
the next tern-vmm on that path removes it).

The fault switch is TERN_FAULT=<point>:<action> (docs/testing-faults.md).
The matrix and its last results are in docs/crash-matrix.md. Post-copy
cells are in PC_MATRIX (after GO neither side alone has the VM).
"""
import os
import random
import signal
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from harness import (CLI, GUEST, Tap, Vmm, check,  # noqa: E402
                     check_no_errors, free_port, run, wait_full_sweep)

tap = Tap()
GUEST_CMDLINE = "tg.wss=8M tg.rate=64 tg.report_ms=200"
KA = ["--keepalive-interval", "1", "--keepalive-count", "2"]

# What survives, by who owned the VM when the fault hit:
#   src   the source runs it again (migration failed, dest discarded)
#   dst   the destination runs it (handover done)
#   lost  the killed process owned it: nothing runs (as any VMM crash)
#   unconfirmed  GO sent, RUNNING never came: the source keeps it paused;
#         the operator finds the destination gone (docs/operations.md)
#   src|dst  a stop: the stopped side is continued after the other gave up
MATRIX = [
    # point                 action  outcome
    ("src-setup",           "kill", "lost"),
    ("src-pass1",           "kill", "lost"),
    ("src-passN",           "kill", "lost"),
    ("src-stop-copy",       "kill", "lost"),
    ("src-device-state",    "kill", "lost"),
    ("src-before-ready",    "kill", "lost"),
    ("src-after-ready",     "kill", "lost"),
    ("src-after-go",        "kill", "dst"),
    ("src-after-running",   "kill", "dst"),
    ("dst-setup",           "kill", "src"),
    ("dst-pass1",           "kill", "src"),
    ("dst-passN",           "kill", "src"),
    ("dst-device-state",    "kill", "src"),
    ("dst-before-ready",    "kill", "src"),
    ("dst-after-ready",     "kill", {"src", "unconfirmed"}),  # race: see docs
    ("dst-after-go",        "kill", "unconfirmed"),
    ("dst-after-running",   "kill", "lost"),
    ("src-after-ready",     "stop", "src"),
    ("dst-after-ready",     "stop", "dst"),
]

# Post-copy: the migration is started with --postcopy and the switch asked
# for at once (it happens at the end of pass 1). After GO neither side alone
# has the whole VM:
#   pc-lost     the source died after GO: the destination pauses the guest
#               (never runs it with missing pages), shows postcopy-paused in
#               GET /vm and GET /vm/migration, and ends on SIGTERM with
#               "VM lost: post-copy was paused" (exit 1, socket removed)
#   src-paused  the destination died after GO: the source stays paused
#               (postcopy-paused, resume refused) until the operator runs
#               migrate-abandon --resume-source; then the guest runs there
# Rows marked "recover" first cut the connection (a proxy), wait until both
# sides are postcopy-paused, then fault during the recovery handshake.
PC_MATRIX = [
    # point                 action  outcome        recover
    ("src-pc-discard",      "kill", "lost",        False),
    ("src-pc-device-state", "kill", "lost",        False),
    ("src-pc-listen",       "kill", "lost",        False),
    ("src-after-go",        "kill", "pc-lost",     False),
    ("src-pc-paging",       "kill", "pc-lost",     False),
    ("dst-pc-discard",      "kill", "src",         False),
    ("dst-pc-device-state", "kill", "src",         False),
    ("dst-pc-listen",       "kill", "src",         False),
    ("dst-after-go",        "kill", "src-paused",  False),
    ("dst-pc-paging",       "kill", "src-paused",  False),
    ("src-pc-recover",      "kill", "pc-lost",     True),
    ("dst-pc-recover",      "kill", "src-paused",  True),
]
PC_RECOVER_CMDLINE = "tg.wss=8M tg.rate=64 tg.fill=0 tg.report_ms=200"
RESULTS = []


def refuses(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(path)
        return False
    except OSError:
        return True
    finally:
        s.close()


def vm_state(vm):
    if vm.proc.poll() is not None:
        return None
    try:
        st, info = vm.call("GET", "/vm")
        return info.get("state") if st == 200 else f"http {st}"
    except OSError:
        return None


def wait_exit(vm, timeout):
    deadline = time.time() + timeout
    while vm.proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    return vm.proc.poll()


def verify_guest(vm, booted_on):
    """The guest runs on `vm` and verifies its whole pool with no error."""
    wait_full_sweep(vm, len(vm.output()), booted_on, timeout=30, poll=0.1)
    check_no_errors(vm.output(), "running VM")


def check_leftovers(src, dst, killed):
    """Only the survivor's process runs; files: logs, the survivor's socket,
    a killed process's stale socket (refusing connections)."""
    mine = [d for d in (src.dir, dst.dir)]
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) in (src.proc.pid, dst.proc.pid):
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().decode(errors="replace")
        except OSError:
            continue
        check(not any(d in cmd for d in mine), f"stray process {pid}: {cmd!r}")
    for vm, name in ((src, "src"), (dst, "dst")):
        extra = set(os.listdir(vm.dir)) - {"serial.log", "stderr.log", "vm.sock"}
        check(not extra, f"{name} left {extra}")
        if os.path.exists(vm.api) and vm.proc.poll() is not None:
            check(name in killed, f"{name} exited cleanly but left its API socket")
            check(refuses(vm.api), f"{name}'s stale socket still answers")


def run_cell(point, action, outcome, external_delay=None, external_side=None):
    port = free_port()
    uri = f"tcp:127.0.0.1:{port}"
    fault = {"TERN_FAULT": f"{point}:{action}"} if point else None
    side = external_side or point[:3]
    dst = Vmm(["--incoming", uri] + KA, env=fault if side == "dst" else None)
    src = Vmm(["--kernel", GUEST, "--memory", "64M", "--cmdline", GUEST_CMDLINE],
              env=fault if side == "src" else None)
    try:
        dst.wait_api_socket()
        src.wait_for(r"^TG FILLED", timeout=60)
        slow = ["--bandwidth", "32"] if external_delay is not None else []
        # a pass-N point needs a second pass for sure: a slow first pass (the
        # guest dirties pages meanwhile) and a limit no pass can meet; with
        # parallel channels pass 1 of this small guest can otherwise end
        # before the guest wrote anything, and the migration stops after it
        if point and point.endswith("passN"):
            slow = ["--bandwidth", "32", "--downtime-ms", "1"]
        r = run([CLI, "--vmm", src.api, "migrate", uri] + KA + slow)
        check(r.returncode == 0, f"migrate start: {r.stdout} {r.stderr}")
        victim = src if side == "src" else dst
        other = dst if side == "src" else src
        if external_delay is not None:
            time.sleep(external_delay)
            if victim.proc.poll() is None:
                victim.proc.send_signal(signal.SIGKILL)
            victim.proc.wait()
            got = settle_after_kill(src, dst, side)
        elif action == "kill":
            rc = wait_exit(victim, 30)
            check(rc == -signal.SIGKILL, f"{side} did not die at {point}: rc {rc}; "
                  f"{victim.stderr()[-300:]!r}")
            got = settle_after_kill(src, dst, side)
        else:
            got = stop_cell(src, dst, victim, other, side)
        ok = got in outcome if isinstance(outcome, set) else got == outcome
        check(ok, f"{point}:{action}: expected {outcome}, got {got}")
        check_leftovers(src, dst, {side} if action == "kill" or external_delay else set())
        return got
    finally:
        src.kill()
        dst.kill()


def dst_lost(dst):
    """The source was killed and the destination gave up cleanly."""
    check(dst.proc.returncode == 1, f"dst exit {dst.proc.returncode}")
    err = dst.stderr().strip().splitlines()[-1]
    check("incoming migration failed" in err, f"dst said {err!r}")
    check(not os.path.exists(dst.api), "dst left its API socket")
    return "lost"


def settle_after_kill(src, dst, killed):
    """After one side was SIGKILLed: what runs where. Verifies the guest."""
    if killed == "src":
        deadline = time.time() + 15
        while time.time() < deadline:
            if dst.proc.poll() is not None or vm_state(dst) == "running":
                break
            time.sleep(0.05)
        if dst.proc.poll() is not None:
            return dst_lost(dst)
        check(vm_state(dst) == "running", f"dst state {vm_state(dst)}")
        verify_guest(dst, src)
        return "dst"
    st, m = src.call("GET", "/vm/migration")
    deadline = time.time() + 15
    while m["state"] not in ("completed", "failed", "cancelled", "unconfirmed"):
        check(time.time() < deadline, f"migration stuck in {m['state']}")
        time.sleep(0.05)
        st, m = src.call("GET", "/vm/migration")
    if m["state"] == "failed":
        check(vm_state(src) == "running", f"src state {vm_state(src)} after failure")
        verify_guest(src, src)
        return "src"
    if m["state"] == "unconfirmed":
        # the operator's check: the destination process is gone, the
        # source holds the VM paused and refuses to resume it
        check(vm_state(src) == "paused", f"src state {vm_state(src)} when unconfirmed")
        st, resp = src.call("POST", "/vm/resume")
        check(st == 409, f"resume when unconfirmed: {st} {resp}")
        return "unconfirmed"
    check(m["state"] == "completed", f"state {m}")
    check(wait_exit(src, 15) == 0, "source did not exit after completing")
    return "lost"


def stop_cell(src, dst, victim, other, side):
    """The victim stopped itself; the other side gives up after the
    keepalive (or goes on); continue the victim and see who runs."""
    deadline = time.time() + 30
    while time.time() < deadline and "TERN_FAULT: stop" not in victim.stderr():
        time.sleep(0.05)
    check("TERN_FAULT: stop" in victim.stderr(), f"{side} never stopped")
    if side == "src":
        check(wait_exit(dst, 20) == 1, "dst did not give up on a stopped source")
        victim.proc.send_signal(signal.SIGCONT)
        return settle_after_kill(src, dst, "dst")
    # dst stopped after READY: the source sends GO and waits for RUNNING
    # until the keepalive gives up (unconfirmed); continued, dst runs
    deadline = time.time() + 20
    m = {"state": ""}
    while m["state"] != "unconfirmed" and time.time() < deadline:
        time.sleep(0.1)
        m = src.call("GET", "/vm/migration")[1]
    check(m["state"] == "unconfirmed", f"src state {m}")
    victim.proc.send_signal(signal.SIGCONT)
    deadline = time.time() + 10
    while vm_state(dst) != "running" and time.time() < deadline:
        time.sleep(0.05)
    check(vm_state(dst) == "running", f"dst {vm_state(dst)} after SIGCONT")
    check(vm_state(src) == "paused", f"src {vm_state(src)}: two copies?")
    verify_guest(dst, src)
    # the operator's step for `unconfirmed`: the destination runs it, so
    # the source's paused copy is stopped
    src.proc.send_signal(signal.SIGTERM)
    check(wait_exit(src, 10) is not None, "source did not stop on SIGTERM")
    return "dst"


def mig_state(vm):
    st, m = vm.call("GET", "/vm/migration")
    return m if st == 200 else {"state": f"http {st}", "error": str(m)}


def quiet(vm, secs=1.0):
    """The guest prints nothing for secs: it does not run."""
    n = len(vm.output())
    time.sleep(secs)
    return len(vm.output()) == n


def guest_runs_clean(vm, where):
    n = len(vm.output())
    vm.wait_for(r"^TG STAT ", timeout=30, start=n)
    check_no_errors(vm.output(), where)


def pc_lost_checks(dst):
    """Source gone after GO: the destination waits paused, says so in its
    API, runs no guest, and ends on SIGTERM with a clear message."""
    m = mig_state(dst)
    check(m["state"] == "postcopy-paused" and m["error"], f"dst migration {m}")
    check(vm_state(dst) == "postcopy-paused", f"dst GET /vm: {vm_state(dst)}")
    time.sleep(0.3)
    check(quiet(dst), "destination guest runs with pages missing")
    dst.proc.send_signal(signal.SIGTERM)
    rc = wait_exit(dst, 10)
    check(rc is not None and rc != 0, f"dst exit {rc} after SIGTERM")
    check("VM lost: post-copy was paused" in dst.stderr(), f"dst said {dst.stderr()[-300:]!r}")
    check(not os.path.exists(dst.api), "dst left its API socket")
    return "pc-lost"


def src_paused_checks(src, booted_fill):
    """Destination gone after GO: the source keeps the VM paused until the
    operator abandons the destination and resumes it here."""
    check(vm_state(src) == "paused", f"src state {vm_state(src)}")
    check(src.call("POST", "/vm/resume")[0] != 200, "resume allowed after GO")
    check(quiet(src), "source guest runs after GO")
    r = run([CLI, "--vmm", src.api, "migrate-abandon", "--resume-source"])
    check(r.returncode == 0, f"abandon: {r.returncode} {r.stderr}")
    deadline = time.time() + 15
    while mig_state(src)["state"] != "postcopy-failed" and time.time() < deadline:
        time.sleep(0.05)
    check(vm_state(src) == "running", f"src {vm_state(src)} after abandon")
    if booted_fill:
        verify_guest(src, src)
    else:
        guest_runs_clean(src, "source after abandon")
    return "src-paused"


def settle_pc(src, dst, killed, booted_fill=True):
    deadline = time.time() + 20
    if killed == "src":
        while time.time() < deadline and dst.proc.poll() is None and \
                mig_state(dst)["state"] != "postcopy-paused":
            time.sleep(0.05)
        if dst.proc.poll() is not None:
            return dst_lost(dst)
        return pc_lost_checks(dst)
    final = ("completed", "failed", "cancelled", "unconfirmed", "postcopy-failed",
             "postcopy-paused")
    while mig_state(src)["state"] not in final:
        check(time.time() < deadline, f"migration stuck in {mig_state(src)}")
        time.sleep(0.05)
    m = mig_state(src)
    if m["state"] == "failed":
        check(vm_state(src) == "running", f"src state {vm_state(src)} after failure")
        verify_guest(src, src)
        return "src"
    if m["state"] == "postcopy-paused":
        return src_paused_checks(src, booted_fill)
    return m["state"]


def pc_cut_and_recover(src, dst, prx, uri):
    """Cut post-copy's connection, wait until both sides are paused, then
    ask for recovery (the fault fires in its handshake)."""
    deadline = time.time() + 60
    while mig_state(src)["state"] != "postcopy-active":
        check(time.time() < deadline, f"no post-copy: {mig_state(src)}")
        time.sleep(0.02)
    prx.cut()
    deadline = time.time() + 20
    while mig_state(src)["state"] != "postcopy-paused" or \
            mig_state(dst)["state"] != "postcopy-paused":
        check(time.time() < deadline, f"not both paused: {mig_state(src)} {mig_state(dst)}")
        time.sleep(0.05)
    run([CLI, "--vmm", src.api, "migrate-recover", uri])   # may die with the source


def run_pc_cell(point, action, outcome, recover):
    from test_postcopy import Proxy
    port = free_port()
    uri = f"tcp:127.0.0.1:{port}"
    fault = {"TERN_FAULT": f"{point}:{action}"}
    side = point[:3]
    dst = Vmm(["--incoming", uri] + KA, env=fault if side == "dst" else None)
    src = Vmm(["--kernel", GUEST, "--memory", "64M", "--cmdline",
               PC_RECOVER_CMDLINE if recover else GUEST_CMDLINE],
              env=fault if side == "src" else None)
    prx = Proxy(port) if recover else None
    try:
        dst.wait_api_socket()
        src.wait_for(r"^TG FILLED" if not recover else r"^TG STAT ", timeout=60)
        # slow and unthrottled, so that post-copy starts before pre-copy could finish
        extra = ["--bandwidth", "4", "--auto-converge", "off"] if recover else []
        r = run([CLI, "--vmm", src.api, "migrate", prx.uri if recover else uri, "--postcopy"]
                + KA + extra)
        check(r.returncode == 0, f"migrate start: {r.stdout} {r.stderr}")
        st, resp = src.call("POST", "/vm/migration/postcopy")
        check(st == 200, f"postcopy switch: {st} {resp}")
        if recover:
            pc_cut_and_recover(src, dst, prx, uri)
        victim = src if side == "src" else dst
        rc = wait_exit(victim, 30)
        check(rc == -signal.SIGKILL, f"{side} did not die at {point}: rc {rc}; "
              f"{victim.stderr()[-300:]!r}")
        got = settle_pc(src, dst, side, booted_fill=not recover)
        check(got == outcome, f"{point}:{action}: expected {outcome}, got {got}")
        check_leftovers(src, dst, {side})
        return got
    finally:
        if prx:
            prx.close()
        src.kill()
        dst.kill()


@tap.case()
def postcopy_fault_point_matrix():
    failures = []
    for point, action, outcome, recover in PC_MATRIX:
        t0 = time.time()
        try:
            got = run_pc_cell(point, action, outcome, recover)
            RESULTS.append((point, action, outcome, got, time.time() - t0))
        except Exception as e:  # noqa: BLE001 - collect every cell
            failures.append(f"{point}:{action}: {e}")
            RESULTS.append((point, action, outcome, f"FAIL {e}"[:80], time.time() - t0))
        print(f"# pc {point:20} {action:5} expect {outcome:16} -> {RESULTS[-1][3]} "
              f"({RESULTS[-1][4]:.1f}s)", flush=True)
    check(not failures, "; ".join(failures))


@tap.case()
def fault_point_matrix():
    failures = []
    for point, action, outcome in MATRIX:
        t0 = time.time()
        try:
            got = run_cell(point, action, outcome)
            RESULTS.append((point, action, outcome, got, time.time() - t0))
        except Exception as e:  # noqa: BLE001 - collect every cell
            failures.append(f"{point}:{action}: {e}")
            RESULTS.append((point, action, outcome, f"FAIL {e}"[:80], time.time() - t0))
        want = "|".join(sorted(outcome)) if isinstance(outcome, set) else outcome
        print(f"# {point:20} {action:5} expect {want:16} -> {RESULTS[-1][3]} "
              f"({RESULTS[-1][4]:.1f}s)", flush=True)
    check(not failures, "; ".join(failures))


@tap.case()
def external_sigkill_at_random_moments():
    # any moment: the outcome depends on the step reached, the invariants not
    seed = int(os.environ.get("TERN_CRASH_SEED") or time.time_ns() % 100000)
    rnd = random.Random(seed)
    print(f"# TERN_CRASH_SEED={seed}", flush=True)
    allowed = {"src": {"lost", "dst"}, "dst": {"src", "unconfirmed", "lost"}}
    for side in ("src", "dst", "src", "dst"):
        delay = rnd.uniform(0, 2.0)
        got = run_cell(None, "kill", allowed[side], external_delay=delay, external_side=side)
        print(f"# external SIGKILL of {side} {delay:.2f}s after start -> {got}", flush=True)


if __name__ == "__main__":
    status = tap.run()
    sys.exit(status)
