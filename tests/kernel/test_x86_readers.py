"""layoutd's host readers inside a real x86_64 Linux guest with an emulated Intel IOMMU.

QEMU q35 + intel-iommu (aw-bits 39 and 48) + the `edu` device bound to vfio-pci in the guest.
The guest shares the host's root read-only over 9p, chroots into it and runs this checkout's
layoutd with the test's own Python. Three witnesses must agree exactly:
  - the kernel's own words: /sys/kernel/iommu_groups/N/reserved_regions read raw by the guest,
  - the kernel's enforcement: tests/kernel/guest/vfio_iova.py (independent of layoutd) asks
    VFIO_IOMMU_GET_INFO and proves each range edge with real VFIO_IOMMU_MAP_DMA calls,
  - what the QEMU command line says: the MSI window 0xfee00000-0xfeefffff and a 2^aw-bit top,
and layoutd's type1 reader (`probe --host live`), its sysfs reader (`probe --host /`) and a
`--record` dump replayed on the host must report exactly that.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import ROOT, run_layoutd
from tests.kernel.harness import (
    PYTHON,
    Boot,
    boot,
    kept_under_tmp,
    parse_reserved_regions,
    ranges_of,
)
from tests.support.gaps import complement

pytestmark = pytest.mark.kernel

MSI = (0xFEE00000, 0xFEEFFFFF)
EDU = ("0x1234", "0x11e8")


def x86_script() -> str:
    # the guest sees the host's / at /hostroot; the checkout and the venv at their host paths
    return f"""
. /hostroot{ROOT}/tests/kernel/guest/lib.sh
bdf=$(find_pci {EDU[0]} {EDU[1]})
echo "$bdf" > $R/bdf
bind_vfio "$bdf" > $R/driver
g=$(group_of "$bdf"); echo "$g" > $R/group
cat /sys/kernel/iommu_groups/$g/reserved_regions > $R/reserved_regions
cat /sys/class/iommu/*/intel-iommu/cap > $R/intel_cap
prepare_chroot /hostroot {kept_under_tmp()}
J="chroot /hostroot env -i PATH=/usr/bin:/bin HOME=/tmp PYTHONDONTWRITEBYTECODE=1"
step kernel $J {PYTHON} {ROOT}/tests/kernel/guest/vfio_iova.py $g
step live $J {PYTHON} -m layoutd.cli probe --host live --devices $bdf --format json \\
    --record /tmp/results/record.json
step sysfs $J {PYTHON} -m layoutd.cli probe --host / --devices $bdf --format json
"""


def x86_machine(aw_bits: int) -> list[str]:
    return ["-machine", "q35,kernel-irqchip=split", "-accel", "tcg",
            "-device", f"intel-iommu,intremap=on,caching-mode=on,aw-bits={aw_bits}",
            "-device", "edu"]


@pytest.fixture(scope="module", params=[39, 48], ids=lambda aw: f"aw{aw}")
def x86_guest(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
              ) -> tuple[int, Boot]:
    aw_bits: int = request.param
    results = tmp_path_factory.mktemp(f"x86-aw{aw_bits}")
    guest = boot("x86_64", x86_machine(aw_bits), x86_script(), results,
                 shares={"hostroot": (Path("/"), True)}, append="intel_iommu=on")
    print(f"x86 aw-bits={aw_bits}: boot-to-poweroff {guest.seconds:.1f} s")
    return aw_bits, guest


def expected_usable(aw_bits: int) -> list[tuple[int, int]]:
    return complement([MSI], 2**aw_bits - 1)


def probe_json(guest: Boot, step: str) -> dict[str, object]:
    code, out, err = guest.step(step)
    assert code == 0, f"layoutd probe ({step}) in the guest exited {code}:\n{err}"
    assert "Traceback" not in err, err
    data = json.loads(out)
    assert isinstance(data, dict)
    return data


def test_kernel_reports_what_qemu_was_told(x86_guest: tuple[int, Boot]) -> None:
    """The harness's premise: the guest kernel's IOMMU has the MSI hole and the aw-bits top."""
    aw_bits, guest = x86_guest
    assert guest.file("driver").strip() == "vfio-pci"
    raw = parse_reserved_regions(guest.file("reserved_regions"))
    assert raw == [(*MSI, "msi")], raw
    cap = int(guest.file("intel_cap").split()[0], 16)
    assert ((cap >> 16) & 0x3F) + 1 == aw_bits  # MGAW
    code, out, err = guest.step("kernel")
    assert code == 0, err
    kernel = json.loads(out)
    assert ranges_of(kernel["ranges"]) == expected_usable(aw_bits)
    probes = kernel["map_probes"]
    assert probes and all(p["errno"] == 0 for p in probes if p["inside"]), probes
    outside = [p for p in probes if not p["inside"]]
    assert {int(p["iova"], 16) for p in outside} == {MSI[0], MSI[1] + 1 - 4096, 2**aw_bits}
    assert all(p["errno"] == 22 for p in outside), outside  # EINVAL: vfio_dma_map(...) = -22


def test_type1_reader_reports_exactly_the_kernels_ranges(x86_guest: tuple[int, Boot]) -> None:
    aw_bits, guest = x86_guest
    kernel = json.loads(guest.step("kernel")[1])
    live = probe_json(guest, "live")
    assert live["source"] == "vfio-type1"
    assert ranges_of(live["usable"]) == ranges_of(kernel["ranges"]) == expected_usable(aw_bits)
    assert live["aperture_end"] == hex(2**aw_bits - 1)
    group = int(guest.file("group"))
    reserved = {(int(r["start"], 16), int(r["end"], 16), r["type"], r["group"])
                for r in live["reserved"]}  # type: ignore[union-attr]
    assert reserved == {(*MSI, "msi", group)}


def test_sysfs_reader_reports_the_same_ranges(x86_guest: tuple[int, Boot]) -> None:
    aw_bits, guest = x86_guest
    sysfs = probe_json(guest, "sysfs")
    assert str(sysfs["source"]).startswith("sysfs")
    assert ranges_of(sysfs["usable"]) == expected_usable(aw_bits)
    # the aperture comes from the intel-iommu cap register (MGAW/SAGAW) in sysfs
    assert sysfs["aperture_end"] == hex(2**aw_bits - 1)
    group = int(guest.file("group"))
    raw = parse_reserved_regions(guest.file("reserved_regions"))
    reserved = [(int(r["start"], 16), int(r["end"], 16), r["type"], r["group"])
                for r in sysfs["reserved"]]  # type: ignore[union-attr]
    assert sorted(reserved) == sorted((s, e, t, group) for s, e, t in raw)


def test_record_in_the_guest_replays_on_the_host(x86_guest: tuple[int, Boot]) -> None:
    aw_bits, guest = x86_guest
    live = probe_json(guest, "live")
    dump = guest.results / "record.json"
    assert dump.is_file(), "probe --record wrote no dump in the guest"
    replay = run_layoutd("probe", "--host", str(dump), "--format", "json")
    assert replay.returncode == 0, replay.stderr
    again = json.loads(replay.stdout)
    for key in ("usable", "reserved", "aperture_end"):
        assert again[key] == live[key], key
    assert ranges_of(again["usable"]) == expected_usable(aw_bits)
