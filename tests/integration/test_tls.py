#!/usr/bin/env python3
"""test_tls.py - migration over TLS 1.3 with mutual authentication, and
every way a peer is refused: a destination whose certificate comes from
another CA (self-signed), a client without a certificate, a certificate
for the wrong host, an expired one, a plain source to a TLS destination
and a TLS source to a plain one. Each refusal must name the problem, the
source keeps running its VM, the destination exits non-zero and nothing
is left behind (its port is free again). Also `tern pki` and local
access: the API socket is 0600 and ours, --incoming binds only the given
address."""
import os
import shutil
import socket
import ssl
import stat
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
from harness import (CLI, GUEST, VMM, Tap, Vmm, check, check_no_errors,  # noqa: E402
                     free_port, run, tg_stats)

tap = Tap()
os.environ["TERN_LOG"] = "info"         # the VMMs log the TLS sessions
PKI = tempfile.mkdtemp(prefix="tern-test-tls-")
OTHER = os.path.join(PKI, "other")      # a second, unrelated CA


def pki(*args):
    r = run([CLI, "pki"] + list(args))
    check(r.returncode == 0, f"tern pki {args}: {r.stderr}")
    return r


def setup_pki():
    pki("init", "--dir", PKI, "--cn", "test cluster")
    pki("issue", "src", "--ip", "127.0.0.1", "--dir", PKI)
    pki("issue", "dst", "--ip", "127.0.0.1", "--dir", PKI)
    pki("issue", "named", "--dir", PKI)                 # DNS name only
    pki("issue", "old", "--ip", "127.0.0.1", "--days", "0", "--dir", PKI)
    pki("init", "--dir", OTHER)
    pki("issue", "dst", "--ip", "127.0.0.1", "--dir", OTHER)


def tls_args(name, d=PKI):
    return ["--tls-cert", f"{d}/{name}.pem", "--tls-key", f"{d}/{name}-key.pem",
            "--tls-ca", f"{PKI}/ca.pem"]


class TlsPair:
    def __init__(self, src_tls, dst_tls):
        self.port = free_port()
        self.uri = f"tcp:127.0.0.1:{self.port}"
        self.dst = Vmm(["--incoming", self.uri] + dst_tls)
        self.src = Vmm(["--kernel", GUEST, "--memory", "128M", "--cmdline",
                        "tg.wss=32M tg.rate=max tg.report_ms=200"] + src_tls)

    def wait_ready(self):
        self.dst.wait_api_socket()
        self.src.wait_for(r"^TG FILLED", timeout=120)
        self.src.wait_for(r"^TG STAT ", timeout=30)

    def migrate(self, *extra):
        return run([CLI, "--vmm", self.src.api, "migrate", self.uri, "--wait"] + list(extra),
                   timeout=120)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.src.kill()
        self.dst.kill()


def source_still_runs(p):
    st, info = p.src.call("GET", "/vm")
    check(st == 200 and info["state"] == "running", f"source VM: {st} {info}")
    n = len(tg_stats(p.src.output()))
    deadline = time.time() + 20
    while len(tg_stats(p.src.output())) <= n and time.time() < deadline:
        time.sleep(0.1)
    check(len(tg_stats(p.src.output())) > n, "source guest stopped making progress")
    check_no_errors(p.src.output(), "source")


def port_free(port):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def refused(p, cli, src_msg, dst_msg):
    """The migration failed with src_msg at the source (CLI and status) and
    the destination exited non-zero saying dst_msg; nothing left behind."""
    check(cli.returncode == 1, f"migrate exit {cli.returncode}: {cli.stdout[-300:]}")
    st, m = p.src.call("GET", "/vm/migration")
    check(st == 200 and m["state"] == "failed", f"status {st} {m}")
    check(src_msg in m["error"], f"source error {m['error']!r}, wanted {src_msg!r}")
    check(src_msg in cli.stdout + cli.stderr, f"CLI output lacks {src_msg!r}: {cli.stdout[-300:]}")
    rc = p.dst.wait_exit(30)
    check(rc != 0, f"destination exited {rc}")
    check(dst_msg in p.dst.stderr(), f"destination stderr {p.dst.stderr()[-400:]!r}, wanted {dst_msg!r}")
    check(port_free(p.port), "destination's port still in use")
    source_still_runs(p)


