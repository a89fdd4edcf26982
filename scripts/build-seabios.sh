#!/usr/bin/env bash
# A SeaBIOS layoutd has no row for, for tests/firmware/test_boot.py: Debian 12's seabios source
# package (1.16.2-1, fetched with apt-get source from a private deb-src list) built with another
# configuration than Debian's bios-256k.bin: no debug output (CONFIG_DEBUG_LEVEL=0) and no boot
# menu, so layoutd.boot must find the end of its PCI setup without its messages. Its build
# dependencies (gcc, make, python3, dpkg-dev) are installed by install-test-deps.sh, which runs
# it. Built once into $LAYOUTD_CACHE/seabios-custom/bios-256k.bin (about 20 s of CPU);
# idempotent. Must run as root.
set -euo pipefail
CACHE=${LAYOUTD_CACHE:-$HOME/.cache/layoutd}
out="$CACHE/seabios-custom"
[ -f "$out/bios-256k.bin" ] && exit 0

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/lists/partial" "$work/cache/archives/partial"
echo "deb-src http://deb.debian.org/debian bookworm main" > "$work/sources.list"
apt_src=(-o Dir::Etc::SourceList="$work/sources.list" -o Dir::Etc::SourceParts=/dev/null
         -o Dir::State::Lists="$work/lists" -o Dir::Cache="$work/cache")
apt-get "${apt_src[@]}" update -qq
(cd "$work" && apt-get "${apt_src[@]}" source -qq seabios=1.16.2-1)
src="$work/seabios-1.16.2"
mkdir -p "$src/out"
printf 'CONFIG_QEMU=y\nCONFIG_ROM_SIZE=256\nCONFIG_DEBUG_LEVEL=0\nCONFIG_BOOTMENU=n\n' > "$src/out/.config"
make -C "$src" PYTHON="/usr/bin/python3 -B" KCONFIG_CONFIG="$src/out/.config" OUT=out/ oldnoconfig >/dev/null
make -C "$src" -j2 PYTHON="/usr/bin/python3 -B" KCONFIG_CONFIG="$src/out/.config" OUT=out/ out/bios.bin
mkdir -p "$out"
cp "$src/out/bios.bin" "$out/bios-256k.bin.tmp"
mv "$out/bios-256k.bin.tmp" "$out/bios-256k.bin"
