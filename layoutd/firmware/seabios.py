"""SeaBIOS's PCI resource placement (src/fw/pciinit.c: pci_setup, pci_bios_check_devices,
pci_bios_map_devices), releases 1.16.2 and 1.16.3.

- Every bus keeps one list per type (io, mem, prefmem), sorted by alignment then size, largest
  first, ties in the order found. A BAR's alignment is its size (memory at least 4 KiB); a root
  port's window is the sum of its bus, aligned to its largest child and at least 2 MiB, and at
  least that much when its bus is empty (hotplug). The ROM counts as mem.
- Bridges behind bridges: buses numbered depth first; from the highest bus down each bridge's
  window becomes an entry of its parent bus. Only bridges with a hotplug slot (root and
  downstream ports, pci-bridge's SHPC) get the empty-bus reserve and the 64-bit padding.
- Everything goes below 4 GiB (window [pcimem_start, 0xfec00000): prefmem and mem packed down from
  the top) unless it does not fit; then every 64-bit entry of the root bus moves to a 64-bit
  window at max(end of RAM, etc/reserved-memory-end), 1 GiB aligned: the non-prefetchable ones
  first, then the prefetchable ones, each part aligned to its largest entry and to 1 GiB.
- 1.16.3: with phys-bits the firmware trusts (`cpuid_phys_bits`), the 64-bit window goes to the
  top of the address space (at most 2^46), one eighth of it padded when RAM reaches above 4 GiB;
  that padding also moves every 64-bit BAR up, and makes each hotplug root port's 64-bit window
  at least 2^(bits-11).
- 1.17.0: the top is 2^44 unless RAM above 4 GiB reaches 1 TiB (then all of the trusted bits);
  padding whenever RAM reaches above 4 GiB (fw_cfg opt/org.seabios/pci64 not modelled); a root
  port keeps its children's alignment when larger than the padding.
"""

from layoutd.firmware.board import (
    ROM,
    Board,
    PciDevice,
    Placed,
    Placement,
    RootPort,
    cpuid_phys_bits,
)
from layoutd.firmware.builds import Build
from layoutd.qemu.x86 import FOUR_GIB
from layoutd.record import Record, field
from layoutd.units import GiB, MiB, align_down, align_up

IO, MEM, PREF = "io", "mem", "pref"
TYPES = (IO, MEM, PREF)
DEVICE_MEM_MIN = 4096
BRIDGE_MEM_MIN = 2 * MiB
BRIDGE_IO_MIN = 0x1000
PCIMEM_END = 0xFEC00000
Q35_PCIMEM_START = 0xC0000000  # above MMCONFIG 0xb0000000-0xbfffffff
MEM64_TOP_MAX = 46


class Entry(Record, kw_only=False, frozen=False):
    size: int
    align: int
    kind: str
    is64: bool
    device: str = ""
    bar: int = -1  # -1: a root port's window
    port: str = ""  # for a window: the port whose bus it feeds


class Bus(Record, frozen=False):
    lists: dict[str, list[Entry]] = field(default_factory=lambda: {t: [] for t in TYPES})
    base: dict[str, int] = field(default_factory=dict)


def insert(entries: list[Entry], entry: Entry) -> None:
    """pci_region_create_entry: before the first smaller alignment, or equal one of smaller size."""
    for number, pos in enumerate(entries):
        if pos.align < entry.align or (pos.align == entry.align and pos.size < entry.size):
            entries.insert(number, entry)
            return
    entries.append(entry)


def region_align(entries: list[Entry]) -> int:
    return entries[0].align if entries else 1


def region_sum(entries: list[Entry]) -> int:
    return sum(entry.size for entry in entries)


def place_seabios(build: Build, board: Board) -> Placement:
    new = build.at_least("1.16.3")
    bits = cpuid_phys_bits(board) if new else None
    top = 1 << min(bits, MEM64_TOP_MAX) if bits else 0
    pad = bool(new and bits and bits >= 36 and board.ram_end > FOUR_GIB)
    if build.at_least("1.17.0"):
        top, pad = _top_1_17(bits, board), board.ram_end > FOUR_GIB
    buses = _collect(board, top if pad else 0, build.at_least("1.17.0"))
    root = buses[None]
    start = _pcimem_start(board)
    placed: dict[tuple[str, int], int] = {}
    notes: list[str] = []
    window: tuple[int, int] | None = None
    if pad or not _root_regions(root, start):
        high = {MEM: _migrate(root.lists[MEM]), PREF: _migrate(root.lists[PREF])}
        if not _root_regions(root, start):
            notes.append(f"{build.name} stops with 'PCI: out of 32bit address space': no BAR is "
                         "assigned and the guest does not boot")
            return _result(build, board, {}, None, notes)
        bases = _place_high(board, high, top, pad)
        for kind in (MEM, PREF):
            _map(buses, high[kind], bases[kind], placed)
        window = (bases[MEM], align_up(bases[PREF] + region_sum(high[PREF]), GiB) - 1)
    for bus in [None, *(port.id for port in bus_order(board))]:
        for kind in TYPES:
            _map(buses, buses[bus].lists[kind], buses[bus].base.get(kind, 0), placed)
    return _result(build, board, placed, window, notes)


def _top_1_17(bits: int | None, board: Board) -> int:
    """1.17.0: the window's top is 2^44 for guests below 1 TiB of RAM above 4 GiB (old kernels),
    else the whole trusted address space."""
    if not bits:
        return 0
    if bits > 44 and board.ram_end - FOUR_GIB < 1 << 40:
        return 1 << 44
    return 1 << bits


def _collect(board: Board, padded_top: int, keep_larger: bool = False) -> dict[str | None, Bus]:
    """pci_bios_check_devices: each bus's sorted lists, then each bridge's window entries on its
    parent bus, from the highest secondary bus down (a bridge's window holds its children's)."""
    buses: dict[str | None, Bus] = {None: Bus(), **{port.id: Bus() for port in board.ports}}
    found: list[PciDevice | RootPort] = [*board.devices, *board.ports]
    for device in sorted(found, key=lambda d: (d.port is not None, d.slot, d.function)):
        for entry in _entries(device):
            insert(buses[device.port].lists[entry.kind], entry)
    for port in reversed(bus_order(board)):
        child = buses[port.id]
        for kind in TYPES:
            align = BRIDGE_IO_MIN if kind == IO else BRIDGE_MEM_MIN
            align = max(align, region_align(child.lists[kind]))
            total = region_sum(child.lists[kind])
            is64 = kind == PREF and all(e.is64 for e in child.lists[kind])
            reserve = port.hotplug and kind != IO  # a PCIe hotplug port needs no I/O window
            if port.hotplug and padded_top and is64 and kind == PREF:
                align = max(align, padded_top >> 11) if keep_larger else padded_top >> 11
            if reserve and align > total:
                total = align  # reserve the minimum for hotplug
            insert(buses[port.port].lists[kind],
                   Entry(align_up(total, align), align, kind, is64, port=port.id))
    return buses


def bus_order(board: Board) -> list[RootPort]:
    """The bridges in the order of their secondary bus numbers (pci_bios_init_bus: depth first,
    each bus in slot order)."""
    found: list[RootPort] = []

    def walk(parent: str | None) -> None:
        for port in sorted((p for p in board.ports if p.port == parent),
                           key=lambda p: (p.slot, p.function)):
            found.append(port)
            walk(port.id)

    walk(None)
    return found


def _entries(device: PciDevice | RootPort) -> list[Entry]:
    found = []
    for bar in device.bars:
        kind = IO if bar.io else PREF if bar.prefetchable else MEM
        size = bar.size if bar.io else max(bar.size, DEVICE_MEM_MIN)
        found.append(Entry(size, size, kind, bar.is64 and not bar.io, device.id, bar.index))
    if isinstance(device, PciDevice) and device.rom:
        size = max(device.rom, DEVICE_MEM_MIN)
        found.append(Entry(size, size, MEM, False, device.id, ROM))
    return found


def _pcimem_start(board: Board) -> int:
    if board.machine == "q35":
        return Q35_PCIMEM_START
    low = board.ram_below_4g  # i440fx_mem_addr_setup
    return 0x80000000 if low <= 0x80000000 else 0xC0000000 if low <= 0xC0000000 else low


def _root_regions(root: Bus, pcimem_start: int) -> bool:
    """pci_bios_init_root_regions_mem: pack the larger-aligned region lowest, both down from the top."""
    first, last = PREF, MEM
    if region_align(root.lists[MEM]) < region_align(root.lists[PREF]):
        first, last = MEM, PREF
    end_base = align_down(PCIMEM_END - region_sum(root.lists[first]), region_align(root.lists[first]))
    start_base = end_base - region_sum(root.lists[last])
    if start_base < 0:
        return False
    start_base = align_down(start_base, region_align(root.lists[last]))
    root.base[first], root.base[last] = end_base, start_base
    return pcimem_start <= start_base <= PCIMEM_END


def _migrate(entries: list[Entry]) -> list[Entry]:
    moved = [entry for entry in entries if entry.is64]
    entries[:] = [entry for entry in entries if not entry.is64]
    return moved


def _place_high(board: Board, high: dict[str, list[Entry]], top: int, pad: bool) -> dict[str, int]:
    sum_mem, sum_pref = region_sum(high[MEM]), region_sum(high[PREF])
    base = max(board.reserved_memory_end or 0, board.ram_end)
    if top:
        size = align_up(sum_mem, GiB) + align_up(sum_pref, GiB)
        if pad:
            size = align_up(size, top >> 3)
        if top > size and base < top - size:
            base = top - size
        if _e820_used(board, base, size):
            base -= size
    base = align_up(align_up(base, region_align(high[MEM])), GiB)
    pref = align_up(align_up(base + sum_mem, region_align(high[PREF])), GiB)
    return {MEM: base, PREF: pref}


def _e820_used(board: Board, start: int, size: int) -> bool:
    end = start + size - 1
    used = [(0, board.ram_below_4g - 1), *board.e820_reserved]
    if board.ram_end > FOUR_GIB:
        used.append((FOUR_GIB, board.ram_end - 1))
    return any(low <= end and start <= high for low, high in used)


def _map(buses: dict[str | None, Bus], entries: list[Entry], base: int,
         placed: dict[tuple[str, int], int]) -> None:
    """pci_region_map_entries: one after the other from `base`; a window sets its bus's base."""
    for entry in entries:
        if entry.bar == -1:
            buses[entry.port].base[entry.kind] = base
        else:  # a BAR ignores the low bits its size leaves (1.16.3 may misalign it: below)
            placed[(entry.device, entry.bar)] = align_down(base, entry.size)
        base += entry.size


def _result(build: Build, board: Board, placed: dict[tuple[str, int], int],
            window: tuple[int, int] | None, notes: list[str]) -> Placement:
    bars = []
    for device in board.devices:
        for bar in device.bars:
            if not bar.io:
                bars.append(Placed(device.id, bar.index, bar.size, bar.is64,
                                   placed.get((device.id, bar.index))))
        if device.rom:
            bars.append(Placed(device.id, ROM, device.rom, False, placed.get((device.id, ROM))))
    return Placement(build.name, window, tuple(bars), tuple(notes))
