"""Parse `info mtree -f`: the flat view of an address space, as QEMU renders it. Pure."""

import re

from layoutd.errors import ParseError
from layoutd.record import Record

_ENTRY = re.compile(
    r"^\s+(?P<start>[0-9a-f]+)-(?P<end>[0-9a-f]+) \(prio (?P<prio>-?\d+), (?P<kind>[^)]+)\): "
    r"(?P<name>.+?)(?: @(?P<offset>[0-9a-f]+))?(?: (?P<accel>KVM|HVF|WHPX|NVMM))?\s*$"
)
_AS = re.compile(r'^\s*AS "(?P<name>[^"]*)"')

RAM_KINDS = ("ram", "nv-ram")
"""Flat-view kinds that are guest RAM (what VFIO maps read-write); ROMs show as `rom`."""


class FlatEntry(Record):
    start: int
    end: int  # inclusive, as QEMU prints it
    priority: int
    kind: str  # ram, nv-ram, rom, romd, i/o, ramd ...
    name: str  # the memory region's name: pc.ram, a backend id, mach-virt.ram ...
    offset: int  # offset into the region (the `@` part), 0 when absent

    @property
    def is_ram(self) -> bool:
        return self.kind in RAM_KINDS


def flat_view(text: str, address_space: str = "memory") -> list[FlatEntry]:
    """The entries of the flat view that renders `address_space`, in address order."""
    blocks = re.split(r"^FlatView #\d+\s*$", text, flags=re.MULTILINE)
    for block in blocks:
        lines = block.splitlines()
        names = [m.group("name") for m in map(_AS.match, lines) if m]
        if address_space in names:
            return _entries(lines)
    raise ParseError(f"no flat view for address space {address_space!r} in 'info mtree -f' output")


def _entries(lines: list[str]) -> list[FlatEntry]:
    entries = []
    for line in lines:
        match = _ENTRY.match(line)
        if match:
            entries.append(
                FlatEntry(
                    start=int(match.group("start"), 16),
                    end=int(match.group("end"), 16),
                    priority=int(match.group("prio")),
                    kind=match.group("kind"),
                    name=match.group("name"),
                    offset=int(match.group("offset") or "0", 16),
                )
            )
    return entries


def ram_entries(text: str) -> list[FlatEntry]:
    """The guest RAM of AS "memory": what VFIO maps for DMA."""
    return [entry for entry in flat_view(text) if entry.is_ram]
