#!/usr/bin/env bash
# Debian sid's libvirt 12.x (and its QEMU) for the third libvirt oracle: a minimal Debian sid root
# made with debootstrap under $LAYOUTD_CACHE/sid-libvirt-root; the tests run its virsh,
# virt-xml-validate and libvirtd with chroot in a private mount namespace (tests/libvirt/daemon.py).
# Kept apart from sid-root (QEMU 11.1), which other tests use while this one is made.
# Idempotent (scripts/debian-root.sh). Must run as root.
set -euo pipefail
exec "$(dirname "$0")/debian-root.sh" sid sid-libvirt-root /usr/sbin/libvirtd \
    libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients libxml2-utils qemu-system-x86 \
    qemu-system-arm ovmf qemu-efi-aarch64
