#!/usr/bin/env bash
# Guest kernels with iommufd for tests/kernel (issue 23). Called by scripts/install-test-deps.sh
# after scripts/build-guest.sh (whose private apt and busybox it reuses).
#
# No Debian kernel enables CONFIG_IOMMUFD, so this builds one from Debian's own kernel source
# (`linux-source-6.12` from bookworm-backports, fetched with apt-get download, unpacked), with a
# small config: `make tinyconfig` plus scripts/kernel-config/{common,ARCH,VARIANT}.config, all
# built in. Two variants (x86_64 both, arm64 compat-on only):
#   compat-off  VFIO_CONTAINER=n, IOMMUFD_VFIO_CONTAINER=n: no /dev/vfio/vfio, only iommufd
#   compat-on   VFIO_CONTAINER=n, IOMMUFD_VFIO_CONTAINER=y: /dev/vfio/vfio served by iommufd
# x86_64 natively, arm64 with Debian's gcc-aarch64-linux-gnu. The second variant of an
# architecture is an incremental build in the same tree (only what the two symbols touch).
#
# Cached under $LAYOUTD_CACHE/kernel/KEY, KEY = hash of the source version and the config files: a second
# run only reads the manifest. LAYOUTD_GUEST_REFRESH=1 moves to the newest
# linux-source-6.12 in bookworm-backports. LAYOUTD_KERNEL_JOBS sets make -j (default 2).
# Output: $LAYOUTD_CACHE/kernel/manifest.json (read by tests/kernel/harness.py).
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE=${LAYOUTD_CACHE:-$HOME/.cache/layoutd}
G="$CACHE/guest"
K="$CACHE/kernel"
mkdir -p "$K"
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
JOBS=${LAYOUTD_KERNEL_JOBS:-2}
CONF=scripts/kernel-config
ARCHES=(x86_64 arm64)
# x86_64 in both variants; arm64 (cross-built, the slower build) in the one its guest case uses
variants() { case $1 in arm64) echo compat-on ;; *) echo compat-off compat-on ;; esac; }

. scripts/guest-apt.sh

# the source package's version (cached: a second run stays offline)
if [ -s "$K/source.version" ] && [ -z "${LAYOUTD_GUEST_REFRESH:-}" ]; then
    version=$(cat "$K/source.version")
else
    ensure_apt
    version=$(apt-cache "${APT[@]}" show linux-source-6.12/bookworm-backports 2>/dev/null \
              | sed -n 's/^Version: //p' | head -n 1)
    [ -n "$version" ] || { echo "build-kernel: no linux-source-6.12 in bookworm-backports" >&2; exit 1; }
fi
key=$( { echo "$version"; cat "$CONF"/*.config; } | sha256sum | cut -c1-16)
out="$K/$key"

initramfs() {  # initramfs DEBARCH: busybox + /init, no modules (everything is built in)
    local key2 file
    key2=$(cat "$G/$1/busybox" tests/kernel/guest/init tests/kernel/guest/mkinitramfs.py \
           | sha256sum | cut -c1-16)
    file="$K/initramfs-$1-$key2.gz"
    if [ ! -s "$file" ]; then
        rm -f "$K/initramfs-$1-"*.gz
        "$PY" tests/kernel/guest/mkinitramfs.py --busybox "$G/$1/busybox" \
            --init tests/kernel/guest/init --out "$file" >/dev/null
    fi
    echo "$file"
}

build() {  # build ARCH(x86_64|arm64): both variants into $out
    local arch=$1 karch image cross="" dir="$K/build-$1" variant frag
    case $arch in
        x86_64) karch=x86_64; image=arch/x86/boot/bzImage ;;
        arm64) karch=arm64; image=arch/arm64/boot/Image; cross=aarch64-linux-gnu- ;;
    esac
    local make=(nice -n 10 make -s -C "$K/src" O="$dir" ARCH="$karch" CROSS_COMPILE="$cross")
    for variant in $(variants "$arch"); do
        [ -s "$out/$arch-$variant" ] && continue
        echo "build-kernel: $arch $variant (linux-source-6.12 $version, -j$JOBS)"
        mkdir -p "$dir"
        "${make[@]}" tinyconfig >/dev/null
        "$K/src/scripts/kconfig/merge_config.sh" -m -O "$dir" "$dir/.config" \
            "$CONF/common.config" "$CONF/$arch.config" "$CONF/$variant.config" >/dev/null
        "${make[@]}" olddefconfig >/dev/null
        # every symbol the fragments ask for must have survived the dependency resolution
        local line
        while read -r line; do
            case $line in
                CONFIG_*=y) grep -qx "$line" "$dir/.config" ;;
                CONFIG_*=n) ! grep -q "^${line%=n}=" "$dir/.config" ;;
                *) true ;;
            esac || { echo "build-kernel: $line did not survive olddefconfig ($arch $variant)" >&2; exit 1; }
        done < <(cat "$CONF/common.config" "$CONF/$arch.config" "$CONF/$variant.config")
        "${make[@]}" -j"$JOBS" "$(basename "$image")"
        mkdir -p "$out"
        cp "$dir/.config" "$out/$arch-$variant.config"
        cp "$dir/$image" "$out/$arch-$variant.tmp" && mv "$out/$arch-$variant.tmp" "$out/$arch-$variant"
    done
}

need_build=0
for arch in "${ARCHES[@]}"; do
    for variant in $(variants "$arch"); do [ -s "$out/$arch-$variant" ] || need_build=1; done
done
if [ "$need_build" = 1 ]; then
    start=$SECONDS
    if [ ! -f "$K/src/Makefile" ] || [ "$(cat "$K/src.version" 2>/dev/null)" != "$version" ]; then
        echo "build-kernel: fetching linux-source-6.12 $version"
        rm -rf "$K/src" "$K/debs" "$K"/build-*
        download "$K/debs" "linux-source-6.12=$version"
        dpkg -x "$K"/debs/linux-source-6.12_*.deb "$K/debs/x"
        mkdir -p "$K/src"
        tar -xf "$K"/debs/x/usr/src/linux-source-6.12.tar.* -C "$K/src" --strip-components=1
        rm -rf "$K/debs"
        echo "$version" > "$K/src.version"
    fi
    for arch in "${ARCHES[@]}"; do build "$arch"; done
    echo "$((SECONDS - start))" > "$out/build.seconds"
    echo "build-kernel: built in $((SECONDS - start)) s"
    # the tree and objects are not needed once the images are cached (about 2 GB)
    rm -rf "$K/src" "$K"/build-* "$K/src.version"
fi
echo "$version" > "$K/source.version"
# older keys: gone
for old in "$K"/*/; do
    case "$(basename "$old")" in "$key"|src|build-*) ;; *) rm -rf "$old" ;; esac
done

entries=""
for arch in "${ARCHES[@]}"; do
    case $arch in x86_64) name=x86_64 deb=amd64 ;; arm64) name=aarch64 deb=arm64 ;; esac
    images=""
    for variant in $(variants "$arch"); do images+="\"$variant\": \"$out/$arch-$variant\", "; done
    entries+=",
  \"$name\": {$images\"initramfs\": \"$(initramfs "$deb")\"}"
done
printf '{\n  "source": "linux-source-6.12 %s"%s\n}\n' "$version" "$entries" > "$K/manifest.json.tmp"
mv "$K/manifest.json.tmp" "$K/manifest.json"
echo "build-kernel: ready ($K/manifest.json)"
