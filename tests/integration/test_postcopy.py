#!/usr/bin/env python3
"""test_postcopy.py - post-copy migrations of a guest that dirties memory
faster than the capped link carries it: a switch asked for mid-migration,
a switch as the timeout action, the switch by policy (auto_postcopy), the
network cut (twice) during post-copy and recovered through a proxy, and the
destination killed during post-copy (recovery fails clearly, the source
stays paused until the operator abandons it), and recovery with both VMMs
on TLS, where a peer with another CA's certificate is refused and the
paused destination (postcopy-paused in GET /vm and GET /vm/migration)
keeps waiting for the real source. The guest verifies every page on the
destination."""
import os
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
from harness import CLI, Pair, Tap, VmmPair, check, check_no_errors, run  # noqa: E402

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


class Proxy:
    """A TCP proxy between source and destination that can cut every
    connection it carries (the network breaking), and keeps accepting."""

    def __init__(self, target_port):
        self.target = target_port
        self.ls = socket.socket()
        self.ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.ls.bind(("127.0.0.1", 0))
        self.ls.listen(4)
        self.uri = f"tcp:127.0.0.1:{self.ls.getsockname()[1]}"
        self.lock = threading.Lock()
        self.socks = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.ls.accept()
            except OSError:
                return
            try:
                u = socket.create_connection(("127.0.0.1", self.target))
            except OSError:
                c.close()
                continue
            with self.lock:
                self.socks += [c, u]
            threading.Thread(target=self._pump, args=(c, u), daemon=True).start()
            threading.Thread(target=self._pump, args=(u, c), daemon=True).start()

    @staticmethod
    def _pump(a, b):
        try:
            while True:
                d = a.recv(1 << 16)
                if not d:
                    break
                b.sendall(d)
        except OSError:
            pass
        try:
            b.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def cut(self):
        with self.lock:
            socks, self.socks = self.socks, []
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def close(self):
        self.cut()
        self.ls.close()


def start_postcopy(p, uri, bandwidth):
    """Migrate to uri over a capped link; switch to post-copy after pass 1."""
    r = run([CLI, "--vmm", p.src.api, "migrate", uri, "--bandwidth", str(bandwidth),
             "--auto-converge", "off", "--postcopy"])
    check(r.returncode == 0, f"migrate: {r.returncode} {r.stderr}")
    p.wait_state(("active",), timeout=30)
    st, _ = p.src.call("POST", "/vm/migration/postcopy")
    check(st == 200, f"postcopy switch: {st}")
    p.wait_state(("postcopy-active",), timeout=120)


def both_paused(p, prx, cuts):
    time.sleep(0.5)             # some pages move first
    prx.cut()
    m = p.wait_state(("postcopy-paused",), timeout=60)
    check(m["error"], f"paused without a reason: {m}")
    deadline = time.time() + 30
    while p.dst.stderr().count("postcopy-paused") < cuts and time.time() < deadline:
        time.sleep(0.1)
    check(p.dst.stderr().count("postcopy-paused") == cuts, f"destination: {p.dst.stderr()[-600:]}")
    time.sleep(0.5)             # a guest still printing would show now
    n = len(p.dst.output())
    time.sleep(1.0)
    check(len(p.dst.output()) == n, "destination guest runs while post-copy is paused")
    check(p.src.call("GET", "/vm")[1]["state"] == "paused", "source VM must stay paused")


@tap.case()
def cut_twice_in_postcopy_recovers_and_completes():
    with Pair(HOT, memory="256M") as p:
        prx = Proxy(p.port)
        try:
            p.wait_ready()
            start_postcopy(p, prx.uri, 8)
            both_paused(p, prx, 1)
            r = run([CLI, "--vmm", p.src.api, "migrate-recover"])     # through the proxy
            check(r.returncode == 0, f"recover: {r.returncode} {r.stdout} {r.stderr}")
            m = p.status()
            check(m["state"] in ("postcopy-active", "completed"), f"{m}")
            if m["state"] == "postcopy-active":
                both_paused(p, prx, 2)
                r = run([CLI, "--vmm", p.src.api, "migrate-recover", p.uri])  # direct
                check(r.returncode == 0, f"recover 2: {r.returncode} {r.stdout} {r.stderr}")
            m = wait_final(p)
            check(m["state"] == "completed", f"{m}")
            check(m["postcopy_recoveries"] >= 1, f"{m}")
            guest_alive_and_clean(p.dst, "destination")
        finally:
            prx.close()


