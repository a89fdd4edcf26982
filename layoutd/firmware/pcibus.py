"""edk2's PCI resource allocation, the same code in OVMF (x86) and ArmVirtQemu (arm virt):
MdeModulePkg/Bus/Pci/PciBusDxe builds each bridge's resource lists (InsertResourceNode,
DegradeResource, CalculateResourceAperture) and PciHostBridgeDxe places the root bridge's pools
in its windows (AllocateResource). The platform gives the windows and the hotplug padding
(armvirt.py, ovmf.py).

- Each pool (32-bit, 64-bit) lists its BARs by alignment (its size, at least 4 KiB), largest
  first; a BAR goes before the ones of its own alignment already listed (InsertResourceNode),
  and merging the prefetchable list into the other reverses their order again, so equal
  prefetchable BARs end in slot order and equal non-prefetchable ones in reverse slot order.
  Each BAR is aligned after the previous; a pool's or bridge window's size is rounded up to its
  own 1 MiB only (not to its largest alignment). The devices' option ROMs share one 32-bit
  entry of the largest ROM's size.
- The root bridge combines prefetchable and non-prefetchable memory (COMBINE_MEM_PMEM), and
  decodes 64-bit memory only when there is a 64-bit window; without it every 64-bit BAR is
  degraded to the 32-bit pool. A root port decodes no 64-bit non-prefetchable memory.
- The pool with the larger alignment is placed first (the 64-bit one on a tie), at the lowest
  free address of its window aligned to that alignment; a 64-bit pool that does not fit its
  window tries the 32-bit one. When a pool fits nowhere, edk2 drops a device behind a root port
  and tries again (`fit`).
"""

from __future__ import annotations

from layoutd.firmware.board import Bar, Board, PciDevice, RootPort
from layoutd.record import Record, field, replace
from layoutd.units import KiB, MiB, align_up

POOL_ALIGN = MiB  # the root bridge's own alignment for each memory pool
ROM_BAR = 6
WINDOW = -1  # an entry that is a root port's window, holding its devices' entries
RESERVE = -2  # an entry that is a root port's hotplug reserve
MIN_ALIGN = 4 * KiB  # a memory BAR's least alignment
PORT_MMIO_PADDING = 2 * MiB  # PciHotPlugInitDxe: a hotplug port's default 32-bit MMIO reserve


class Entry(Record, frozen=False):
    size: int
    align: int
    device: str
    bar: int  # 0-5, ROM_BAR, WINDOW or RESERVE
    offset: int = 0
    entries: list[Entry] = field(default_factory=list)


def insert(pool: list[Entry], entry: Entry) -> None:
    """InsertResourceNode: before the first entry of smaller alignment, or of the same alignment
    unless the new one's size is not a multiple of it and leaves a smaller remainder."""
    rest = entry.size % entry.align
    for number, other in enumerate(pool):
        if entry.align > other.align or (entry.align == other.align and (
                rest == 0 or rest >= other.size % other.align)):
            pool.insert(number, entry)
            return
    pool.append(entry)


def merge(into: list[Entry], source: list[Entry]) -> None:
    for entry in source:
        insert(into, entry)
    source.clear()


def aperture(pool: list[Entry]) -> tuple[int, int]:
    """(size, alignment) of a pool; each entry's offset set (CalculateResourceAperture): a hotplug
    reserve is laid out apart and the larger of the two taken. The size is rounded to the pool's
    own 1 MiB before its alignment becomes its largest entry's."""
    ends = {False: 0, True: 0}
    for entry in pool:
        reserve = entry.bar == RESERVE
        entry.offset = align_up(ends[reserve], entry.align)
        ends[reserve] = entry.offset + entry.size
    return align_up(max(ends.values()), POOL_ALIGN), max(POOL_ALIGN, pool[0].align if pool else 0)


