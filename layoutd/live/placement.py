"""Where hotplugged memory may go: lowest aligned range inside device memory, outside holes and
existing devices, below phys-bits and the IOMMU top; and a virtio-mem block size that keeps the
VFIO DMA mappings under the container's limit. Pure: no I/O.
"""

from __future__ import annotations

from layoutd.models.common import Hole, Range
from layoutd.models.ranges import intersect, subtract
from layoutd.record import Record
from layoutd.units import align_down, align_up, format_size, hex_addr

DMA_LIMIT = 65535
"""VFIO type1's default number of DMA mappings per container (module parameter dma_entry_limit)."""


class Room(Record):
    """What the VM and the host leave for a new memory device."""

    region: Range  # the device-memory region
    top: int  # highest guest-physical address the guest can reach (phys-bits), inclusive
    taken: tuple[Range, ...]  # existing memory devices
    holes: tuple[Hole, ...]  # host holes (incl. the synthetic aperture hole) overlapping region
    budget: int  # bytes of maxmem still unused by memory devices
    free_slots: int  # DIMM slots still free


class Placement(Record, kw_only=False):
    start: int
    end: int
    avoided: tuple[Hole, ...]  # holes below the placement that pushed it up

    @property
    def range(self) -> Range:
        return Range(start=self.start, end=self.end)


class Refusal(Record, kw_only=False):
    reason: str
    largest: int  # the largest size that fits now (0: none)
    suggestions: tuple[str, ...]

    def message(self) -> str:
        return "; ".join([self.reason, *self.suggestions])


def free_spans(room: Room) -> list[Range]:
    reachable = intersect([room.region], [Range(start=0, end=room.top)])
    return subtract(reachable, [*room.taken, *room.holes])


def first_fit(spans: list[Range], size: int, alignment: int) -> int | None:
    for span in spans:
        start = align_up(span.start, alignment)
        if start + size - 1 <= span.end:
            return start
    return None


def largest_fit(spans: list[Range], alignment: int, budget: int) -> int:
    best = 0
    for span in spans:
        start = align_up(span.start, alignment)
        if start <= span.end:
            best = max(best, align_down(span.end + 1 - start, alignment))
    return min(best, align_down(budget, alignment))


def place(size: int, alignment: int, room: Room, *, need_slot: bool) -> Placement | Refusal:
    """The lowest placement of `size` bytes at `alignment`, or why there is none."""
    spans = free_spans(room)
    largest = largest_fit(spans, alignment, room.budget)
    if need_slot and room.free_slots <= 0:
        return Refusal(
            "every DIMM slot is in use",
            largest,
            ("start the VM with more slots (-m ...,slots=N) at next boot",
             "or use --kind virtio-mem, which needs no DIMM slot"),
        )
    if size > room.budget:
        return Refusal(
            f"only {format_size(room.budget)} of maxmem is left for memory devices, "
            f"{format_size(size)} asked",
            largest,
            (f"raise maxmem by at least {format_size(size - room.budget)} at next boot",
             _largest_hint(largest)),
        )
    start = first_fit(spans, size, alignment)
    if start is None:
        return Refusal(
            f"no {format_size(size)} range aligned to {hex_addr(alignment)} is free in the "
            f"device-memory region {room.region.label()}{_blocking(room)}",
            largest,
            ("more maxmem or slots at next boot grow the region (each GiB adds room at its end)",
             _largest_hint(largest)),
        )
    end = start + size - 1
    avoided = tuple(h for h in room.holes if h.start <= end and h.end >= room.region.start)
    return Placement(start, end, avoided)


def _largest_hint(largest: int) -> str:
    if largest <= 0:
        return "nothing fits now"
    return f"the largest size that fits now is {format_size(largest)}"


def _blocking(room: Room) -> str:
    parts = [hole.describe() for hole in room.holes]
    if room.taken:
        parts.append(f"{len(room.taken)} existing memory device(s)")
    if room.top < room.region.end:
        parts.append(f"the guest's phys-bits limit {hex_addr(room.top)}")
    return f" outside {', '.join(parts)}" if parts else ""


class BlockChoice(Record, kw_only=False):
    block_size: int
    mappings: int  # DMA mappings the new device may need
    used: int  # mappings the VM already needs
    limit: int


def mappings(size: int, block_size: int) -> int:
    return -(-size // block_size)


def choose_block_size(size: int, default: int, used: int, limit: int,
                      given: int | None) -> BlockChoice | Refusal:
    """The block size to use: `given` if it fits the DMA limit, else the smallest power of two
    from `default` up that does; a Refusal when the given one does not fit or none can."""
    fitting = _smallest_fitting(size, given or default, used, limit)
    if given is not None and used + mappings(size, given) <= limit:
        return BlockChoice(given, mappings(size, given), used, limit)
    if given is None and fitting is not None:
        return BlockChoice(fitting, mappings(size, fitting), used, limit)
    wanted = mappings(size, given or default)
    proposal = (f"use --block-size {format_size(fitting)} ({mappings(size, fitting)} mappings)"
                if fitting else "make the device smaller")
    return Refusal(
        f"a virtio-mem device of {format_size(size)} with block size "
        f"{format_size(given or default)} may need {wanted} DMA mappings; with the {used} the "
        f"VM already uses that passes the VFIO container's limit of {limit}",
        0,
        (proposal,),
    )


def _smallest_fitting(size: int, start: int, used: int, limit: int) -> int | None:
    block = start
    while block <= size:
        if size % block == 0 and used + mappings(size, block) <= limit:
            return block
        block *= 2
    return None
