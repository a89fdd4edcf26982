"""What the planner needs from a host: CPU, IOMMU groups, devices, holes and usable IOVA ranges.

`HostView` is the one answer every reader (iommufd, VFIO type1, sysfs tree, dump) gives.
`HostDump` is the recorded form (`layoutd probe --record`): the raw facts a probe learned, from
which a replay rebuilds the same `HostView` with the same parsers.
"""

from __future__ import annotations

from typing import Annotated, Literal

from layoutd.models.common import U64_MAX, Address, Hole, Range
from layoutd.models.fields import Doc, Ge, Le, Pattern
from layoutd.models.ranges import complement, subtract
from layoutd.record import Record, field

RELAXABLE = "direct-relaxable"
"""The only reserved-region type the kernel does not remove from the usable IOVA space."""

APERTURE = "aperture"
"""The type of the synthetic hole above the IOMMU top."""

UNUSABLE = "unusable"
"""The type of a synthetic hole: a gap in the usable ranges that no reserved region explains."""

DUMP_FORMAT = "layoutd-host-dump"
DUMP_VERSION = 1


class Cpu(Record):
    vendor: Literal["amd", "intel", "hygon", "arm", "unknown"]
    phys_bits: int | None
    model_name: str | None = None
    kvm_smm: bool | None = None  # KVM here runs System Management Mode (live only; None: unknown)


class HugetlbfsMount(Record):
    path: str  # where it is mounted on the host
    page_size: Address  # its pagesize= (what statvfs reports as the block size)


class HostPlatform(Record):
    """What QEMU's memory backends take from the host QEMU runs on (not from the IOMMU)."""

    arch: str | None = None  # uname -m: x86_64, aarch64; None: unknown
    hugepage_size: Address | None = None  # the default (Hugepagesize in /proc/meminfo)
    hugepage_sizes: tuple[Address, ...] = ()  # every size in /sys/kernel/mm/hugepages
    hugetlbfs: tuple[HugetlbfsMount, ...] = ()  # from /proc/mounts


# flags of a sysfs `resource` line (include/linux/ioport.h)
IORESOURCE_IO = 0x100
IORESOURCE_MEM = 0x200
IORESOURCE_PREFETCH = 0x2000
IORESOURCE_MEM_64 = 0x100000
ROM_BAR = 6  # the line of the expansion ROM


class Bar(Record):
    """One used line of a device's sysfs `resource`: a BAR (0-5) or the ROM (6), host addresses."""

    index: Annotated[int, Ge(0), Le(ROM_BAR)]
    start: Address
    end: Address
    flags: Address

    @property
    def size(self) -> int:
        return self.end - self.start + 1

    @property
    def is_memory(self) -> bool:
        return bool(self.flags & IORESOURCE_MEM)

    @property
    def is_64(self) -> bool:
        return self.is_memory and bool(self.flags & IORESOURCE_MEM_64)

    @property
    def prefetchable(self) -> bool:
        return bool(self.flags & IORESOURCE_PREFETCH)

    @property
    def is_rom(self) -> bool:
        return self.index == ROM_BAR

    def kind(self) -> str:
        """io | mem32 | mem64, with ' pref' and 'rom' as the kernel flags them."""
        if self.is_rom:
            return "rom"
        if not self.is_memory:
            return "io"
        return ("mem64" if self.is_64 else "mem32") + (" pref" if self.prefetchable else "")


class Device(Record):
    address: str  # PCI address, 0000:41:00.0
    group: int | None
    driver: str | None  # bound driver, None when unbound
    pci_class: str | None = None  # 0x030000
    bars: tuple[Bar, ...] = ()  # from sysfs `resource`; empty when not read


class Group(Record):
    number: int
    type: str | None  # DMA, DMA-FQ, identity, blocked, unmanaged (5.11+), None when not reported
    devices: tuple[str, ...]
    reserved: tuple[Hole, ...]


