"""Host readers: iommufd, VFIO type1, sysfs tree and dump, all returning the same HostView.

`probe_host(source, devices)`: source None -> $LAYOUTD_HOST, else "live"; "live" tries iommufd,
then VFIO type1, then sysfs, saying why each fallback happened; a directory is a root tree read
as `/`; a file is a dump written by `record_host`.
"""

import os
from collections.abc import Sequence

from layoutd.errors import HostUnavailable, InputError
from layoutd.host.dump import read_dump, replay, write_dump
from layoutd.host.sysfs import normalize_bdf, read_tree
from layoutd.host.topology import VFIO_DRIVER, select_groups, viability_warnings
from layoutd.host.view import build_view
from layoutd.models.host import HostFacts, HostView, IoctlReply
from layoutd.record import Record, field, replace


class Probe(Record, kw_only=False, frozen=False):
    facts: HostFacts | None
    view: HostView
    reply: IoctlReply | None = None
    warnings: list[str] = field(default_factory=list)


def resolve_source(source: str | None) -> str:
    return source or os.environ.get("LAYOUTD_HOST") or "live"


def probe_host(source: str | None, devices: Sequence[str] | None = None) -> HostView:
    """What the selected devices (every IOMMU group when none) may DMA to on this host."""
    return _probe(resolve_source(source), devices).view


def record_host(path: str, source: str | None, devices: Sequence[str] | None = None) -> HostView:
    """Probe, then write everything learned (incl. raw ioctl replies) to a dump at `path`."""
    origin = resolve_source(source)
    probe = _probe(origin, devices)

    facts, reply = probe.facts, probe.reply
    selected = [normalize_bdf(d) or d for d in devices or ()]
    if facts is None:  # re-recording a dump: keep its facts and reply
        old = read_dump(origin)
        facts, reply, origin = old.facts, old.ioctl, old.recorded_from
        selected = selected or list(old.selected)
    write_dump(path, facts, recorded_from=origin, selected=selected, reply=reply,
               warnings=probe.warnings)
    return probe.view


def _probe(source: str, devices: Sequence[str] | None) -> Probe:
    if source == "live":
        return _live(devices)
    if os.path.isdir(source):
        source = source.rstrip("/") or "/"
        facts = read_tree(source)
        return Probe(facts, build_view(facts, devices, f"sysfs:{source}"))
    if os.path.isfile(source):
        return Probe(None, replay(source, devices))
    raise InputError(
        "no such host source: give 'live', a directory read as '/' (a copied host tree), "
        "or a dump file written by 'layoutd probe --record'",
        file=source,
    )


def _live(devices: Sequence[str] | None, root: str = "/", dev: str = "/dev") -> Probe:
    """iommufd, else VFIO type1, else sysfs. `root` and `dev` move the tree (for tests)."""
    # the live host's readers (ctypes, ioctls: ~2 ms): a tree or a dump never needs them
    from layoutd.host import iommufd, type1
    from layoutd.host.kvm import kvm_smm

    facts = read_tree(root, live=True)
    facts = replace(facts, cpu=replace(facts.cpu, kvm_smm=kvm_smm(dev)))
    numbers = select_groups(facts, devices)
    viable, _ = viability_warnings(facts, numbers)
    notes: list[str] = []
    info: list[str] = []
    reply: IoctlReply | None = None
    if not viable:
        notes.append("no selected IOMMU group is viable, so the VFIO ioctls cannot be asked: "
                     "sysfs answers; bind every device of the groups to vfio-pci for the "
                     "IOMMU's own answer")
    else:
        bound = [d for d in facts.devices if d.group in viable and d.driver == VFIO_DRIVER]
        # only the groups of attached devices are in the IOAS; the others' holes come from sysfs
        attached = sorted({d.group for d in bound if d.group is not None})
        refused: list[str] = []
        try:
            reply = iommufd.query([d.address for d in bound], attached, root, dev)
        except HostUnavailable as error:
            info.append(f"{error.message}; trying VFIO type1")
            refused += [error.message] if "permission denied" in error.message else []
        if reply is None:
            try:
                reply = type1.query(viable, f"{dev}/vfio", [d.address for d in bound])
            except HostUnavailable as error:
                info.append(f"{error.message}; falling back to sysfs")
                refused += [error.message] if "permission denied" in error.message else []
        if reply is None and refused:
            notes.append(f"{'; '.join(refused)}: the IOMMU itself was not asked, sysfs answers "
                         "without its check; run as root for the kernel's own answer")
    source = reply.reader if reply is not None else f"sysfs:{root}"
    view = build_view(facts, devices, source, reply=reply, warnings=notes, info=info)
    return Probe(facts, view, reply, notes)
