"""Turn mapped memory regions into the RAM entries of the flat view, as QEMU renders them.

Boot RAM is one region (pc.ram, mach-virt.ram or `-machine memory-backend=`) or, with
`-numa node,memdev=`, a container of the node backends in node order (hw/core/numa.c
numa_init_memdev_container). Machines map windows of it (x86: ram-below-4g at 0, ram-above-4g
at 4 GiB or 1 TiB); higher-priority regions then cut holes (x86: the 0xc0000-0xfffff option-ROM
and BIOS shadow, and 0xa0000-0xbffff when a VGA device exists). Memory devices map their
backend whole (virtio-mem too: its whole region is RAM in the flat view, plugged or not).
"""

from collections.abc import Sequence

from layoutd.models.common import GuestRegion
from layoutd.models.guest import RamPiece
from layoutd.models.ranges import merge_spans, subtract_spans
from layoutd.record import Record, replace


class Backing(Record, kw_only=False):
    """A leaf memory region inside boot RAM: name, size, NUMA node."""

    name: str
    size: int
    node: int | None


class Piece(Record, kw_only=False):
    start: int
    size: int
    name: str  # the memory region's name as the flat view prints it
    offset: int
    kind: str
    id: str
    node: int | None

    @property
    def end(self) -> int:
        return self.start + self.size - 1


def boot_pieces(windows: Sequence[tuple[int, int, int]], backing: Sequence[Backing]) -> list[Piece]:
    """windows: (guest address, offset into boot RAM, size) -> pieces per leaf region."""
    pieces: list[Piece] = []
    for guest, offset, size in windows:
        base = 0
        for leaf in backing:
            low, high = max(offset, base), min(offset + size, base + leaf.size)
            if low < high:
                pieces.append(Piece(guest + low - offset, high - low, leaf.name, low - base,
                                    "ram", leaf.name, leaf.node))
            base += leaf.size
    return pieces


def cut(pieces: Sequence[Piece], holes: Sequence[tuple[int, int]]) -> list[Piece]:
    """Remove [start, end] windows (inclusive) from the pieces, keeping offsets right."""
    windows = merge_spans(holes)
    return [replace(piece, start=start, size=end - start + 1,
                    offset=piece.offset + start - piece.start)
            for piece in pieces for start, end in subtract_spans([(piece.start, piece.end)], windows)]


def to_layout(pieces: Sequence[Piece]) -> tuple[tuple[GuestRegion, ...], tuple[RamPiece, ...]]:
    ordered = sorted(pieces, key=lambda p: p.start)
    layout = tuple(GuestRegion(start=p.start, end=p.end, kind=p.kind, id=p.id, node=p.node)
                   for p in ordered)
    view = tuple(RamPiece(start=p.start, end=p.end, name=p.name, offset=p.offset) for p in ordered)
    return layout, view
