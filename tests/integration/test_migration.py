#!/usr/bin/env python3
"""test_migration.py - live migration between two real tern-vmm processes
over loopback TCP, with the test guest as the integrity oracle: it keeps
verifying every page it wrote, so a page lost or stale on the destination
shows up as a TG ERROR line there."""
import os
import re
import signal
import socket
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
from harness import (CLI, Pair, Tap, Vmm, check, check_no_errors,  # noqa: E402
                     free_port, migrate_wait, run, tg_last, tg_stats,
                     wait_full_sweep)

tap = Tap()


def check_migrated(p, cli, where):
    check(cli.returncode == 0, f"{where}: migrate exit {cli.returncode}: {cli.stdout[-600:]} {cli.stderr}")
    check("migration completed" in cli.stdout and "downtime:" in cli.stdout,
          f"{where}: summary: {cli.stdout[-600:]!r}")
    rc = p.src.wait_exit(15)
    check(rc == 0 and "migrated to" in p.src.stderr(), f"{where}: source exit {rc}: {p.src.stderr()!r}")
    st, info = p.dst.call("GET", "/vm")
    check(st == 200 and info["state"] == "running", f"{where}: destination {st} {info}")


@tap.case()
def migrates_idle_guest_and_clock_continues():
    with Pair("tg.wss=16M tg.rate=0 tg.report_ms=200", memory="256M") as p:
        p.wait_ready()
        src_before = len(p.src.output())
        cli = p.migrate()
        check_migrated(p, cli, "idle")
        last_src = tg_last(p.src.output())
        p.dst.wait_for(r"^TG STAT ", timeout=20)
        first_dst = tg_stats(p.dst.output())[0]
        downtime = float(re.search(r"downtime:\s+([\d.]+) ms", cli.stdout).group(1))
        jump = int(first_dst["t_ms"]) - int(last_src["t_ms"])
        # the guest clock goes on from where it was: no reset, no jump
        # beyond one report interval plus the measured downtime (+ slack
        # for host scheduling between the two processes)
        check(0 < jump <= 2 * 200 + downtime + 1000,
              f"guest clock jumped {jump} ms (downtime {downtime} ms)")
        wait_full_sweep(p.dst, 0, p.src)
        check_no_errors(p.src.output(), "source")
        check_no_errors(p.dst.output(), "destination")
        check(src_before > 0, "source printed nothing")


@tap.case()
def migrates_smp_guest_under_heavy_writes():
    with Pair("tg.wss=96M tg.rate=max tg.report_ms=250", memory="256M", vcpus=2) as p:
        p.wait_ready()
        cli = p.migrate()
        check_migrated(p, cli, "heavy writes")
        for cpu in (0, 1):
            p.dst.wait_for(rf"^TG STAT .*cpu={cpu} ", timeout=30)
        wait_full_sweep(p.dst, 0, p.src)
        out = p.dst.output()
        check(int(tg_last(out, 1)["writes_mib"]) > 0, "vCPU 1 stopped writing")
        check_no_errors(out, "destination")


@tap.case()
def migrates_halting_smp_guest_and_its_timers_fire():
    # tg.idle=halt: each vCPU sleeps in hlt with its LAPIC TSC-deadline
    # timer armed, as an idle Linux guest does. The destination must get
    # the halted MP state, the LAPIC and IA32_TSC_DEADLINE right, or its
    # vCPUs never wake: no STAT line would follow the migration.
    with Pair("tg.wss=32M tg.rate=20 tg.idle=halt tg.report_ms=200",
              memory="256M", vcpus=2) as p:
        p.wait_ready()
        boot = p.src.output()
        check("idle=halt" in boot and "TG WARN" not in boot, f"boot: {boot[-400:]!r}")
        for cpu in (0, 1):
            p.src.wait_for(rf"^TG STAT .*cpu={cpu} .*halted_pct=[1-9]", timeout=30)
        cli = p.migrate()
        check_migrated(p, cli, "halting guest")
        n = len(p.dst.output())
        for cpu in (0, 1):
            p.dst.wait_for(rf"^TG STAT .*cpu={cpu} ", timeout=30, start=n)
        wait_full_sweep(p.dst, n, p.src)
        out = p.dst.output()
        for cpu in (0, 1):
            s = tg_last(out, cpu)
            check(int(s["halted_pct"]) > 0, f"vCPU {cpu} no longer halts: {s}")
            check(int(s["rate_mibs"]) > 0, f"vCPU {cpu} stopped writing: {s}")
        check_no_errors(out, "destination")
        check("tsc went backwards" not in out, "TSC went backwards on the destination")


