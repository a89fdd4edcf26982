"""What QEMU builds for a command line: the guest-physical map, as `layoutd.qemu.predict` says.

`layout` is exactly the RAM entries of the flat view of address space "memory" (what VFIO maps
for DMA), in address order. Node: the NUMA node with `-numa`; None for every entry of a guest
without NUMA nodes (QEMU itself reports node 0 for memory devices then, see `memory_devices`).
"""

from __future__ import annotations

from layoutd.models.common import Address, GuestRegion, Range
from layoutd.record import Record


class NamedRegion(Record):
    """A guest-physical range that is not RAM: device-memory, pci-hole64, rom, arm high IO..."""

    name: str
    start: Address
    end: Address

    def label(self) -> str:
        return f"{self.start:#x}-{self.end:#x}"


class RamPiece(Record):
    """One RAM entry of the flat view as QEMU prints it: memory region name and offset."""

    start: Address
    end: Address
    name: str  # pc.ram, mach-virt.ram, or a memory backend's id
    offset: Address = 0


class RamBar(Record):
    """Guest memory behind a PCI BAR of an emulated device, which VFIO maps as RAM once the
    firmware has placed the BAR: ivshmem's shared memory, virtio-gpu's host memory window."""

    kind: str  # ivshmem | virtio-gpu-hostmem: the layout kind once placed
    id: str  # the device's id (or driver): what the firmware placement names it
    bar: int
    size: Address  # 0: not known from the command line (ivshmem-doorbell: the server's memory)


class MemoryDeviceInfo(Record):
    """One entry of `query-memory-devices`."""

    type: str  # dimm | nvdimm | virtio-mem | virtio-pmem
    id: str
    addr: Address
    size: Address  # QEMU's "size": for virtio-mem the plugged size (0 at start)
    region_size: Address  # the whole region the device occupies in device memory
    node: int | None  # None for virtio-pmem, which has no node
    memdev: str  # the backend's id
    slot: int | None = None


class GuestMap(Record):
    qemu_version: str  # a modelled version (qemu/versions.py), major.minor
    arch: str  # "x86_64" | "aarch64"
    machine: str  # resolved versioned type: "pc-q35-7.2", "virt-10.0"
    layout: tuple[GuestRegion, ...]
    regions: tuple[NamedRegion, ...]
    device_memory: Range | None
    slots: int
    maxmem: int | None
    ram_size: int
    phys_bits: int
    highest_address: int
    cpu_vendor: str  # amd | intel | arm | other
    vfio_devices: tuple[str, ...]
    memory_devices: tuple[MemoryDeviceInfo, ...]  # in address order, as query-memory-devices
    warnings: tuple[str, ...]
    ram_view: tuple[RamPiece, ...] = ()  # the same entries as `layout`, named as QEMU names them
    ram_bars: tuple[RamBar, ...] = ()  # guest memory behind BARs: in `layout` once placed
    notes: tuple[str, ...] = ()  # facts worth knowing that ask nothing of the user (a dry run agreed)
    how_known: str = "model"  # how the RAM map is known: model | dry-run (dryrun.guest_map)
