"""layoutd's host readers inside a real arm64 Linux guest, for holes the test injects.

QEMU arm virt + virtio-iommu-pci whose `reserved-regions` property carries the holes (type 0 ->
the kernel says `reserved`, type 1 -> `msi`) + pci-testdev bound to vfio-pci in the guest
(vfio_iommu_type1 loaded with allow_unsafe_interrupts=1: no interrupt remapping here).
The guest chroots into an arm64 userland (Debian's arm64 python3.11 and layoutd's dependencies as
aarch64 wheels, built by scripts/build-guest.sh) and runs this checkout's layoutd from a 9p share.
For each drawn set of holes, the kernel's words (raw reserved_regions), its enforcement
(vfio_iova.py: GET_INFO + MAP_DMA probes at every edge) and the exact complement of the
injected holes must agree, and layoutd's type1 reader, its sysfs reader and a recorded dump
replayed on the host must report exactly that.

The hole sets are seeded (LAYOUTD_KERNEL_SEED, default below; printed) so a failure reproduces.
Boots are bounded: each costs ~25-35 s of TCG.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import pytest

from tests.conftest import ROOT, need, run_layoutd
from tests.kernel.harness import (
    CACHE,
    Boot,
    boot,
    manifest,
    parse_reserved_regions,
    ranges_of,
)
from tests.support.gaps import complement

pytestmark = pytest.mark.kernel

PAGE = 0x1000
TOP = 2**64 - 1
SW_MSI = (0x8000000, 0x80FFFFF)  # the virtio-iommu driver's own MSI window when none is given
TESTDEV = ("0x1b36", "0x0005")
SEED = int(os.environ.get("LAYOUTD_KERNEL_SEED", "20240607"))

Hole = tuple[int, int, str]


def draw_holes(rng: random.Random) -> list[Hole]:
    """1-4 `reserved` holes anywhere below 2^48, page aligned, overlaps allowed, and maybe one
    small `msi` hole (a large one exhausts guest memory)."""
    holes: list[Hole] = []
    for _ in range(rng.randint(1, 4)):
        scale = rng.choice([24, 32, 36, 40, 44, 48])
        start = rng.randrange(0, 2**scale, PAGE)
        size = PAGE * rng.randint(1, 2 ** rng.choice([0, 8, 16, 24]))
        holes.append((start, min(start + size - 1, TOP), "reserved"))
    if rng.random() < 0.7:
        start = rng.randrange(0, 2**40, PAGE)
        holes.append((start, start + PAGE * rng.randint(1, 256) - 1, "msi"))
    return holes


# Fixed edge cases first, then drawn ones. aw: the virtio-iommu aperture (aw-bits, QEMU 10.0).
CASES: list[tuple[str, list[Hole], int | None]] = [
    ("edges", [(0x0, 0xFFF, "reserved"), (0xFFFFF00000000000, TOP, "reserved"),
               (0x9000000, 0x9000FFF, "msi"), (0x40000000, 0x4FFFFFFF, "reserved"),
               (0x50000000, 0x5FFFFFFF, "reserved")], None),
    ("none", [], None),
    *[(f"seed{SEED}-{i}", draw_holes(random.Random(SEED + i)), None) for i in range(2)],
    ("aw48-qemu10", [(0x10000000, 0x1FFFFFFF, "reserved"), (0x8000000, 0x80FFFFF, "msi")], 48),
]


def merged(regions: list[Hole]) -> list[Hole]:
    """The kernel's iommu_insert_resv_region: same-type regions that overlap or touch merge."""
    out: list[Hole] = []
    for kind in sorted({k for _, _, k in regions}):
        cur: list[int] | None = None
        for start, end, _ in sorted(r for r in regions if r[2] == kind):
            if cur is not None and start <= cur[1] + 1:
                cur[1] = max(cur[1], end)
                continue
            if cur is not None:
                out.append((cur[0], cur[1], kind))
            cur = [start, end]
        if cur is not None:
            out.append((cur[0], cur[1], kind))
    return sorted(out)


