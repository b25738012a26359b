#!/usr/bin/env python3
"""test_linux.py - Debian's cloud kernel (a standard bzImage) started by
tern-vmm through the 64-bit boot protocol, as far as this machine lets it
go. On hardware KVM it boots to a shell; on the PVM hosts we develop on,
guest ring-0 code is emulated and some instructions fail emulation, so the
test checks what can be seen here: the kernel's banner, its command line,
the e820 map and ACPI tables tern-vmm built, SMP enumeration from our MADT,
the serial console coming up (docs/boot.md says how far it gets)."""
import glob
import os
import signal
import sys

sys.path.insert(0, os.path.dirname(__file__))
from harness import Tap, Vmm, check  # noqa: E402

tap = Tap()
KERNELS = sorted(glob.glob("/boot/vmlinuz-*-cloud-amd64"))


@tap.case()
def debian_kernel_prints_banner_and_early_boot():
    if not KERNELS:
        raise AssertionError("no /boot/vmlinuz-*-cloud-amd64: run scripts/deps.sh")
    args = ["--kernel", KERNELS[-1], "--memory", "512M", "--vcpus", "2",
            "--cmdline", "earlyprintk=serial,ttyS0,115200 console=ttyS0 tern.test=1"]
    with Vmm(args) as vm:
        m = vm.wait_for(r"Linux version (\S+)\s", timeout=300)
        check(os.path.basename(KERNELS[-1]).endswith(m.group(1)),
              f"banner {m.group(0)!r} vs {KERNELS[-1]}")
        vm.wait_for(r"Command line: .*tern\.test=1", timeout=30)
        # the memory map and ACPI tables are the ones tern-vmm wrote
        vm.wait_for(r"BIOS-e820: \[mem 0x0000000000100000-0x000000001fffffff\] usable",
                    timeout=30)
        vm.wait_for(r"ACPI: RSDP 0x00000000000E0000 .*TERN", timeout=120)
        vm.wait_for(r"smpboot: Allowing 2 CPUs", timeout=120)
        vm.wait_for(r"Hypervisor detected: KVM", timeout=5)
        # still booting: SIGTERM ends the VMM cleanly (0); already stopped
        # by PVM's emulation gap: a one-line KVM error and status 1
        if vm.proc.poll() is None:
            vm.proc.send_signal(signal.SIGTERM)
            rc = vm.wait_exit(30)
            check(rc == 0, f"exit {rc} after SIGTERM")
        else:
            rc = vm.wait_exit(1)
            check(rc == 1 and "KVM internal error" in vm.stderr(),
                  f"exit {rc}: {vm.stderr()!r}")


if __name__ == "__main__":
    sys.exit(tap.run())
