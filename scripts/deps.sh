#!/bin/sh
# deps.sh - install the Debian 12 packages tern needs to build, test and demo.
# Installs only what is missing; needs root (apt-get). Safe to run repeatedly.
set -e

PKGS="build-essential pkg-config meson ninja-build python3 clang libclang-rt-14-dev
libjansson-dev libmicrohttpd-dev libcurl4-openssl-dev libcmocka-dev
libzstd-dev liblz4-dev libssl-dev libsqlite3-dev
qemu-system-x86 busybox-static linux-image-cloud-amd64 cpio curl iproute2 nftables"

missing=""
for p in $PKGS; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
		missing="$missing $p"
	fi
done
[ -z "$missing" ] && exit 0

echo "deps: installing:$missing"
if [ "$(id -u)" != 0 ]; then
	echo "deps: these Debian packages are missing and installing them needs root:$missing" >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing
