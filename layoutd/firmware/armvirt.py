"""edk2's PCI resource placement on arm `virt` (ArmVirtQemu: Debian's qemu-efi-aarch64 2022.11,
2025.02 and sid's 2026.08; OvmfPkg/Fdt/FdtPciHostBridgeLib, MdeModulePkg/Bus/Pci/PciBusDxe and
PciHostBridgeDxe, which did not change these rules between those releases).

- The windows come from QEMU's device tree: the 32-bit one (VIRT_PCIE_MMIO, 0x10000000-0x3efeffff)
  and the 64-bit one (VIRT_HIGH_PCIE_MMIO, when QEMU made it: layoutd.qemu.arm places it). The
  root bridge combines prefetchable and non-prefetchable memory, and decodes 64-bit memory only
  when the 64-bit window exists; without it every 64-bit BAR is degraded to the 32-bit pool.
- Each pool (32-bit, 64-bit) lists its BARs by alignment, largest first; a BAR goes before the
  ones of its own alignment already listed (InsertResourceNode), and merging the prefetchable
  list into the other reverses their order again, so equal prefetchable BARs end in slot order
  and equal non-prefetchable ones in reverse slot order. Each BAR is aligned after the previous;
  the pool's size is rounded up to 1 MiB only (not to its largest alignment). The devices'
  option ROMs share one 32-bit entry of the largest ROM's size, listed first.
- PciHostBridgeDxe places the pool with the larger alignment first (the 64-bit one on a tie), at
  the lowest address of its window aligned to that alignment that is still free; a 64-bit pool
  that does not fit its window tries the 32-bit window.
- A pcie-root-port takes its devices' BARs as one entry per window in the root pools: its
  32-bit window at least 2 MiB (PciHotPlugInitDxe's default reserve; no 64-bit reserve on arm,
  where PcdPciMmio64Size is 0), its 64-bit prefetchable window exactly its BARs.
- When a pool fits nowhere, edk2 drops (PciHostBridgeAdjustAllocation) the device behind a root
  port with the largest single BAR in that pool, or a port's reserve if larger (the later one on
  a tie), and tries again; never a device on bus 0: with none left to drop it assigns no BAR at
  all (measured: every BAR reads 0).
"""

from __future__ import annotations

from layoutd.firmware import Bar, Board, PciDevice, Placed, Placement, RootPort
from layoutd.firmware.builds import Build
from layoutd.record import Record, field, replace
from layoutd.units import MiB, align_up, hex_addr, human_size

MMIO32 = (0x10000000, 0x3EFEFFFF)  # hw/arm/virt.c base_memmap[VIRT_PCIE_MMIO]
POOL_ALIGN = MiB  # the root bridge's own alignment for each memory pool
ROM_BAR = 6
WINDOW = -1  # an entry that is a root port's window, holding its devices' entries
RESERVE = -2  # an entry that is a root port's hotplug reserve
PORT_MMIO_PADDING = 2 * MiB  # PciHotPlugInitDxe: a hotplug port's default 32-bit MMIO reserve


class Entry(Record, frozen=False):
    size: int
    align: int
    device: str
    bar: int  # 0-5, ROM_BAR, WINDOW or RESERVE
    offset: int = 0
    entries: list[Entry] = field(default_factory=list)


def _insert(pool: list[Entry], entry: Entry) -> None:
    """InsertResourceNode: before the first entry of smaller alignment, or of the same alignment
    unless the new one's size is not a multiple of it and leaves a smaller remainder."""
    rest = entry.size % entry.align
    for number, other in enumerate(pool):
        if entry.align > other.align or (entry.align == other.align and (
                rest == 0 or rest >= other.size % other.align)):
            pool.insert(number, entry)
            return
    pool.append(entry)


def _merge(into: list[Entry], source: list[Entry]) -> None:
    for entry in source:
        _insert(into, entry)
    source.clear()


def _aperture(pool: list[Entry]) -> tuple[int, int]:
    """(size, alignment) of a pool; each entry's offset set (CalculateResourceAperture): a hotplug
    reserve is laid out apart and the larger of the two taken. The size is rounded to the pool's
    own 1 MiB before its alignment becomes its largest entry's."""
    ends = {False: 0, True: 0}
    for entry in pool:
        reserve = entry.bar == RESERVE
        entry.offset = align_up(ends[reserve], entry.align)
        ends[reserve] = entry.offset + entry.size
    return align_up(max(ends.values()), POOL_ALIGN), max(POOL_ALIGN, pool[0].align if pool else 0)


def _sort(kinds: dict[str, list[Entry]], device: str, bars: tuple[Bar, ...]) -> None:
    for bar in bars:
        if bar.io or not bar.size:
            continue
        kind = ("pmem64" if bar.prefetchable else "mem64") if bar.is64 else (
            "pmem32" if bar.prefetchable else "mem32")
        _insert(kinds[kind], Entry(size=bar.size, align=bar.size, device=device, bar=bar.index))


def _port(board: Board, port: RootPort, reserve: bool) -> dict[str, list[Entry]]:
    """A root port's windows as entries for the root bridge's pools: its devices' BARs, the
    32-bit one at least 2 MiB (PciHotPlugInitDxe's default padding; no 64-bit padding on arm,
    where PcdPciMmio64Size is 0). A port decodes no 64-bit non-prefetchable memory, and with a
    64-bit prefetchable request its 32-bit prefetchable ones go to the 32-bit pool too."""
    kinds: dict[str, list[Entry]] = {"mem32": [], "pmem32": [], "mem64": [], "pmem64": []}
    for device in sorted((d for d in board.devices if d.port == port.id),
                         key=lambda d: (d.slot, d.function)):
        _sort(kinds, device.id, device.bars)
    if reserve:
        _insert(kinds["mem32"], Entry(size=PORT_MMIO_PADDING, align=PORT_MMIO_PADDING,
                                      device=port.id, bar=RESERVE))
    _merge(kinds["mem32"], kinds["mem64"])
    if kinds["pmem64"]:
        _merge(kinds["mem32"], kinds["pmem32"])
    found: dict[str, list[Entry]] = {}
    for kind in ("mem32", "pmem32", "pmem64"):
        if kinds[kind]:
            size, align = _aperture(kinds[kind])
            found[kind] = [Entry(size=size, align=align, device=port.id, bar=WINDOW,
                                 entries=kinds[kind])]
    return found


def _pools(board: Board, bare: frozenset[str] = frozenset()) -> tuple[list[Entry], list[Entry]]:
    """(32-bit pool, 64-bit pool) of the root bridge, in edk2's order; the ports in `bare` have
    lost their hotplug reserve."""
    kinds: dict[str, list[Entry]] = {"mem32": [], "pmem32": [], "mem64": [], "pmem64": []}
    rom = max((d.rom for d in board.devices), default=0)
    if rom:
        _insert(kinds["mem32"], Entry(size=rom, align=rom, device="", bar=ROM_BAR))
    found: list[PciDevice | RootPort] = [d for d in board.devices if d.port is None]
    found += board.ports
    for item in sorted(found, key=lambda entry: (entry.slot, entry.function)):
        _sort(kinds, item.id, item.bars)
        if isinstance(item, RootPort):
            for kind, entries in _port(board, item, item.id not in bare).items():
                for entry in entries:
                    _insert(kinds[kind], entry)
    if board.mmio64 is None:  # DegradeResource: no 64-bit decode at the root bridge
        _merge(kinds["mem32"], kinds["mem64"])
        _merge(kinds["pmem32"], kinds["pmem64"])
    _merge(kinds["mem32"], kinds["pmem32"])  # EFI_PCI_HOST_BRIDGE_COMBINE_MEM_PMEM
    _merge(kinds["mem64"], kinds["pmem64"])
    return kinds["mem32"], kinds["mem64"]


def _allocate(size: int, align: int, window: tuple[int, int], taken: list[tuple[int, int]],
              max_bits: int) -> int | None:
    """AllocateResource: the lowest free aligned start in the window, stepping by the alignment
    (capped at 2^31 in the 32-bit window)."""
    step = min(align, 1 << max_bits)
    start = align_up(align_up(window[0], align), step)
    while start + size <= window[1] + 1:
        if all(start + size <= low or start > high for low, high in taken):
            return start
        start += step
    return None


