"""Every host tree probes to the ranges the kernel's rule gives, through every reader.

The expected ranges are computed here independently, straight from the region files: aperture
[0, top] minus every region except direct-relaxable.
"""

import json
import os
import re
import shutil
from pathlib import Path

import pytest

from layoutd.host import abi, probe_host, record_host
from layoutd.host.dump import read_dump
from layoutd.models.host import HostDump, IoctlReply
from layoutd.models.validate import to_json
from layoutd.record import asdict
from tests.conftest import EXAMPLES
from tests.support.gaps import complement

U64 = 2**64 - 1
EXAMPLE_HOSTS = sorted(p for p in (EXAMPLES / "hosts").glob("*") if p.is_dir())


def regions(tree: Path, groups: list[str] | None = None) -> list[tuple[int, int, str, str]]:
    found = []
    for path in sorted((tree / "sys/kernel/iommu_groups").glob("*/reserved_regions")):
        group = path.parent.name
        if groups is not None and group not in groups:
            continue
        for line in path.read_text().splitlines():
            if line.strip():
                start, end, kind = line.split()
                found.append((int(start, 16), int(end, 16), kind, group))
    return found


def intel_top(tree: Path) -> int | None:
    tops = []
    for cap_file in (tree / "sys/class/iommu").glob("*/intel-iommu/cap"):
        cap = int(cap_file.read_text(), 16)
        mgaw = (cap >> 16 & 63) + 1
        sagaw = [w for b, w in ((1, 39), (2, 48), (3, 57)) if cap >> 8 & 1 << b]
        tops.append(2 ** min(mgaw, max(sagaw)) - 1)
    return min(tops) if tops else None


def expected_usable(tree: Path, top: int, groups: list[str] | None = None) -> list[tuple[int, int]]:
    """Sweep over the sorted blocking regions: the gaps between them, up to `top`."""
    blocking = sorted((s, e) for s, e, kind, _ in regions(tree, groups) if kind != "direct-relaxable")
    return complement(blocking, top)


def pairs(view_ranges) -> list[tuple[int, int]]:  # type: ignore[no-untyped-def]
    return [(r.start, r.end) for r in view_ranges]


@pytest.mark.parametrize("tree", EXAMPLE_HOSTS,
                         ids=lambda p: f"{p.parent.parent.name}/{p.name}")
def test_host_probes_to_the_kernel_rule(tree: Path) -> None:
    view = probe_host(str(tree))
    top = intel_top(tree)
    assert view.aperture_end == top
    assert pairs(view.usable) == expected_usable(tree, U64 if top is None else top)
    assert sorted((h.start, h.end, h.type, str(h.group)) for h in view.reserved) == sorted(regions(tree))
    if top is None:
        assert any("address width is unknown" in w for w in view.warnings)
    # every blocking hole is reported by holes_for over the whole space, none of the relaxable
    from layoutd.models.common import Range

    everything = view.holes_for(Range(start=0, end=U64))
    assert {(h.start, h.end) for h in everything if h.type != "aperture"} == {
        (s, e) for s, e, k, _ in regions(tree) if k != "direct-relaxable"}


def test_selecting_a_device_selects_its_group() -> None:
    tree = EXAMPLES / "hosts/intel-4gpu-39bit"
    view = probe_host(str(tree), ["01:00.1"])
    assert [g.number for g in view.groups] == [1]
    assert {d.address for d in view.devices} == {"0000:00:01.0", "0000:01:00.0", "0000:01:00.1"}
    assert not any("not viable" in w for w in view.warnings)  # the bridge does not spoil it


def test_non_viable_group_is_a_warning_naming_device_and_driver() -> None:
    view = probe_host(str(EXAMPLES / "hosts/intel-4gpu-39bit"), ["0000:02:00.0"])
    assert any("group 2 is not viable" in w and "0000:02:00.1 is bound to snd_hda_intel" in w
               for w in view.warnings)
    unbound = probe_host(str(EXAMPLES / "hosts/intel-dl388g8-rmrr"))
    assert any("0000:00:1f.0 is not bound to any driver" in w for w in unbound.warnings)


def test_units_involved_set_the_top() -> None:
    tree = EXAMPLES / "hosts/intel-4gpu-39bit"
    assert probe_host(str(tree), ["05:00.0"]).aperture_end == 2**48 - 1  # dmar1 only
    assert probe_host(str(tree), ["05:00.0", "04:00.0"]).aperture_end == 2**39 - 1
    assert probe_host(str(tree)).aperture_end == 2**39 - 1


def test_selection_narrows_the_holes() -> None:
    tree = EXAMPLES / "hosts/intel-4gpu-39bit"
    view = probe_host(str(tree), ["04:00.0"])
    assert pairs(view.usable) == expected_usable(tree, 2**39 - 1, ["4"])
    assert {h.group for h in view.reserved} == {4}


def test_real_symlinks_read_like_link_files(tmp_path: Path) -> None:
    """A tree with real symlinks (as on a live host) gives the same answer as link-files."""
    source = EXAMPLES / "hosts/amd-epyc-two-gpus"
    tree = tmp_path / "host"
    shutil.copytree(source, tree)
    for path in list(tree.rglob("*")):
        if path.is_file() and (path.name in ("driver", "iommu_group") or path.parent.name == "devices"):
            target = path.read_text().strip()
            path.chmod(0o644)
            path.unlink()
            os.symlink(target, path)
    assert (tree / "sys/bus/pci/devices/0000:29:00.0/iommu_group").is_symlink()
    live_like = asdict(probe_host(str(tree)))
    files = asdict(probe_host(str(source)))
    live_like.pop("source"), files.pop("source")
    assert live_like == files


