#!/usr/bin/env python3
"""test_multifd.py - migration over parallel page channels (`--channels N`,
`--compress zstd|lz4`) between two real tern-vmm processes, with the test
guest verifying every page on the destination; a stranger's channel
connection refused; a channel cut mid-way fails the migration cleanly and
the source keeps running."""
import os
import socket
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
from harness import (CLI, GUEST, Pair, Tap, Vmm, check, check_no_errors,  # noqa: E402
                     free_port, run, tg_last, wait_full_sweep)
from test_migration import check_migrated, guest_keeps_running  # noqa: E402

tap = Tap()

MULTIFD_HELLO = 0x0402


def heavy_migration(channels, compress=None):
    where = f"{channels} channels" + (f", {compress}" if compress else "")
    with Pair("tg.wss=96M tg.rate=max tg.report_ms=250", memory="256M", vcpus=2) as p:
        p.wait_ready()
        extra = ["--channels", str(channels)] + (["--compress", compress] if compress else [])
        cli = p.migrate(*extra)
        check_migrated(p, cli, where)
        for cpu in (0, 1):
            p.dst.wait_for(rf"^TG STAT .*cpu={cpu} ", timeout=30)
        wait_full_sweep(p.dst, 0, p.src)
        out = p.dst.output()
        check(int(tg_last(out, 1)["writes_mib"]) > 0, f"{where}: vCPU 1 stopped writing")
        check_no_errors(out, f"{where}: destination")
        return cli


@tap.case()
def two_and_four_channels_under_heavy_writes():
    for n in (2, 4):
        heavy_migration(n)


@tap.case()
def zstd_and_lz4_channels_under_heavy_writes():
    for comp in ("zstd", "lz4"):
        heavy_migration(2, comp)


@tap.case()
def compressed_batches_are_counted():
    # the guest's page tables and code compress; its data pages do not
    with Pair("tg.wss=16M tg.rate=0 tg.report_ms=200", memory="128M") as p:
        p.wait_ready()
        r = p.migrate("--channels", "1", "--compress", "lz4", wait=False)
        check(r.returncode == 0, f"start: {r.stderr}")
        m = p.wait_state({"completed", "failed", "cancelled", "unconfirmed"})
        check(m["state"] == "completed", f"state {m}")
        check(m["channels"] == 1 and m["pages_compressed"] > 0, f"counters {m}")


class ChannelProxy(threading.Thread):
    """Forwards every connection from the source to the destination.
    Before forwarding connection `stranger_before` (1 = the first channel),
    it connects to the destination itself and says HELLO with a wrong id;
    connection `cut_conn` is cut after `cut` bytes."""

    def __init__(self, dst_port, stranger_before=None, cut_conn=None, cut=None):
        super().__init__(daemon=True)
        self.lsock = socket.socket()
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(32)
        self.port = self.lsock.getsockname()[1]
        self.dst_port = dst_port
        self.stranger_before, self.cut_conn, self.cut = stranger_before, cut_conn, cut
        self.stranger_refused = None
        self.socks = []

    def stranger(self):
        s = socket.create_connection(("127.0.0.1", self.dst_port))
        s.sendall(struct.pack("<HHIQ", MULTIFD_HELLO, 0, 0, 24) + os.urandom(16) +
                  struct.pack("<II", 0, 1))
        s.settimeout(10)
        try:
            self.stranger_refused = s.recv(1) == b""
        except OSError:
            self.stranger_refused = True
        s.close()

    @staticmethod
    def pump(a, b, cut=None):
        n = 0
        try:
            while True:
                d = a.recv(65536)
                if not d:
                    break
                if cut is not None and n + len(d) >= cut:
                    b.sendall(d[:cut - n])
                    break
                b.sendall(d)
                n += len(d)
        except OSError:
            pass
        for s in (a, b):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def run(self):
        i = 0
        while True:
            try:
                a, _ = self.lsock.accept()
            except OSError:
                return
            if i == self.stranger_before:
                self.stranger()
            b = socket.create_connection(("127.0.0.1", self.dst_port))
            self.socks += [a, b]
            cut = self.cut if i == self.cut_conn else None
            threading.Thread(target=self.pump, args=(a, b, cut), daemon=True).start()
            threading.Thread(target=self.pump, args=(b, a), daemon=True).start()
            i += 1

    def close(self):
        for s in self.socks + [self.lsock]:
            try:
                s.close()
            except OSError:
                pass


@tap.case()
def stranger_channel_is_refused():
    with Pair("tg.wss=32M tg.rate=0 tg.report_ms=200", memory="256M") as p:
        p.wait_ready()
        px = ChannelProxy(p.port, stranger_before=1)
        px.start()
        r = run([CLI, "--vmm", p.src.api, "migrate", f"tcp:127.0.0.1:{px.port}",
                 "--channels", "2", "--wait"], timeout=120)
        check_migrated(p, r, "with a stranger")
        check(px.stranger_refused is True, f"stranger not refused: {px.stranger_refused}")
        p.dst.wait_for(r"^TG STAT ", timeout=30)
        check_no_errors(p.dst.output(), "destination")
        px.close()


@tap.case()
def channel_cut_midway_fails_cleanly():
    with Pair("tg.wss=64M tg.rate=0 tg.report_ms=200", memory="256M") as p:
        p.wait_ready()
        # connection 2 is the second channel: cut inside its page data
        px = ChannelProxy(p.port, cut_conn=2, cut=3 << 20)
        px.start()
        r = run([CLI, "--vmm", p.src.api, "migrate", f"tcp:127.0.0.1:{px.port}",
                 "--channels", "2", "--wait"], timeout=120)
        check(r.returncode == 1, f"migrate exit {r.returncode}: {r.stdout[-300:]}")
        m = p.status()
        check(m["state"] == "failed" and m.get("error"), f"state {m}")
        rc = p.dst.wait_exit(40)
        check(rc not in (0, None), f"destination exit {rc}")
        guest_keeps_running(p.src, "channel cut")
        px.close()
        # and the source can migrate again afterwards, straight
        time.sleep(0.2)


@tap.case()
def long_channel_passes_outlast_a_short_keepalive():
    # A 2 s silent-peer rule on both sides, and passes of several seconds
    # that run on the channels (pass 1) or wholly on the main stream
    # (XBZRLE deltas, channels idle): neither side may take the other for
    # gone. The source repeats a no-op MULTIFD_SYNC on the main stream.
    ka = ["--keepalive-interval", "1", "--keepalive-count", "2"]
    port = free_port()
    uri = f"tcp:127.0.0.1:{port}"
    with Vmm(["--incoming", uri] + ka) as dst, \
            Vmm(["--kernel", GUEST, "--memory", "128M",
                 "--cmdline", "tg.wss=48M tg.rate=8 tg.report_ms=200"]) as src:
        dst.wait_api_socket()
        src.wait_for(r"^TG FILLED", timeout=60)
        r = run([CLI, "--vmm", src.api, "migrate", uri, "--channels", "2", "--xbzrle",
                 "--bandwidth", "8", "--wait"] + ka, timeout=180)
        check(r.returncode == 0, f"migrate exit {r.returncode}: {r.stdout[-400:]} {r.stderr}")
        check(src.wait_exit(15) == 0, f"source: {src.stderr()!r}")
        dst.wait_for(r"^TG STAT ", timeout=30)
        check_no_errors(dst.output(), "destination")


if __name__ == "__main__":
    sys.exit(tap.run())
