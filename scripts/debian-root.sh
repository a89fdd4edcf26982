#!/usr/bin/env bash
# usage: debian-root.sh SUITE NAME CHECK PACKAGE...
# A minimal Debian SUITE root made with debootstrap under $LAYOUTD_CACHE/NAME, with PACKAGE...
# installed (no recommends, no service started); the tests run its binaries with chroot.
# Idempotent: the root records the package list it was made for, so a second run with the same
# list (and the program CHECK present) is offline. Must run as root.
set -euo pipefail
suite=$1 name=$2 check=$3
shift 3
CACHE=${LAYOUTD_CACHE:-$HOME/.cache/layoutd}
MIRROR=${LAYOUTD_DEBIAN_MIRROR:-http://deb.debian.org/debian}
root="$CACHE/$name"
key="$suite minbase no-recommends: $*"

if [ -f "$root/.layoutd-key" ] && [ "$(cat "$root/.layoutd-key")" = "$key" ] \
        && [ -x "$root$check" ]; then
    exit 0
fi

if ! command -v debootstrap >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        -o DPkg::Lock::Timeout=600 debootstrap
fi

mkdir -p "$CACHE"
work="$root.tmp"
rm -rf "$work"
if ! debootstrap --variant=minbase "$suite" "$work" "$MIRROR" >"$CACHE/$name.log" 2>&1; then
    echo "$name: debootstrap failed; see $CACHE/$name.log" >&2
    rm -rf "$work"
    exit 1
fi
# No services start inside the root.
printf '#!/bin/sh\nexit 101\n' > "$work/usr/sbin/policy-rc.d"
chmod +x "$work/usr/sbin/policy-rc.d"
chroot "$work" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
    --no-install-recommends "$@" >>"$CACHE/$name.log" 2>&1
chroot "$work" apt-get clean
rm -rf "$work/var/lib/apt/lists/"*
echo "$key" > "$work/.layoutd-key"
rm -rf "$root"
mv "$work" "$root"
chroot "$root" "$check" --version | head -1
