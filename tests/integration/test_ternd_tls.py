#!/usr/bin/env python3
"""test_ternd_tls.py - ternd with the cluster's certificates (`tern pki`):
three ternd's in their own network namespaces (test_ternd.py's cluster),
each with a host certificate whose IP SAN is its address, no peer_token (the
daemons know each other by certificate only). A VM migrates there and back
over TLS with its pages verified, and its tern-vmm processes (the VM's and
the receiving --incoming one) carry --tls-cert/--tls-key/--tls-ca. Refused:
a CLI with a certificate from another CA (during the handshake, logged by
ternd), a CLI trusting another CA, a CLI dialling a name the server's
certificate does not carry, plain HTTP to the HTTPS port, and a migration to
a ternd whose certificate is for another host. Tokens still work over TLS.
Needs root."""
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
from harness import CLI, Tap, check, run  # noqa: E402
import test_ternd as tt  # noqa: E402

tap = Tap()


def pki(*args):
    r = run([CLI, "pki", *args], timeout=60)
    if r.returncode:
        raise RuntimeError(f"tern pki {' '.join(args)}: {r.stderr}")


class TlsHost(tt.Host):
    """A tt.Host whose CLI calls over TCP use https and a client identity."""

    def __init__(self, top, idx, pkidir, cert_for=None):
        name, ip = f"h{idx}", f"{tt.NET}.{idx}"
        who = cert_for or name
        conf = dict(peer_token="", tls_cert=f"{pkidir}/{who}.pem",
                    tls_key=f"{pkidir}/{who}-key.pem", tls_ca=f"{pkidir}/ca.pem",
                    tls_peers="h1,h2,h3", tls_admins="ops")
        super().__init__(top, idx, **conf)
        self.pki, self.https = pkidir, f"https://{ip}:7070"
        assert self.name == name

    def tcp(self, *args, ca=None, cert="ops", host=None, token=None, pkidir=None):
        """The CLI over TCP inside the namespace, as `cert` (None: none)."""
        d = pkidir or self.pki
        cmd = ["ip", "netns", "exec", self.ns, CLI, "--host", host or self.https,
               "--tls-ca", ca or f"{self.pki}/ca.pem"]
        if cert:
            cmd += ["--tls-cert", f"{d}/{cert}.pem", "--tls-key", f"{d}/{cert}-key.pem"]
        if token:
            cmd += ["--token", token]
        return run(cmd + list(args), timeout=120)

    def log_text(self):
        return open(os.path.join(self.dir, "ternd.log"), errors="replace").read()


class TlsCluster(tt.Cluster):
    def __enter__(self):
        tt.sh("ip", "netns", "add", self.hub)
        tt.sh("ip", "-n", self.hub, "link", "add", "br0", "type", "bridge")
        tt.sh("ip", "-n", self.hub, "link", "set", "br0", "up")
        self.pki = os.path.join(self.top, "pki")
        self.other = os.path.join(self.top, "other")
        pki("init", "--dir", self.pki)
        for i in (1, 2, 3):
            pki("issue", f"h{i}", "--ip", f"{tt.NET}.{i}", "--dir", self.pki)
        pki("issue", "ops", "--dir", self.pki)
        pki("init", "--dir", self.other, "--cn", "someone else's CA")
        pki("issue", "ops", "--dir", self.other)
        # h3 runs with h2's certificate: a peer with the wrong host's cert
        for i, cert_for in ((1, None), (2, None), (3, "h2")):
            h = TlsHost(self.top, i, self.pki, cert_for)
            h.netns(self.hub)
            self.hosts.append(h)
            h.start()
        return self


def cmdline(pid):
    return open(f"/proc/{pid}/cmdline", "rb").read().decode(errors="replace").split("\0")


def check_tls_args(h, pid, what):
    cmd = cmdline(pid)
    for opt, f in (("--tls-cert", f"{h.pki}/{h.name}.pem"), ("--tls-key", f"{h.pki}/{h.name}-key.pem"),
                   ("--tls-ca", f"{h.pki}/ca.pem")):
        check(opt in cmd and cmd[cmd.index(opt) + 1] == f, f"{what}: no {opt} {f}: {cmd}")


def vmm_log(h, vm):
    try:
        return open(os.path.join(h.dir, "state", "vms", vm, "vmm.log"), errors="replace").read()
    except FileNotFoundError:
        return ""


