"""OVMF's PCI resource placement (edk2 2022.11, 2025.02 and 2026.08 as Debian builds them:
OvmfPkg/Library/PlatformInitLib/MemDetect.c, OvmfPkg/PciHotPlugInitDxe, MdeModulePkg/Bus/Pci/
PciBusDxe and PciHostBridgeDxe).

- The 64-bit window (PlatformGetFirstNonAddress): 32 GiB, or opt/ovmf/X-PciMmio64Mb MiB (at most
  16 TiB), placed at the end of RAM (etc/reserved-memory-end when QEMU gives it), aligned to
  1 GiB and to the largest power of two not above its size. When the firmware trusts the guest's
  phys-bits (`firmware_phys_bits`) and that window is smaller than an eighth of the address
  space, the window is that eighth, at the top (PlatformDynamicMmioWindow).
- 2025.02 and later (PlatformAddressWidthFromCpuid): CPUID's GuestPhysBits, when QEMU sets it,
  makes any phys-bits trusted and caps them; the cap without 5-level paging is 46 (47 before);
  Debian builds without PcdUse5LevelPageTable, so la57 changes nothing. A dynamic window that
  overlaps an E820 entry moves below it, aligned to its size (PlatformReservationConflictCB:
  QEMU's AMD HyperTransport range at 0xfd00000000 with 40 phys-bits). X-PciMmio64Mb is taken as
  it is, no dynamic window (edk2 9ac1704af6, a Debian patch on 2025.02, upstream in 2026.08).
- OVMF reads the vendor for the phys-bits check from CPUID 0x80000000, which QEMU 10.1 and later
  leave empty for Intel CPUs on machine types 10.1 and later (x-vendor-cpuid-only-v2): there,
  Intel's 36 and 39 bits are not trusted (measured on QEMU 11.1 with 2022.11, 2025.02, 2026.08).
- Every 64-bit BAR of the root bus, and each root port's 64-bit prefetchable window, go into it
  (non-prefetchable 64-bit BARs behind a port go below 4 GiB); sorted by alignment, largest first,
  ties in the order found; placed one after the other from the window's start aligned to the
  largest. A root port's window is its children's, and at least 1/256 of the window (rounded up
  to a power of two) when the window is larger than 32 GiB (hotplug padding).
- X-PciMmio64Mb=0 and untrusted phys-bits (or 2025.02 and later): no 64-bit window; PciBusDxe
  degrades the 64-bit BARs to the 32-bit window (not modelled: no BAR is placed, and said so).
- When the whole does not fit, the firmware assigns nothing at all: every BAR is left unassigned
  (measured: no device gets a BAR, not even the built-in SATA controller).
"""


from layoutd.firmware import FOUR_GIB, Board, PciDevice, Placed, Placement, RootPort, armvirt, cpuid_phys_bits
from layoutd.firmware.builds import Build
from layoutd.record import Record, field, replace
from layoutd.units import GiB, MiB, align_up, hex_addr, human_size

DEFAULT_MMIO64 = 32 * GiB  # PcdPciMmio64Size in OvmfPkgX64.dsc
MAX_MMIO64_MB = 0x1000000  # X-PciMmio64Mb above 16 TiB is ignored
BRIDGE_ALIGN = MiB  # a P2P bridge memory window's own alignment
MMIO32_END = 0xFC000000  # the 32-bit window's end (the gap below the IO-APIC)
Q35_MMCONFIG_OLD = 0xB0000000  # PcdPciExpressBaseAddress in 2022.11
Q35_MMCONFIG_NEW = 0xE0000000  # ... and in 2025.02 and later


class Node(Record, kw_only=False, frozen=False):
    size: int
    align: int  # a power of two
    device: str = ""
    bar: int = -1  # -1: a root port's window
    children: list["Node"] = field(default_factory=list)
    offset: int = 0


def window(build: Build, board: Board) -> tuple[int, int, list[str]]:
    """(base, size, notes) of the 64-bit PCI window."""
    notes = []
    size = DEFAULT_MMIO64
    override = False
    if board.mmio64_mb is not None:
        if board.mmio64_mb <= MAX_MMIO64_MB:
            size = board.mmio64_mb * MiB
            override = build.at_least("2025.02")
        else:
            notes.append(f"X-PciMmio64Mb={board.mmio64_mb} is above 16 TiB: OVMF ignores it")
    first = max(board.ram_end, FOUR_GIB)
    if size and board.reserved_memory_end:
        first = max(first, board.reserved_memory_end)
    base = align_up(first, GiB)
    size = align_up(size, GiB)
    if size:
        base = align_up(base, 1 << (size.bit_length() - 1))
    if override:
        return base, size, notes
    bits = firmware_phys_bits(build, board)
    if bits is not None:
        space, mmio = 1 << bits, 1 << (bits - 3)
        if size < mmio and base + mmio < space:
            base = space - mmio
            if build.at_least("2025.02"):
                base = _below_reservations(board, base, mmio, notes)
            return base, mmio, notes
    elif size:
        vendor = f"a {board.vendor} CPU" if board.ext_vendor else (
            "an Intel CPU on this machine type (QEMU 10.1 and later leave the vendor out of "
            "CPUID 0x80000000, where OVMF reads it)")
        notes.append(f"OVMF does not trust phys-bits={board.phys_bits} for {vendor} (only 36/39 "
                     "on Intel, 40 on AMD, or 41 and more): it uses its classic window")
    return base, size, notes