def arm_script(steps: str = "step kernel $J python3.11 /layoutd-src/tests/kernel/guest/vfio_iova.py $g",
               ) -> str:
    """The guest's script: bind the test device, read its group's regions, then in the arm64
    userland run `steps` (the witnesses; $J runs a command there) and layoutd's probes."""
    return f"""
. /checkout/tests/kernel/guest/lib.sh
bdf=$(find_pci {TESTDEV[0]} {TESTDEV[1]})
echo "$bdf" > $R/bdf
bind_vfio "$bdf" > $R/driver
g=$(group_of "$bdf"); echo "$g" > $R/group
cat /sys/kernel/iommu_groups/$g/reserved_regions > $R/reserved_regions
ls /dev/vfio /dev/vfio/devices > $R/dev_vfio 2>&1
mount --bind /checkout /arm/layoutd-src
prepare_chroot /arm
cat > $R/jobs.json <<EOF
[["live", ["probe", "--host", "live", "--devices", "$bdf", "--format", "json",
           "--record", "/tmp/results/record.json"]],
 ["sysfs", ["probe", "--host", "/", "--devices", "$bdf", "--format", "json"]]]
EOF
J="chroot /arm env -i PATH=/usr/bin:/bin HOME=/tmp PYTHONDONTWRITEBYTECODE=1 PYTHONPATH=/layoutd-src"
{steps}
step layoutd $J python3.11 /layoutd-src/tests/kernel/guest/multi.py /tmp/results /tmp/results/jobs.json
"""


def arm_machine(holes: list[Hole], aw_bits: int | None) -> list[str]:
    regions = [f"{s:#x}:{e:#x}:{0 if k == 'reserved' else 1}" for s, e, k in holes]
    if aw_bits is None:  # QEMU 7.2: the legacy array-property syntax
        props = [f"len-reserved-regions={len(holes)}"]
        props += [f"reserved-regions[{i}]={r}" for i, r in enumerate(regions)]
        iommu = "virtio-iommu-pci," + ",".join(props)
    else:  # QEMU 10.0: list properties only in JSON; aw-bits narrows the aperture (9.0+)
        iommu = json.dumps({"driver": "virtio-iommu-pci", "reserved-regions": regions,
                            "aw-bits": aw_bits})
    return ["-machine", "virt,gic-version=3,its=off", "-cpu", "cortex-a72", "-accel", "tcg",
            "-device", iommu, "-device", "pci-testdev"]


def qemu10_aarch64() -> str:
    path = CACHE / "qemu-10.0" / "usr" / "bin" / "qemu-system-aarch64"
    need(path.is_file(), f"QEMU 10.0 ({path})")
    return str(path)


@pytest.fixture(scope="module", params=CASES, ids=[c[0] for c in CASES])
def arm_guest(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
              ) -> tuple[list[Hole], int | None, Boot]:
    name, holes, aw_bits = request.param
    entry = manifest("aarch64")
    results = tmp_path_factory.mktemp(f"arm-{name}")
    binary = qemu10_aarch64() if aw_bits is not None else None
    guest = boot("aarch64", arm_machine(holes, aw_bits), arm_script(), results,
                 shares={"arm": (Path(entry["userland"]), True), "checkout": (ROOT, True)},
                 append="layoutd.unsafe_irq=1", binary=binary)
    print(f"arm64 {name} (seed {SEED}): holes {[(hex(s), hex(e), k) for s, e, k in holes]}: "
          f"boot-to-poweroff {guest.seconds:.1f} s")
    return holes, aw_bits, guest


def kernel_holes(holes: list[Hole]) -> list[Hole]:
    """What the guest kernel reports: the injected holes, merged; with no msi hole given, the
    virtio-iommu driver adds its software MSI window."""
    regions = list(holes)
    if not any(k == "msi" for _, _, k in regions):
        regions.append((*SW_MSI, "msi"))
    return merged(regions)


