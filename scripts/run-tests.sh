#!/bin/sh
# run-tests.sh - build and run every suite, then print one summary line:
#   "N passed, N failed, N skipped"   (test cases, counted from TAP output)
#
#   build/       all suites (unit, kvm, integration, ...)
#   build-asan/  unit suite under AddressSanitizer + UndefinedBehaviorSanitizer
#   build-fuzz/  libFuzzer targets (clang), short runs over their corpora
set -u
cd "$(dirname "$0")/.." || exit 1
status=0

setup() { # dir, args...
	dir=$1; shift
	[ -f "$dir/build.ninja" ] || meson setup "$dir" "$@" >"$dir.setup.log" 2>&1 ||
		{ cat "$dir.setup.log"; return 1; }
	ninja -C "$dir" >"$dir.ninja.log" 2>&1 || { tail -50 "$dir.ninja.log"; return 1; }
}

if [ ! -e /dev/kvm ]; then
	echo "=================================================================="
	echo "WARNING: /dev/kvm is absent: the kvm and integration suites SKIP."
	echo "=================================================================="
fi

echo "== build/: all suites"
if setup build; then
	meson test -C build --no-rebuild --print-errorlogs --no-suite fuzz-smoke || status=1
else
	status=1
fi

echo "== build-asan/: unit suite under ASan + UBSan"
if setup build-asan -Db_sanitize=address,undefined -Db_lundef=false; then
	UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	meson test -C build-asan --no-rebuild --print-errorlogs --suite unit || status=1
else
	status=1
fi

echo "== build-fuzz/: libFuzzer smoke runs"
if CC=clang setup build-fuzz -Dfuzz=true; then
	meson test -C build-fuzz --no-rebuild --print-errorlogs --suite fuzz-smoke || status=1
else
	status=1
fi

python3 scripts/test-summary.py build build-asan build-fuzz || status=1
exit $status
