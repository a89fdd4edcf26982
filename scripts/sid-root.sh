#!/usr/bin/env bash
# QEMU 11.1 and sid's firmware: a minimal Debian sid root made with debootstrap under
# $LAYOUTD_CACHE/sid-root (sid's binaries need sid's libraries). The tests run its QEMU with
# chroot. Idempotent (scripts/debian-root.sh). Called by install-test-deps.sh; runs alone too.
# Must run as root.
set -euo pipefail
exec "$(dirname "$0")/debian-root.sh" sid sid-root /usr/bin/qemu-system-x86_64 \
    qemu-system-x86 qemu-system-arm qemu-efi-aarch64 ovmf seabios