def expected_usable(holes: list[Hole], aw_bits: int | None) -> list[tuple[int, int]]:
    top = TOP if aw_bits is None else 2**aw_bits - 1
    return complement([(s, e) for s, e, _ in kernel_holes(holes)], top)


def layoutd_json(guest: Boot, step: str) -> dict[str, object]:
    code, out, err = guest.step("layoutd")
    assert code == 0, f"the layoutd runner failed in the guest:\n{err}\n{guest.tail()}"
    code, out, err = guest.step(step)
    assert code == 0, f"layoutd probe ({step}) in the arm64 guest exited {code}:\n{err}"
    assert "Traceback" not in err, err
    data = json.loads(out)
    assert isinstance(data, dict)
    return data


def reserved_of(data: dict[str, object]) -> list[Hole]:
    items = data["reserved"]
    assert isinstance(items, list)
    return merged([(int(r["start"], 16), int(r["end"], 16), r["type"]) for r in items])


def test_kernel_enforces_the_injected_holes(arm_guest: tuple[list[Hole], int | None, Boot]) -> None:
    holes, aw_bits, guest = arm_guest
    assert guest.file("driver").strip() == "vfio-pci"
    raw = parse_reserved_regions(guest.file("reserved_regions"))
    assert merged(raw) == kernel_holes(holes)
    code, out, err = guest.step("kernel")
    assert code == 0, err
    kernel = json.loads(out)
    assert ranges_of(kernel["ranges"]) == expected_usable(holes, aw_bits)
    probes = kernel["map_probes"]
    assert all(p["errno"] == 0 for p in probes if p["inside"]), probes
    assert all(p["errno"] == 22 for p in probes if not p["inside"]), probes


def test_type1_reader_reports_the_exact_complement(
        arm_guest: tuple[list[Hole], int | None, Boot]) -> None:
    holes, aw_bits, guest = arm_guest
    live = layoutd_json(guest, "live")
    assert live["source"] == "vfio-type1"
    assert ranges_of(live["usable"]) == expected_usable(holes, aw_bits)
    assert reserved_of(live) == kernel_holes(holes)


def test_type1_reader_reports_the_aperture(arm_guest: tuple[list[Hole], int | None, Boot]) -> None:
    # VFIO_IOMMU_GET_INFO gives aperture minus holes; a hole that reaches the top hides the
    # aperture's end, which the reader then carries on through that hole.
    _holes, aw_bits, guest = arm_guest
    live = layoutd_json(guest, "live")
    assert live["aperture_end"] == hex(TOP if aw_bits is None else 2**aw_bits - 1)


def test_sysfs_reader_reports_the_same_holes(
        arm_guest: tuple[list[Hole], int | None, Boot]) -> None:
    holes, _aw_bits, guest = arm_guest
    sysfs = layoutd_json(guest, "sysfs")
    assert str(sysfs["source"]).startswith("sysfs")
    assert reserved_of(sysfs) == kernel_holes(holes)
    # sysfs has no aperture for virtio-iommu: the usable ranges run to 2^64-1 and say so
    assert ranges_of(sysfs["usable"]) == expected_usable(holes, None)
    assert sysfs["aperture_end"] is None
    assert any("address width" in str(w) or "aperture" in str(w)
               for w in sysfs.get("warnings", [])), sysfs.get("warnings")  # type: ignore[union-attr]


def test_record_in_the_guest_replays_on_the_host(
        arm_guest: tuple[list[Hole], int | None, Boot]) -> None:
    holes, aw_bits, guest = arm_guest
    live = layoutd_json(guest, "live")
    dump = guest.results / "record.json"
    assert dump.is_file(), "probe --record wrote no dump in the guest"
    replay = run_layoutd("probe", "--host", str(dump), "--format", "json")
    assert replay.returncode == 0, replay.stderr
    again = json.loads(replay.stdout)
    for key in ("usable", "reserved", "aperture_end"):
        assert again[key] == live[key], key
    assert ranges_of(again["usable"]) == expected_usable(holes, aw_bits)
