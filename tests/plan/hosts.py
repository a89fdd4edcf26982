"""Hosts made to be hard, built as solver targets without a sysfs tree, plus the example trees."""

from collections.abc import Sequence

from layoutd.models.common import Hole, Range
from layoutd.models.host import Cpu, HostView
from layoutd.models.ranges import subtract
from layoutd.solver import Target, combine
from layoutd.units import GiB

MSI = (0xFEE00000, 0xFEEFFFFF, "msi")
AMD_HT = (0xFD00000000, 0xFFFFFFFFFF, "reserved")


def host_view(source: str, holes: Sequence[Hole], aperture_end: int, cpu: Cpu) -> HostView:
    """A HostView as a reader builds it: usable = [0, top] less the holes."""
    usable = subtract([Range(start=0, end=aperture_end)], holes)
    return HostView(source=source, cpu=cpu, devices=(), groups=(), usable=tuple(usable),
                    reserved=tuple(holes), aperture_end=aperture_end, warnings=())


def view(
    name: str,
    holes: Sequence[tuple[int, int, str] | tuple[int, int, str, int]],
    *,
    bits: int = 46,
    vendor: str = "intel",
    top_bits: int | None = None,
) -> HostView:
    made = [
        Hole(
            start=h[0],
            end=h[1],
            type=h[2],
            group=h[3] if len(h) > 3 else 1,  # type: ignore[misc]
            devices=(f"0000:0{h[3] if len(h) > 3 else 1}:00.0",),
        )
        for h in holes
    ]
    top = (1 << (top_bits or bits)) - 1
    return host_view(name, made, top, Cpu(vendor=vendor, phys_bits=bits))  # type: ignore[arg-type]


def target(*views: HostView) -> Target:
    return combine(views, [v.source for v in views])


HARD = {
    "hole-128g": view("hole-128g", [MSI, (128 * GiB, 132 * GiB - 1, "reserved")]),
    "rmrr-low": view("rmrr-low", [MSI, (0x70000000, 0x70FFFFFF, "direct")]),
    "iommu-39bit": view("iommu-39bit", [MSI], top_bits=39),
    "several-devices": view(
        "several-devices",
        [
            MSI,
            (20 * GiB, 21 * GiB - 1, "reserved", 1),
            (40 * GiB, 40 * GiB + 0x1FFFFFFF, "reserved", 2),
            (0xA0000000, 0xA00FFFFF, "direct", 2),
        ],
    ),
    "amd-ht": view("amd-ht", [MSI, AMD_HT], bits=48, vendor="amd"),
    "intel-ht": view("intel-ht", [MSI, AMD_HT], bits=48),  # the AMD hole seen from an Intel host
    "pc-hole-3g25": view("pc-hole-3g25", [MSI, (0xD0000000, 0xDFFFFFFF, "reserved")]),
    "migrate-a": view("migrate-a", [MSI, (64 * GiB, 65 * GiB - 1, "reserved")]),
    "migrate-b": view("migrate-b", [MSI, (96 * GiB, 96 * GiB + 0xFFFFFFF, "reserved")], top_bits=44),
    "arm-windows": view(
        "arm-windows",
        [
            (0x8000000, 0x80FFFFF, "msi"),
            (0xE0000000, 0xF7FEFFFF, "reserved"),
            (0x80000000000, 0x82FFFFFFFFF, "reserved"),
        ],
        bits=48,
        vendor="arm",
    ),
}