def sort_bars(kinds: dict[str, list[Entry]], device: str, bars: tuple[Bar, ...]) -> None:
    """Each memory BAR into its list, aligned to its size and at least 4 KiB (PciParseBar: "Force
    minimum 4KByte alignment for Virtualization technology for Directed I/O")."""
    for bar in bars:
        if bar.io or not bar.size:
            continue
        kind = ("pmem64" if bar.prefetchable else "mem64") if bar.is64 else (
            "pmem32" if bar.prefetchable else "mem32")
        insert(kinds[kind], Entry(size=bar.size, align=max(bar.size, MIN_ALIGN), device=device,
                                  bar=bar.index))


def port_windows(board: Board, port: RootPort, reserve: bool, pref64: int = 0
                 ) -> dict[str, list[Entry]]:
    """A root port's windows as entries for the root bridge's pools: its devices' BARs and the
    windows of the bridges behind it (each padded when it has a hotplug slot or SHPC), the
    32-bit one at least 2 MiB (PciHotPlugInitDxe's default padding) and the 64-bit prefetchable
    one at least `pref64` (OVMF: 1/256 of a window above 32 GiB; none on arm, where
    PcdPciMmio64Size is 0). A port decodes no 64-bit non-prefetchable memory (DegradeResource:
    those BARs go to its 32-bit window), and with a 64-bit prefetchable request its 32-bit
    prefetchable ones go to the 32-bit pool too."""
    kinds: dict[str, list[Entry]] = {"mem32": [], "pmem32": [], "mem64": [], "pmem64": []}
    behind: list[PciDevice | RootPort] = [d for d in board.devices if d.port == port.id]
    behind += [p for p in board.ports if p.port == port.id]
    for device in sorted(behind, key=lambda d: (d.slot, d.function)):
        sort_bars(kinds, device.id, device.bars)
        if isinstance(device, RootPort):  # a bridge behind this one: its windows are entries here
            for kind, entries in port_windows(board, device, device.hotplug or device.shpc,
                                              pref64).items():
                for entry in entries:
                    insert(kinds[kind], entry)
    if reserve:
        insert(kinds["mem32"], Entry(size=PORT_MMIO_PADDING, align=PORT_MMIO_PADDING,
                                     device=port.id, bar=RESERVE))
        if pref64:
            insert(kinds["pmem64"], Entry(size=pref64, align=pref64, device=port.id, bar=RESERVE))
    merge(kinds["mem32"], kinds["mem64"])
    if kinds["pmem64"]:
        merge(kinds["mem32"], kinds["pmem32"])
    found: dict[str, list[Entry]] = {}
    for kind in ("mem32", "pmem32", "pmem64"):
        if kinds[kind]:
            size, align = aperture(kinds[kind])
            found[kind] = [Entry(size=size, align=align, device=port.id, bar=WINDOW,
                                 entries=kinds[kind])]
    return found


def pools(board: Board, bare: frozenset[str] = frozenset(), pref64: int = 0
          ) -> tuple[list[Entry], list[Entry]]:
    """(32-bit pool, 64-bit pool) of the root bridge, in edk2's order; the ports in `bare` have
    lost their hotplug reserve; `pref64`: each port's 64-bit prefetchable reserve. Without a
    64-bit window (`board.mmio64` None) the root bridge decodes no 64-bit memory."""
    kinds: dict[str, list[Entry]] = {"mem32": [], "pmem32": [], "mem64": [], "pmem64": []}
    rom = max((d.rom for d in board.devices), default=0)
    if rom:
        insert(kinds["mem32"], Entry(size=rom, align=rom, device="", bar=ROM_BAR))
    found: list[PciDevice | RootPort] = [d for d in board.devices if d.port is None]
    found += [port for port in board.ports if port.port is None]
    for item in sorted(found, key=lambda entry: (entry.slot, entry.function)):
        sort_bars(kinds, item.id, item.bars)
        if isinstance(item, RootPort):
            padded = item.id not in bare and (item.hotplug or item.shpc)
            for kind, entries in port_windows(board, item, padded, pref64).items():
                for entry in entries:
                    insert(kinds[kind], entry)
    if board.mmio64 is None:  # DegradeResource: no 64-bit decode at the root bridge
        merge(kinds["mem32"], kinds["mem64"])
        merge(kinds["pmem32"], kinds["pmem64"])
    merge(kinds["mem32"], kinds["pmem32"])  # EFI_PCI_HOST_BRIDGE_COMBINE_MEM_PMEM
    merge(kinds["mem64"], kinds["pmem64"])
    return kinds["mem32"], kinds["mem64"]