@pytest.mark.parametrize("tree", EXAMPLE_HOSTS, ids=lambda p: p.name)
def test_record_and_replay_give_the_same_answer(tree: Path, tmp_path: Path) -> None:
    dump = tmp_path / "host.json"
    first = record_host(str(dump), str(tree))
    again = probe_host(str(dump))
    assert again.source == f"dump:{dump}"
    assert (again.usable, again.reserved, again.aperture_end, again.groups, again.devices) == (
        first.usable, first.reserved, first.aperture_end, first.groups, first.devices)
    raw = json.loads(dump.read_text())
    assert raw["format"] == "layoutd-host-dump" and raw["version"] == 1


def _dump_with_reply(tmp_path: Path, reply: IoctlReply) -> Path:
    base = read_dump_of(EXAMPLES / "hosts/amd-epyc-two-gpus", tmp_path)
    dump = HostDump(facts=base.facts, ioctl=reply, recorded_from="live", kernel="6.12.0")
    path = tmp_path / "with-reply.json"
    path.write_text(json.dumps(to_json(dump)))
    return path


def read_dump_of(tree: Path, tmp_path: Path) -> HostDump:
    path = tmp_path / "plain.json"
    record_host(str(path), str(tree))
    return read_dump(str(path))


def test_replay_of_a_type1_reply_runs_the_byte_parser(tmp_path: Path) -> None:
    """A recorded GET_INFO reply (48-bit aperture, both AMD groups) replays to its ranges."""
    kernel = [(0, 0xFEDFFFFF), (0xFEF00000, 0xFCFFFFFFFF), (0x10000000000, 0xFFFFFFFFFFFF)]
    raw = abi.build_type1_reply(kernel, dma_avail=65535, migration=True)
    path = _dump_with_reply(tmp_path, IoctlReply(reader="vfio-type1", groups=(27, 28), reply=raw.hex()))
    view = probe_host(str(path))
    assert pairs(view.usable) == kernel
    assert view.aperture_end == 0xFFFFFFFFFFFF and view.dma_avail == 65535
    assert view.iova_pgsizes == 0x40201000
    # one group only: the reply does not cover that selection, so the sysfs facts answer
    single = probe_host(str(path), ["0000:29:00.0"])
    assert single.aperture_end is None and any("not this selection" in w for w in single.notes)


def test_replay_of_an_iommufd_reply(tmp_path: Path) -> None:
    kernel = [(0, 0xFEDFFFFF), (0xFEF00000, 0xFCFFFFFFFF), (0x10000000000, 0xFFFFFFFFFFFF)]
    raw = b"".join(abi.RANGE.pack(s, e) for s, e in kernel)
    reply = IoctlReply(reader="iommufd", groups=(27, 28), devices=("0000:29:00.0", "0000:2a:00.0"),
                       reply=raw.hex(), num_iovas=3, iova_alignment=4096)
    view = probe_host(str(_dump_with_reply(tmp_path, reply)))
    assert pairs(view.usable) == kernel and view.aperture_end == 0xFFFFFFFFFFFF


def test_corrupt_recorded_reply_is_a_parse_error(tmp_path: Path) -> None:
    from layoutd.errors import ParseError

    bad = abi.build_type1_reply([(0x5000, 0x5FFF), (0x1000, 0x1FFF)])
    path = _dump_with_reply(tmp_path, IoctlReply(reader="vfio-type1", groups=(27, 28), reply=bad.hex()))
    with pytest.raises(ParseError, match="overlaps or precedes"):
        probe_host(str(path))


def test_environment_names_the_default_source(monkeypatch: pytest.MonkeyPatch) -> None:
    tree = EXAMPLES / "hosts/intel-nic-msi-only"
    monkeypatch.setenv("LAYOUTD_HOST", str(tree))
    assert probe_host(None).source == f"sysfs:{tree}"


def test_unknown_region_types_count_as_reserved(tmp_path: Path) -> None:
    tree = tmp_path / "host"
    shutil.copytree(EXAMPLES / "hosts/intel-nic-msi-only", tree)
    regions_file = tree / "sys/kernel/iommu_groups/40/reserved_regions"
    regions_file.chmod(0o644)
    regions_file.write_text(regions_file.read_text() + "0x0000000100000000 0x00000001ffffffff future-type\n")
    view = probe_host(str(tree))
    assert (0x100000000, 0x1FFFFFFFF) not in pairs(view.usable)
    assert all(not (r.start <= 0x100000000 <= r.end) for r in view.usable)
    assert any("future-type" in w for w in view.warnings)


def test_hole_descriptions_name_type_and_group() -> None:
    view = probe_host(str(EXAMPLES / "hosts/amd-epyc-two-gpus"), ["0000:29:00.0"])
    from layoutd.models.common import Range

    holes = view.holes_for(Range(start=0xF000000000, end=0xFE00000000))
    assert [h.describe() for h in holes] == [
        "reserved hole 0xfd00000000-0xffffffffff of IOMMU group 28 (0000:29:00.0)"]
    assert re.search("0xfd00000000", holes[0].describe())


def test_a_hole_at_the_top_does_not_hide_the_aperture(tmp_path: Path) -> None:
    """The AMD groups' HT hole ends at 1 TiB - 1: with a 40-bit aperture the kernel's list stops
    below the hole, and the aperture's end is the hole's end, not the last usable byte."""
    kernel = [(0, 0xFEDFFFFF), (0xFEF00000, 0xFCFFFFFFFF)]
    raw = abi.build_type1_reply(kernel)
    path = _dump_with_reply(tmp_path, IoctlReply(reader="vfio-type1", groups=(27, 28), reply=raw.hex()))
    view = probe_host(str(path))
    assert pairs(view.usable) == kernel
    assert view.aperture_end == 0xFFFFFFFFFF
