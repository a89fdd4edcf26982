"""Memory devices (pc-dimm, nvdimm, virtio-mem-pci, virtio-pmem-pci) in device memory.

QEMU's rules (hw/mem/memory-device.c, hw/mem/pc-dimm.c, hw/virtio/virtio-mem.c), in the
order it applies them while creating the devices in command-line order:
- pc-dimm/nvdimm take a slot (first free, or `slot=`); virtio devices take none.
- the sum of all device regions must fit maxmem - ram_size;
- alignment = max(the device's minimum (virtio-mem: block-size), the backend's mr->align):
  memory-backend-ram 2 MiB on an x86_64 host (QEMU_VMALLOC_ALIGN), memfd/file the page size
  (or `align=`/`hugetlbsize=`);
- `addr=`/`memaddr=` must be aligned and inside device memory and overlap no earlier device;
  without it: first fit from the (aligned) base, past earlier devices in address order.
"""

import os
import platform
from collections.abc import Sequence
from dataclasses import dataclass

from layoutd.errors import QemuRefusal
from layoutd.models.guest import MemoryDevice
from layoutd.qemu.config import Backend, MemDevice
from layoutd.qemu.options import parse_bool, parse_int
from layoutd.units import GiB, MiB, align_up

PAGE = 4096
SLOT_SIZE = 1 * GiB  # device memory grows by this per slot, and its base is aligned to it
THP_SIZE = 2 * MiB  # virtio-mem's default block size on x86_64 and arm64 hosts
NO_DEVICE_MEMORY = {
    "7.2": "memory devices (e.g. for memory hotplug) are not enabled, please specify the "
           "maxmem option",
    "10.0": "the configuration is not prepared for memory devices (e.g., for memory hotplug), "
            "consider specifying the maxmem option",
}
NO_DEVICE_MEMORY["11.1"] = NO_DEVICE_MEMORY["10.0"]


def device_memory_base(ram_end: int) -> int:
    """Where device memory starts: the end of boot RAM (x86: of high RAM) rounded up to 1 GiB."""
    return align_up(ram_end, SLOT_SIZE)


def device_memory_size(ram: int, maxmem: int | None, slots: int) -> int:
    """(maxmem - ram) + slots x 1 GiB; 0 (no device memory) unless maxmem > ram."""
    if maxmem is None or maxmem <= ram:
        return 0
    return maxmem - ram + slots * SLOT_SIZE


@dataclass(frozen=True)
class DeviceMemory:
    base: int
    size: int
    budget: int  # maxmem - ram_size: what all devices together may use
    slots: int
    nodes: int  # NUMA nodes (0 without -numa)
    dimm_error: str | None  # why pc-dimm/nvdimm cannot be plugged here, as QEMU says it
    nvdimm_error: str | None  # why nvdimm cannot (machine without nvdimm=on)
    missing_error: str  # QEMU's words when there is no device memory (size 0)


@dataclass(frozen=True)
class Placed:
    device: MemoryDevice
    backend: Backend
    region_size: int


def backend_page_size(backend: Backend) -> int:
    props = backend.props
    if backend.type == "memory-backend-memfd" and parse_bool(props.get("hugetlb", "off"), "hugetlb"):
        return _size(props.get("hugetlbsize")) or _default_hugepage()
    if backend.type == "memory-backend-file":
        return _file_page_size(props["mem-path"])
    return PAGE


def backend_align(backend: Backend) -> int:
    """QEMU's memory_region_get_alignment() of the backend's region."""
    if backend.type == "memory-backend-ram":
        return 2 * MiB if platform.machine() in ("x86_64", "AMD64") else PAGE
    page = backend_page_size(backend)
    align = _size(backend.props.get("align")) if backend.type == "memory-backend-file" else 0
    if align and align % page:
        raise QemuRefusal(f"alignment {align:#x} must be multiples of page size {page:#x}")
    return max(page, align)


def _size(text: str | None) -> int:
    from layoutd.units import parse_size

    return parse_size(text) if text else 0


