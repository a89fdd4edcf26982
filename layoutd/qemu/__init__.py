"""Models of how QEMU lays out guest-physical memory, per machine type and version. Pure: no I/O.

`predict(argv, version=...)` says what the real binary builds for a command line: the RAM
entries of the flat view of AS "memory", the memory devices, and what QEMU would refuse. What
it needs from the machine QEMU runs on (its CPU under KVM, its architecture, hugepage sizes and
hugetlbfs mounts) comes in as data: `host_cpu` and `host`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from layoutd.errors import InputError, QemuRefusal
from layoutd.qemu.build import build
from layoutd.qemu.versions import row

if TYPE_CHECKING:
    from layoutd.models.guest import GuestMap
    from layoutd.qemu.cpus import HostCpu
    from layoutd.qemu.memdev import HostMemory
    from layoutd.qemu.versions import Version


def predict(argv: Sequence[str], *, version: str | Version, host_cpu: HostCpu | None = None,
            arch: str | None = None, host: HostMemory | None = None) -> GuestMap:
    """The guest map QEMU `version` builds for `argv` (the arguments after the binary name).

    arch: the guest's, "x86_64" (default) or "aarch64"; host: the QEMU host's memory facts
    (None: a Linux x86_64 or aarch64 host without hugetlbfs mounts).
    Raises QemuRefusal, UnsupportedOption, InputError.
    """
    return build(list(argv), qemu=row(version), arch=arch or "x86_64", host_cpu=host_cpu,
                 host=host)


def arch_of_binary(path: str) -> str:
    """x86_64 or aarch64, from the binary's name (qemu-system-ARCH)."""
    name = path.rsplit("/", 1)[-1]
    for arch, names in (("x86_64", ("x86_64", "amd64")), ("aarch64", ("aarch64", "arm64"))):
        if any(name.endswith(f"qemu-system-{n}") or name == f"qemu-system-{n}" for n in names):
            return arch
    if name in ("kvm", "qemu-kvm"):
        return "x86_64"
    raise InputError(f"{path}: not a qemu-system-x86_64 or qemu-system-aarch64 binary")


__all__ = ["QemuRefusal", "arch_of_binary", "predict"]
