"""One view builder for every reader: facts (+ an optional raw ioctl reply) -> HostView.

The kernel's rule: usable = aperture [0, top] minus every reserved region of every selected group
except `direct-relaxable`; unknown types count as reserved. An ioctl reply is the kernel applying
that rule itself, so when one answered for some groups its ranges are used for them.
"""

from collections.abc import Sequence

from layoutd.host import abi
from layoutd.host.sysfs import intel_top, parse_reserved_regions
from layoutd.host.topology import select_groups, viability_warnings
from layoutd.models.common import U64_MAX, Hole, Range
from layoutd.models.host import RELAXABLE, Group, HostFacts, HostView, IoctlReply
from layoutd.models.ranges import complement, intersect, merge
from layoutd.units import hex_addr


def group_holes(facts: HostFacts, number: int, file: str) -> list[Hole]:
    group = next(g for g in facts.groups if g.number == number)
    return [
        Hole(start=start, end=end, type=kind, group=number, devices=group.devices)
        for start, end, kind in parse_reserved_regions(group.reserved_regions, file)
    ]


def regions_file(facts: HostFacts, number: int, origin: str) -> str:
    if origin.startswith("dump:"):
        return f"{origin[5:]}: facts.groups[{number}].reserved_regions"
    return f"{facts.root.rstrip('/')}/sys/kernel/iommu_groups/{number}/reserved_regions"


def iommu_top(facts: HostFacts, devices: Sequence[str]) -> tuple[int | None, str]:
    """The top of the IOMMU aperture from Intel cap registers of the units involved."""
    units = [u for u in facts.iommus if u.cap is not None]
    involved = [u for u in units if set(u.devices) & set(devices)] or units
    if not involved:
        return None, ""
    tops = [(intel_top(u.cap or "", f"sys/class/iommu/{u.name}/intel-iommu/cap"), u.name) for u in involved]
    top, name = min(tops)
    return top, f"{top.bit_length()}-bit IOMMU address width (MGAW/SAGAW of {name})"


def ioctl_ranges(reply: IoctlReply) -> tuple[list[Range] | None, int | None, int | None, str]:
    """Run the same byte parser a live probe ran: (ranges, page sizes, DMA_AVAIL, warning)."""
    data = bytes.fromhex(reply.reply)
    if reply.reader == "iommufd":
        pairs = abi.parse_iommufd_ranges(data, reply.num_iovas or 0)
        return [Range(start=s, end=e) for s, e in pairs], None, None, ""
    info = abi.parse_type1_info(data)
    if info.ranges is None:
        why = "VFIO_IOMMU_GET_INFO has no IOVA_RANGE capability (kernel older than 5.4?)"
        return None, info.iova_pgsizes, info.dma_avail, why
    return [Range(start=s, end=e) for s, e in info.ranges], info.iova_pgsizes, info.dma_avail, ""


def build_view(
    facts: HostFacts,
    devices: Sequence[str] | None,
    source: str,
    *,
    reply: IoctlReply | None = None,
    warnings: Sequence[str] = (),
    info: Sequence[str] = (),
) -> HostView:
    """`warnings` need the user's action (each says which); `info` is where the answer came from."""
    numbers = select_groups(facts, devices)
    _, spoiled = viability_warnings(facts, numbers)
    notes = list(warnings) + spoiled
    told = list(info)
    groups = [g for g in facts.groups if g.number in numbers]
    holes: list[Hole] = []
    for number in numbers:
        holes += group_holes(facts, number, regions_file(facts, number, source))
    holes.sort(key=lambda h: (h.start, h.end, h.group or 0))
    members = {d for g in groups for d in g.devices}
    chosen = [d for d in facts.devices if d.address in members]
    view_groups = tuple(
        Group(
            number=g.number,
            type=g.type,
            devices=g.devices,
            reserved=tuple(h for h in holes if h.group == g.number),
        )
        for g in groups
    )
    blocking = [h for h in holes if h.type != RELAXABLE]
    covered: set[int] = set()
    kernel: list[Range] | None = None
    pgsizes = dma_avail = None
    if reply is not None:
        kernel, pgsizes, dma_avail, why = ioctl_ranges(reply)
        if kernel is None:
            told.append(f"{why}: computed from sysfs instead")
        else:
            covered = set(reply.groups) & set(numbers)
    if kernel is not None:
        aperture_end: int | None = _top_from_ranges(kernel, blocking)
        others = [h for h in blocking if h.group not in covered]
        usable = intersect(kernel, complement(others))
        if others:
            missing = sorted({h.group for h in others if h.group is not None})
            told.append(
                f"groups {', '.join(map(str, missing))} were not in the {reply.reader if reply else ''} "
                "query: their holes come from sysfs"
            )
    else:
        top, why = iommu_top(facts, list(members))
        aperture_end = top
        if top is None:
            notes.append(_unknown_top(facts))
        else:
            told.append(f"aperture top {hex_addr(top)}: {why}")
        usable = complement(blocking, 0, U64_MAX if top is None else top)
    unknown = sorted({h.type for h in holes if h.type not in ("direct", RELAXABLE, "reserved", "msi")})
    if unknown:
        notes.append(f"unknown reserved-region types {', '.join(unknown)}: counted as reserved; "
                     "please report them with a dump (layoutd probe --record FILE)")
    if not usable:
        notes.append("no IOVA is usable by every selected device: the holes cover the whole aperture; "
                     "select fewer devices (--devices) or use another host")
    return HostView(
        source=source,
        cpu=facts.cpu,
        devices=tuple(chosen),
        groups=view_groups,
        usable=tuple(merge(usable)),
        reserved=tuple(holes),
        aperture_end=aperture_end,
        warnings=tuple(notes),
        notes=tuple(told),
        iova_pgsizes=pgsizes,
        dma_avail=dma_avail,
        platform=facts.platform,
    )


def _top_from_ranges(kernel: Sequence[Range], blocking: Sequence[Hole]) -> int | None:
    """The aperture's end from an ioctl answer: the last usable byte, carried on through any
    reserved regions that start right after it (a hole at the top hides the aperture's end)."""
    if not kernel:
        return None
    top = kernel[-1].end
    for hole in sorted(blocking, key=lambda h: h.start):
        if hole.start <= top + 1 <= hole.end:
            top = max(top, hole.end)
    return top


def _unknown_top(facts: HostFacts) -> str:
    """One line: what is not known, what stands in for it, and the command that answers it."""
    bound = (f"the CPU's {facts.cpu.phys_bits} address bits bound it meanwhile" if facts.cpu.phys_bits
             else f"usable ranges run to {hex_addr(U64_MAX)}")
    return (f"the IOMMU's address width is unknown ({bound}); to ask it, run as root on the host, "
            "devices bound to vfio-pci: layoutd probe --host live --record host.json, then use "
            "--host host.json")
