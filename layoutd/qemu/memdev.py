"""Memory devices (pc-dimm, nvdimm, virtio-mem-pci, virtio-pmem-pci) in device memory.

QEMU's rules (hw/mem/memory-device.c, hw/mem/pc-dimm.c, hw/virtio/virtio-mem.c), in the
order it applies them while creating the devices in command-line order:
- pc-dimm/nvdimm take a slot (first free, or `slot=`); virtio devices take none.
- the sum of all device regions must fit maxmem - ram_size;
- alignment = max(the device's minimum (virtio-mem: block-size), the backend's mr->align):
  memory-backend-ram QEMU_VMALLOC_ALIGN of the host QEMU runs on (2 MiB on Linux x86_64, arm,
  aarch64 and ppc64; include/qemu/osdep.h), memfd/file the page size (or `align=`/`hugetlbsize=`);
- `addr=`/`memaddr=` must be aligned and inside device memory and overlap no earlier device;
  without it: first fit from the (aligned) base, past earlier devices in address order.
The host's facts (architecture, default hugepage size, hugetlbfs mounts) come in as data
(`HostMemory`, from the host source), never from the machine layoutd runs on.
"""

import posixpath
from collections.abc import Sequence
from typing import Protocol

from layoutd.errors import QemuRefusal
from layoutd.models.guest import MemoryDeviceInfo
from layoutd.qemu.config import Backend, MemDevice
from layoutd.qemu.options import parse_bool, parse_int
from layoutd.record import Record
from layoutd.units import GiB, MiB, align_up, parse_size

PAGE = 4096
SLOT_SIZE = 1 * GiB  # device memory grows by this per slot, and its base is aligned to it
THP_SIZE = 2 * MiB  # virtio-mem's default block size on x86_64 and arm64 hosts
VMALLOC_2M = ("x86_64", "aarch64", "arm", "ppc64")  # host arches (prefixes) with a 2 MiB QEMU_VMALLOC_ALIGN


class HugetlbMount(Protocol):
    @property
    def path(self) -> str: ...

    @property
    def page_size(self) -> int: ...


class HostMemory(Protocol):
    """What QEMU's memory backends take from the host QEMU runs on."""

    @property
    def arch(self) -> str | None: ...  # uname -m; None: unknown

    @property
    def hugepage_size(self) -> int | None: ...  # the default (Hugepagesize in /proc/meminfo)

    @property
    def hugetlbfs(self) -> Sequence[HugetlbMount]: ...


def device_memory_base(ram_end: int) -> int:
    """Where device memory starts: the end of boot RAM (x86: of high RAM) rounded up to 1 GiB."""
    return align_up(ram_end, SLOT_SIZE)


def device_memory_size(ram: int, maxmem: int | None, slots: int) -> int:
    """(maxmem - ram) + slots x 1 GiB; 0 (no device memory) unless maxmem > ram."""
    if maxmem is None or maxmem <= ram:
        return 0
    return maxmem - ram + slots * SLOT_SIZE


class DeviceMemory(Record, kw_only=False):
    base: int
    size: int
    budget: int  # maxmem - ram_size: what all devices together may use
    slots: int
    nodes: int  # NUMA nodes (0 without -numa)
    dimm_error: str | None  # why pc-dimm/nvdimm cannot be plugged here, as QEMU says it
    nvdimm_error: str | None  # why nvdimm cannot (machine without nvdimm=on)
    missing_error: str  # QEMU's words when there is no device memory (size 0)


class Placed(Record, kw_only=False):
    device: MemoryDeviceInfo
    backend: Backend
    region_size: int


def ram_align(host: HostMemory | None) -> int:
    """QEMU_VMALLOC_ALIGN: memory-backend-ram's alignment (an unknown host counts as x86_64)."""
    arch = host.arch if host is not None else None
    if arch is None or arch.startswith(VMALLOC_2M):
        return 2 * MiB
    return 1 * MiB if arch == "s390x" else PAGE


def backend_page_size(backend: Backend, host: HostMemory | None) -> int:
    props = backend.props
    if backend.type == "memory-backend-memfd" and parse_bool(props.get("hugetlb", "off"), "hugetlb"):
        default = host.hugepage_size if host is not None else None
        return _size(props.get("hugetlbsize")) or default or 2 * MiB
    if backend.type == "memory-backend-file":
        return _file_page_size(props["mem-path"], host)
    return PAGE