def allocate(size: int, align: int, window: tuple[int, int], taken: list[tuple[int, int]],
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


def place_pools(pools: dict[str, list[Entry]], low: tuple[int, int], high: tuple[int, int] | None
                ) -> tuple[dict[str, int], list[str]]:
    """PciHostBridgeDxe's allocation: the pool with the larger alignment first (the 64-bit one on
    a tie); the 64-bit pool in its window `high`, else in the 32-bit one `low`. (bases, the pools
    that failed)."""
    sizes = {kind: aperture(pool) for kind, pool in pools.items()}
    order = sorted((kind for kind in sizes if sizes[kind][0]), key=lambda k: sizes[k][1], reverse=True)
    if len(order) == 2 and sizes["32"][1] == sizes["64"][1]:
        order = ["64", "32"]  # a tie goes to the later resource type
    taken: list[tuple[int, int]] = []
    bases: dict[str, int] = {}
    for kind in order:
        size, align = sizes[kind]
        base = None
        if kind == "64" and high is not None:
            base = allocate(size, align, high, taken, 63)
        if base is None:
            base = allocate(size, align, low, taken, 31)
        if base is not None:
            taken.append((base, base + size - 1))
            bases[kind] = base
    return bases, [kind for kind in ("32", "64") if kind in order and kind not in bases]


def behind_ports(pool: list[Entry]) -> list[Entry]:
    return [inner for entry in pool if entry.bar == WINDOW for inner in entry.entries]


def assign(pool: list[Entry], base: int, found: dict[tuple[str, int], int]) -> None:
    for entry in pool:
        if entry.bar == WINDOW:
            assign(entry.entries, base + entry.offset, found)
        elif entry.bar >= 0:
            found[(entry.device, entry.bar)] = base + entry.offset


def fit(board: Board, low: tuple[int, int], high: tuple[int, int] | None, pref64: int = 0
        ) -> tuple[list[Entry], list[Entry], dict[str, int], set[str], list[str]]:
    """The pools placed (`place_pools`); when one fits nowhere, edk2 drops a device behind a root
    port (PciHostBridgeAdjustAllocation: the largest, one per failing pool) and tries again; with
    none left to drop it assigns nothing. (32-bit pool, 64-bit pool, bases, the devices and
    ports dropped, the pools that still failed)."""
    dropped: set[str] = set()  # devices edk2 rejects, and ports whose reserve it drops
    while True:
        live = replace(board, devices=tuple(d for d in board.devices if d.id not in dropped))
        mem32, mem64 = pools(live, frozenset(dropped), pref64)
        bases, failed = place_pools({"32": mem32, "64": mem64}, low, high)
        if not failed:
            return mem32, mem64, bases, dropped, []
        victims = [victim for kind in failed
                   if (victim := largest(mem32 if kind == "32" else mem64)) is not None]
        if not victims:
            return mem32, mem64, {}, dropped, failed
        dropped.update(victims)


def largest(pool: list[Entry]) -> str | None:
    """GetMaxResourceConsumerDevice: the largest single entry of a device behind a root port, or
    a port's reserve (the later one on a tie); devices on the root bus are never rejected."""
    best: Entry | None = None
    for entry in behind_ports(pool):
        if best is None or not best.size > entry.size:
            best = entry
    return None if best is None else best.device
