"""The guest-physical address space as a picture (SVG): one bar per kind of thing on a shared,
broken logarithmic scale, so a 1 MiB MSI window stays visible next to a terabyte of RAM.

Every boundary of every span cuts the axis into segments; each segment gets a width that grows
with the log of its size and is linear inside. Lanes: guest RAM (and the hotplug room), QEMU's
own regions (PCI windows, device memory, reservations), the assigned devices' BARs, and the
host IOMMU's holes. A collision is a red band across every lane, labelled, so it is seen at a
glance. Pure: `render(plan)` for a plan, `render_check(...)` for a checked VM.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from layoutd.emit.markup import escape, quoteattr
from layoutd.emit.text import guest_regions
from layoutd.record import Record
from layoutd.units import hex_addr, human_size

if TYPE_CHECKING:
    from layoutd.collisions import Collision
    from layoutd.models.common import Hole
    from layoutd.models.guest import GuestMap, NamedRegion
    from layoutd.models.plan import Plan

COLOURS = {"ram": "#43a047", "dimm": "#1b5e20", "room": "#c5e1a5", "qemu": "#90caf9",
           "pci": "#1e88e5", "bar": "#8e24aa", "hole": "#ef6c00", "limit": "#9e9e9e",
           "collision": "#d50000"}
LANES = (("ram", "guest RAM"), ("qemu", "QEMU regions"), ("bar", "device BARs"), ("hole", "host holes"))
WIDTH, LEFT, RIGHT, TOP, LANE, GAP = 1400, 130, 90, 70, 40, 10
U64_END = 1 << 64
BAND = 10.0  # the narrowest collision band, in pixels


class Span(Record, kw_only=False):
    start: int
    end: int  # inclusive
    lane: str  # ram | qemu | bar | hole
    kind: str  # a COLOURS key
    label: str


def render(plan: Plan) -> str:
    """A plan's map: its RAM, hotplug room, PCI windows, BARs, and the holes it avoids."""
    spans = [Span(r.start, r.end, "ram", "dimm" if r.kind == "dimm" else "ram", f"{r.kind} {r.id}")
             for r in plan.layout]
    spans += [Span(r.start, r.end, "ram", "room", "hotplug room") for r in plan.hotplug_room]
    spans += _hole_spans(plan.holes)
    top = max((r.end for r in plan.usable), default=U64_END - 1)
    if top < U64_END - 1:
        spans.append(Span(top + 1, U64_END - 1, "hole", "limit", "above what every host maps"))

    spans += _region_spans(guest_regions(plan))
    window = None if plan.regions else _hole64(plan)
    if window:
        spans.append(Span(*window, "qemu", "pci", "64-bit PCI hole"))
    spans += [Span(b.start, b.end, "bar", "bar", f"BAR{b.bar} {b.device}")
              for b in plan.bars if b.start is not None and b.end is not None]
    title = f"{plan.name}: guest address space (QEMU {plan.qemu_version}, {plan.config.machine})"
    return draw(title, spans, [])


def render_check(guest: GuestMap, holes: Sequence[Hole], found: Sequence[Collision],
                 bars: Iterable[dict[str, Any]] = ()) -> str:
    """A checked VM's map: what QEMU builds, the host's holes, and every collision."""
    spans = [Span(r.start, r.end, "ram", "dimm" if r.kind != "ram" else "ram", f"{r.kind} {r.id}")
             for r in guest.layout]
    spans += _region_spans(guest.regions)
    spans += [Span(int(str(b["start"]), 16), int(str(b["end"]), 16), "bar", "bar",
                   f"BAR{b['bar']} {b['device']}") for b in bars if b.get("start") is not None]
    spans += _hole_spans(holes)
    marks = [(c.start, c.end, f"{c.kind} {c.id} in the {c.hole.type} hole") for c in found]
    title = f"guest address space (QEMU {guest.qemu_version}, {guest.machine})"
    return draw(title, spans, marks)


def _region_spans(regions: Iterable[NamedRegion]) -> list[Span]:
    """QEMU's own regions of 1 MiB and more (PCI windows blue)."""
    return [Span(r.start, r.end, "qemu", "pci" if "pci" in r.name else "qemu", r.name)
            for r in regions if r.end - r.start >= 1 << 20]