@tap.case()
def first_writes_are_placed_and_unused_memory_stays_absent():
    """The destination places pages it has not got yet with UFFDIO_COPY
    (mig/fill.c) and overwrites the ones it has: a guest rewriting its
    pages during the migration needs both. Memory the guest never used
    is never populated on the destination."""
    with Pair("tg.fill=0 tg.wss=48M tg.rate=200 tg.report_ms=200", memory="256M",
              dst_env={"TERN_LOG": "info"}) as p:
        p.wait_ready()
        cli = p.migrate()
        check_migrated(p, cli, "fill")
        wait_full_sweep(p.dst, 0, p.src)
        check_no_errors(p.dst.output(), "destination")
        log = p.dst.stderr()
        # bench/migrate.py reads the time per page from this line too
        m = re.search(r"dest: (\d+) pages placed by UFFDIO_COPY, (\d+) overwritten; "
                      r"UFFDIO_COPY took ([\d.]+) ms, ([\d.]+) us a page", log)
        check(m, f"no fill report in the destination's log: {log[-600:]!r}")
        placed, overwritten = int(m.group(1)), int(m.group(2))
        check(placed >= 48 * 256 * 95 // 100, f"only {placed} pages placed by UFFDIO_COPY")
        check(overwritten > 0, "no page was sent twice (the guest writes 200 MiB/s)")
        held = rss_mib(p.dst.proc.pid)
        print(f"# {placed} pages placed by UFFDIO_COPY ({m.group(4)} us a page), "
              f"{overwritten} overwritten; destination RSS {held} MiB", flush=True)
        check(held < 192, f"destination holds {held} MiB of a guest that used ~48 MiB of 256")


@tap.case()
def source_never_resumes_after_handover():
    with Pair("tg.wss=8M tg.rate=0 tg.report_ms=200", memory="128M") as p:
        p.wait_ready()
        r = p.migrate(wait=False)
        check(r.returncode == 0, f"start: {r.stderr}")
        # wait for the destination to run it, without reading the source's
        # final status (that would let the source exit at once)
        deadline = time.time() + 60
        while time.time() < deadline:
            st, info = p.dst.call("GET", "/vm")
            if st == 200 and info["state"] == "running":
                break
            time.sleep(0.02)
        st, resp = p.src.call("POST", "/vm/resume")
        check(st == 409 and "handed over" in resp.get("error", ""),
              f"resume on the source after handover: {st} {resp}")
        check(p.src.wait_exit(15) == 0, "source did not exit after handover")


def guest_keeps_running(vm, where, timeout=20):
    n = len(vm.output())
    vm.wait_for(r"^TG STAT ", timeout=timeout, start=n)
    st, info = vm.call("GET", "/vm")
    check(info["state"] == "running", f"{where}: source VM {info['state']}")
    check_no_errors(vm.output(), where)


@tap.case()
def cancel_at_several_points_keeps_source_running():
    # (a) right after start, (b) during pass 1, (c) during later passes of a
    # migration that cannot converge (guest dirties faster than the cap)
    # (c) keeps plain pre-copy: a throttle would let it converge
    for when, cmdline, args in (("setup", "tg.wss=32M tg.rate=0", ["--bandwidth", "5"]),
                                ("pass1", "tg.wss=32M tg.rate=0", ["--bandwidth", "5"]),
                                ("passN", "tg.wss=64M tg.rate=max tg.fill=0",
                                 ["--bandwidth", "20", "--auto-converge", "off"])):
        with Pair(cmdline + " tg.report_ms=200", memory="256M") as p:
            p.wait_ready()
            r = p.migrate(*args, wait=False)
            check(r.returncode == 0, f"{when}: start: {r.stderr}")
            if when == "pass1":
                p.wait_state({"active"})
            elif when == "passN":
                deadline = time.time() + 60
                while p.status()["pass"] < 3 and time.time() < deadline:
                    time.sleep(0.1)
                check(p.status()["pass"] >= 3, f"never reached pass 3: {p.status()}")
            r = run([CLI, "--vmm", p.src.api, "migrate-cancel"])
            check(r.returncode == 0, f"{when}: cancel: {r.stderr}")
            m = p.wait_state({"cancelled", "failed", "completed"})
            check(m["state"] == "cancelled", f"{when}: state {m}")
            rc = p.dst.wait_exit(40)
            check(rc != 0, f"{when}: destination exit {rc}")
            guest_keeps_running(p.src, f"cancel {when}")
            r = run([CLI, "--vmm", p.src.api, "migrate-cancel"])
            check(r.returncode == 1, f"{when}: second cancel accepted")


@tap.case()
def destination_killed_midway_source_continues():
    with Pair("tg.wss=32M tg.rate=0 tg.report_ms=200", memory="256M") as p:
        p.wait_ready()
        check(p.migrate("--bandwidth", "10", wait=False).returncode == 0, "start")
        p.wait_state({"active"})
        time.sleep(0.5)
        p.dst.proc.send_signal(signal.SIGKILL)
        m = p.wait_state({"failed", "cancelled", "completed"})
        check(m["state"] == "failed" and m.get("error"), f"state after dest kill: {m}")
        guest_keeps_running(p.src, "dest killed")


@tap.case()
def source_killed_midway_destination_exits():
    with Pair("tg.wss=32M tg.rate=0 tg.report_ms=200", memory="256M") as p:
        p.wait_ready()
        check(p.migrate("--bandwidth", "10", wait=False).returncode == 0, "start")
        p.wait_state({"active"})
        time.sleep(0.5)
        p.src.proc.send_signal(signal.SIGKILL)
        rc = p.dst.wait_exit(40)
        check(rc == 1, f"destination exit {rc}")
        err = p.dst.stderr().strip().splitlines()[-1]
        check("incoming migration failed" in err, f"destination stderr {err!r}")
        check(not os.path.exists(p.dst.api), "destination left its API socket behind")


def dest_rejects(payload, needle):
    port = free_port()
    with Vmm(["--incoming", f"tcp:127.0.0.1:{port}"]) as d:
        d.wait_api_socket()
        s = socket.create_connection(("127.0.0.1", port))
        try:
            s.sendall(payload)
            s.shutdown(socket.SHUT_WR)
            s.settimeout(10)
            reply = b""
            while True:
                try:
                    chunk = s.recv(4096)
                except OSError:
                    break
                if not chunk:
                    break
                reply += chunk
        finally:
            s.close()
        rc = d.wait_exit(20)
        err = d.stderr().strip().splitlines()[-1]
        check(rc == 1, f"exit {rc} for {needle!r}")
        check(needle in err, f"stderr {err!r} lacks {needle!r}")
        return reply


def crc32c(data, crc=0):
    crc ^= 0xffffffff
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82f63b78 if crc & 1 else 0)
    return crc ^ 0xffffffff


