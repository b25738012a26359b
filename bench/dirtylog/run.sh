#!/bin/sh
# run.sh - build bench/dirtylog/dirtylog against a meson build directory's
# libraries, then run it for both backends and the given memory sizes.
#
#   bench/dirtylog/run.sh [BUILD_DIR (default build)] [MEMORY ...] (default 1G 2G)
#
# Needs /dev/kvm. The binary goes to BUILD_DIR/bench-dirtylog.
set -eu
src=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-build}
[ $# -gt 0 ] && shift
sizes=${*:-1G 2G}
exe="$build/bench-dirtylog"
${CC:-cc} -std=gnu11 -O2 -Wall -Wextra -o "$exe" "$src/bench/dirtylog/dirtylog.c" \
	-I"$src/vmm" -I"$src/base" -I"$src/mig/stream" \
	"$build/vmm/libvmm.a" "$build/vmm/boot/libboot.a" "$build/vmm/libvmm_dev.a" \
	"$build/vmm/libgmem.a" "$build/mig/libmig_stream.a" "$build/base/libbase.a" \
	-ljansson -lpthread
for mem in $sizes; do
	for backend in bitmap ring; do
		echo "== $backend $mem"
		TERN_DIRTY_LOG=$backend TERN_LOG=warn "$exe" "$mem" 3
		[ $backend = ring ] && echo "== ring $mem, 1 MiB ring" &&
			TERN_DIRTY_LOG=ring TERN_DIRTY_RING_SIZE=1M TERN_LOG=warn "$exe" "$mem" 3
	done
done
