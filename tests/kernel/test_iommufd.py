"""layoutd's iommufd reader inside real Linux guests whose kernel has CONFIG_IOMMUFD (issue 23).

No Debian kernel enables iommufd, so scripts/build-kernel.sh builds one from Debian's own
linux-source-6.12 in two variants: `compat-off` (no /dev/vfio/vfio: iommufd through the VFIO device
cdev is the only way to map DMA) and `compat-on` (/dev/vfio/vfio served by iommufd's type1
emulation). x86_64: QEMU q35 + intel-iommu (VT-d) + the `edu` device bound to vfio-pci, the
host's root shared over 9p as in test_x86_readers.py.

Witnesses: the kernel's own words (raw reserved_regions), its enforcement (iommufd_iova.py,
independent of layoutd: IOMMU_IOAS_IOVA_RANGES, then IOMMU_IOAS_MAP at every range edge) and the
QEMU command line (the MSI window and the 2^aw top). layoutd's `probe --host live` must answer from
iommufd with exactly that, and equal its type1 reader (compat-on) and its sysfs reader. Bad cases on
the same kernel: the device not bound, an unprivileged user, a selection with no device to attach.
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
    iommufd_kernel,
    kept_under_tmp,
    manifest,
    parse_reserved_regions,
    ranges_of,
)
from tests.kernel.test_arm64_readers import arm_script, layoutd_json
from tests.kernel.test_nested_demo import ABOVE, nested_script, planned_start, vm_args
from tests.kernel.test_x86_readers import EDU, MSI, expected_usable, probe_json, x86_machine
from tests.support.gaps import complement

pytestmark = pytest.mark.kernel

ROOT_PORT = ("0x1b36", "0x000c")  # QEMU's pcie-root-port: a group with a bridge and no device
NOBODY = "65534"
# the variant, and the IOMMU width its boot uses (two widths across the two boots)
X86_CASES = [("compat-off", 48), ("compat-on", 39)]


def probe(step: str, *args: str) -> str:
    return (f"step {step} $J {PYTHON} -m layoutd.cli probe --host live --format json "
            + " ".join(args))


def x86_script(variant: str) -> str:
    g = f"{ROOT}/tests/kernel/guest"
    lines = [
        f". /hostroot{g}/lib.sh",
        f"bdf=$(find_pci {EDU[0]} {EDU[1]})",
        f"rp=$(find_pci {ROOT_PORT[0]} {ROOT_PORT[1]})",
        'echo "$bdf" > $R/bdf; echo "$rp" > $R/root_port',
        f"prepare_chroot /hostroot {kept_under_tmp()}",
        'J="chroot /hostroot env -i PATH=/usr/bin:/bin HOME=/tmp PYTHONDONTWRITEBYTECODE=1"',
        # bad case: the device is bound to no driver yet
        probe("unbound", "--devices $bdf"),
        'bind_vfio "$bdf" > $R/driver',
        'g=$(group_of "$bdf"); echo "$g" > $R/group',
        "cat /sys/kernel/iommu_groups/$g/reserved_regions > $R/reserved_regions",
        "cat /sys/class/iommu/*/intel-iommu/cap > $R/intel_cap",
        "ls /dev/vfio /dev/vfio/devices > $R/dev_vfio 2>&1",
        f"step kernel $J {PYTHON} {g}/iommufd_iova.py $bdf",
        probe("live", "--devices $bdf --record /tmp/results/record.json"),
        f"step sysfs $J {PYTHON} -m layoutd.cli probe --host / --devices $bdf --format json",
        f"step type1 $J {PYTHON} {g}/reader.py vfio-type1 $bdf",
        # bad case: a group with only a bridge in it: nothing to attach to an IOAS
        probe("bridge", "--devices $rp"),
        f"step empty $J {PYTHON} {g}/reader.py iommufd",
        # bad case: no privilege (the device is bound; /dev/iommu is root's); util-linux setpriv by
        # its path: busybox (the guest's chroot and env) prefers its own setpriv applet
        f"step noroot $J /usr/bin/setpriv --reuid={NOBODY} --regid={NOBODY} --clear-groups"
        f" {PYTHON} -m layoutd.cli probe --host live --devices $bdf --format json",
        f"step noroot_reader $J /usr/bin/setpriv --reuid={NOBODY} --regid={NOBODY} --clear-groups"
        f" {PYTHON} {g}/reader.py iommufd $bdf",
    ]
    if variant == "compat-on":
        lines.append(f"step type1_kernel $J {PYTHON} {g}/vfio_iova.py $g")
    return "\n".join(lines) + "\n"


def iommufd_machine(aw_bits: int) -> list[str]:
    return [*x86_machine(aw_bits), "-device", "pcie-root-port,id=rp1,chassis=1"]


@pytest.fixture(scope="module", params=X86_CASES, ids=lambda c: f"{c[0]}-aw{c[1]}")
def x86_guest(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
              ) -> tuple[str, int, Boot]:
    variant, aw_bits = request.param
    results = tmp_path_factory.mktemp(f"iommufd-x86-{variant}")
    guest = boot("x86_64", iommufd_machine(aw_bits), x86_script(variant), results,
                 shares={"hostroot": (Path("/"), True)}, append="intel_iommu=on",
                 kernel=iommufd_kernel("x86_64", variant))
    print(f"iommufd x86 {variant} aw-bits={aw_bits}: boot-to-poweroff {guest.seconds:.1f} s")
    return variant, aw_bits, guest


def kernel_ranges(guest: Boot) -> dict[str, object]:
    code, out, err = guest.step("kernel")
    assert code == 0, f"the iommufd witness failed in the guest:\n{err}"
    data = json.loads(out)
    assert isinstance(data, dict)
    return data


def test_kernel_enforces_what_qemu_was_told(x86_guest: tuple[str, int, Boot]) -> None:
    """The premise: the built kernel has iommufd, the variant's /dev/vfio, the MSI hole and the
    aw-bits top, and IOMMU_IOAS_MAP is refused exactly outside the ranges it reports."""
    variant, aw_bits, guest = x86_guest
    assert guest.file("driver").strip() == "vfio-pci"
    assert "LAYOUTD-INIT kernel 6.12" in guest.console
    listing = guest.file("dev_vfio").split()
    assert any(name.startswith("vfio") and name != "vfio" for name in listing), listing
    assert ("vfio" in listing) == (variant == "compat-on"), listing
    assert parse_reserved_regions(guest.file("reserved_regions")) == [(*MSI, "msi")]
    kernel = kernel_ranges(guest)
    assert ranges_of(kernel["ranges"]) == expected_usable(aw_bits)
    probes = kernel["map_probes"]
    assert isinstance(probes, list) and probes
    assert all(p["errno"] == 0 for p in probes if p["inside"]), probes
    outside = [p for p in probes if not p["inside"]]
    assert {int(p["iova"], 16) for p in outside} == {MSI[0], MSI[1] + 1 - 4096, 2**aw_bits}
    assert all(p["errno"] != 0 for p in outside), outside


def test_live_probe_answers_from_iommufd(x86_guest: tuple[str, int, Boot]) -> None:
    _, aw_bits, guest = x86_guest
    live = probe_json(guest, "live")
    assert live["source"] == "iommufd", live["source"]
    assert ranges_of(live["usable"]) == ranges_of(kernel_ranges(guest)["ranges"])
    assert ranges_of(live["usable"]) == expected_usable(aw_bits)
    assert live["aperture_end"] == hex(2**aw_bits - 1)
    group = int(guest.file("group"))
    reserved = [(int(r["start"], 16), int(r["end"], 16), r["type"], r["group"])
                for r in live["reserved"]]  # type: ignore[union-attr]
    assert reserved == [(*MSI, "msi", group)]
    assert not any("trying VFIO type1" in n for n in live["notes"]), live["notes"]  # type: ignore[union-attr]


def test_sysfs_and_type1_readers_agree(x86_guest: tuple[str, int, Boot]) -> None:
    """The same device through the other readers: sysfs always; the type1 reader where the
    container exists (compat-on, answered by iommufd's emulation) and a clear refusal where not."""
    variant, aw_bits, guest = x86_guest
    live = probe_json(guest, "live")
    sysfs = probe_json(guest, "sysfs")
    assert str(sysfs["source"]).startswith("sysfs")
    for key in ("usable", "reserved", "aperture_end"):
        assert sysfs[key] == live[key], key
    code, out, err = guest.step("type1")
    if variant == "compat-off":
        assert code == 3, (code, out, err)
        assert "VFIO type1: open /dev/vfio/vfio: does not exist" in err, err
        return
    assert code == 0, err
    type1 = json.loads(out)
    assert type1["source"] == "vfio-type1"
    for key in ("usable", "reserved", "aperture_end"):
        assert type1[key] == live[key], key
    code, out, err = guest.step("type1_kernel")  # the type1 witness, through the emulation
    assert code == 0, err
    assert ranges_of(json.loads(out)["ranges"]) == expected_usable(aw_bits)


def test_record_replays_on_the_host(x86_guest: tuple[str, int, Boot]) -> None:
    guest = x86_guest[2]
    live = probe_json(guest, "live")
    replay = run_layoutd("probe", "--host", str(guest.results / "record.json"), "--format", "json")
    assert replay.returncode == 0, replay.stderr
    again = json.loads(replay.stdout)
    for key in ("usable", "reserved", "aperture_end"):
        assert again[key] == live[key], key
    assert again["source"].startswith("dump:") or again["source"] == "iommufd", again["source"]


def test_unbound_device_is_named(x86_guest: tuple[str, int, Boot]) -> None:
    """Before vfio-pci is bound: no cdev, no group file; probe says which device and what to do,
    and answers from sysfs (never from an ioctl it could not make)."""
    _, aw_bits, guest = x86_guest
    bdf = guest.file("bdf").strip()
    unbound = probe_json(guest, "unbound")
    assert str(unbound["source"]).startswith("sysfs")
    text = " ".join(unbound["warnings"])  # type: ignore[arg-type]
    assert f"{bdf} is not bound to any driver" in text and "bound to vfio-pci" in text, text
    assert ranges_of(unbound["usable"]) == expected_usable(aw_bits)


def test_no_privilege_is_said(x86_guest: tuple[str, int, Boot]) -> None:
    _, aw_bits, guest = x86_guest
    code, out, err = guest.step("noroot_reader")
    assert code == 3, (code, out, err)  # the contract: the host could not be asked
    assert "iommufd: open /dev/iommu: permission denied (run as root)" in err, err
    noroot = probe_json(guest, "noroot")
    assert str(noroot["source"]).startswith("sysfs")
    text = " ".join(noroot["warnings"])  # type: ignore[arg-type]
    assert "permission denied" in text and "run as root" in text, text
    assert ranges_of(noroot["usable"]) == expected_usable(aw_bits)


def test_ioas_with_no_device_is_no_answer(x86_guest: tuple[str, int, Boot]) -> None:
    """The kernel's fresh IOAS allows all of 0-2^64-1; layoutd must never report that."""
    _, aw_bits, guest = x86_guest
    empty = ranges_of(kernel_ranges(guest)["empty_ranges"])
    assert empty == [(0, 2**64 - 1)], empty  # the hazard is real on this kernel
    code, out, err = guest.step("empty")
    assert code == 3, (code, out, err)
    assert "an IOAS with no device attached" in err, err
    bridge = probe_json(guest, "bridge")
    assert str(bridge["source"]).startswith("sysfs"), bridge["source"]
    assert any("IOAS with no device" in n for n in bridge["notes"]), bridge["notes"]  # type: ignore[union-attr]
    assert bridge["aperture_end"] == hex(2**aw_bits - 1)


# ---- the whole story through iommufd: a nested QEMU 10.0 with -object iommufd ----------------

BACKEND = "iommufd0"


def iommufd_vm_args(dimm_addr: int) -> list[str]:
    """test_nested_demo's hand-written layout, its vfio-pci device given through iommufd."""
    args = [f"{a},iommufd={BACKEND}" if a.startswith("vfio-pci,") else a for a in vm_args(dimm_addr)]
    return ["-object", f"iommufd,id={BACKEND}", *args]


@pytest.fixture(scope="module")
def nested(tmp_path_factory: pytest.TempPathFactory) -> Boot:
    results = tmp_path_factory.mktemp("iommufd-nested")
    script = nested_script(qemus=(("10", "10.0"),), vm=iommufd_vm_args, planned_by="10",
                           via=f"--iommufd {BACKEND}")
    guest = boot("x86_64", x86_machine(39), script, results,
                 shares={"hostroot": (Path("/"), True)}, append="intel_iommu=on",
                 memory="2048", kernel=iommufd_kernel("x86_64", "compat-off"))
    print(f"iommufd nested demo: boot-to-poweroff {guest.seconds:.1f} s")
    return guest


def test_nested_iommufd_qemu_dies_on_the_collision_check_predicts(nested: Boot) -> None:
    assert nested.file("dev_vfio").split().count("vfio") == 0  # no container: iommufd only
    code, out, err = nested.step("above10")
    assert code != 0, f"QEMU started although RAM sits above 2^39:\n{out}\n{err}"
    assert "prelaunch" not in out
    # QEMU's own words for the iommufd backend's refused IOMMU_IOAS_MAP
    line = next((x for x in err.splitlines() if "dma_map(" in x), None)
    assert line is not None, err
    assert f", {ABOVE:#x}, 0x8000000, " in line and "= -22 (Invalid argument)" in line, line
    assert "memory listener initialization failed: Region d0: " in line, line
    assert "failed to setup container" not in err, err  # the iommufd backend, not a VFIO group
    code, out, _ = nested.step("check")
    assert code == 1, f"layoutd check should say no (exit 1), got {code}:\n{out}"
    report = json.loads(out)
    assert report["source"] == "iommufd", report.get("source")
    hits = [c for c in report["collisions"] if int(c["start"], 16) <= ABOVE <= int(c["end"], 16)]
    assert hits and hits[0]["id"] == "dimm0" and hits[0]["kind"] == "dimm", report["collisions"]
    assert int(hits[0]["hole"]["start"], 16) == ABOVE, hits[0]


def test_nested_iommufd_qemu_starts_with_the_dimm_inside(nested: Boot) -> None:
    code, out, err = nested.step("inside10")
    assert code == 0, err
    assert '"status": "prelaunch"' in out, out
    assert "dma_map" not in err, err


def test_nested_iommufd_planned_line_starts_and_maps_a_hotplugged_dimm(nested: Boot) -> None:
    plan, err = planned_start(nested, "10")
    assert ranges_of(plan["usable"])[-1][1] == ABOVE - 1, plan["usable"]  # the live IOMMU's top
    assert f"iommufd={BACKEND}" in err and f"iommufd,id={BACKEND}" in err, err  # the line it ran



# ---- arm64: QEMU virt with an emulated SMMUv3 -------------------------------------------------

SMMU_MSI = (0x8000000, 0x80FFFFF)  # the SMMUv3 driver's software MSI window (MSI_IOVA_BASE)


def arm_iommufd_steps() -> str:
    g = "/layoutd-src/tests/kernel/guest"
    return ("ls /sys/class/iommu > $R/iommus\n"
            f"step kernel $J python3.11 {g}/iommufd_iova.py $bdf\n"
            f"step type1_kernel $J python3.11 {g}/vfio_iova.py $g\n"
            f"step type1 $J python3.11 {g}/reader.py vfio-type1 $bdf")


@pytest.fixture(scope="module")
def arm_guest(tmp_path_factory: pytest.TempPathFactory) -> Boot:
    results = tmp_path_factory.mktemp("iommufd-arm")
    machine = ["-machine", "virt,gic-version=3,iommu=smmuv3", "-cpu", "cortex-a72",
               "-accel", "tcg", "-device", "pci-testdev"]
    guest = boot("aarch64", machine, arm_script(arm_iommufd_steps()), results,
                 shares={"arm": (Path(manifest("aarch64")["userland"]), True),
                         "checkout": (ROOT, True)},
                 kernel=iommufd_kernel("aarch64", "compat-on"))
    print(f"iommufd arm64 SMMUv3 compat-on: boot-to-poweroff {guest.seconds:.1f} s")
    return guest


def test_arm_smmuv3_readers_agree(arm_guest: Boot) -> None:
    """iommufd (probe --host live), the type1 reader (iommufd's emulation), sysfs and the
    kernel's own enforcement agree on the SMMUv3's ranges for the device."""
    guest = arm_guest
    assert guest.file("driver").strip() == "vfio-pci"
    assert "smmu" in guest.file("iommus"), guest.file("iommus")  # the SMMUv3, not virtio-iommu
    assert parse_reserved_regions(guest.file("reserved_regions")) == [(*SMMU_MSI, "msi")]
    kernel = kernel_ranges(guest)
    usable = ranges_of(kernel["ranges"])
    top = usable[-1][1]
    assert (top + 1) & top == 0 and top >= 2**32 - 1, hex(top)  # the SMMU's input size: 2^n - 1
    assert usable == complement([SMMU_MSI], top)
    probes = kernel["map_probes"]
    assert isinstance(probes, list) and all(p["errno"] == 0 for p in probes if p["inside"])
    assert [p for p in probes if not p["inside"]] and all(
        p["errno"] != 0 for p in probes if not p["inside"]), probes
    live = layoutd_json(guest, "live")
    assert live["source"] == "iommufd"
    assert ranges_of(live["usable"]) == usable and live["aperture_end"] == hex(top)
    group = int(guest.file("group"))
    assert [(int(r["start"], 16), int(r["end"], 16), r["type"], r["group"])
            for r in live["reserved"]] == [(*SMMU_MSI, "msi", group)]  # type: ignore[union-attr]
    code, out, err = guest.step("type1")
    assert code == 0, err
    type1 = json.loads(out)
    assert type1["source"] == "vfio-type1"
    for key in ("usable", "reserved", "aperture_end"):
        assert type1[key] == live[key], key
    code, out, err = guest.step("type1_kernel")
    assert code == 0, err
    assert ranges_of(json.loads(out)["ranges"]) == usable
    # sysfs: the same holes; it cannot see the SMMU's width, so it runs to 2^64-1 and says so
    sysfs = layoutd_json(guest, "sysfs")
    assert sysfs["reserved"] == live["reserved"]
    assert ranges_of(sysfs["usable"]) == complement([SMMU_MSI], 2**64 - 1)
    assert sysfs["aperture_end"] is None and sysfs["warnings"], sysfs
    replay = run_layoutd("probe", "--host", str(guest.results / "record.json"), "--format", "json")
    assert replay.returncode == 0, replay.stderr
    assert json.loads(replay.stdout)["usable"] == live["usable"]
