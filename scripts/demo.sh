#!/bin/sh
# demo.sh - tern's live-migration demo: two tern-vmm processes on loopback,
# a guest rewriting memory in one, moved live to the other while it runs;
# its console output continues from the destination.
#   sh scripts/demo.sh [BUILD_DIR]
#
# The guest: on hardware KVM, Debian's kernel with a busybox initramfs
# (scripts/mkinitramfs.sh); on PVM hosts (nested, software: a stock kernel
# cannot finish booting there) tern's own test guest. TERN_DEMO_GUEST=linux
# or =test forces one.
set -u
B=$(cd "${1:-build}" && pwd) || exit 1
VMM=$B/vmm/tern-vmm
TERN=$B/cli/tern
GUEST=$B/guest/tern-guest.bin
PORT=${TERN_DEMO_PORT:-47000}
DIR=$(mktemp -d /tmp/tern-demo.XXXXXX)
SRC_PID= DST_PID= TAIL_PID=

cleanup() {
	[ -n "$TAIL_PID" ] && kill "$TAIL_PID" 2>/dev/null
	[ -n "$SRC_PID" ] && kill "$SRC_PID" 2>/dev/null
	[ -n "$DST_PID" ] && kill "$DST_PID" 2>/dev/null
	wait 2>/dev/null
	rm -rf "$DIR"
}
trap cleanup EXIT INT TERM

if [ ! -e /dev/kvm ]; then
	echo "demo: /dev/kvm is missing: tern-vmm needs KVM (load kvm_intel or kvm_amd)" >&2
	exit 1
fi

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
follow() { # file prefix [first-line-prefix]
	tail -n +1 -F "$1" 2>/dev/null | sed -u "1s/^/$3/; s/^/$2 /" &
	TAIL_PID=$!
}
wait_line() { # file regex timeout_s
	i=0
	while ! grep -q "$2" "$1" 2>/dev/null; do
		i=$((i + 1)); [ $i -gt $(($3 * 10)) ] && return 1; sleep 0.1
	done
}

KERNEL=$(ls /boot/vmlinuz-*-cloud-amd64 2>/dev/null | tail -1)
GUEST_KIND=${TERN_DEMO_GUEST:-auto}
if [ "$GUEST_KIND" = auto ]; then
	if [ -d /sys/module/kvm_pvm ] || [ -z "$KERNEL" ]; then
		GUEST_KIND=test
		say "this host's /dev/kvm is PVM (software nested virtualization): a stock Linux"
		echo "   kernel cannot finish booting here, so the demo runs tern's test guest."
		echo "   On hardware KVM it boots Debian's kernel with a busybox initramfs."
	else
		GUEST_KIND=linux
	fi
fi

say "destination: tern-vmm --incoming tcp:127.0.0.1:$PORT (waits for a VM)"
"$VMM" --incoming "tcp:127.0.0.1:$PORT" --serial "file:$DIR/dst.log" \
	--api "$DIR/dst.sock" 2>"$DIR/dst.err" &
DST_PID=$!

if [ "$GUEST_KIND" = linux ]; then
	sh "$(dirname "$0")/mkinitramfs.sh" "$DIR/initrd.gz" || exit 1
	say "source: Debian's kernel $(basename "$KERNEL"), 1 GiB, 2 vCPUs, a busybox shell"
	echo "   rewriting 32 MiB of tmpfs in a loop and checking a 64 MiB file's md5 every 5 s"
	"$VMM" --kernel "$KERNEL" --initrd "$DIR/initrd.gz" --memory 1G --vcpus 2 \
		--serial "file:$DIR/src.log" --api "$DIR/src.sock" \
		--cmdline "console=ttyS0 quiet panic=-1" 2>"$DIR/src.err" &
	SRC_PID=$!
	READY="DEMO check ok"
else
	say "source: the test guest, 1 GiB, 2 vCPUs, rewriting a 256 MiB working set at 300 MiB/s"
	echo "   (every page carries a pattern the guest keeps verifying: 'errors=0' means no page was lost)"
	"$VMM" --kernel "$GUEST" --memory 1G --vcpus 2 --serial "file:$DIR/src.log" \
		--api "$DIR/src.sock" \
		--cmdline "tg.wss=256M tg.rate=300 tg.report_ms=1000" 2>"$DIR/src.err" &
	SRC_PID=$!
	READY="TG STAT.*cpu=1"
fi
follow "$DIR/src.log" "[source]"
wait_line "$DIR/src.log" "$READY" 120 || { echo "demo: guest did not start"; cat "$DIR/src.err"; exit 1; }
sleep 3
kill "$TAIL_PID"; TAIL_PID=

say "migrate: tern --vmm src.sock migrate tcp:127.0.0.1:$PORT --wait"
"$TERN" --vmm "$DIR/src.sock" migrate "tcp:127.0.0.1:$PORT" --wait
status=$?
wait "$SRC_PID" 2>/dev/null; SRC_PID=
echo "source tern-vmm: $(cat "$DIR/src.err")"
[ $status -eq 0 ] || { echo "demo: migration failed"; exit 1; }

say "the guest goes on, now on the destination (its clock and counters continue)"
# the guest may have been paused mid-line: the destination prints the rest
first=
[ -s "$DIR/src.log" ] && [ -n "$(tail -c 1 "$DIR/src.log")" ] &&
	first="...(the rest of the source's last line) "
follow "$DIR/dst.log" "[dest]  " "$first"
sleep 4
kill "$TAIL_PID"; TAIL_PID=

say "tern --vmm dst.sock status"
"$TERN" --vmm "$DIR/dst.sock" status
if [ "$GUEST_KIND" = linux ]; then
	errors=$(grep -c "DEMO check FAILED" "$DIR/dst.log")
	wait_line "$DIR/dst.log" "DEMO check ok" 10 || errors=1
else
	errors=$(grep -c "TG ERROR" "$DIR/dst.log")
	grep -q "errors=[1-9]" "$DIR/dst.log" && errors=1
fi
"$TERN" --vmm "$DIR/dst.sock" shutdown >/dev/null
wait "$DST_PID" 2>/dev/null; DST_PID=
if [ "$errors" -eq 0 ]; then
	say "done: the VM moved live; its memory checked out on the destination"
else
	say "FAILED: the guest reported memory errors on the destination"; exit 1
fi