def _hole_spans(holes: Sequence[Hole]) -> list[Span]:
    """One span per hole range (the groups that share it named together)."""
    merged: dict[tuple[int, int, str], list[str]] = {}
    for hole in holes:
        merged.setdefault((hole.start, hole.end, hole.type), []).append(
            f"group {hole.group}" if hole.group is not None else "")
    spans = []
    for (start, end, kind), groups in sorted(merged.items()):
        named = ", ".join(g for g in groups if g)
        spans.append(Span(start, end, "hole", "limit" if kind == "aperture" else "hole",
                          f"{kind} hole{' (' + named + ')' if named else ''}"))
    return spans


def _hole64(plan: Plan) -> tuple[int, int] | None:
    if not plan.highest_address or plan.config.arch != "x86_64":
        return None
    size = plan.config.pci_hole64_size
    if size is None:
        size = (32 if plan.config.machine.startswith(("q35", "pc-q35")) else 2) << 30
    return plan.highest_address - size + 1, plan.highest_address


# ---- drawing ---------------------------------------------------------------------------------


class Axis(Record, kw_only=False):
    """The broken log scale: boundaries and the x where each segment starts."""

    cuts: tuple[int, ...]
    xs: tuple[float, ...]

    def x(self, address: int) -> float:
        for index in range(len(self.cuts) - 1):
            low, high = self.cuts[index], self.cuts[index + 1]
            if address <= high:
                share = (address - low) / (high - low) if high > low else 0.0
                return self.xs[index] + share * (self.xs[index + 1] - self.xs[index])
        return self.xs[-1]


def _weight(size: int) -> float:
    return max(1.0, math.log2(size) - 10) if size > 0 else 0.0


def axis(spans: Sequence[Span], marks: Sequence[tuple[int, int, str]]) -> Axis:
    """A piece between two cuts inside a block takes its share of the block's log width (the
    largest share of the blocks covering it; the guest's RAM and BARs before QEMU's regions,
    those before the host's holes):
    a block cut by other blocks' edges is as wide as an equal block that is not (two 32G BARs
    draw alike, one across a hole too); a piece no block covers, its own."""
    cuts = sorted({0, *(s.start for s in spans), *(min(s.end + 1, U64_END) for s in spans),
                   *(m[0] for m in marks), *(min(m[1] + 1, U64_END) for m in marks)})
    rank = {"ram": 0, "bar": 0, "qemu": 1, "hole": 2}  # the guest's RAM and BARs first
    blocks = [(rank[s.lane], s.start, min(s.end + 1, U64_END)) for s in spans]
    weights = []
    for low, high in itertools.pairwise(cuts):
        covering = [block for block in blocks if block[1] <= low and high <= block[2]]
        first = min((block[0] for block in covering), default=0)
        shares = [(high - low) / (end - start) * _weight(end - start)
                  for lane, start, end in covering if lane == first]
        weights.append(max(shares) if shares else _weight(high - low))
    total = sum(weights) or 1.0
    xs = [float(LEFT)]
    for weight in weights:
        xs.append(xs[-1] + weight / total * (WIDTH - LEFT - RIGHT))
    return Axis(tuple(cuts), tuple(xs))


