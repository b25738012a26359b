#!/usr/bin/env python3
"""run-qemu.py - boot tern-guest under QEMU/KVM and check what it prints.

Runs qemu-system-x86_64 with the flags this host needs (-cpu
host,-arch-capabilities, -nic none, isa-debug-exit at 0x501), prints every
serial line prefixed with the host milliseconds since QEMU started, and
checks the outcome:

  --expect-exit N     the guest's exit value (QEMU exits (N << 1) | 1)
  --expect RE         a regular expression some line must match (repeatable)
  --reject RE         a regular expression no line may match (repeatable)

Exit status: 0 all expectations met, 1 not met, 77 skipped (no /dev/kvm or
no qemu-system-x86_64), as meson's test protocol expects.

Example:
  guest/run-qemu.py --image build/guest/tern-guest.bin --mem 1G --smp 2 \\
      --expect-exit 0 -- tg.duration=3 tg.rate=500
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import time

SKIP = 77


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--image', default=os.path.join(
        os.environ.get('TERN_BUILD_DIR', 'build'), 'guest', 'tern-guest.bin'))
    ap.add_argument('--mem', default='256M')
    ap.add_argument('--smp', default='1')
    ap.add_argument('--timeout', type=float, default=120.0)
    ap.add_argument('--expect-exit', type=int, default=None)
    ap.add_argument('--expect', action='append', default=[])
    ap.add_argument('--reject', action='append', default=[])
    ap.add_argument('--qemu', default='qemu-system-x86_64')
    ap.add_argument('--qemu-arg', action='append', default=[],
                    help='extra QEMU argument (repeatable)')
    ap.add_argument('append', nargs='*', help='guest command line words')
    return ap.parse_args()


def qemu_cmd(a):
    return ([a.qemu, '-enable-kvm', '-cpu', 'host,-arch-capabilities',
             '-nic', 'none', '-display', 'none', '-serial', 'stdio',
             '-no-reboot', '-m', a.mem, '-smp', a.smp,
             '-kernel', a.image, '-append', ' '.join(a.append),
             '-device', 'isa-debug-exit,iobase=0x501,iosize=2'] + a.qemu_arg)


def run(cmd, timeout):
    """Run QEMU; return (QEMU exit status or None on timeout, lines)."""
    t0 = time.monotonic()
    lines = []
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         stdin=subprocess.DEVNULL)
    try:
        for raw in iter(p.stdout.readline, b''):
            line = raw.decode(errors='replace').rstrip()
            lines.append(line)
            print('[%7d ms] %s' % ((time.monotonic() - t0) * 1000, line),
                  flush=True)
            if time.monotonic() - t0 > timeout:
                break
        left = max(0.1, timeout - (time.monotonic() - t0))
        return p.wait(timeout=left), lines
    except subprocess.TimeoutExpired:
        return None, lines
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def check(a, status, lines):
    ok = True
    if status is None:
        print('FAIL: timeout after %.0f s' % a.timeout)
        return False
    guest = (status >> 1) if status & 1 else None
    print('qemu exit status %d (guest exit value %s)' % (status, guest))
    if a.expect_exit is not None and guest != a.expect_exit:
        print('FAIL: expected guest exit value %d' % a.expect_exit)
        ok = False
    for rx in a.expect:
        if not any(re.search(rx, l) for l in lines):
            print('FAIL: no line matches %r' % rx)
            ok = False
    for rx in a.reject:
        bad = [l for l in lines if re.search(rx, l)]
        if bad:
            print('FAIL: %r matched: %s' % (rx, bad[0]))
            ok = False
    return ok


def main():
    a = parse_args()
    if not os.access('/dev/kvm', os.R_OK | os.W_OK):
        print('SKIP: /dev/kvm not usable')
        return SKIP
    if not shutil.which(a.qemu):
        print('SKIP: %s not found' % a.qemu)
        return SKIP
    cmd = qemu_cmd(a)
    print('$ ' + ' '.join("'%s'" % c if ' ' in c else c for c in cmd),
          flush=True)
    status, lines = run(cmd, a.timeout)
    return 0 if check(a, status, lines) else 1


if __name__ == '__main__':
    sys.exit(main())