@tap.case()
def migrates_over_tls_every_page_verified():
    with TlsPair(tls_args("src"), tls_args("dst")) as p:
        p.wait_ready()
        cli = p.migrate()
        check(cli.returncode == 0, f"migrate exit {cli.returncode}: {cli.stdout[-600:]} {cli.stderr}")
        check(p.src.wait_exit(15) == 0, f"source: {p.src.stderr()[-300:]!r}")
        check("TLS 1.3 to" in p.src.stderr(), "source did not log the TLS session")
        check("client certificate verified" in p.dst.stderr(), "destination did not verify")
        st, info = p.dst.call("GET", "/vm")
        check(st == 200 and info["state"] == "running", f"destination {st} {info}")
        # the guest re-verifies every page it wrote: one whole sweep, no error
        start = len(p.dst.output())
        for _ in range(3):
            p.dst.wait_for(r"^TG STAT ", start=len(p.dst.output()), timeout=30)
        check(len(p.dst.output()) > start, "guest silent on the destination")
        check_no_errors(p.dst.output(), "destination")
        check_no_errors(p.src.output(), "source")


@tap.case()
def tls_hostname_override():
    """The destination's certificate names 'named' only: dialling 127.0.0.1
    works when tls_hostname says which name to expect."""
    with TlsPair(tls_args("src"), tls_args("named")) as p:
        p.wait_ready()
        cli = p.migrate("--tls-hostname", "named")
        check(cli.returncode == 0, f"migrate exit {cli.returncode}: {cli.stdout[-600:]} {cli.stderr}")
        check(p.src.wait_exit(15) == 0, "source did not exit after handing over")
        check_no_errors(p.dst.output(), "destination")


@tap.case()
def refuses_destination_from_another_ca():
    with TlsPair(tls_args("src"), tls_args("dst", OTHER)) as p:
        p.wait_ready()
        refused(p, p.migrate(), "TLS: peer certificate not signed by the cluster CA",
                "TLS: peer refused our certificate: not signed by its CA")


@tap.case()
def refuses_wrong_host_name():
    with TlsPair(tls_args("src"), tls_args("named")) as p:
        p.wait_ready()
        refused(p, p.migrate(), "TLS: certificate is for host 'named', not '127.0.0.1'",
                "TLS: peer refused our certificate")


@tap.case()
def refuses_expired_certificate():
    with TlsPair(tls_args("src"), tls_args("old")) as p:
        p.wait_ready()
        refused(p, p.migrate(), "TLS: certificate expired: 'old, 127.0.0.1' was valid until",
                "TLS: peer refused our certificate: expired")


@tap.case()
def refuses_plain_source():
    with TlsPair([], tls_args("dst")) as p:
        p.wait_ready()
        refused(p, p.migrate(), "destination requires TLS",
                "TLS: source does not speak TLS (plain TCP) but this destination requires it")


@tap.case()
def refuses_tls_source_at_plain_destination():
    with TlsPair(tls_args("src"), []) as p:
        p.wait_ready()
        refused(p, p.migrate(), "TLS: peer does not speak TLS",
                "source speaks TLS but this destination has no --tls-cert/--tls-key/--tls-ca")


@tap.case(needs_kvm=False)
def refuses_client_without_certificate():
    port = free_port()
    uri = f"tcp:127.0.0.1:{port}"
    with Vmm(["--incoming", uri] + tls_args("dst")) as dst:
        dst.wait_api_socket()
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(f"{PKI}/ca.pem")
        ctx.check_hostname = False
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            try:
                with ctx.wrap_socket(s) as t:
                    t.recv(8)       # the server's alert arrives here (TLS 1.3)
            except (ssl.SSLError, ConnectionError):
                pass
        rc = dst.wait_exit(30)
        check(rc != 0, f"destination exited {rc}")
        check("TLS: peer sent no certificate" in dst.stderr(), f"stderr {dst.stderr()[-300:]!r}")
        check(port_free(port), "destination's port still in use")


@tap.case(needs_kvm=False)
def silent_client_times_out():
    """A peer that connects and says nothing cannot hang the handshake."""
    port = free_port()
    uri = f"tcp:127.0.0.1:{port}"
    with Vmm(["--incoming", uri] + tls_args("dst")) as dst:
        dst.wait_api_socket()
        with socket.create_connection(("127.0.0.1", port), timeout=10):
            rc = dst.wait_exit(40)
        check(rc != 0, f"destination exited {rc}")
        check("handshake timed out" in dst.stderr() or "does not speak TLS" in dst.stderr(),
              f"stderr {dst.stderr()[-300:]!r}")