@tap.case()
def recover_with_destination_dead_fails_clearly():
    with Pair(HOT, memory="256M") as p:
        p.wait_ready()
        start_postcopy(p, p.uri, 8)
        p.dst.kill()
        m = p.wait_state(("postcopy-paused", "postcopy-failed"), timeout=60)
        check(m["state"] == "postcopy-paused", f"{m}")
        r = run([CLI, "--vmm", p.src.api, "migrate-recover"])
        check(r.returncode != 0 and "recovery failed" in r.stderr,
              f"recover to a dead destination: {r.returncode} {r.stderr}")
        check(p.status()["state"] == "postcopy-paused", f"{p.status()}")
        st, info = p.src.call("GET", "/vm")
        check(info["state"] == "paused", f"source VM must stay paused: {info}")
        n = len(p.src.output())
        time.sleep(1.0)
        check(len(p.src.output()) == n, "source guest printed: it runs again")
        st, _ = p.src.call("POST", "/vm/resume")
        check(st != 200, "a plain resume must be refused after the handover")
        # the operator's explicit choice: the destination is dead, run here
        r = run([CLI, "--vmm", p.src.api, "migrate-abandon", "--resume-source"])
        check(r.returncode == 0, f"abandon: {r.returncode} {r.stderr}")
        m = p.wait_state(("postcopy-failed",), timeout=30)
        check("abandoned" in m["error"], f"{m}")
        check(p.src.call("GET", "/vm")[1]["state"] == "running", "source VM not resumed")
        guest_alive_and_clean(p.src, "source after abandon")


def tls_pki():
    """A cluster CA with src/dst certificates, and an unrelated CA with an
    intruder's certificate (tern pki, as tests/integration/test_tls.py)."""
    import tempfile
    d = tempfile.mkdtemp(prefix="tern-test-pc-tls-")
    other = os.path.join(d, "other")
    for args in (["init", "--dir", d], ["issue", "src", "--ip", "127.0.0.1", "--dir", d],
                 ["issue", "dst", "--ip", "127.0.0.1", "--dir", d],
                 ["init", "--dir", other],
                 ["issue", "intruder", "--ip", "127.0.0.1", "--dir", other]):
        r = run([CLI, "pki"] + args)
        check(r.returncode == 0, f"tern pki {args}: {r.stderr}")
    return d, other


def intruder_connects(port, other):
    """A peer with a certificate from another CA tries the recovery."""
    import ssl
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.load_cert_chain(f"{other}/intruder.pem", f"{other}/intruder-key.pem")
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
            with ctx.wrap_socket(raw) as s:
                s.sendall(b"PC_RESUME?")
                s.recv(100)
    except (OSError, ssl.SSLError):
        pass


@tap.case()
def recovery_under_tls_refuses_a_stranger():
    import shutil
    from harness import GUEST, Vmm, free_port
    d, other = tls_pki()

    def tls(name):
        return ["--tls-cert", f"{d}/{name}.pem", "--tls-key", f"{d}/{name}-key.pem",
                "--tls-ca", f"{d}/ca.pem"]
    port = free_port()
    uri = f"tcp:127.0.0.1:{port}"
    dst = Vmm(["--incoming", uri] + tls("dst"))
    src = Vmm(["--kernel", GUEST, "--memory", "256M", "--cmdline", HOT] + tls("src"))
    prx = Proxy(port)
    try:
        dst.wait_api_socket()
        src.wait_for(r"^TG STAT ", timeout=120)

        p = VmmPair()   # what start_postcopy/both_paused use, over these VMMs
        p.src, p.dst, p.uri = src, dst, uri
        p.status = lambda: src.call("GET", "/vm/migration")[1]
        start_postcopy(p, prx.uri, 8)
        both_paused(p, prx, 1)
        st, m = dst.call("GET", "/vm/migration")
        check(st == 200 and m["state"] == "postcopy-paused" and m["error"],
              f"destination status while paused: {st} {m}")
        st, info = dst.call("GET", "/vm")
        check(info.get("state") == "postcopy-paused", f"destination GET /vm: {info}")
        intruder_connects(port, other)
        deadline = time.time() + 10
        while "recovery connection refused" not in dst.stderr() and time.time() < deadline:
            time.sleep(0.1)
        check("recovery connection refused" in dst.stderr(), f"dst: {dst.stderr()[-600:]}")
        check(dst.proc.poll() is None, "destination gave up after the stranger")
        check(dst.call("GET", "/vm/migration")[1]["state"] == "postcopy-paused",
              "destination stopped waiting for the real source")
        r = run([CLI, "--vmm", src.api, "migrate-recover", uri])         # TLS again
        check(r.returncode == 0, f"recover: {r.returncode} {r.stdout} {r.stderr}")
        m = wait_final(p)
        check(m["state"] == "completed", f"{m}")
        check(m["postcopy_recoveries"] >= 1, f"{m}")
        guest_alive_and_clean(dst, "destination")
    finally:
        prx.close()
        src.kill()
        dst.kill()
        shutil.rmtree(d, ignore_errors=True)


@tap.case()
def auto_postcopy_completes():
    with Pair(HOT, memory="256M") as p:
        p.wait_ready()
        r = p.migrate("--bandwidth", "20", "--auto-converge", "off", "--auto-postcopy",
                      timeout=300)
        check(r.returncode == 0, f"migrate exit {r.returncode}: {r.stdout[-800:]}")
        check("post-copy" in r.stdout, f"summary: {r.stdout[-800:]}")
        guest_alive_and_clean(p.dst, "destination")


@tap.case(needs_kvm=False)
def postcopy_needs_to_be_allowed():
    r = run([CLI, "--vmm", "/nonexistent.sock", "migrate", "tcp:127.0.0.1:1",
             "--timeout-action", "later"])
    check(r.returncode == 2 and "--timeout-action" in r.stderr, f"{r.returncode} {r.stderr!r}")


if __name__ == "__main__":
    sys.exit(tap.run())
