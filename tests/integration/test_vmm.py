#!/usr/bin/env python3
"""test_vmm.py - tern-vmm as a user runs it: boot the tiny test guest
(single and SMP), pause/resume through the API and the CLI, exit statuses,
signals, and every kind of bad input getting a one-line error."""
import os
import re
import signal
import stat
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
from harness import (CLI, GUEST, VMM, Tap, Vmm, api_call, check, run,  # noqa: E402
                     tg_stats)

tap = Tap()
GUEST_ARGS = ["--kernel", GUEST, "--memory", "256M"]


@tap.case()
def boots_tiny_guest_one_vcpu():
    with Vmm(GUEST_ARGS + ["--cmdline", "tg.wss=32M tg.rate=200 tg.report_ms=200"]) as vm:
        m = vm.wait_for(r"^TG BOOT (.*)$", timeout=30)
        check("cpus=1" in m.group(1), f"BOOT line: {m.group(1)}")
        vm.wait_for(r"^TG FILLED pages=\d+", timeout=60)
        vm.wait_for(r"^TG STAT .*cpu=0 .*$", timeout=30)
        time.sleep(0.6)
        stats = tg_stats(vm.output())
        check(stats and all(s["errors"] == "0" for s in stats), f"errors in {stats}")
        check(float(stats[-1]["writes_mib"]) > 0, "guest wrote nothing")


@tap.case()
def boots_tiny_guest_smp():
    for n in (2, 4):
        with Vmm(GUEST_ARGS + ["--vcpus", str(n), "--cmdline",
                               "tg.wss=64M tg.rate=200 tg.report_ms=200"]) as vm:
            m = vm.wait_for(r"^TG BOOT (.*)$", timeout=60)
            check(f"cpus={n}" in m.group(1), f"{n} vCPUs: BOOT line {m.group(1)}")
            for cpu in range(n):
                vm.wait_for(rf"^TG STAT .*cpu={cpu} ", timeout=60)
            check(all(s["errors"] == "0" for s in tg_stats(vm.output())), "errors")


@tap.case()
def guest_exit_status_through_debug_port():
    with Vmm(GUEST_ARGS + ["--cmdline", "tg.wss=16M tg.rate=100 tg.duration=2"]) as vm:
        rc = vm.wait_exit(60)
        check(rc == 64, f"exit status {rc}, want 64 (debug-exit value 0)")
        vm.wait_for(r"^TG DONE errors=0", timeout=1)


@tap.case()
def oracle_detects_corruption():
    """The integrity oracle must be able to fail: a deliberately corrupted
    page is reported and the guest exits with value 1 (status 65)."""
    with Vmm(GUEST_ARGS + ["--cmdline",
                           "tg.wss=16M tg.rate=50 tg.duration=3 tg.selftest_corrupt=1"]) as vm:
        vm.wait_for(r"^TG ERROR ", timeout=60)
        rc = vm.wait_exit(60)
        check(rc == 65, f"exit status {rc}, want 65")


def console_len(vm):
    return len(vm.output())


@tap.case()
def pause_and_resume_with_cli():
    with Vmm(GUEST_ARGS + ["--vcpus", "2", "--cmdline",
                           "tg.wss=32M tg.rate=100 tg.report_ms=100"]) as vm:
        vm.wait_for(r"^TG STAT .*cpu=1 ", timeout=60)
        r = run([CLI, "--vmm", vm.api, "pause"])
        check(r.returncode == 0, f"pause: {r.returncode} {r.stderr}")
        r = run([CLI, "--vmm", vm.api, "status"])
        check(r.returncode == 0 and re.search(r"state:\s+paused", r.stdout),
              f"status after pause: {r.stdout!r} {r.stderr!r}")
        before = console_len(vm)
        t_pause = time.time()
        time.sleep(1.5)
        check(console_len(vm) == before, "guest printed while paused")
        last = tg_stats(vm.output())[-1]
        r = run([CLI, "--vmm", vm.api, "resume"])
        check(r.returncode == 0, f"resume: {r.stderr}")
        paused_ms = (time.time() - t_pause) * 1000
        # a report whose time was read just before the pause is printed
        # just after it: compare with the third report after resuming
        pos = before
        for _ in range(3):
            pos = vm.wait_for(r"^TG STAT .*maxstall_all_us=\d+\n", timeout=10, start=pos).end()
        nxt = tg_stats(vm.output()[before:])[2]
        jump = int(nxt["t_ms"]) - int(last["t_ms"])
        # nothing ran while paused, and the guest's clock (TSC) kept going
        check(jump >= paused_ms * 0.8, f"guest clock moved {jump} ms over a {paused_ms:.0f} ms pause")
        r = run([CLI, "--vmm", vm.api, "--json", "status"])
        check('"running"' in r.stdout, f"json status: {r.stdout!r}")
        check(all(s["errors"] == "0" for s in tg_stats(vm.output())), "errors")


