#!/usr/bin/env bash
# One-time set-up of the kernel tests (tests/kernel, issue 7): real Linux guests for QEMU TCG.
# Called by scripts/install-test-deps.sh. Idempotent and cached under $LAYOUTD_CACHE/guest;
# everything is keyed by content (package versions, hashes of init and module list), so a second
# run only reads a manifest. Nothing is installed on the host: Debian packages are fetched with
# `apt-get download` through a private apt configuration and unpacked with dpkg -x.
#
#   x86_64 guest: linux-image-*+deb12-amd64 from bookworm-backports (6.12: has virtio-iommu and
#                 the type1 IOVA-range capability) + busybox-static + initramfs.
#   arm64 guest:  the same for arm64, plus an arm64 userland for layoutd itself (Debian's
#                 python3.11 for arm64 unpacked, and layoutd's dependencies as aarch64 wheels
#                 from PyPI), shared into the guest read-only over 9p.
# Output: $LAYOUTD_CACHE/guest/manifest.json (read by tests/kernel/harness.py).
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE=${LAYOUTD_CACHE:-$HOME/.cache/layoutd}
G="$CACHE/guest"
mkdir -p "$G"
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python3

# the private apt (bookworm + bookworm-backports, amd64 and arm64): download DIR PKG...
. scripts/guest-apt.sh

# kernel_pkg ARCH: the linux-image package the backports metapackage points at
kernel_pkg() {
    ensure_apt
    apt-cache "${APT[@]}" depends "linux-image-$1:$1/bookworm-backports" 2>/dev/null \
        | sed -n 's/^ *Depends: \(linux-image-6\.[0-9.]*+deb12[.0-9]*-'"$1"'\).*/\1/p' | head -n 1
}

MODULES=(vfio vfio_iommu_type1 vfio_pci_core vfio_pci virtio_iommu 9pnet_virtio 9p)

build_arch() {  # build_arch amd64|arm64 -> $G/ARCH/{vmlinuz,initramfs-*.gz}
    local arch=$1 out="$G/$1" pkg kver
    mkdir -p "$out"
    # Reuse the cached kernel when it is there (a second run stays offline); LAYOUTD_GUEST_REFRESH=1
    # moves to the newest kernel in bookworm-backports.
    if [ -s "$out/kernel.pkg" ] && [ -s "$out/vmlinuz" ] && [ -z "${LAYOUTD_GUEST_REFRESH:-}" ]; then
        pkg=$(cat "$out/kernel.pkg")
    else
        pkg=$(kernel_pkg "$arch")
        [ -n "$pkg" ] || { echo "build-guest: no linux-image for $arch in bookworm-backports" >&2; exit 1; }
    fi
    if [ "$(cat "$out/kernel.pkg" 2>/dev/null)" != "$pkg" ] || [ ! -s "$out/vmlinuz" ] \
            || [ ! -d "$out/kernel-tree" ]; then
        echo "build-guest: fetching $pkg"
        rm -rf "$out/debs" "$out/kernel-tree" "$out/kernel-tree.tmp"
        download "$out/debs" "$pkg:$arch"
        mkdir -p "$out/kernel-tree.tmp"
        dpkg -x "$out"/debs/linux-image-*.deb "$out/kernel-tree.tmp"
        # keep only what the initramfs needs: the modules (compressed, as shipped) and the image
        kver=$(ls "$out/kernel-tree.tmp/lib/modules")
        cp "$out/kernel-tree.tmp/boot/vmlinuz-$kver" "$out/vmlinuz"
        rm -rf "$out/kernel-tree.tmp/boot" "$out/kernel-tree.tmp/usr"
        find "$out/kernel-tree.tmp/lib/modules" -name '*.ko*' \
            ! -path '*/drivers/vfio/*' ! -path '*/drivers/iommu/*' ! -path '*/net/9p/*' \
            ! -path '*/fs/9p/*' ! -path '*/fs/netfs/*' ! -path '*/drivers/virt/*' \
            ! -path '*/virt/lib/*' ! -path '*/drivers/virtio/*' -delete
        mv "$out/kernel-tree.tmp" "$out/kernel-tree"
        rm -rf "$out/debs"
        echo "$pkg" > "$out/kernel.pkg"
    fi
    if [ ! -s "$out/busybox" ]; then
        download "$out/bb" "busybox-static:$arch"
        rm -rf "$out/bb/x" && dpkg -x "$out"/bb/busybox-static_*.deb "$out/bb/x"
        cp "$out/bb/x/bin/busybox" "$out/busybox"
        rm -rf "$out/bb"
    fi
    local key
    key=$(cat "$out/kernel.pkg" "$out/busybox" tests/kernel/guest/init tests/kernel/guest/mkinitramfs.py \
          <(echo "${MODULES[*]}") | sha256sum | cut -c1-16)
    if [ ! -s "$out/initramfs-$key.gz" ]; then
        rm -f "$out"/initramfs-*.gz
        "$PY" tests/kernel/guest/mkinitramfs.py --kernel-tree "$out/kernel-tree" \
            --busybox "$out/busybox" --init tests/kernel/guest/init \
            --out "$out/initramfs-$key.gz" "${MODULES[@]}"
    fi
    echo "$out/initramfs-$key.gz" > "$out/initramfs.path"
}