def firmware_phys_bits(build: Build, board: Board) -> int | None:
    """The phys-bits OVMF works with, or None when it does not trust the guest's."""
    guest = board.guest_phys_bits if build.at_least("2025.02") else 0
    # OVMF reads the vendor from CPUID 0x80000000, which QEMU 10.1 leaves empty for Intel
    seen = board if board.ext_vendor else replace(board, vendor="other")
    bits = min(board.phys_bits, guest) if guest else cpuid_phys_bits(seen)
    if bits is None:
        return None
    bits = min(bits, 46 if build.at_least("2025.02") else 47)  # 4-level paging
    return 40 if not board.page_1g and bits > 40 else bits


def _below_reservations(board: Board, base: int, size: int, notes: list[str]) -> int:
    """PlatformReservationConflictCB over QEMU's E820 table in its order (the AMD reservation,
    then RAM below and above 4 GiB): a window overlapping an entry moves below it."""
    entries = [*((start, end + 1) for start, end in board.e820_reserved), (0, board.ram_below_4g)]
    if board.ram_end > FOUR_GIB:
        entries.append((board.ram_high_start, board.ram_end))
    for start, end in entries:
        if max(start, base) < min(end, base + size):
            moved = (start - size) & ~(size - 1)
            notes.append(f"OVMF's window {hex_addr(base)}-{hex_addr(base + size - 1)} overlaps the "
                         f"E820 entry {hex_addr(start)}-{hex_addr(end - 1)}: moved below it")
            base = moved
    return base


def mmio32(build: Build, board: Board) -> tuple[int, int]:
    """OVMF's 32-bit PCI window [start, end] (PlatformMemMapInitialization). Uc32Base is 4 GiB
    minus the largest power of two not above 4 GiB minus the RAM below 4 GiB. 2022.11: q35 from
    the end of MMCONFIG (0xb0000000 + 256 MiB), pc from Uc32Base, both to 0xfc000000; 2025.02
    and later put MMCONFIG at 0xe0000000: q35 from Uc32Base to there, pc as before."""
    free = FOUR_GIB - max(board.ram_below_4g, 1)
    uc32 = FOUR_GIB - (1 << (free.bit_length() - 1))
    if board.machine == "q35":
        if build.at_least("2025.02"):
            return uc32, Q35_MMCONFIG_NEW - 1
        return Q35_MMCONFIG_OLD + 256 * MiB, MMIO32_END - 1
    return uc32, MMIO32_END - 1


def place_ovmf(build: Build, board: Board) -> Placement:
    base, size, notes = window(build, board)
    if not size:
        notes.append("X-PciMmio64Mb=0 turns OVMF's 64-bit window off: PciBusDxe degrades every "
                     "64-bit BAR to the 32-bit window")
    padding = 1 << ((size >> 8) - 1).bit_length() if size > 32 * GiB else 0
    return _place(build, board, base, size, padding, notes)