@tap.case()
def api_rejects_bad_requests():
    with Vmm(GUEST_ARGS + ["--cmdline", "tg.wss=16M"]) as vm:
        st, info = vm.wait_api()
        check(st == 200 and info["state"] == "running" and info["vcpus"] == 1,
              f"GET /vm: {st} {info}")
        check(info["memory_bytes"] == 256 << 20, f"memory_bytes {info}")
        mode = stat.S_IMODE(os.stat(vm.api).st_mode)
        check(mode == 0o600, f"socket mode {oct(mode)}")
        cases = [("POST", "/vm/resume", None, 409), ("POST", "/vm/pause", "{bad", 400),
                 ("POST", "/vm/pause", {"force": True}, 400), ("GET", "/nope", None, 404),
                 ("DELETE", "/vm", None, 405), ("POST", "/vm/pause", "[]", 400)]
        for method, path, body, want in cases:
            st, resp = vm.call(method, path, body)
            check(st == want, f"{method} {path} {body!r}: {st}, want {want}")
            check(isinstance(resp, dict) and resp.get("error"),
                  f"{method} {path}: no error message: {resp!r}")
        # none of that changed the state
        st, info = vm.call("GET", "/vm")
        check(info["state"] == "running", f"state after bad requests: {info}")
        r = run([CLI, "--vmm", vm.api, "resume"])
        check(r.returncode == 1 and "not paused" in r.stderr, f"cli resume: {r.stderr!r}")
        check(run([CLI, "--vmm", vm.api, "pause"]).returncode == 0, "pause")
        r = run([CLI, "--vmm", vm.api, "pause"])
        check(r.returncode == 1 and "already paused" in r.stderr, f"cli pause twice: {r.stderr!r}")


@tap.case()
def api_socket_in_use_is_refused():
    with Vmm(GUEST_ARGS) as vm:
        vm.wait_api()
        r = run([VMM, "--kernel", GUEST, "--serial", "none", "--api", vm.api], timeout=20)
        check(r.returncode == 1, f"second VMM exit {r.returncode}")
        check("in use" in r.stderr and r.stderr.count("\n") == 1,
              f"stderr: {r.stderr!r}")
        check(vm.call("GET", "/vm")[0] == 200, "first VMM's API broken")


@tap.case()
def shutdown_through_api():
    with Vmm(GUEST_ARGS) as vm:
        vm.wait_api()
        r = run([CLI, "--vmm", vm.api, "shutdown"])
        check(r.returncode == 0, f"shutdown: {r.stderr}")
        rc = vm.wait_exit(20)
        check(rc == 0, f"exit {rc}")
        check(not os.path.exists(vm.api), "API socket left behind")


@tap.case()
def signals_end_cleanly():
    for sig in (signal.SIGTERM, signal.SIGINT):
        with Vmm(GUEST_ARGS + ["--vcpus", "2"]) as vm:
            vm.wait_for(r"^TG BOOT", timeout=60)
            vm.proc.send_signal(sig)
            rc = vm.wait_exit(20)
            check(rc == 0, f"{sig.name}: exit {rc}")
            check(f"signal {int(sig)}" in vm.stderr(), f"stderr {vm.stderr()!r}")
            check(not os.path.exists(vm.api), "API socket left behind")


def expect_error(args, status, needle, env=None):
    r = run([VMM] + args, timeout=30) if env is None else \
        __import__("subprocess").run([VMM] + args, capture_output=True, text=True,
                                     timeout=30, env=env)
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    check(r.returncode == status, f"{args}: exit {r.returncode}, want {status}; {r.stderr!r}")
    check(lines and needle in lines[0], f"{args}: stderr {r.stderr!r} lacks {needle!r}")
    check(lines[0].startswith("tern-vmm: "), f"not a tern-vmm error line: {lines[0]!r}")


@tap.case(needs_kvm=False)
def bad_command_lines():
    expect_error(["--kernel", GUEST, "--vcpus", "0"], 2, "--vcpus")
    expect_error(["--kernel", GUEST, "--vcpus", "300"], 2, "--vcpus")
    expect_error(["--kernel", GUEST, "--bogus"], 2, "unknown option '--bogus'")
    expect_error(["--kernel", GUEST, "--memory", "lots"], 2, "--memory")
    expect_error([], 2, "--kernel FILE is required")


@tap.case()
def bad_files_and_resources():
    d = tempfile.mkdtemp(prefix="tern-bad-")
    notbz = os.path.join(d, "notbz")
    with open(notbz, "wb") as f:
        f.write(b"\x7fELF" + b"\0" * 8000)
    expect_error(["--kernel", notbz, "--serial", "none"], 1, "bzImage")
    expect_error(["--kernel", os.path.join(d, "missing"), "--serial", "none"], 1,
                 "cannot open kernel")
    big = os.path.join(d, "initrd")
    with open(big, "wb") as f:
        f.truncate(200 << 20)
    expect_error(["--kernel", GUEST, "--initrd", big, "--memory", "64M", "--serial", "none"],
                 1, "initrd")
    expect_error(["--kernel", GUEST, "--memory", "64T", "--serial", "none"], 1,
                 "host has only")
    env = dict(os.environ, TERN_KVM_DEVICE="/nonexistent/kvm")
    expect_error(["--kernel", GUEST, "--serial", "none"], 1, "/nonexistent/kvm", env=env)
    expect_error(["--kernel", GUEST, "--serial", "file:/nonexistent/dir/log"], 1, "--serial")


if __name__ == "__main__":
    sys.exit(tap.run())
