#!/bin/sh
# mkinitramfs.sh - a tiny initramfs for the Linux demo guest: Debian's
# static busybox plus an /init that keeps memory busy and proves nothing
# was lost across a live migration.
#   sh scripts/mkinitramfs.sh OUT.cpio.gz
#
# The guest's /init:
#   - writes 64 MiB of random data to tmpfs (guest RAM) and remembers its
#     checksum;
#   - rewrites another 32 MiB tmpfs file from /dev/urandom in a loop (the
#     memory a migration must chase);
#   - prints "DEMO tick=N uptime=S" every second and "DEMO check ok|FAILED"
#     every 5 ticks, re-reading the 64 MiB file.
# The demo (scripts/demo.sh) reads those lines on the serial console.
set -eu
OUT=$1
BB=/bin/busybox	# Debian's busybox-static: no shared libraries to copy
[ -x "$BB" ] || { echo "mkinitramfs: $BB is missing (apt-get install busybox-static)" >&2; exit 1; }
T=$(mktemp -d /tmp/tern-initramfs.XXXXXX)
trap 'rm -rf "$T"' EXIT
mkdir -p "$T/bin" "$T/proc" "$T/sys" "$T/dev" "$T/tmp"
cp "$BB" "$T/bin/busybox"
for a in sh mount cat dd md5sum sleep echo cut poweroff seq; do
	ln -s busybox "$T/bin/$a"
done
cat >"$T/init" <<'EOF'
#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev 2>/dev/null
mount -t tmpfs -o size=90% tmp /tmp
echo "DEMO init: Linux $(cat /proc/sys/kernel/osrelease) is up, $(cut -d' ' -f1 /proc/uptime) s after boot"
dd if=/dev/urandom of=/tmp/keep bs=1M count=64 2>/dev/null
sum=$(md5sum /tmp/keep | cut -d' ' -f1)
echo "DEMO kept 64 MiB, md5 $sum"
(while :; do dd if=/dev/urandom of=/tmp/churn bs=1M count=32 2>/dev/null; done) &
n=0
while :; do
	n=$((n + 1))
	echo "DEMO tick=$n uptime=$(cut -d' ' -f1 /proc/uptime)"
	if [ $((n % 5)) -eq 0 ]; then
		if [ "$(md5sum /tmp/keep | cut -d' ' -f1)" = "$sum" ]; then
			echo "DEMO check ok"
		else
			echo "DEMO check FAILED"
		fi
	fi
	sleep 1
done
EOF
chmod +x "$T/init"
(cd "$T" && find . | cpio -o -H newc 2>/dev/null) | gzip -9 >"$OUT"
