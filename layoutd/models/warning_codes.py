"""Stable codes for warnings, so tools reading JSON need not parse English. Pure.

Every JSON output that has `warnings` (a list of texts, unchanged) also has `warning_codes`: the
same warnings in the same order as records {code, text}. A code names the kind of warning, never
its numbers; docs/contract.md lists them (tests/core/test_warning_codes.py keeps both in step).
The first row whose pattern is found in the text gives the code; `unclassified` is a warning no
row knows (a bug: tests fail on it for every warning the project's cases produce).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

# (code, pattern searched in the text); the first row that matches wins
CODES: tuple[tuple[str, str], ...] = (
    ("iommu-width-unknown", r"the IOMMU's address width is unknown"),
    ("iommu-not-asked", r"the IOMMU itself was not asked|run as root for the kernel's own answer"
                        r"|VFIO ioctls cannot be asked"),
    ("group-not-viable", r"IOMMU group \d+ is not viable"),
    ("no-usable-iova", r"no IOVA is usable by every selected device"),
    ("reserved-type-unknown", r"unknown reserved-region types"),
    ("aperture-top", r"^aperture top "),
    ("no-vfio-device", r"has no vfio-pci device"),
    ("memory-needs-online", r"memory device\(s\) hold RAM"),
    ("maxmem-raised", r"^maxmem raised from"),
    ("slots-raised", r"^slots raised from"),
    ("hole64-lowered", r"^pci-hole64-size lowered from"),
    ("hole64-limited", r"^the 64-bit PCI hole ends below"),
    ("phys-bits-set", r"^phys-bits set to"),
    ("below-4g-small", r"^max-ram-below-4g="),
    ("amd-ht-relocation", r"HyperTransport|past 1 TiB"),
    ("cross-arch-tcg", r"emulates it \(TCG\)"),
    ("virtio-iommu-reserved", r"^virtio-iommu: "),
    ("not-judged", r"^NOT JUDGED"),
    ("firmware-option-chosen", r" chosen so that |^the plan then chooses "),
    ("firmware-window", r"OVMF's window|OVMF does not trust phys-bits|X-PciMmio64Mb"),
    ("firmware-booted-tcg", r"booted under TCG"),
    ("firmware-boot-failed", r"booting it to see where it puts the BARs failed|: cannot boot it, "),
    ("firmware-unknown", r"not a build layoutd knows|its BAR placement is not predicted"),
    ("stand-in-approximate", r"stand-in"),
    ("bars-unassigned", r"left unassigned|cannot fit every BAR|assigns no BAR at all"
                        r"|out of 32bit address space|will see no BAR there"),
    ("bars-32bit-window", r"32-bit window"),
    ("bars-not-modelled", r"not modelled|not a bridge layoutd knows|did not say its BARs"
                          r"|BARs not checked|BARs not judged|place is not predicted"),
    ("model-differs", r"model predicted another map|this map comes from a dry run"
                      r"|confirmed by a dry run|'s rules"),
    ("hosts-differ", r"^hosts differ in "),
    ("hotplug-not-persistent", r"added over the monitor|libvirt left .* behind"
                               r"|libvirt refused to attach"),
    ("e820-moved", r"^E820 entry "),
    ("virtio-mem-fixed-address", r"no element for a virtio-mem device"),
    ("ivshmem-unknown", r"ivshmem server"),
)

UNCLASSIFIED = "unclassified"

_COMPILED = tuple((code, re.compile(pattern)) for code, pattern in CODES)


def code_of(text: str) -> str:
    """The stable code of one warning text (`unclassified` when no row knows it)."""
    return next((code for code, pattern in _COMPILED if pattern.search(text)), UNCLASSIFIED)


def coded(warnings: Iterable[str]) -> list[dict[str, str]]:
    """`warning_codes` for a JSON output: {code, text} per warning, in the same order."""
    return [{"code": code_of(text), "text": text} for text in warnings]
