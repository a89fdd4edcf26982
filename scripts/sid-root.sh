#!/usr/bin/env bash
# QEMU 11.1 and sid's firmware: a minimal Debian sid root made with debootstrap under
# $LAYOUTD_CACHE/sid-root (sid's binaries need sid's libraries). The tests run its QEMU with
# chroot. Idempotent: the root records the package list it was made for, so a second run with the
# same list is offline. Called by install-test-deps.sh; runs alone too. Must run as root.
set -euo pipefail
CACHE=${LAYOUTD_CACHE:-$HOME/.cache/layoutd}
MIRROR=${LAYOUTD_DEBIAN_MIRROR:-http://deb.debian.org/debian}
SID_PACKAGES=(qemu-system-x86 qemu-system-arm qemu-efi-aarch64 ovmf seabios)
root="$CACHE/sid-root"
key="sid minbase no-recommends: ${SID_PACKAGES[*]}"

if [ -f "$root/.layoutd-key" ] && [ "$(cat "$root/.layoutd-key")" = "$key" ] \
        && [ -x "$root/usr/bin/qemu-system-x86_64" ]; then
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
if ! debootstrap --variant=minbase sid "$work" "$MIRROR" >"$CACHE/sid-root.log" 2>&1; then
    echo "sid-root: debootstrap failed; see $CACHE/sid-root.log" >&2
    rm -rf "$work"
    exit 1
fi
# No services start inside the root.
printf '#!/bin/sh\nexit 101\n' > "$work/usr/sbin/policy-rc.d"
chmod +x "$work/usr/sbin/policy-rc.d"
chroot "$work" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
    --no-install-recommends "${SID_PACKAGES[@]}" >>"$CACHE/sid-root.log" 2>&1
chroot "$work" apt-get clean
rm -rf "$work/var/lib/apt/lists/"*
echo "$key" > "$work/.layoutd-key"
rm -rf "$root"
mv "$work" "$root"
chroot "$root" /usr/bin/qemu-system-x86_64 --version | head -1