def header(major=1, minor=0, features=0, page=4096, arch=1):
    h = b"TERNMIG\n" + struct.pack("<HHIIHHI", major, minor, features, page, arch, 0, 0)
    return h + struct.pack("<I", crc32c(h))


def record(rtype, payload, flags=0, section=0):
    return struct.pack("<HHIQ", rtype, flags, section, len(payload)) + payload


@tap.case()
def hostile_streams_are_refused():
    dest_rejects(b"GET / HTTP/1.1\r\n\r\n" + b"x" * 100, "magic")
    dest_rejects(b"TERNMIG\n\x01\x00", "truncated")
    dest_rejects(header(major=2), "major")
    reply = dest_rejects(header() + record(1, b'{"memory": 1, "vcpus": 1}'), "memory")
    check(b"memory" in reply, f"destination did not tell the source why: {reply!r}")
    cfg = b'{"memory": 268435456, "vcpus": 1, "kernel": "k", "initrd": "", "cmdline": ""}'
    dest_rejects(header() + record(1, cfg) + record(3, struct.pack("<IQ", 9, 0) + b"\0" * 4096),
                 "RAM")
    dest_rejects(header() + record(1, cfg) + record(0x7777, b""), "0x7777")
    dest_rejects(header() + struct.pack("<HHIQ", 1, 0, 0, 1 << 40), "limit")
    # post-copy: the discarded pages are dropped on arrival, so no page may
    # follow a POSTCOPY_DISCARD before POSTCOPY_LISTEN
    blocks = struct.pack("<I", 1) + struct.pack("<IIQIH", 1, 4096, 256 << 20, 0, 4) + b"ram0"
    discard = struct.pack("<IQI", 1, 0, 1) + struct.pack("<Q", 1)
    page = struct.pack("<IQ", 1, 0) + b"\x01" * 4096
    dest_rejects(header(features=2) + record(1, cfg) + record(2, blocks) +
                 record(0x200, discard) + record(3, page), "RAM page after POSTCOPY_DISCARD")


