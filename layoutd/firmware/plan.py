"""Where the firmware puts a planned VM's assigned 64-bit BARs, and which of them no host can
map: outside every host's usable IOVA ranges, beyond the guest's phys-bits, or unassigned. Pure.
"""

from collections.abc import Mapping, Sequence

from layoutd.firmware import place
from layoutd.firmware.board import Placement
from layoutd.firmware.builds import Build
from layoutd.firmware.guest import board, family_of, page_1g, read_argv
from layoutd.models.common import Range
from layoutd.models.guest import GuestMap
from layoutd.models.host import Device
from layoutd.models.plan import PlacedBar
from layoutd.qemu.config import parse_config
from layoutd.record import Record
from layoutd.units import hex_addr, human_size


class BadBar(Record, kw_only=False):
    name: str  # "0000:41:00.0 BAR1"
    start: int | None
    end: int | None
    why: str


def planned_bars(argv: Sequence[str], guest: GuestMap, devices: Mapping[str, Device], build: Build,
                 usable: Sequence[Range], booted: Placement | None = None
                 ) -> tuple[list[PlacedBar], list[BadBar], Placement]:
    """`booted`: the placement a boot of the firmware found (a build without a model)."""
    pci = read_argv(argv, family_of(guest), devices)
    config = parse_config(argv)
    placement = booted or place(build, board(guest, pci, page_1g(config.cpu_model,
                                                                 config.cpu_props),
                                             config.cpu_props))
    bars, bad = [], []
    for placed in placement.bars:
        if placed.device not in guest.vfio_devices or not placed.is64 or placed.bar > 5:
            continue
        bars.append(PlacedBar(device=placed.device, bar=placed.bar, start=placed.start, end=placed.end))
        name = f"{placed.device} BAR{placed.bar}"
        if placed.start is None or placed.end is None:
            bad.append(BadBar(name, None, None, f"{name} ({human_size(placed.size)}) is left "
                              f"unassigned by {build.name}"))
            continue
        where = f"{name} at {hex_addr(placed.start)}-{hex_addr(placed.end)}"
        if placed.end >= 1 << guest.phys_bits:
            bad.append(BadBar(name, placed.start, placed.end,
                              f"{where} is beyond the guest's {guest.phys_bits} phys-bits"))
        elif not any(r.start <= placed.start and placed.end <= r.end for r in usable):
            bad.append(BadBar(name, placed.start, placed.end,
                              f"{where} is outside the IOVA ranges every host's IOMMU maps"))
    return bars, bad, placement
