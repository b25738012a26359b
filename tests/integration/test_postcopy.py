#!/usr/bin/env python3
"""test_postcopy.py - post-copy migrations of a guest that dirties memory
faster than the capped link carries it: a switch asked for mid-migration,
a switch as the timeout action, and the destination killed during
post-copy (the source must never run the guest again). The guest verifies
every page on the destination."""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from harness import CLI, Pair, Tap, check, check_no_errors, run  # noqa: E402

tap = Tap()
HOT = "tg.wss=64M tg.rate=max tg.fill=0 tg.report_ms=250"


def guest_alive_and_clean(vm, where):
    n = len(vm.output())
    vm.wait_for(r"^TG STAT .*maxstall_all_us=\d+\n", timeout=60, start=n)
    check_no_errors(vm.output(), where)


def wait_final(p, timeout=180):
    return p.wait_state(("completed", "failed", "cancelled", "unconfirmed",
                         "postcopy-failed", "postcopy-paused"), timeout=timeout)


@tap.case()
def postcopy_requested_completes():
    with Pair(HOT, memory="256M") as p:
        p.wait_ready()
        r = p.migrate("--bandwidth", "20", "--auto-converge", "off", "--postcopy", wait=False)
        check(r.returncode == 0, f"migrate: {r.returncode} {r.stderr}")
        p.wait_state(("active",), timeout=30)
        while p.status()["pass"] < 2:
            time.sleep(0.1)
        r = run([CLI, "--vmm", p.src.api, "migrate-postcopy"])
        check(r.returncode == 0, f"migrate-postcopy: {r.returncode} {r.stdout} {r.stderr}")
        m = wait_final(p)
        check(m["state"] == "completed", f"{m}")
        check(m["postcopy_bg_pages"] + m["postcopy_requests"] > 0, f"no post-copy pages: {m}")
        check("post-copy" in m["strategy"], f"{m['strategy']}")
        guest_alive_and_clean(p.dst, "destination")
        rc = p.src.wait_exit(15)
        check(rc == 0, f"source exit {rc}")


@tap.case()
def timeout_action_postcopy_completes():
    with Pair(HOT, memory="256M") as p:
        p.wait_ready()
        r = p.migrate("--bandwidth", "20", "--auto-converge", "off",
                      "--completion-timeout", "8", "--timeout-action", "postcopy",
                      timeout=300)
        check(r.returncode == 0, f"migrate exit {r.returncode}: {r.stdout[-800:]}")
        check("post-copy" in r.stdout, f"summary: {r.stdout[-800:]}")
        guest_alive_and_clean(p.dst, "destination")


@tap.case()
def destination_killed_in_postcopy_never_resumes_source():
    with Pair(HOT, memory="256M") as p:
        p.wait_ready()
        # slow link: post-copy lasts long enough to kill the destination in it
        r = p.migrate("--bandwidth", "4", "--auto-converge", "off", "--postcopy", wait=False)
        check(r.returncode == 0, f"migrate: {r.returncode} {r.stderr}")
        p.wait_state(("active",), timeout=30)
        st, _ = p.src.call("POST", "/vm/migration/postcopy")
        check(st == 200, f"postcopy switch: {st}")
        p.wait_state(("postcopy-active",), timeout=120)
        p.dst.kill()
        m = wait_final(p, timeout=60)
        check(m["state"] == "postcopy-failed", f"{m}")
        st, info = p.src.call("GET", "/vm")
        check(info["state"] == "paused", f"source VM must stay paused: {info}")
        n = len(p.src.output())
        time.sleep(1.0)
        check(len(p.src.output()) == n, "source guest printed: it runs again")
        check(p.src.proc.poll() is None, "source process left with the frozen copy")


@tap.case(needs_kvm=False)
def postcopy_needs_to_be_allowed():
    r = run([CLI, "--vmm", "/nonexistent.sock", "migrate", "tcp:127.0.0.1:1",
             "--timeout-action", "later"])
    check(r.returncode == 2 and "--timeout-action" in r.stderr, f"{r.returncode} {r.stderr!r}")


if __name__ == "__main__":
    sys.exit(tap.run())