def place_armvirt(build: Build, board: Board) -> Placement:
    notes: list[str] = []
    dropped: set[str] = set()  # devices edk2 rejects, and ports whose reserve it drops
    while True:
        live = replace(board, devices=tuple(d for d in board.devices if d.id not in dropped))
        mem32, mem64 = _pools(live, frozenset(dropped))
        bases, failed = _place_pools(live, {"32": mem32, "64": mem64})
        if not failed:
            break
        victims = [victim for kind in failed
                   if (victim := _largest(mem32 if kind == "32" else mem64)) is not None]
        if not victims:
            for kind in failed:
                size, align = _aperture(mem32 if kind == "32" else mem64)
                notes.append(f"the {kind}-bit BARs need {human_size(size)} aligned to "
                             f"{human_size(align)}, more than {_windows(board, kind)} can hold: "
                             f"{build.name} assigns no BAR at all")
            bases = {}
            break
        dropped.update(victims)
    found: dict[tuple[str, int], int] = {}
    for kind, pool in (("32", mem32), ("64", mem64)):
        if bases.get(kind) is not None:
            _assign(pool, bases[kind], found)
    bars = [Placed(device.id, bar.index, bar.size, bar.is64, found.get((device.id, bar.index)))
            for device in board.devices for bar in device.bars if bar.is64 and not bar.io]
    gone = sorted(d.id for d in board.devices if d.id in dropped)
    if gone:
        notes.append(f"{build.name} cannot fit every BAR in its windows and drops {', '.join(gone)} "
                     "(behind root ports, the largest BAR first): their BARs are left unassigned")
    low = [f"{p.device} BAR{p.bar}" for p in bars if p.start is not None and p.start < MMIO32[1]]
    if low:
        notes.append(f"{build.name} puts {', '.join(low)} in the 32-bit window "
                     f"{hex_addr(MMIO32[0])}-{hex_addr(MMIO32[1])}")
    return Placement(build.name, board.mmio64, tuple(bars), tuple(notes))


def _place_pools(board: Board, pools: dict[str, list[Entry]]) -> tuple[dict[str, int], list[str]]:
    """PciHostBridgeDxe's allocation: the pool with the larger alignment first (the 64-bit one on
    a tie); the 64-bit pool in its window, else in the 32-bit one. (bases, the pools that failed)."""
    sizes = {kind: _aperture(pool) for kind, pool in pools.items()}
    order = sorted((kind for kind in sizes if sizes[kind][0]), key=lambda k: sizes[k][1], reverse=True)
    if len(order) == 2 and sizes["32"][1] == sizes["64"][1]:
        order = ["64", "32"]  # a tie goes to the later resource type
    taken: list[tuple[int, int]] = []
    bases: dict[str, int] = {}
    for kind in order:
        size, align = sizes[kind]
        base = None
        if kind == "64" and board.mmio64 is not None:
            base = _allocate(size, align, board.mmio64, taken, 63)
        if base is None:
            base = _allocate(size, align, MMIO32, taken, 31)
        if base is not None:
            taken.append((base, base + size - 1))
            bases[kind] = base
    return bases, [kind for kind in ("32", "64") if kind in order and kind not in bases]


def _largest(pool: list[Entry]) -> str | None:
    """GetMaxResourceConsumerDevice: the largest single entry of a device behind a root port, or
    a port's reserve (the later one on a tie); devices on the root bus are never rejected."""
    best: Entry | None = None
    for entry in _behind_ports(pool):
        if best is None or not best.size > entry.size:
            best = entry
    return None if best is None else best.device


def _behind_ports(pool: list[Entry]) -> list[Entry]:
    return [inner for entry in pool if entry.bar == WINDOW for inner in entry.entries]


def _assign(pool: list[Entry], base: int, found: dict[tuple[str, int], int]) -> None:
    for entry in pool:
        if entry.bar == WINDOW:
            _assign(entry.entries, base + entry.offset, found)
        elif entry.bar >= 0:
            found[(entry.device, entry.bar)] = base + entry.offset


def _windows(board: Board, kind: str) -> str:
    low = f"the 32-bit window {hex_addr(MMIO32[0])}-{hex_addr(MMIO32[1])}"
    if kind == "64" and board.mmio64 is not None:
        return f"the 64-bit window {hex_addr(board.mmio64[0])}-{hex_addr(board.mmio64[1])} or {low}"
    return low