@tap.case()
def tls_cluster_migrates_and_refuses_strangers():
    os.environ["TERN_LOG"] = "info"     # ternd and its tern-vmm's log the TLS handshakes
    with TlsCluster() as c:
        h1, h2, h3 = c.hosts
        tt.define_start(h1, "vm1")
        pids = tt.vmm_pids(c.top, "vm1")
        check(len(pids) == 1, f"vm1 tern-vmm's: {pids}")
        check_tls_args(h1, pids[0], "h1's tern-vmm for vm1")

        # the CLI as "ops" (tls_admins) over https, no token: admin
        r = h1.tcp("vm", "migrate", "vm1", "--to", h2.https, "--wait")
        check(r.returncode == 0 and "migration completed" in r.stdout, f"migrate: {r.stdout} {r.stderr}")
        tt.check_moved(h1, h2, "vm1", c.top)
        pids = tt.vmm_pids(c.top, "vm1")
        check_tls_args(h2, pids[0], "h2's receiving tern-vmm")
        check("TLS 1.3" in vmm_log(h2, "vm1"), f"h2's tern-vmm: no TLS: {vmm_log(h2, 'vm1')[-400:]}")

        # and back, the destination given as HOST:PORT (https by default)
        r = h2.tcp("vm", "migrate", "vm1", "--to", h1.url, "--wait")
        check(r.returncode == 0, f"migrate back: {r.stdout} {r.stderr}")
        tt.check_moved(h2, h1, "vm1", c.top)
        check("TLS 1.3" in vmm_log(h1, "vm1"), "h1's tern-vmm: no TLS")

        # a ternd whose certificate is for another host: refused, VM stays
        r = h1.tcp("vm", "migrate", "vm1", "--to", h3.https)
        check(r.returncode == 1 and "not for the host" in r.stderr, f"wrong-host peer: {r.stderr}")
        check(h1.vms()["vm1"]["state"] == "running" and not h3.vms(), "moved to the wrong host")

        # a CLI with a certificate from another CA: refused in the handshake
        r = h1.tcp("vm", "list", pkidir=c.other)
        check(r.returncode == 1 and "TLS" in r.stderr and "refused our certificate" in r.stderr,
              f"other-CA client: {r.returncode} {r.stderr}")
        check("refused" in h1.log_text() and "not signed by the cluster CA" in h1.log_text(),
              f"no log line: {h1.log_text()[-600:]}")
        # a CLI trusting another CA
        r = h1.tcp("vm", "list", ca=f"{c.other}/ca.pem")
        check(r.returncode == 1 and "not signed by the cluster CA" in r.stderr, f"other CA: {r.stderr}")
        # a name the server's certificate does not carry
        r = h1.tcp("vm", "list", host="https://h9.invalid:7070")
        check(r.returncode == 1, f"bad name: {r.stderr}")
        r = h1.tcp("vm", "list", host=f"https://{tt.NET}.1:7070", ca=f"{c.pki}/ca.pem")
        check(r.returncode == 0 and "vm1" in r.stdout, f"right name: {r.stderr}")
        # plain HTTP on the HTTPS port
        r = h1.tern("vm", "list", tcp=True)
        check(r.returncode == 1 and "HTTPS" in r.stderr, f"plain http: {r.stderr}")
        check("plain HTTP" in h1.log_text(), "no log line for plain HTTP")

        # no client certificate: tokens still decide
        r = h1.tcp("vm", "list", cert=None)
        check(r.returncode == 1 and "token" in r.stderr, f"no cert, no token: {r.stderr}")
        r = h1.tcp("vm", "list", cert=None, token=tt.VIEWER)
        check(r.returncode == 0 and "vm1" in r.stdout, f"viewer token: {r.stderr}")
        r = h1.tcp("vm", "stop", "vm1", cert=None, token=tt.VIEWER)
        check(r.returncode == 1 and "only an admin" in r.stderr, f"viewer stop: {r.stderr}")
        # a cluster certificate without a role here: refused with its name
        r = h1.tcp("vm", "list", cert="h3")
        check(r.returncode == 0, f"peer cert h3 is admin: {r.stderr}")
        pki("issue", "guest1", "--dir", c.pki)
        r = h1.tcp("vm", "list", cert="guest1")
        check(r.returncode == 1 and "'guest1' has no role" in r.stderr, f"unmapped cert: {r.stderr}")


if __name__ == "__main__":
    if os.geteuid() != 0:
        print("1..0 # SKIP needs root (network namespaces)")
        sys.exit(0)
    sys.exit(tap.run())
