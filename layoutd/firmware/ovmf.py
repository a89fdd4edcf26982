"""OVMF's PCI resource placement (edk2 2022.11: OvmfPkg/Library/PlatformInitLib/MemDetect.c,
OvmfPkg/PciHotPlugInitDxe, MdeModulePkg/Bus/Pci/PciBusDxe and PciHostBridgeDxe).

- The 64-bit window (PlatformGetFirstNonAddress): 32 GiB, or opt/ovmf/X-PciMmio64Mb MiB (at most
  16 TiB), placed at the end of RAM (etc/reserved-memory-end when QEMU gives it), aligned to
  1 GiB and to the largest power of two not above its size. When the firmware trusts the guest's
  phys-bits (`cpuid_phys_bits`; at most 47, and 40 without 1 GiB pages) and that window is
  smaller than an eighth of the address space, the window is that eighth, at the top
  (PlatformDynamicMmioWindow).
- Every 64-bit BAR of the root bus, and each root port's 64-bit prefetchable window, go into it
  (non-prefetchable 64-bit BARs behind a port go below 4 GiB); sorted by alignment, largest first,
  ties in the order found; placed one after the other from the window's start aligned to the
  largest. A root port's window is its children's, and at least 1/256 of the window (rounded up
  to a power of two) when the window is larger than 32 GiB (hotplug padding).
- When the whole does not fit, the firmware assigns nothing at all: every BAR is left unassigned
  (measured: no device gets a BAR, not even the built-in SATA controller).
"""

from layoutd.firmware import FOUR_GIB, Board, PciDevice, Placed, Placement, RootPort, cpuid_phys_bits
from layoutd.firmware.builds import Build
from layoutd.record import Record, field
from layoutd.units import GiB, MiB, align_up, hex_addr, human_size

DEFAULT_MMIO64 = 32 * GiB  # PcdPciMmio64Size in OvmfPkgX64.dsc
MAX_MMIO64_MB = 0x1000000  # X-PciMmio64Mb above 16 TiB is ignored
BRIDGE_ALIGN = MiB  # a P2P bridge memory window's own alignment


class Node(Record, kw_only=False, frozen=False):
    size: int
    align: int  # a power of two
    device: str = ""
    bar: int = -1  # -1: a root port's window
    children: list["Node"] = field(default_factory=list)
    offset: int = 0


def window(board: Board) -> tuple[int, int, list[str]]:
    """(base, size, notes) of the 64-bit PCI window."""
    notes = []
    size = DEFAULT_MMIO64
    if board.mmio64_mb is not None:
        if board.mmio64_mb <= MAX_MMIO64_MB:
            size = board.mmio64_mb * MiB
        else:
            notes.append(f"X-PciMmio64Mb={board.mmio64_mb} is above 16 TiB: OVMF ignores it")
    first = max(board.ram_end, FOUR_GIB)
    if size and board.reserved_memory_end:
        first = max(first, board.reserved_memory_end)
    base = align_up(first, GiB)
    size = align_up(size, GiB)
    if size:
        base = align_up(base, 1 << (size.bit_length() - 1))
    bits = firmware_phys_bits(board)
    if bits is not None:
        space, mmio = 1 << bits, 1 << (bits - 3)
        if size < mmio and base + mmio < space:
            return space - mmio, mmio, notes
    elif size:
        notes.append(f"OVMF does not trust phys-bits={board.phys_bits} for a {board.vendor} CPU "
                     "(only 36/39 on Intel, 40 on AMD, or 41 and more): it uses its classic window")
    return base, size, notes


def firmware_phys_bits(board: Board) -> int | None:
    bits = cpuid_phys_bits(board)
    if bits is None:
        return None
    bits = min(bits, 47)  # no 5-level paging
    return 40 if not board.page_1g and bits > 40 else bits


def place_ovmf(build: Build, board: Board) -> Placement:
    base, size, notes = window(board)
    padding = 1 << ((size >> 8) - 1).bit_length() if size > 32 * GiB else 0
    return _place(build, board, base, size, padding, notes)


def _place(build: Build, board: Board, base: int, size: int, padding: int,
           notes: list[str]) -> Placement:
    root = _tree(board, padding)
    _aperture(root, BRIDGE_ALIGN)
    placed: dict[tuple[str, int], int] = {}
    start = align_up(base, root.align) if root.children else base
    if root.children and start + root.size > base + size:
        notes.append(f"the 64-bit BARs need {human_size(root.size)} aligned to "
                     f"{human_size(root.align)}; OVMF's window {hex_addr(base)}-"
                     f"{hex_addr(base + size - 1)} cannot hold them, so OVMF assigns no BAR at all")
    else:
        _assign(root, start, placed)
    bars = [Placed(device.id, bar.index, bar.size, bar.is64, placed.get((device.id, bar.index)))
            for device in board.devices for bar in device.bars if bar.is64 and not bar.io]
    return Placement(build.name, (base, base + size - 1) if size else None, tuple(bars), tuple(notes))


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
    the larger of that and its padding, aligned to its largest child (or the padding)."""
    offset = 0
    for child in bridge.children:
        child.offset = align_up(offset, child.align)
        offset = child.offset + child.size
    align = max([own_align, padding, *(child.align for child in bridge.children[:1])])
    bridge.align = align
    bridge.size = max(align_up(offset, align), align_up(padding, align)) if offset or padding else 0


def _assign(node: Node, start: int, placed: dict[tuple[str, int], int]) -> None:
    for child in node.children:
        if child.bar >= 0:
            placed[(child.device, child.bar)] = start + child.offset
        else:
            _assign(child, start + child.offset, placed)