def _default_hugepage() -> int:
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("Hugepagesize:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 2 * MiB


def _file_page_size(path: str) -> int:
    """The page size QEMU finds for a mem-path: hugetlbfs block size, else the base page."""
    try:
        with open("/proc/mounts") as mounts:
            hugetlb = [line.split()[1] for line in mounts if line.split()[2:3] == ["hugetlbfs"]]
    except OSError:
        return PAGE
    real = os.path.realpath(path)
    for mount in hugetlb:
        if real == mount or real.startswith(mount.rstrip("/") + "/"):
            return os.statvfs(mount).f_bsize
    return PAGE


def place_all(devices: Sequence[MemDevice], backends: dict[str, Backend],
              memory: DeviceMemory, busy: set[str]) -> list[Placed]:
    """Place every device in command-line order; `busy`: backends already used (boot RAM)."""
    placed: list[Placed] = []
    used_slots: dict[int, str] = {}
    for device in devices:
        placed.append(_place(device, backends, memory, placed, used_slots, busy))
    return placed


def _refuse(device: MemDevice, message: str) -> QemuRefusal:
    return QemuRefusal(f"-device {device.text}: {message}")


def _place(device: MemDevice, backends: dict[str, Backend], memory: DeviceMemory,
           placed: list[Placed], used_slots: dict[int, str], busy: set[str]) -> Placed:
    dimm = device.kind in ("dimm", "nvdimm")
    if dimm and memory.dimm_error:
        raise _refuse(device, memory.dimm_error)
    if device.kind == "nvdimm" and memory.nvdimm_error:
        raise _refuse(device, memory.nvdimm_error)
    slot = _take_slot(device, memory, used_slots) if dimm else None
    backend = _backend(device, backends)
    region = _region_size(device, backend)
    if memory.size == 0:
        raise _refuse(device, memory.missing_error)
    used = sum(p.region_size for p in placed)
    if used + region > memory.budget:
        raise _refuse(device, f"not enough space, currently {used:#x} in use of total space "
                              f"for memory devices {memory.budget:#x}")
    align, block = _alignment(device, backend)
    addr = _free_addr(device, memory, placed, align, region)
    if backend.id in busy:
        raise _refuse(device, f"can't use already busy memdev: {backend.id}")
    busy.add(backend.id)
    _check_after(device, backend, memory, block)
    return Placed(_describe(device, backend, addr, region, slot, block), backend, region)


def _region_size(device: MemDevice, backend: Backend) -> int:
    """The device's region: the backend, less an NVDIMM's label rounded down to the backend's
    alignment (hw/mem/nvdimm.c nvdimm_prepare_memory_region)."""
    if device.kind != "nvdimm":
        return backend.size
    label = device.size_prop("label-size") or 0
    if label and label < 128 * 1024:
        raise _refuse(device, f"Property 'nvdimm.label-size' (0x{label:x}) is required at least "
                              "0x20000")
    align = backend_align(backend)
    pmem = (backend.size - label) // align * align
    if backend.size <= label or not pmem:
        raise _refuse(device, f"the size of memdev {backend.id} ({backend.size:#x}) is too small "
                              f"to contain nvdimm label ({label:#x}) and aligned PMEM ({align:#x})")
    return pmem


def _take_slot(device: MemDevice, memory: DeviceMemory, used: dict[int, str]) -> int:
    slots = memory.slots
    wanted = parse_int(device.props["slot"], f"-device {device.id} slot") if "slot" in device.props else None
    if wanted is not None and not 0 <= wanted < slots:
        raise _refuse(device, f"invalid slot number, valid range is [0-{slots - 1}]")
    if slots == 0:
        raise _refuse(device, "no slots where allocated, please specify the 'slots' option")
    if wanted is not None:
        if wanted in used:
            raise _refuse(device, f"slot {wanted} is busy, device with id='{used[wanted]}' uses it")
        slot = wanted
    else:
        free = [s for s in range(slots) if s not in used]
        if not free:
            raise _refuse(device, "no free slots available")
        slot = free[0]
    used[slot] = device.id or "(unnamed)"
    return slot


def _backend(device: MemDevice, backends: dict[str, Backend]) -> Backend:
    name = device.props.get("memdev")
    if not name:
        raise _refuse(device, "'memdev' property must be set")
    if name not in backends:
        raise _refuse(device, f"Property '{device.driver}.memdev' can't find value '{name}'")
    return backends[name]


def _alignment(device: MemDevice, backend: Backend) -> tuple[int, int]:
    """(placement alignment, virtio-mem block size or 0)."""
    align = backend_align(backend)
    if device.kind != "virtio-mem":
        return align, 0
    block = device.size_prop("block-size") or max(THP_SIZE, backend_page_size(backend))
    return max(block, align), block


def _free_addr(device: MemDevice, memory: DeviceMemory, placed: list[Placed], align: int,
               size: int) -> int:
    # virtio devices take `memaddr` (their `addr` is the PCI slot)
    hint = device.size_prop("memaddr" if device.kind.startswith("virtio") else "addr") or None
    if hint is not None and hint % align:
        raise _refuse(device, f"address must be aligned to {align:#x} bytes")
    if size % align:
        raise _refuse(device, f"backend memory size must be multiple of {align:#x}")
    top = memory.base + memory.size
    if hint is not None:
        if hint + size > top or hint < memory.base:
            raise _refuse(device, f"can't add memory device [{hint:#x}:{size:#x}], usable range "
                                  f"for memory devices [{memory.base:#x}:{memory.size:#x}]")
        start = hint
    else:
        start = align_up(memory.base, align)
    for other in sorted(placed, key=lambda p: p.device.addr):
        other_end = other.device.addr + other.region_size
        if other.device.addr < start + size and start < other_end:
            if hint is not None:
                raise _refuse(device, f"address range conflicts with memory device "
                                      f"id='{other.device.id or '(unnamed)'}'")
            start = align_up(other_end, align)
        elif other.device.addr > start + size - 1:
            break
    if start + size > top:
        raise _refuse(device, "could not find position in guest address space for memory "
                              "device - memory fragmented due to alignments")
    return start


def _check_after(device: MemDevice, backend: Backend, memory: DeviceMemory, block: int) -> None:
    """Checks QEMU makes when realizing the device, after placing it."""
    node = parse_int(device.props.get("node", "0"), f"-device {device.id} node")
    if device.kind in ("dimm", "nvdimm") and (node >= max(memory.nodes, 1)):
        raise _refuse(device, f"'DIMM property node has value {node}' which exceeds the "
                              f"number of numa nodes: {max(memory.nodes, 1)}")
    if device.kind == "virtio-mem":
        requested = device.size_prop("requested-size") or 0
        if requested % block:
            raise _refuse(device, "'requested-size' property has to be multiples of "
                                  f"'block-size' ({block:#x})")
        if requested > backend.size:
            raise _refuse(device, f"'requested-size' property exceeds the size of the "
                                  f"memory backend ({backend.size:#x})")


def _describe(device: MemDevice, backend: Backend, addr: int, region: int, slot: int | None,
              block: int) -> MemoryDevice:
    node = parse_int(device.props.get("node", "0"), f"-device {device.id} node")
    plugged = 0 if device.kind == "virtio-mem" else region
    node_of: int | None = None if device.kind == "virtio-pmem" else node
    return MemoryDevice(type=device.kind, id=device.id, addr=addr, size=plugged,
                        region_size=region, node=node_of, memdev=backend.id, slot=slot)
