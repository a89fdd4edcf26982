"""The 64-bit BARs of the assigned devices against the host: where the firmware puts each one,
and which lies in a host hole, above the IOMMU top, beyond the guest's phys-bits, or is left
unassigned. Pure: the caller identifies the firmware and reads the host.
"""

from collections.abc import Callable, Mapping, Sequence

from layoutd.collisions import Collision, check
from layoutd.firmware import place
from layoutd.firmware.board import Placement
from layoutd.firmware.builds import Build
from layoutd.firmware.fixes import BarFix
from layoutd.firmware.guest import GuestPci, board
from layoutd.models.common import U64_MAX, Hole, Range
from layoutd.models.guest import GuestMap
from layoutd.models.host import HostView
from layoutd.record import Record, field
from layoutd.units import hex_addr, human_size


class BarCheck(Record, kw_only=False, frozen=False):
    firmware: str | None  # the build's name; None: not predicted
    bars: list[dict[str, object]] = field(default_factory=list)  # contract: device, bar, start, end
    collisions: list[Collision] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    placement: Placement | None = None
    fixes: Callable[[], list[BarFix]] | None = None  # the changes that clear the BAR collisions
    how_known: str = "model"  # model | boot | unknown
    not_judged: list[str] = field(default_factory=list)  # "BDF BARn" whose place nothing told
    loaded: str | None = None  # which file QEMU loads, when no firmware was named


def verdict(guest: GuestMap, host: HostView, bars: BarCheck | None) -> list[Collision]:
    """Every collision `check` reports for a map: its RAM's (collisions.check) and, where the
    firmware placement ran (`bars`), the assigned BARs'. The one answer of `check`'s report and
    of fleet pool membership."""
    return [*check(guest.layout, host), *(bars.collisions if bars else [])]


def check_bars(guest: GuestMap, host: HostView, pci: GuestPci, build: Build | None,
               page1g: bool, assigned: Sequence[str],
               cpu_props: Mapping[str, str] | None = None,
               booted: Placement | None = None) -> BarCheck:
    """`booted`: the placement a boot of the firmware found, used as the model's would be."""
    if booted is None and build is None:
        return BarCheck(None, notes=list(pci.notes), how_known="unknown",
                        not_judged=unjudged(pci, assigned))
    placement = booted or place(build, board(guest, pci, page1g, cpu_props))  # type: ignore[arg-type]
    result = BarCheck(placement.firmware, notes=[*pci.notes, *placement.notes],
                      placement=placement, how_known="boot" if booted else "model")
    for placed in placement.bars:
        if placed.device not in assigned or not placed.is64 or placed.bar > 5:
            continue
        name = f"{placed.device} BAR{placed.bar}"
        result.bars.append({"device": placed.device, "bar": placed.bar,
                            "start": None if placed.start is None else hex_addr(placed.start),
                            "end": None if placed.end is None else hex_addr(placed.end)})
        if placed.start is None or placed.end is None:
            window = placement.window or (0, U64_MAX)
            hole = Hole(start=window[0], end=window[1], type="unassigned")
            result.collisions.append(Collision(start=window[0], end=window[1], kind="bar",
                                               id=name, hole=hole))
            result.notes.append(f"{name} ({human_size(placed.size)}) is left unassigned by "
                                f"{placement.firmware}: the guest driver will see no BAR there "
                                "(the guest loses the device)")
            continue
        bar = Range(start=placed.start, end=placed.end)
        for hole in _holes(host, guest, bar):
            result.collisions.append(Collision(start=max(bar.start, hole.start),
                                               end=min(bar.end, hole.end), kind="bar", id=name,
                                               hole=hole))
    return result


def unjudged(pci: GuestPci, assigned: Sequence[str]) -> list[str]:
    """Every 64-bit memory BAR of the assigned devices, as "BDF BARn"."""
    return [f"{device.id} BAR{bar.index}" for device in pci.devices if device.id in assigned
            for bar in device.bars if bar.is64 and not bar.io]


def _holes(host: HostView, guest: GuestMap, bar: Range) -> list[Hole]:
    """The host's holes touching the BAR, the IOMMU top, and the guest's own phys-bits."""
    found = host.holes_for(bar)
    top = 1 << guest.phys_bits
    if bar.end >= top:
        found.append(Hole(start=top, end=U64_MAX, type="guest-phys-bits"))
    return found
