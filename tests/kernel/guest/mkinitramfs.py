#!/usr/bin/env python3
"""Build the kernel tests' initramfs: a static busybox, a few kernel modules, and /init.

Pure standard library (no kmod, no cpio needed on the host):

    mkinitramfs.py [--kernel-tree DIR] --busybox FILE --init FILE --out FILE [MODULE...]

DIR is a Debian linux-image package unpacked with dpkg -x (no DIR and no MODULE: a kernel with
everything built in, as scripts/build-kernel.sh builds). Each MODULE is resolved with its
dependencies from the `depends=` field of the modules' own .modinfo sections (the package ships no
modules.dep: depmod runs at install time); .ko.xz files are decompressed. /modules.order lists
them in load order (dependencies first) for /init's insmod loop.
"""

from __future__ import annotations

import argparse
import gzip
import io
import lzma
import sys
from pathlib import Path


def module_index(tree: Path) -> dict[str, Path]:
    """Module name (underscores) -> its file."""
    index: dict[str, Path] = {}
    for path in (tree / "lib" / "modules").glob("*/kernel/**/*.ko*"):
        name = path.name.split(".ko")[0].replace("-", "_")
        index[name] = path
    return index


def module_bytes(path: Path) -> bytes:
    data = path.read_bytes()
    if path.name.endswith(".xz"):
        return lzma.decompress(data)
    if path.name.endswith(".gz"):
        return gzip.decompress(data)
    if path.name.endswith(".zst"):
        raise SystemExit(f"{path}: zstd-compressed modules are not supported")
    return data


def depends_of(blob: bytes) -> list[str]:
    for field in blob.split(b"\0"):
        if field.startswith(b"depends="):
            value = field[len(b"depends="):].decode()
            return [d.replace("-", "_") for d in value.split(",") if d]
    return []


def resolve(wanted: list[str], index: dict[str, Path]) -> list[tuple[str, bytes]]:
    order: list[tuple[str, bytes]] = []
    done: set[str] = set()

    def visit(name: str, chain: tuple[str, ...]) -> None:
        if name in done:
            return
        if name in chain:
            raise SystemExit(f"module dependency cycle: {' -> '.join((*chain, name))}")
        if name not in index:
            raise SystemExit(f"module {name} is not in the kernel tree (built in, or missing?)")
        blob = module_bytes(index[name])
        for dep in depends_of(blob):
            visit(dep, (*chain, name))
        done.add(name)
        order.append((name, blob))

    for name in wanted:
        visit(name.replace("-", "_"), ())
    return order


class Cpio:
    """newc archive writer."""

    def __init__(self) -> None:
        self.buf = io.BytesIO()
        self.ino = 1

    def add(self, name: str, data: bytes = b"", mode: int = 0o100644, target: str = "") -> None:
        if target:
            data = target.encode()
        name_b = name.encode() + b"\0"
        fields = [self.ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(name_b), 0]
        self.ino += 1
        self.buf.write(b"070701" + b"".join(b"%08X" % f for f in fields))
        self.buf.write(name_b)
        self.buf.write(b"\0" * (-(110 + len(name_b)) % 4))
        self.buf.write(data)
        self.buf.write(b"\0" * (-len(data) % 4))

    def dir(self, name: str) -> None:
        self.add(name, mode=0o040755)

    def finish(self) -> bytes:
        self.add("TRAILER!!!", mode=0)
        return self.buf.getvalue()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--kernel-tree", type=Path)
    parser.add_argument("--busybox", type=Path, required=True)
    parser.add_argument("--init", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("modules", nargs="*")
    args = parser.parse_args()

    if args.modules and args.kernel_tree is None:
        parser.error("modules need --kernel-tree")
    modules = resolve(args.modules, module_index(args.kernel_tree)) if args.modules else []
    archive = Cpio()
    for d in ("bin", "sbin", "dev", "proc", "sys", "tmp", "mnt", "lib", "lib/modules",
              "hostroot", "arm", "results", "checkout"):
        archive.dir(d)
    archive.add("bin/busybox", args.busybox.read_bytes(), mode=0o100755)
    archive.add("bin/sh", mode=0o120777, target="busybox")
    archive.add("init", args.init.read_bytes(), mode=0o100755)
    for name, blob in modules:
        archive.add(f"lib/modules/{name}.ko", blob)
    archive.add("modules.order", "".join(f"{n}\n" for n, _ in modules).encode())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".tmp")
    tmp.write_bytes(gzip.compress(archive.finish(), compresslevel=6))
    tmp.replace(args.out)
    print(f"{args.out}: {len(modules)} modules: {' '.join(n for n, _ in modules)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
