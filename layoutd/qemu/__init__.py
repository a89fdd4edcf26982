"""Models of how QEMU lays out guest-physical memory, per machine type and version.

`predict(argv, version=...)` says what the real binary builds for a command line: the RAM
entries of the flat view of AS "memory", the memory devices, and what QEMU would refuse.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Sequence
from typing import TYPE_CHECKING

from layoutd.errors import InputError, NotModelled, QemuRefusal

if TYPE_CHECKING:
    from layoutd.models.guest import GuestMap
    from layoutd.qemu.cpus import HostCpu

SUPPORTED_VERSIONS = ("7.2", "10.0", "11.1")


def predict(argv: Sequence[str], *, version: str, host_cpu: HostCpu | None = None,
            arch: str | None = None) -> GuestMap:
    """The guest map QEMU `version` builds for `argv` (the arguments after the binary name).

    arch: "x86_64" (default) or "aarch64"; raises QemuRefusal, UnsupportedOption, InputError.
    """
    from layoutd.qemu.build import build

    if version not in SUPPORTED_VERSIONS:
        raise NotModelled(f"QEMU {version} is not modelled (only {', '.join(SUPPORTED_VERSIONS)})")
    return build(list(argv), version=version, arch=arch or "x86_64", host_cpu=host_cpu)


def modelled(version: str) -> bool:
    return version in SUPPORTED_VERSIONS


def version_of_binary(path: str, *, modelled_only: bool = True) -> str:
    """'7.2' or '10.0', from `PATH --version`; anything else is an InputError, unless
    modelled_only is False (then '8.2' too: the dry run answers for such a binary).

    The answer is cached per binary (path, size, mtime) in $LAYOUTD_CACHE or ~/.cache/layoutd:
    starting QEMU costs more than the rest of `layoutd check`.
    """
    from layoutd.qemu.versions import cached_version, remember_version

    version = cached_version(path)
    if version is None:
        version = _ask_version(path)
        remember_version(path, version)
    version = ".".join(version.split(".")[:2])  # the cache may hold X.Y.Z
    if modelled_only and not modelled(version):
        raise InputError(f"{path} is QEMU {version}; only {', '.join(SUPPORTED_VERSIONS)} are "
                         "modelled (pass --qemu-version to use a model anyway, or --verify to ask "
                         "the binary itself)")
    return version


def _ask_version(path: str) -> str:
    try:
        result = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise InputError(f"cannot run {path} --version: {error}") from None
    match = re.search(r"version (\d+)\.(\d+)", result.stdout)
    if result.returncode != 0 or not match:
        raise InputError(f"{path} --version did not say a QEMU version")
    return f"{match.group(1)}.{match.group(2)}"


def arch_of_binary(path: str) -> str:
    """x86_64 or aarch64, from the binary's name (qemu-system-ARCH)."""
    name = path.rsplit("/", 1)[-1]
    for arch, names in (("x86_64", ("x86_64", "amd64")), ("aarch64", ("aarch64", "arm64"))):
        if any(name.endswith(f"qemu-system-{n}") or name == f"qemu-system-{n}" for n in names):
            return arch
    if name in ("kvm", "qemu-kvm"):
        return "x86_64"
    raise InputError(f"{path}: not a qemu-system-x86_64 or qemu-system-aarch64 binary")


__all__ = ["QemuRefusal", "arch_of_binary", "predict", "version_of_binary"]
