#!/usr/bin/env bash
# Everything the test suite needs, from Debian's packages and PyPI. Idempotent; caches downloads
# under $LAYOUTD_CACHE (default ~/.cache/layoutd). Must run as root (apt-get).
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE=${LAYOUTD_CACHE:-$HOME/.cache/layoutd}
mkdir -p "$CACHE"

APT_PACKAGES=(
    python3-venv
    qemu-system-x86 qemu-system-arm qemu-efi-aarch64 qemu-utils
    # Debian's recommended QEMU 7.2 modules (ui, audio) in /usr/lib/x86_64-linux-gnu/qemu, as a
    # usual install has them: the unpacked 10.0 must load its own (tests/support/qemu_runner.py).
    qemu-system-gui
    # Guest firmware for the BAR placement proofs (tests/firmware): SeaBIOS and OVMF (edk2).
    seabios ovmf
    # What scripts/build-seabios.sh compiles Debian's seabios source with (a build without a row).
    gcc make dpkg-dev
    linux-libc-dev
    # A real libvirtd for tests/libvirt, without libvirt-daemon-system (its postinst starts
    # services and needs systemd/polkit): libvirtd, the QEMU driver, virsh and virt-xml-validate.
    libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients libxml2-utils
    # virt-install, whose --print-xml domains are part of the libvirt-oracle corpus.
    virtinst
    # A real browser for the SVG test (tests/plan/test_svg_browser.py): headless screenshots.
    chromium
    # Building the guest kernels with iommufd (scripts/build-kernel.sh): x86_64 and arm64.
    gcc make bc flex bison libelf-dev libssl-dev gcc-aarch64-linux-gnu
)
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# QEMU 10.0 from bookworm-backports, unpacked (never installed) into the cache.
bp="$CACHE/backports"
apt_bp=(-o Dir::Etc::SourceList="$bp/sources.list" -o Dir::Etc::SourceParts=/dev/null
        -o Dir::State::Lists="$bp/lists" -o Dir::Cache="$bp/apt-cache")
fetch_backports() {  # fetch_backports DEST PACKAGE...
    local dest=$1; shift
    mkdir -p "$bp/lists/partial" "$bp/apt-cache/archives/partial" "$dest.debs"
    echo "deb http://deb.debian.org/debian bookworm-backports main" > "$bp/sources.list"
    [ -n "$(ls "$bp/lists" 2>/dev/null | grep -v partial)" ] || apt-get -qq "${apt_bp[@]}" update
    (cd "$dest.debs" && apt-get -qq "${apt_bp[@]}" download "$@" 2>/dev/null)
    rm -rf "$dest.tmp" && mkdir -p "$dest.tmp"
    for deb in "$dest.debs"/*.deb; do dpkg -x "$deb" "$dest.tmp"; done
    rm -rf "$dest" && mv "$dest.tmp" "$dest" && rm -rf "$dest.debs"
}
if [ ! -x "$CACHE/qemu-10.0/usr/bin/qemu-system-x86_64" ]; then
    fetch_backports "$CACHE/qemu-10.0" \
        qemu-system-x86/bookworm-backports qemu-system-arm/bookworm-backports \
        qemu-system-data/bookworm-backports qemu-system-common/bookworm-backports \
        seabios/bookworm-backports
fi

# The same build's ui and audio modules (qemu-system-gui from bookworm-backports) beside 10.0's
# own, in one folder QEMU 10.0 is pointed at (QEMU_MODULE_DIR, tests/support/qemu_runner.py):
# otherwise it falls back to /usr/lib/x86_64-linux-gnu/qemu, where Debian's 7.2 modules are,
# and fails with "Only modules from the same build can be loaded".
if [ ! -d "$CACHE/qemu-10.0-modules" ]; then
    fetch_backports "$CACHE/qemu-10.0-gui" qemu-system-gui/bookworm-backports \
        qemu-system-modules-opengl/bookworm-backports qemu-system-modules-spice/bookworm-backports
    mkdir -p "$CACHE/qemu-10.0-modules.tmp"
    for so in "$CACHE"/qemu-10.0/usr/lib/x86_64-linux-gnu/qemu/*.so \
              "$CACHE"/qemu-10.0-gui/usr/lib/x86_64-linux-gnu/qemu/*.so; do
        ln -sf "$so" "$CACHE/qemu-10.0-modules.tmp/"
    done
    mv "$CACHE/qemu-10.0-modules.tmp" "$CACHE/qemu-10.0-modules"
fi

# QEMU 11.1 (and sid's OVMF, SeaBIOS and arm64 edk2) in a minimal Debian sid root, run with chroot.
LAYOUTD_CACHE="$CACHE" scripts/sid-root.sh
# Debian 13's libvirt 11.3 for the second libvirt oracle (tests/libvirt/test_oracle.py).
LAYOUTD_CACHE="$CACHE" scripts/trixie-root.sh
# Debian sid's libvirt 12.x for the third (tests/libvirt/test_libvirt_versions.py).
LAYOUTD_CACHE="$CACHE" scripts/sid-libvirt-root.sh
# A SeaBIOS built from Debian's source with another configuration: a build layoutd has no row
# for, booted by layoutd.boot (tests/firmware/test_boot.py).
LAYOUTD_CACHE="$CACHE" scripts/build-seabios.sh

# Kernel uapi headers from bookworm-backports (6.12: iommufd.h and the VFIO cdev ioctls, which
# Debian 12's 6.1 linux-libc-dev lacks), unpacked into the cache; tests/host checks the struct
# layouts of layoutd/host/abi.py against them.
if [ ! -f "$CACHE/linux-headers/usr/include/linux/iommufd.h" ]; then
    fetch_backports "$CACHE/linux-headers" linux-libc-dev/bookworm-backports
fi

# Guest memory of several TiB starts with -S only when the kernel lets it overcommit.
sysctl -q -w vm.overcommit_memory=1 || echo "warning: could not set vm.overcommit_memory=1" >&2

scripts/install.sh test

# Nova (its provider.yaml validator) and a Placement server for tests/fleet, in their own venv
# under the cache ($CACHE/openstack-venv), pinned, away from layoutd's .venv.
LAYOUTD_CACHE="$CACHE" scripts/openstack-venv.sh

# --- kernel tests (tests/kernel, issue 7) ---------------------------------------------------
# Real Linux guests for QEMU TCG: Debian's 6.12 kernels (amd64, arm64) from bookworm-backports,
# busybox-static, an initramfs, and an arm64 userland for layoutd. Fetched with apt-get download
# and unpacked, never installed; cached by content under $CACHE/guest (second run: no download).
LAYOUTD_CACHE="$CACHE" scripts/build-guest.sh
# Guest kernels with iommufd (tests/kernel/test_iommufd.py, issue 23): no Debian kernel enables
# CONFIG_IOMMUFD, so Debian's linux-source-6.12 is built with a small config (x86_64, and arm64
# cross-built), cached under $CACHE/kernel (second run: no build).
LAYOUTD_CACHE="$CACHE" scripts/build-kernel.sh
