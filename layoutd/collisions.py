"""Which guest RAM touches which host hole (`check`: the one judgement of a map on a host). Pure."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from layoutd.models.common import Address, GuestRegion, Hole
from layoutd.models.host import HostView
from layoutd.record import Record


class Collision(Record):
    """Contract shape: {start, end, kind, id, hole: {start, end, type, group}}; start-end is the overlap."""

    start: Address
    end: Address
    kind: str
    id: str
    node: int | None = None
    hole: Hole

    def describe(self) -> str:
        if self.hole.type == "unassigned":
            window = ("" if (self.start, self.end) == (0, (1 << 64) - 1) else
                      f": the firmware's 64-bit window {self.start:#x}-{self.end:#x} cannot hold it")
            return (f"{self.kind} {self.id!r} is left unassigned{window}; the guest driver will "
                    "see no BAR")
        return (
            f"{self.kind} {self.id!r} {self.start:#x}-{self.end:#x} lies in the {self.hole.describe()}"
        )


def find_collisions(layout: Iterable[GuestRegion], holes: Sequence[Hole]) -> list[Collision]:
    """Every (region, hole) overlap, in address order. Holes must already exclude direct-relaxable."""
    ordered = sorted(holes, key=lambda hole: hole.start)
    found: list[Collision] = []
    for region in sorted(layout, key=lambda r: r.start):
        for hole in ordered:
            if hole.start > region.end:
                break
            if hole.end >= region.start:
                found.append(
                    Collision(
                        start=max(region.start, hole.start),
                        end=min(region.end, hole.end),
                        kind=region.kind,
                        id=region.id,
                        node=region.node,
                        hole=hole,
                    )
                )
    return found


def forbidden_touching(host: HostView, layout: Sequence[GuestRegion]) -> list[Hole]:
    """Every forbidden range (HostView.forbidden) touching some RAM, once each."""
    seen: dict[tuple[int, int, str, int | None], Hole] = {}
    for region in layout:
        for hole in host.holes_for(region):
            seen.setdefault((hole.start, hole.end, hole.type, hole.group), hole)
    return sorted(seen.values(), key=lambda h: (h.start, h.end))


def check(layout: Sequence[GuestRegion], host: HostView) -> list[Collision]:
    """The one judgement of a guest map on a host: every overlap of guest RAM with where the host
    forbids DMA (HostView.forbidden), in address order. Every `check` source, the hook, the
    live audit and `libvirt fix` ask this."""
    return find_collisions(layout, forbidden_touching(host, layout))