@tap.case()
def tls_on_needs_an_identity():
    with TlsPair([], []) as p:
        p.wait_ready()
        cli = p.migrate("--tls", "on")
        check(cli.returncode == 1 and "started without --tls-cert" in cli.stderr,
              f"migrate --tls on: {cli.returncode} {cli.stderr!r}")
        source_still_runs(p)


@tap.case(needs_kvm=False)
def vmm_refuses_bad_tls_options():
    r = run(["sh", "-c", f"exec {VMM} --incoming tcp:127.0.0.1:1 "
             f"--tls-cert {PKI}/dst.pem"])
    check(r.returncode == 2 and "all three" in r.stderr, f"{r.returncode} {r.stderr!r}")
    r = run([VMM, "--incoming", "tcp:127.0.0.1:1",
             "--tls-cert", f"{PKI}/dst.pem", "--tls-key", f"{PKI}/src-key.pem",
             "--tls-ca", f"{PKI}/ca.pem", "--api", f"{PKI}/x.sock"])
    check(r.returncode == 1 and "does not match certificate" in r.stderr,
          f"{r.returncode} {r.stderr!r}")


@tap.case(needs_kvm=False)
def pki_files_and_refusals():
    d = os.path.join(PKI, "p")
    pki("init", "--dir", d)
    pki("issue", "h1", "--ip", "10.0.0.1", "--ip", "::1", "--dns", "h1.example", "--dir", d)
    for f, mode in (("ca-key.pem", 0o600), ("h1-key.pem", 0o600), ("ca.pem", 0o644),
                    ("h1.pem", 0o644)):
        m = stat.S_IMODE(os.stat(os.path.join(d, f)).st_mode)
        check(m == mode, f"{f} mode {oct(m)}")
    r = run(["openssl", "x509", "-in", f"{d}/h1.pem", "-noout", "-ext", "subjectAltName"])
    check("DNS:h1, DNS:h1.example, IP Address:10.0.0.1, IP Address:0:0:0:0:0:0:0:1" in r.stdout,
          f"SAN: {r.stdout!r}")
    r = run(["openssl", "verify", "-CAfile", f"{d}/ca.pem", "-purpose", "sslclient", f"{d}/h1.pem"])
    check(r.returncode == 0, f"openssl verify: {r.stdout} {r.stderr}")
    for args, msg in ((["init", "--dir", d], "refusing to overwrite"),
                      (["issue", "h1", "--dir", d], "refusing to overwrite"),
                      (["issue", "no_good", "--dir", d], "not a valid host name"),
                      (["issue", "h2", "--ip", "1.2.3", "--dir", d], "is not an IPv4 or IPv6"),
                      (["issue", "h2", "--dir", d + "/none"], "run 'tern pki init' first")):
        r = run([CLI, "pki"] + args)
        check(r.returncode == 1 and msg in r.stderr, f"pki {args}: {r.returncode} {r.stderr!r}")
    pki("issue", "h1", "--dir", d, "--force")


@tap.case(needs_kvm=False)
def api_socket_is_0600_and_ours():
    port = free_port()
    with Vmm(["--incoming", f"tcp:127.0.0.1:{port}"]) as v:
        v.wait_api_socket()
        st = os.stat(v.api)
        check(stat.S_ISSOCK(st.st_mode), "API path is not a socket")
        check(stat.S_IMODE(st.st_mode) == 0o600, f"API socket mode {oct(st.st_mode)}")
        check(st.st_uid == os.getuid(), f"API socket owner {st.st_uid}, we are {os.getuid()}")


def listeners(port):
    """Local addresses listening on `port` (from /proc/net/tcp and tcp6)."""
    out = []
    for f in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = open(f).read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            local, state = line.split()[1], line.split()[3]
            addr, p = local.split(":")
            if state == "0A" and int(p, 16) == port:
                out.append(addr)
    return out


@tap.case(needs_kvm=False)
def incoming_listens_only_on_the_given_address():
    port = free_port()
    with Vmm(["--incoming", f"tcp:127.0.0.1:{port}"]) as v:
        v.wait_api_socket()
        addrs = listeners(port)
        check(addrs == ["0100007F"], f"listening on {addrs} (want 127.0.0.1 only)")
        # not reachable on another local address
        try:
            other = socket.create_connection(("127.0.0.2", port), timeout=2)
            other.close()
            reached = True
        except OSError:
            reached = False
        check(not reached, "--incoming tcp:127.0.0.1 was reachable on 127.0.0.2")


if __name__ == "__main__":
    try:
        setup_pki()
        sys.exit(tap.run())
    finally:
        shutil.rmtree(PKI, ignore_errors=True)
