#!/usr/bin/env bash
# Debian 13's libvirt 11.3 (and its QEMU 10.0) for the second libvirt oracle
# (tests/libvirt/test_oracle.py): a minimal Debian trixie root made with debootstrap under
# $LAYOUTD_CACHE/trixie-root; the tests run its libvirtd with chroot in a private mount namespace
# (tests/libvirt/reaper.py). Idempotent (scripts/debian-root.sh). Must run as root.
set -euo pipefail
exec "$(dirname "$0")/debian-root.sh" trixie trixie-root /usr/sbin/libvirtd \
    libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients qemu-system-x86 qemu-system-arm \
    ovmf qemu-efi-aarch64