def backend_align(backend: Backend, host: HostMemory | None) -> int:
    """QEMU's memory_region_get_alignment() of the backend's region."""
    if backend.type == "memory-backend-ram":
        return ram_align(host)
    page = backend_page_size(backend, host)
    align = _size(backend.props.get("align")) if backend.type == "memory-backend-file" else 0
    if align and align % page:
        raise QemuRefusal(f"alignment {align:#x} must be multiples of page size {page:#x}")
    return max(page, align)


def _size(text: str | None) -> int:
    return parse_size(text) if text else 0


def _file_page_size(path: str, host: HostMemory | None) -> int:
    """The page size QEMU finds for a mem-path: its hugetlbfs mount's page size, else the base
    page. (The path is taken as written: symlinks on the host are not followed.)"""
    wanted = posixpath.normpath(path)
    for mount in host.hugetlbfs if host is not None else ():
        if wanted == mount.path or wanted.startswith(mount.path.rstrip("/") + "/"):
            return mount.page_size
    return PAGE


def place_all(devices: Sequence[MemDevice], backends: dict[str, Backend],
              memory: DeviceMemory, busy: set[str], host: HostMemory | None) -> list[Placed]:
    """Place every device in command-line order; `busy`: backends already used (boot RAM)."""
    placed: list[Placed] = []
    used_slots: dict[int, str] = {}
    for device in devices:
        placed.append(_place(device, backends, memory, placed, used_slots, busy, host))
    return placed


def _refuse(device: MemDevice, message: str) -> QemuRefusal:
    return QemuRefusal(f"-device {device.text}: {message}")


def _place(device: MemDevice, backends: dict[str, Backend], memory: DeviceMemory,
           placed: list[Placed], used_slots: dict[int, str], busy: set[str],
           host: HostMemory | None) -> Placed:
    dimm = device.kind in ("dimm", "nvdimm")
    if dimm and memory.dimm_error:
        raise _refuse(device, memory.dimm_error)
    if device.kind == "nvdimm" and memory.nvdimm_error:
        raise _refuse(device, memory.nvdimm_error)
    slot = _take_slot(device, memory, used_slots) if dimm else None
    backend = _backend(device, backends)
    region = _region_size(device, backend, host)
    if memory.size == 0:
        raise _refuse(device, memory.missing_error)
    used = sum(p.region_size for p in placed)
    if used + region > memory.budget:
        raise _refuse(device, f"not enough space, currently {used:#x} in use of total space "
                              f"for memory devices {memory.budget:#x}")
    align, block = _alignment(device, backend, host)
    addr = _free_addr(device, memory, placed, align, region)
    if backend.id in busy:
        raise _refuse(device, f"can't use already busy memdev: {backend.id}")
    busy.add(backend.id)
    _check_after(device, backend, memory, block)
    return Placed(_describe(device, backend, addr, region, slot, block), backend, region)


def _region_size(device: MemDevice, backend: Backend, host: HostMemory | None) -> int:
    """The device's region: the backend, less an NVDIMM's label rounded down to the backend's
    alignment (hw/mem/nvdimm.c nvdimm_prepare_memory_region)."""
    if device.kind != "nvdimm":
        return backend.size
    label = device.size_prop("label-size") or 0
    if label and label < 128 * 1024:
        raise _refuse(device, f"Property 'nvdimm.label-size' (0x{label:x}) is required at least "
                              "0x20000")
    align = backend_align(backend, host)
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


def _alignment(device: MemDevice, backend: Backend, host: HostMemory | None) -> tuple[int, int]:
    """(placement alignment, virtio-mem block size or 0)."""
    align = backend_align(backend, host)
    if device.kind != "virtio-mem":
        return align, 0
    block = device.size_prop("block-size") or max(THP_SIZE, backend_page_size(backend, host))
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
              block: int) -> MemoryDeviceInfo:
    node = parse_int(device.props.get("node", "0"), f"-device {device.id} node")
    plugged = 0 if device.kind == "virtio-mem" else region
    node_of: int | None = None if device.kind == "virtio-pmem" else node
    return MemoryDeviceInfo(type=device.kind, id=device.id, addr=addr, size=plugged,
                        region_size=region, node=node_of, memdev=backend.id, slot=slot)
