"""A solved plan: the QEMU configuration, the guest RAM map it yields, and its emitted forms.

`QemuConfig` holds everything an emitter needs; QEMU argv, QMP and libvirt XML are pure functions
of it. Field names are part of the published interface: add fields, never rename.
"""

from __future__ import annotations

from typing import Any, Literal

from layoutd.models.common import Address, GuestRegion, Hole, Range
from layoutd.models.guest import NamedRegion
from layoutd.models.host import HostPlatform
from layoutd.record import Record


class Backend(Record):
    """A memory backend object (-object memory-backend-*)."""

    id: str
    size: Address
    kind: Literal["ram", "memfd", "file"]
    share: bool = False
    prealloc: bool = False
    hugepage_size: Address | None = None
    path: str | None = None  # file backend: mem-path
    reserve: bool | None = None  # None: QEMU's default (on)


class PlannedDevice(Record):
    """A memory device placed at an explicit guest-physical address."""

    id: str
    kind: Literal["dimm", "nvdimm", "virtio-mem"]
    backend: str
    addr: Address
    size: Address
    node: int | None = None
    block_size: Address | None = None  # virtio-mem only


class NumaNode(Record):
    """A guest NUMA node; `size` and `backend` are its share of boot RAM (devices add to it)."""

    id: int
    cpus: str  # "0-3" or "0-1,4-5"
    size: Address
    backend: str | None


class QemuConfig(Record):
    """Everything the emitters need: argv, QMP and libvirt XML are pure functions of this."""

    arch: Literal["x86_64", "aarch64"]
    machine: str  # q35, pc, virt or a versioned type such as pc-q35-7.2
    cpu_model: str
    phys_bits: int | None
    cpus: int
    ram_size: Address  # -m SIZE: boot RAM only
    slots: int
    maxmem: Address | None
    max_ram_below_4g: Address | None
    pci_hole64_size: Address | None
    backends: tuple[Backend, ...]
    boot_backend: str | None  # -machine memory-backend=ID (no NUMA), None when QEMU's default
    numa: tuple[NumaNode, ...]
    devices: tuple[PlannedDevice, ...]
    vfio_devices: tuple[str, ...]
    viommu: Literal["none", "virtio", "intel"] = "none"
    viommu_aw_bits: int | None = None
    viommu_reserved: tuple[Hole, ...] = ()  # always empty: QEMU's machines set them (qemu/viommu.py)
    firmware: str | None = None  # -bios path (aarch64: needed for memory devices; x86: spec's)
    pci_window_mb: int | None = None  # x86 OVMF: -fw_cfg opt/ovmf/X-PciMmio64Mb
    gic_version: int | None = None  # aarch64: 3 when memory devices need the ACPI GED
    highmem_mmio: bool | None = None  # aarch64 virt: False -> -machine highmem-mmio=off
    cpu_vendor: str | None = None  # x86 -cpu vendor= (AuthenticAMD, GenuineIntel); None: the model's
    accel: Literal["kvm", "tcg"] = "tcg"  # -accel kvm is emitted; tcg is QEMU's default, left implicit


class PlacedBar(Record):
    """A 64-bit memory BAR of an assigned device where the guest firmware puts it (null: left
    unassigned)."""

    device: str
    bar: int
    start: Address | None
    end: Address | None


class NotJudged(Record):
    """What nothing could tell (check's and plan's `not_judged`): "BDF BARn" and why."""

    what: str
    kind: str = "bar"
    why: str


class PlannedHostCpu(Record):
    """The host CPU the plan assumed: under KVM, -cpu host and max take its vendor and bits."""

    vendor: str  # amd | intel | arm | unknown
    phys_bits: int | None  # the smallest over every host
    kvm_smm: bool | None = None  # KVM runs SMM on every host (None: not known for all)


class Plan(Record):
    """The answer to `layoutd plan`: the layout is what QEMU maps, checked by the model."""

    name: str
    qemu_version: str
    config: QemuConfig
    layout: tuple[GuestRegion, ...]
    qemu_argv: tuple[str, ...]
    qmp: tuple[dict[str, Any], ...]
    warnings: tuple[str, ...]
    hosts: tuple[str, ...]  # the host sources the layout is valid on
    usable: tuple[Range, ...]  # usable IOVA ranges, intersected over every host
    holes: tuple[Hole, ...] = ()  # the holes the layout avoids (for pictures)
    highest_address: Address | None = None  # QEMU's highest used address (incl. PCI windows), per the model
    hotplug_room: tuple[Range, ...] = ()  # where later hotplug fits, outside holes
    default_layout: bool = False  # True when QEMU's own layout was already valid
    host_cpu: PlannedHostCpu | None = None
    bars: tuple[PlacedBar, ...] = ()  # x86 with devices: where the firmware puts their 64-bit BARs
    firmware: str | None = None  # the firmware build the BARs are placed for
    regions: tuple[NamedRegion, ...] = ()  # QEMU's other regions (PCI windows ...), per the model
    host_platform: HostPlatform | None = None  # the host facts QEMU's memory backends take
    notes: tuple[str, ...] = ()  # facts that ask nothing of the user (a dry run confirmed the map)
    planned_for: str = ""  # the QEMU and firmware build the plan is made for, and how each was known
    not_judged: tuple[NotJudged, ...] = ()  # BARs whose place nothing told (plan exits 3)

    def not_judged_line(self) -> str:
        """What a plan with BARs nothing placed says first ("" when every one is judged)."""
        if not self.not_judged:
            return ""
        return (f"NOT JUDGED: {', '.join(item.what for item in self.not_judged)}: where the "
                "firmware puts them is not known (see the warnings), so this plan is not proven "
                "clear of the host's holes")