class Proxy(threading.Thread):
    """Forwards source -> destination, corrupting one byte at `offset` or
    cutting the connection after `cut` bytes; destination -> source as is."""

    def __init__(self, dst_port, offset=None, cut=None):
        super().__init__(daemon=True)
        self.lsock = socket.socket()
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(1)
        self.port = self.lsock.getsockname()[1]
        self.dst_port, self.offset, self.cut = dst_port, offset, cut

    def run(self):
        a, _ = self.lsock.accept()
        b = socket.create_connection(("127.0.0.1", self.dst_port))

        def back():
            try:
                while True:
                    d = b.recv(65536)
                    if not d:
                        break
                    a.sendall(d)
            except OSError:
                pass
            try:
                a.shutdown(socket.SHUT_WR)
            except OSError:
                pass
        threading.Thread(target=back, daemon=True).start()
        n = 0
        try:
            while True:
                d = bytearray(a.recv(65536))
                if not d:
                    break
                if self.offset is not None and n <= self.offset < n + len(d):
                    d[self.offset - n] ^= 0xff
                if self.cut is not None and n + len(d) >= self.cut:
                    b.sendall(d[:self.cut - n])
                    break
                b.sendall(d)
                n += len(d)
        except OSError:
            pass
        for s in (a, b):
            try:
                s.shutdown(socket.SHUT_RDWR)   # wakes the other thread's recv
                s.close()
            except OSError:
                pass


@tap.case()
def corrupted_or_truncated_in_flight_source_resumes():
    # byte 9 is in the header's major version; 100000 bytes in is page data
    # of pass 1, where a cut truncates a RAM_PAGES record
    for what, kw, needle in (("corrupt header", {"offset": 9}, "major"),
                             ("truncated", {"cut": 100000}, "")):
        with Pair("tg.wss=16M tg.rate=0 tg.report_ms=200", memory="256M") as p:
            p.wait_ready()
            px = Proxy(p.port, **kw)
            px.start()
            # --channels 0: all pages on the one proxied connection, so the cut
            # lands inside RAM_PAGES (channels: test_multifd.py)
            r = run([CLI, "--vmm", p.src.api, "migrate", f"tcp:127.0.0.1:{px.port}",
                     "--channels", "0", "--wait"],
                    timeout=120)
            check(r.returncode == 1, f"{what}: migrate exit {r.returncode}: {r.stdout[-300:]}")
            m = p.status()
            check(m["state"] == "failed", f"{what}: {m}")
            check(needle in m.get("error", ""), f"{what}: error {m.get('error')!r}")
            rc = p.dst.wait_exit(30)
            check(rc == 1, f"{what}: destination exit {rc}")
            guest_keeps_running(p.src, what)


