"""What every host allows, combined: the one address space a layout must fit (migration)."""

from collections.abc import Iterable, Sequence
from typing import Protocol

from layoutd.models.common import U64_MAX, Hole, Range
from layoutd.models.host import APERTURE, UNUSABLE, Cpu, HostPlatform
from layoutd.models.ranges import Span
from layoutd.models.ranges import intersect_spans as _intersect
from layoutd.models.ranges import merge_spans as _merge
from layoutd.models.ranges import subtract_spans as _subtract
from layoutd.record import Record, field


class HostLike(Protocol):
    """What `combine` reads from a HostView."""

    @property
    def usable(self) -> Sequence[Range]: ...
    @property
    def aperture_end(self) -> int | None: ...
    @property
    def cpu(self) -> Cpu: ...
    @property
    def platform(self) -> HostPlatform | None: ...
    def forbidden(self) -> list[Hole]: ...


class Target(Record, kw_only=False):
    """Usable ranges valid on every host, the holes that cut them, and the common top."""

    usable: tuple[Range, ...]
    holes: tuple[Hole, ...]  # blocking holes of every host (with type, group, devices)
    top: int  # the highest address every host can map
    host_phys_bits: int | None  # smallest host CPU physical address width
    host_vendor: str  # amd | intel | arm | unknown (the first host's)
    hosts: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default=())
    vendors: tuple[str, ...] = ()  # every host's CPU vendor, in order
    kvm_smm: bool | None = None  # KVM runs SMM on every host; None when some host does not say
    iommu_top: int = U64_MAX  # the highest address every host's IOMMU maps (top: also the CPUs')
    platform: HostPlatform | None = None  # the first host's (arch, hugepages): what QEMU takes

    @property
    def mixed_vendors(self) -> bool:
        return len(set(self.vendors)) > 1


def combine(views: Sequence[HostLike], names: Sequence[str]) -> Target:
    """Intersect HostViews (duck-typed: usable, forbidden(), aperture_end, cpu, platform).

    Every host's forbidden ranges (HostView.forbidden) cut the common space."""
    usable: list[Span] = [(0, U64_MAX)]
    holes: list[Hole] = []
    tops: list[int] = []
    apertures: list[int] = []
    bits: list[int] = []
    notes: list[str] = []
    vendor = "unknown"
    for index, view in enumerate(views):
        usable = _intersect(usable, _merge((r.start, r.end) for r in view.usable))
        holes.extend(h for h in view.forbidden() if h.type != APERTURE)
        aperture = view.aperture_end
        cpu = view.cpu
        if aperture is not None:
            tops.append(aperture)
            apertures.append(aperture)
        if cpu.phys_bits:
            bits.append(cpu.phys_bits)
            tops.append((1 << cpu.phys_bits) - 1)
        if index == 0:
            vendor = cpu.vendor
        elif cpu.vendor != vendor:
            notes.append(f"hosts differ in CPU vendor ({vendor}, {cpu.vendor}); the first host's counts")
    top = min(tops) if tops else U64_MAX
    usable = _intersect(usable, [(0, top)])
    holes = [h for h in _unique(holes) if h.type != UNUSABLE or h.start <= top]
    # What is unusable below the top but no host hole explains (an aperture gap) still blocks.
    unusable = _subtract([(0, top)], usable)
    for start, end in _subtract(unusable, _merge((h.start, h.end) for h in holes)):
        holes.append(Hole(start=start, end=end, type=UNUSABLE))
    return Target(
        _ranges(usable),
        tuple(sorted(holes, key=lambda h: (h.start, h.end))),
        top,
        min(bits) if bits else None,
        vendor,
        tuple(names),
        tuple(notes),
        tuple(view.cpu.vendor for view in views),
        _all_smm([view.cpu.kvm_smm for view in views]),
        min(apertures, default=U64_MAX),
        views[0].platform if views else None,
    )


def _all_smm(answers: Sequence[bool | None]) -> bool | None:
    """False if any host's KVM lacks SMM, True if all have it, else unknown."""
    if False in answers:
        return False
    return True if answers and all(answers) else None


def _ranges(spans: Iterable[Span]) -> tuple[Range, ...]:
    return tuple(Range(start=start, end=end) for start, end in spans)


def _unique(holes: list[Hole]) -> list[Hole]:
    seen: dict[tuple[int, int, str, int | None], Hole] = {}
    for hole in holes:
        seen.setdefault((hole.start, hole.end, hole.type, hole.group), hole)
    return list(seen.values())
