"""What libvirt takes, by version: the one table the domain reader (libvirt/argv.py), the XML
writers (emit/) and the firmware fixes share (a version is (major, minor)), and the <cpu>
elements that say a guest's phys-bits in each; which libvirt a domain's XML is written for."""

from __future__ import annotations

import re
import subprocess

from layoutd.errors import InputError
from layoutd.record import Record

LibvirtVersion = tuple[int, int]
NEWEST_LIBVIRT: LibvirtVersion = (11, 3)
OLDEST_LIBVIRT: LibvirtVersion = (9, 0)  # Debian 12's: what every covered libvirt takes
PASSTHROUGH_LIMIT_SINCE: LibvirtVersion = (9, 3)  # <maxphysaddr mode='passthrough' limit=...>
VIRTIO_AW_BITS_SINCE: LibvirtVersion = (12, 8)  # <iommu model='virtio'><driver aw_bits>: 9.0 and
# 11.3 refuse it ("doesn't support additional attributes"); the oldest proven to take it
TARGET_ADDRESS_SINCE: LibvirtVersion = (9, 4)  # virtio-mem/-pmem <target><address base>
NUMA_AUTO_SINCE: LibvirtVersion = (9, 6)  # a NUMA cell added for memory hotplug


def mode_for(cpu_model: str, phys_bits: int | None, libvirt: LibvirtVersion) -> str:
    """The <cpu mode> for -cpu MODEL: host is host-passthrough, except where its phys-bits are
    limited and libvirt cannot (before 9.3): then host-model, the host's own named CPU model,
    which takes <maxphysaddr mode='emulate'>."""
    if cpu_model != "host":
        return "custom"
    if phys_bits is not None and libvirt < PASSTHROUGH_LIMIT_SINCE:
        return "host-model"
    return "host-passthrough"


def physaddr_for(bits: int, mode: str) -> str:
    """The element that gives the guest `bits` phys-bits in <cpu mode=`mode`>: host-passthrough
    keeps the host's bits whatever mode='emulate' says (QEMU's host-phys-bits), so it is limited
    with mode='passthrough' limit (libvirt 9.3 and later); every other mode takes emulate."""
    if mode == "host-passthrough":
        return f"<maxphysaddr mode='passthrough' limit='{bits}'/>"
    return f"<maxphysaddr mode='emulate' bits='{bits}'/>"


VERSION_TIMEOUT = 10.0
_LIBVIRT_VERSION = re.compile(r"\(libvirt\) (\d+)\.(\d+)")
LIBVIRT_DAEMONS = ("/usr/sbin/virtqemud", "/usr/sbin/libvirtd")


class LibvirtTarget(Record, kw_only=False):
    """The libvirt whose XML is written: its version and how that was known."""

    version: LibvirtVersion
    how: str

    def __str__(self) -> str:
        return f"libvirt {self.version[0]}.{self.version[1]} ({self.how})"


def libvirt_target(chosen: str | None) -> LibvirtTarget:
    """--libvirt-version X.Y; else the installed daemon's; else the oldest covered (9.0), whose
    XML every newer libvirt takes too."""
    if chosen is not None:
        match = re.fullmatch(r"\s*(\d+)\.(\d+)(?:\.\d+)?\s*", chosen)
        if not match:
            raise InputError(f"--libvirt-version {chosen!r}: give a libvirt version such as 9.0 "
                             "or 11.3", field="--libvirt-version")
        return LibvirtTarget((int(match.group(1)), int(match.group(2))), "as asked")
    found = installed_libvirt()
    if found is not None:
        return LibvirtTarget(found, "the installed daemon's version")
    return LibvirtTarget(OLDEST_LIBVIRT, "no libvirt daemon here; every newer one takes it too")


def installed_libvirt() -> LibvirtVersion | None:
    """`virtqemud --version` (or libvirtd's); None: unknown (the newest covered is assumed)."""
    for path in LIBVIRT_DAEMONS:
        try:
            result = subprocess.run([path, "--version"], capture_output=True, text=True,
                                    timeout=VERSION_TIMEOUT, stdin=subprocess.DEVNULL, check=False)
        except (OSError, subprocess.SubprocessError):
            continue
        match = _LIBVIRT_VERSION.search(result.stdout)
        if match:
            return int(match.group(1)), int(match.group(2))
    return None