def draw(title: str, spans: Sequence[Span], marks: Sequence[tuple[int, int, str]]) -> str:
    scale = axis(spans, marks)
    bottom = TOP + len(LANES) * (LANE + GAP)
    height = bottom + 150
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
             f'viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="11">',
             f'<rect width="{WIDTH}" height="{height}" fill="#ffffff"/>',
             f'<text x="10" y="22" font-size="15" font-weight="bold">{escape(title)}</text>',
             '<text x="10" y="40" fill="#555">broken log scale: each piece between two marked '
             'addresses grows with the log of its size; hover a block for its range</text>']
    for index, (lane, name) in enumerate(LANES):
        y = TOP + index * (LANE + GAP)
        parts.append(f'<text x="10" y="{y + LANE / 2 + 4}" font-weight="bold">{escape(name)}</text>')
        parts.append(f'<rect x="{LEFT}" y="{y}" width="{WIDTH - LEFT - RIGHT}" height="{LANE}" '
                     'fill="#f5f5f5" stroke="#bdbdbd"/>')
        for span in (s for s in spans if s.lane == lane):
            parts.append(_block(scale, span, y))
    for number, (start, end, text) in enumerate(marks):
        parts += _collision(scale, number, start, end, text, bottom)
    parts += _ticks(scale, bottom)
    parts += _legend(height - 24)
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def _block(scale: Axis, span: Span, y: int) -> str:
    left, right = scale.x(span.start), scale.x(min(span.end + 1, U64_END))
    width = max(right - left, 1.5)
    size = human_size(span.end - span.start + 1)
    tip = f"{span.label}: {hex_addr(span.start)}-{hex_addr(span.end)} ({size})"
    text = ""
    words = next((w for w in (f"{span.label} {size}", size) if width > 7.2 * len(w) + 8), "")
    if words:
        fill = "#ffffff" if span.kind in ("dimm", "pci", "bar", "collision", "ram") else "#000000"
        text = (f'<text x="{left + 4:.1f}" y="{y + LANE / 2 + 4}" fill="{fill}">'
                f"{escape(words)}</text>")
    return (f'<g><title>{escape(tip)}</title><rect x="{left:.1f}" y="{y + 3}" width="{width:.1f}" '
            f'height="{LANE - 6}" fill="{COLOURS[span.kind]}" stroke="#212121" stroke-width="0.5"/>'
            f"{text}</g>")


def _collision(scale: Axis, number: int, start: int, end: int, text: str, bottom: int) -> list[str]:
    left, right = scale.x(start), scale.x(min(end + 1, U64_END))
    width = max(right - left, BAND)  # a collision inside a large block still shows
    left = min(left, (left + right - width) / 2)
    label = f"COLLISION {hex_addr(start)}-{hex_addr(end)}: {text}"
    anchor = "end" if left > WIDTH / 2 else "start"
    at = left + width if anchor == "end" else left
    return [f'<rect id={quoteattr(f"collision-{number}")} x="{left:.1f}" y="{TOP - 8}" '
            f'width="{width:.1f}" height="{bottom - TOP + 4}" fill="{COLOURS["collision"]}" '
            f'fill-opacity="0.85" stroke="#000000" stroke-width="1.5"><title>{escape(label)}</title></rect>',
            f'<text x="{at:.1f}" y="{TOP - 14 - 13 * number}" text-anchor="{anchor}" '
            f'fill="{COLOURS["collision"]}" font-weight="bold">{escape(label)}</text>']


def _ticks(scale: Axis, bottom: int) -> list[str]:
    """A line and the hex address at every boundary, turned so neighbours do not overlap."""
    parts = []
    last = -100.0
    for cut, x in zip(scale.cuts, scale.xs, strict=True):
        parts.append(f'<line x1="{x:.1f}" y1="{TOP - 4}" x2="{x:.1f}" y2="{bottom + 4}" '
                     'stroke="#757575" stroke-width="0.5" stroke-dasharray="2,2"/>')
        if x - last >= 11:
            label = "2^64" if cut == U64_END else hex_addr(cut)
            parts.append(f'<text transform="translate({x + 3:.1f},{bottom + 10}) rotate(60)" '
                         f'font-family="monospace" font-size="10">{label}</text>')
            last = x
    return parts


def _legend(y: int) -> list[str]:
    names = {"ram": "boot RAM", "dimm": "memory device", "room": "hotplug room", "qemu": "QEMU region",
             "pci": "PCI window", "bar": "BAR", "hole": "host IOMMU hole", "limit": "above the IOMMU top",
             "collision": "collision"}
    parts, x = [], 10
    for kind, name in names.items():
        parts.append(f'<rect x="{x}" y="{y - 10}" width="14" height="12" fill="{COLOURS[kind]}" '
                     'stroke="#212121" stroke-width="0.5"/>')
        parts.append(f'<text x="{x + 18}" y="{y}">{escape(name)}</text>')
        x += 26 + 7 * len(name)
    return parts