# The arm64 userland in which the arm64 guest runs layoutd from the checkout (PYTHONPATH).
ARM_DEBS=(libc6 libgcc-s1 libstdc++6 zlib1g libexpat1 libffi8 libbz2-1.0 liblzma5 libssl3
          libuuid1 libsqlite3-0 libncursesw6 libtinfo6 libreadline8 libcrypt1
          python3.11-minimal libpython3.11-minimal libpython3.11-stdlib)
build_arm_root() {
    local root="$G/arm64-root" key
    key=$( { echo "${ARM_DEBS[*]}"; sed -n '/^dependencies/,/^]/p' pyproject.toml; } | sha256sum | cut -c1-16)
    [ "$(cat "$root/.key" 2>/dev/null)" = "$key" ] && return 0
    echo "build-guest: building the arm64 userland for layoutd"
    rm -rf "$root.tmp" "$G/arm64-debs"
    local pkgs=()
    for p in "${ARM_DEBS[@]}"; do pkgs+=("$p:arm64"); done
    download "$G/arm64-debs" "${pkgs[@]}"
    mkdir -p "$root.tmp"
    for deb in "$G"/arm64-debs/*.deb; do dpkg -x "$deb" "$root.tmp"; done
    ln -sf python3.11 "$root.tmp/usr/bin/python3"
    # layoutd's runtime dependencies (pyproject.toml) as aarch64 wheels, unpacked
    local reqs
    reqs=$("$PY" -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml","rb"))["project"]["dependencies"]))')
    mkdir -p "$G/arm64-wheels"
    # shellcheck disable=SC2086
    echo "$reqs" | tr '\n' '\0' | xargs -0 "$PY" -m pip download -q --only-binary=:all: \
        --platform manylinux2014_aarch64 --python-version 3.11 --implementation cp \
        -d "$G/arm64-wheels"
    local site="$root.tmp/usr/lib/python3/dist-packages"
    mkdir -p "$site"
    for whl in "$G"/arm64-wheels/*.whl; do "$PY" -m zipfile -e "$whl" "$site"; done
    # mount points used by the guest's /init and the test's guest script
    mkdir -p "$root.tmp"/{proc,sys,dev,tmp,results,layoutd-src}
    echo "$key" > "$root.tmp/.key"
    rm -rf "$root" "$G/arm64-debs" "$G/arm64-wheels"
    mv "$root.tmp" "$root"
}

build_arch amd64
build_arch arm64
build_arm_root

cat > "$G/manifest.json.tmp" <<EOF
{
  "x86_64": {"kernel": "$G/amd64/vmlinuz", "initramfs": "$(cat "$G/amd64/initramfs.path")",
             "package": "$(cat "$G/amd64/kernel.pkg")"},
  "aarch64": {"kernel": "$G/arm64/vmlinuz", "initramfs": "$(cat "$G/arm64/initramfs.path")",
              "package": "$(cat "$G/arm64/kernel.pkg")", "userland": "$G/arm64-root"}
}
EOF
mv "$G/manifest.json.tmp" "$G/manifest.json"
echo "build-guest: ready ($G/manifest.json)"