class HostView(Record):
    source: str  # "iommufd", "vfio-type1", "sysfs:/path", "dump:/path"
    cpu: Cpu
    devices: tuple[Device, ...]  # every device of the selected groups
    groups: tuple[Group, ...]  # the selected groups
    usable: tuple[Range, ...]  # what every selected device may DMA to (merged, sorted, inclusive)
    reserved: tuple[Hole, ...]  # every hole of the selected groups, with type, group and devices
    aperture_end: Address | None  # IOMMU top where known; None: usable then ends at 2^64-1
    warnings: tuple[str, ...]  # what needs the user's action, each saying which
    iova_pgsizes: int | None = None
    dma_avail: int | None = None  # VFIO DMA_AVAIL cap, where reported
    notes: tuple[str, ...] = ()  # information: where the answer came from, nothing to do
    platform: HostPlatform = field(default_factory=HostPlatform)

    def blocking(self) -> list[Hole]:
        """Holes the kernel removes from the usable space (all but direct-relaxable)."""
        return [hole for hole in self.reserved if hole.type != RELAXABLE]

    def forbidden(self) -> list[Hole]:
        """The one definition of where the selected devices may not DMA, used by every command:
        the blocking holes; the space above the IOMMU top (a synthetic `aperture` hole); and
        every gap in `usable` below the top that no hole explains (`unusable`: an ioctl answer
        narrower than the reserved regions say). Sorted by address."""
        holes = self.blocking()
        top = U64_MAX if self.aperture_end is None else self.aperture_end
        gaps = subtract(complement(self.usable, 0, top), holes)
        found = holes + [Hole(start=gap.start, end=gap.end, type=UNUSABLE) for gap in gaps]
        if top < U64_MAX:
            found.append(Hole(start=top + 1, end=U64_MAX, type=APERTURE))
        return sorted(found, key=lambda hole: (hole.start, hole.end))

    def holes_for(self, r: Range) -> list[Hole]:
        """The forbidden ranges overlapping `r`."""
        return [hole for hole in self.forbidden() if hole.overlaps(r)]


# ---- the recorded form ------------------------------------------------------------------------


class RawGroup(Record):
    number: int
    type: str | None = None
    devices: tuple[str, ...]
    reserved_regions: Annotated[str, Doc("the text of reserved_regions, as the kernel wrote it")]


class IommuUnit(Record):
    name: str  # dmar0
    cap: Annotated[str | None, Doc("intel-iommu/cap, hex text as in sysfs")] = None
    devices: tuple[str, ...] = ()  # PCI devices behind this unit, where known


class IoctlReply(Record):
    """A raw kernel reply to the range query, kept so a replay runs the same byte parsers."""

    reader: Literal["iommufd", "vfio-type1"]
    groups: tuple[int, ...]  # the groups in the container (type1) or of the bound devices
    devices: tuple[str, ...] = ()  # iommufd: the bound device cdevs
    reply: Annotated[str, Pattern("^([0-9a-f]{2})*$"), Doc("reply bytes as lowercase hex")]
    num_iovas: int | None = None  # iommufd: the count the kernel wrote back
    iova_alignment: int | None = None  # iommufd: out_iova_alignment


class HostFacts(Record):
    """Everything a probe learned before choosing: the input to the one view builder."""

    cpu: Cpu
    devices: tuple[Device, ...]
    groups: tuple[RawGroup, ...]
    iommus: tuple[IommuUnit, ...] = ()
    root: str = "/"
    platform: HostPlatform = field(default_factory=HostPlatform)


class HostDump(Record):
    """`layoutd probe --record FILE`: the facts plus any ioctl reply, replayable with `--host FILE`."""

    format: Literal["layoutd-host-dump"] = "layoutd-host-dump"
    version: Literal[1] = 1
    recorded_by: str = ""  # layoutd version
    recorded_from: str = ""  # the source that was probed: live, or a tree path
    kernel: str | None = None  # uname -r where known
    selected: tuple[str, ...] = ()  # the --devices given when recording
    facts: HostFacts
    ioctl: IoctlReply | None = None
    warnings: tuple[str, ...] = ()  # what the recording probe said (fallbacks and why)