@tap.case()
def bad_destinations_fail_cleanly():
    with Vmm(["--kernel", __import__("harness").GUEST, "--memory", "128M",
              "--cmdline", "tg.wss=8M tg.report_ms=200"]) as vm:
        vm.wait_for(r"^TG STAT", timeout=60)
        r = run([CLI, "--vmm", vm.api, "migrate", "nonsense"])
        check(r.returncode == 1 and "tcp:HOST:PORT" in r.stderr, f"bad uri: {r.stderr!r}")
        port = free_port()
        r = migrate_wait(vm, port, timeout=30)
        check(r.returncode == 1 and "failed" in r.stdout, f"refused: {r.stdout!r}")
        st, m = vm.call("GET", "/vm/migration")
        check("refused" in m.get("error", "").lower(), f"error: {m}")
        guest_keeps_running(vm, "refused")
        # a later migration to a real destination still works
        d = Vmm(["--incoming", f"tcp:127.0.0.1:{port}"])
        try:
            d.wait_api_socket()
            r = migrate_wait(vm, port)
            check(r.returncode == 0, f"retry: {r.stdout[-400:]} {r.stderr}")
            d.wait_for(r"^TG STAT", timeout=20)
        finally:
            d.kill()


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"VmRSS:\s+(\d+) kB", f.read()).group(1)) // 1024


@tap.case()
def preallocated_destination_and_size_mismatch():
    """--incoming with --memory --mem-prealloc holds the RAM before the
    source connects and receives into it; a stream of another size is
    refused by name and the source keeps running."""
    guest = __import__("harness").GUEST
    with Vmm(["--kernel", guest, "--memory", "128M",
              "--cmdline", "tg.wss=64M tg.report_ms=200"]) as src:
        src.wait_for(r"^TG STAT", timeout=60)
        port = free_port()
        bad = Vmm(["--incoming", f"tcp:127.0.0.1:{port}", "--memory", "256M"])
        try:
            bad.wait_api_socket()
            r = migrate_wait(src, port)
            check(r.returncode == 1, f"mismatch migrated: {r.stdout[-300:]}")
            rc = bad.wait_exit(20)
            check(rc != 0 and "has 128.0 MiB of memory but this tern-vmm was started "
                  "with --memory 256.0 MiB" in bad.stderr(),
                  f"mismatch: exit {rc}: {bad.stderr()[-400:]!r}")
        finally:
            bad.kill()
        guest_keeps_running(src, "size mismatch")
        port = free_port()
        dst = Vmm(["--incoming", f"tcp:127.0.0.1:{port}", "--memory", "128M",
                   "--mem-prealloc"], env={"TERN_LOG": "info"})
        try:
            dst.wait_api_socket()
            held = rss_mib(dst.proc.pid)
            check(held >= 128, f"preallocated destination holds only {held} MiB")
            r = migrate_wait(src, port)
            check(r.returncode == 0 and "migration completed" in r.stdout,
                  f"prealloc: {r.stdout[-400:]} {r.stderr}")
            wait_full_sweep(dst, 0, src)
            check_no_errors(dst.output(), "destination")
            # every page is there already: written directly, no userfaultfd
            check("guest RAM already populated: writing it directly" in dst.stderr(),
                  f"prealloc: {dst.stderr()[-400:]!r}")
        finally:
            dst.kill()


if __name__ == "__main__":
    sys.exit(tap.run())