def _place(build: Build, board: Board, base: int, size: int, padding: int,
           notes: list[str]) -> Placement:
    """PciHostBridgeDxe: the 64-bit pool (root-bus 64-bit BARs, root ports' prefetchable windows)
    and the 32-bit pool (armvirt's pools: 32-bit BARs, ROMs, root ports' 32-bit windows, with
    the 64-bit non-prefetchable BARs behind them), the larger alignment first; a 64-bit pool
    that does not fit its window tries the 32-bit one."""
    low = mmio32(build, board)
    high = (base, base + size - 1) if size and base >= 0 else None
    root = _tree(board, padding) if size else Node(0, 1)
    _aperture(root, BRIDGE_ALIGN)
    mem32, _ = armvirt._pools(replace(board, mmio64=(base, base + size - 1) if size else None))
    size32, align32 = armvirt._aperture(mem32)
    order = ["64", "32"] if root.align >= align32 else ["32", "64"]
    taken: list[tuple[int, int]] = []
    bases: dict[str, int] = {}
    for kind in order:
        if kind == "32" and size32:
            found = armvirt._allocate(size32, align32, low, taken, 31)
        elif kind == "64" and root.children:
            found = armvirt._allocate(root.size, root.align, high, taken, 63) if high else None
            if found is None and base >= 0:
                found = armvirt._allocate(root.size, root.align, low, taken, 31)
                if found is not None:
                    notes.append(f"the 64-bit BARs ({human_size(root.size)}) do not fit OVMF's "
                                 f"64-bit window: it puts them in the 32-bit one")
        else:
            continue
        if found is None:
            notes.append(_failed(kind, base, size, root, size32, align32, low))
            bases = {}
            break
        taken.append((found, found + (size32 if kind == "32" else root.size) - 1))
        bases[kind] = found
    placed: dict[tuple[str, int], int] = {}
    if "64" in bases:
        _assign(root, bases["64"], placed)
    if "32" in bases:
        armvirt._assign(mem32, bases["32"], placed)
    bars = [Placed(device.id, bar.index, bar.size, bar.is64, placed.get((device.id, bar.index)))
            for device in board.devices for bar in device.bars if not bar.io]
    below = [f"{p.device} BAR{p.bar}" for p in bars
             if p.is64 and p.start is not None and p.start < FOUR_GIB]
    if below:
        notes.append(f"{build.name} puts {', '.join(below)} in its 32-bit window "
                     f"{hex_addr(low[0])}-{hex_addr(low[1])}")
    return Placement(build.name, high, tuple(bars), tuple(notes))


def _failed(kind: str, base: int, size: int, root: Node, size32: int, align32: int,
            low: tuple[int, int]) -> str:
    lows = f"the 32-bit window {hex_addr(low[0])}-{hex_addr(low[1])}"
    end = ", so OVMF assigns no BAR at all (measured with devices on the root bus; edk2 may " \
          "instead drop a device behind a root port, which layoutd does not model on x86)"
    if kind == "32":
        return f"the 32-bit BARs need {human_size(size32)} aligned to {human_size(align32)}, " \
               f"more than {lows}" + end
    if base < 0:
        return "OVMF's window moved below address 0 (measured: no BAR assigned)"
    return (f"the 64-bit BARs need {human_size(root.size)} aligned to {human_size(root.align)}; "
            f"OVMF's window {hex_addr(base)}-{hex_addr(base + size - 1)} cannot hold them, nor "
            f"{lows}" + end)


def _tree(board: Board, padding: int) -> Node:
    """The root bridge's 64-bit node: root-bus 64-bit BARs and root ports' prefetchable windows
    (at least `padding` each), in the order PciBusDxe finds them (slot, function, BAR)."""
    root = Node(0, 1)
    found: list[PciDevice | RootPort] = [d for d in board.devices if d.port is None]
    found += board.ports
    for item in sorted(found, key=lambda entry: (entry.slot, entry.function)):
        if isinstance(item, PciDevice):
            for bar in item.bars:
                if bar.is64 and not bar.io:
                    _insert(root, Node(bar.size, bar.size, item.id, bar.index))
            continue
        port = Node(0, BRIDGE_ALIGN, item.id)
        for device in sorted((d for d in board.devices if d.port == item.id),
                             key=lambda d: (d.slot, d.function)):
            for bar in device.bars:
                if bar.is64 and bar.prefetchable and not bar.io:
                    _insert(port, Node(bar.size, bar.size, device.id, bar.index))
        _aperture(port, BRIDGE_ALIGN, padding)
        _insert(root, port)
    return root


def _insert(parent: Node, node: Node) -> None:
    """Sorted by alignment, largest first; equal ones keep the order found (measured)."""
    for number, other in enumerate(parent.children):
        if other.align < node.align:
            parent.children.insert(number, node)
            return
    parent.children.append(node)


def _aperture(bridge: Node, own_align: int, padding: int = 0) -> None:
    """CalculateResourceAperture: children one after the other, each aligned; the bridge takes
    the larger of that and its padding, rounded to its own 1 MiB (not to its largest child),
    then aligned to its largest child (or the padding)."""
    offset = 0
    for child in bridge.children:
        child.offset = align_up(offset, child.align)
        offset = child.offset + child.size
    bridge.align = max([own_align, padding, *(child.align for child in bridge.children[:1])])
    bridge.size = max(align_up(offset, own_align), padding) if offset or padding else 0


def _assign(node: Node, start: int, placed: dict[tuple[str, int], int]) -> None:
    for child in node.children:
        if child.bar >= 0:
            placed[(child.device, child.bar)] = start + child.offset
        else:
            _assign(child, start + child.offset, placed)
