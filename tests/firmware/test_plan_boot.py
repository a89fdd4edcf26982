"""Plans' command lines booted with real firmware under TCG: every assigned BAR lands where the
plan says, below the IOMMU top of the host (intel-46bit-cpu-39bit-iommu: 39 bits).

The host's GPU cannot be assigned here, so each of its 64-bit BARs gets a stand-in of the same
size in its place (pci-testdev membar=SIZE for the first, ivshmem-plain for the others); the rest
of the command line is the plan's, booted as it is (its -bios, its -fw_cfg, QEMU's defaults).
"""

import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import EXAMPLES, need, run_layoutd
from tests.support.firmware_runner import TRIXIE_ROOT, booted_bars, booted_hole64, stand_in_argv
from tests.support.qemu_runner import qemu_binary

pytestmark = pytest.mark.qemu  # starts real QEMU or firmware: not in -m "not qemu"

HOST = EXAMPLES / "hosts/intel-46bit-cpu-39bit-iommu"
TOP = (1 << 39) - 1
SPEC = """name: {name}
machine: q35
accel: tcg
cpu: {{model: EPYC, count: 1}}
memory: {{size: 8G}}
devices: [0000:01:00.0, 0000:01:00.1]
"""


def stand_ins(argv: list[str], host: Path = HOST) -> tuple[list[str], dict[str, tuple[str, int]]]:
    return stand_in_argv(argv, host)


OVMF_13 = TRIXIE_ROOT / "usr/share/ovmf/OVMF.fd"  # Debian 13's, from scripts/trixie-root.sh


@pytest.mark.parametrize(("name", "firmware", "version", "chosen"), [
    ("ovmf-window", "firmware: ovmf\n", "7.2", "pci_window 128G"),
    # Debian 13's OVMF moves its dynamic window below QEMU's AMD reservation (0xc000000000, still
    # above 39 bits) and takes X-PciMmio64Mb as it is: 32 GiB at the end of RAM is enough
    ("ovmf-13-window", f"firmware: {OVMF_13}\n", "10.0", "pci_window 32G"),
    ("seabios-phys-bits", "", "10.0", "cpu.phys_bits 39"),
])
def test_plan_boots_with_every_bar_below_the_iommu_top(tmp_path: Path, name: str, firmware: str,
                                                       version: str, chosen: str) -> None:
    path = OVMF_13 if str(OVMF_13) in firmware else Path("/usr/share/ovmf/OVMF.fd")
    need(path.exists(), f"{path} (Debian package ovmf)")
    spec = tmp_path / "vm.yaml"
    spec.write_text(SPEC.format(name=name) + firmware)
    result = run_layoutd("plan", str(spec), "--host", str(HOST), "--qemu-version", version,
                         "--format", "json")
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    assert any(warning.startswith(chosen) for warning in plan["warnings"]), plan["warnings"]
    args, plays = stand_ins(list(plan["qemu_argv"]))
    real = booted_bars(qemu_binary(version), args, list(plays), firmware="as-is",
                       timeout=300, nodefaults=False)
    booted = {plays[ident]: start for (ident, bar), start in real.items() if bar == 2}
    planned = {(bar["device"], bar["bar"]): int(bar["start"], 16) for bar in plan["bars"]}
    assert booted == planned and len(planned) == 2
    assert all(int(bar["end"], 16) <= TOP for bar in plan["bars"])


AMD = EXAMPLES / "hosts/amd-epyc-two-gpus"
HT = (0xFD00000000, 0xFFFFFFFFFF)


def test_plan_keeps_seabios_bars_clear_of_the_amd_ht_hole(tmp_path: Path) -> None:
    """960G of RAM on an EPYC guest: with QEMU's 32 GiB hole SeaBIOS 1.16.2 would put the 32 GiB
    BAR across the HyperTransport hole; the plan's larger hole makes QEMU put RAM at 1 TiB, and
    SeaBIOS's window follows it. RAM is never touched (TCG maps it lazily)."""
    spec = tmp_path / "vm.yaml"
    spec.write_text(SPEC.format(name="ht").replace("8G", "960G").replace(
        "0000:01:00.0, 0000:01:00.1", "0000:29:00.0, 0000:2a:00.0") + "firmware: seabios\n")
    result = run_layoutd("plan", str(spec), "--host", str(AMD), "--qemu-version", "7.2",
                         "--format", "json")
    assert result.returncode == 0, result.stdout + result.stderr
    plan = json.loads(result.stdout)
    assert any(warning.startswith("pci_hole64 ") for warning in plan["warnings"]), plan["warnings"]
    args, plays = stand_ins(list(plan["qemu_argv"]), AMD)
    real = booted_bars(qemu_binary("7.2"), args, list(plays), firmware="as-is", timeout=120,
                       nodefaults=False)
    booted = {plays[ident]: start for (ident, bar), start in real.items() if bar == 2}
    planned = {(bar["device"], bar["bar"]): int(bar["start"], 16) for bar in plan["bars"]}
    assert booted == planned and len(planned) == 4
    assert "q35-pcihost.pci-hole64-size=51G" in args
    assert all(int(b["end"], 16) < HT[0] or int(b["start"], 16) > HT[1] for b in plan["bars"])
    # one GiB less and the hole stops short of the HT range: QEMU keeps RAM at 4 GiB, and the
    # real SeaBIOS puts a 32 GiB BAR across the hole (the plan's size is the smallest that works)
    smaller = [word.replace("=51G", "=50G") for word in args]
    assert smaller != args
    real = booted_bars(qemu_binary("7.2"), smaller, list(plays), firmware="as-is", timeout=120,
                       nodefaults=False)
    sizes = {(b["device"], b["bar"]): int(b["end"], 16) - int(b["start"], 16) + 1
             for b in plan["bars"]}
    assert any(start is not None and start <= HT[1] and start + sizes[plays[ident]] > HT[0]
               for (ident, bar), start in real.items() if bar == 2), real


def test_the_drawn_pci_hole64_is_what_the_booted_guest_is_told(tmp_path: Path) -> None:
    """QEMU widens its 64-bit PCI hole to the BARs the firmware placed: the hole a plan draws
    is the booted guest's pci-hole64-start/end, with the real SeaBIOS 1.16.2 on QEMU 7.2, not
    the hole at -S (which the JSON regions keep)."""
    spec = tmp_path / "vm.yaml"
    spec.write_text(SPEC.format(name="hole").replace(
        "0000:01:00.0, 0000:01:00.1", "0000:29:00.0") + "firmware: seabios\n")
    result = run_layoutd("plan", str(spec), "--host", str(AMD), "--qemu-version", "7.2",
                         "--format", "json")
    assert result.returncode == 0, result.stdout + result.stderr
    plan = json.loads(result.stdout)
    text = run_layoutd("plan", str(spec), "--host", str(AMD), "--qemu-version", "7.2").stdout
    drawn = [(int(line.split()[1].split("-")[0], 16), int(line.split()[1].split("-")[1], 16))
             for line in text.splitlines() if line.startswith("  = ") and "64-bit PCI hole" in line]
    args, plays = stand_ins(list(plan["qemu_argv"]), AMD)
    bars, start, end = booted_hole64(qemu_binary("7.2"), args, list(plays))
    booted = {plays[ident]: address for (ident, bar), address in bars.items() if bar == 2}
    assert booted == {(b["device"], b["bar"]): int(b["start"], 16) for b in plan["bars"]}
    assert drawn == [(start, end)]
    # the hole at -S (QEMU's model without BARs) is not what the guest gets: the BARs lie past it
    assert max(int(b["end"], 16) for b in plan["bars"]) > start + (32 << 30)


def boot_and_audit(args: list[str], plays: dict[str, tuple[str, int]], host: Path
                   ) -> tuple[dict[tuple[str, int], int | None], dict[str, object]]:
    """Boot with the plan's own firmware until the stand-ins' BARs are placed; then the BARs,
    and `layoutd check --qmp` of the running guest (its real RAM map against the host)."""
    import tempfile

    from tests.support.firmware_runner import _poll, running

    folder = tempfile.mkdtemp(prefix="layoutd-audit-")
    audit_socket = f"{folder}/audit.sock"
    extra = ["-qmp", f"unix:{audit_socket},server=on,wait=off"]
    with running(qemu_binary("7.2"), [*args, *extra], folder) as monitor:
        bars = _poll(monitor, list(plays), 120, None)
        audit = run_layoutd("check", "--qmp", audit_socket, "--host", str(host), "--format", "json")
    assert audit.returncode in (0, 1), audit.stderr
    booted = {plays[ident]: start for (ident, bar), start in bars.items() if bar == 2}
    return booted, json.loads(audit.stdout)


def boots_clear(plan: dict[str, Any], host: Path) -> dict[str, Any]:
    """The plan booted with its firmware: its four BARs land where planned, clear of the HT
    hole, and the running guest's RAM is clear of every hole; the audit."""
    args, plays = stand_ins(list(plan["qemu_argv"]), host)
    booted, audit = boot_and_audit(args, plays, host)
    assert booted == {(b["device"], b["bar"]): int(b["start"], 16) for b in plan["bars"]}
    assert len(booted) == 4
    assert all(int(b["end"], 16) < HT[0] or int(b["start"], 16) > HT[1] for b in plan["bars"])
    assert audit["collisions"] == [] and audit["layout"], audit
    return audit


def test_a_pinned_phys_bits_is_relaxed_and_the_relaxed_plan_boots_clear(tmp_path: Path) -> None:
    """Issue 22, 4a: EPYC with phys_bits 40, 960G, QEMU 7.2, the AMD host: no layout keeps the
    pin (SeaBIOS puts a 32 GiB BAR across the HT hole, and a hole large enough to move RAM to
    1 TiB is past 40 bits), and the "no" suggests leaving phys-bits to the plan. That spec
    plans; booted with the real SeaBIOS 1.16.2, every BAR lands where planned, clear of the
    hole, and the running guest's own RAM map (`check --qmp`) has no collision."""
    text = SPEC.format(name="q960").replace("8G", "960G").replace(
        "0000:01:00.0, 0000:01:00.1", "0000:29:00.0, 0000:2a:00.0").replace(
        "count: 1}", "count: 1, phys_bits: 40}")
    spec = tmp_path / "vm.yaml"
    spec.write_text(text)
    no = run_layoutd("plan", str(spec), "--host", str(AMD), "--qemu-version", "7.2", "--format", "json")
    assert no.returncode == 1, no.stdout + no.stderr
    ideas = [idea["change"] for idea in json.loads(no.stdout)["would_work"]]
    assert {"cpu.phys_bits": None} in ideas
    spec.write_text(text.replace(", phys_bits: 40}", "}"))  # the suggestion applied
    result = run_layoutd("plan", str(spec), "--host", str(AMD), "--qemu-version", "7.2",
                         "--format", "json")
    assert result.returncode == 0, result.stdout + result.stderr
    plan = json.loads(result.stdout)
    audit = boots_clear(plan, AMD)
    above_1m = [[(r["start"], r["end"]) for r in layout if int(r["start"], 16) >= 1 << 20]
                for layout in (audit["layout"], plan["layout"])]  # below it the BIOS shadows ROMs
    # the running guest maps the planned RAM (and, as RAM too, the stand-ins' ivshmem BARs)
    assert above_1m[1] and set(above_1m[1]) <= set(above_1m[0])


def four_gpus(root: Path) -> Path:
    """An AMD host tree (the HT hole in every group) with four GPUs of one 32 GiB 64-bit BAR."""
    import shutil

    (root / "proc").mkdir(parents=True)
    shutil.copy(AMD / "proc/cpuinfo", root / "proc/cpuinfo")
    (root / "sys/bus/pci/drivers/vfio-pci").mkdir(parents=True)
    (root / "sys/bus/pci/drivers/vfio-pci/uevent").write_text("")
    unused = "0x0000000000000000 0x0000000000000000 0x0000000000000000\n" * 11
    for index in range(4):
        bdf, group, bar = f"0000:{0x41 + index:02x}:00.0", 40 + index, 0x30000000000 + (index << 35)
        device = root / "sys/bus/pci/devices" / bdf
        device.mkdir(parents=True)
        (device / "driver").write_text("../../drivers/vfio-pci")
        (device / "iommu_group").write_text(f"../../../../kernel/iommu_groups/{group}")
        low = 0xF0000000 + (index << 24)
        (device / "resource").write_text(
            f"{low:#018x} {low + (16 << 20) - 1:#018x} 0x0000000000040200\n"
            f"{bar:#018x} {bar + (32 << 30) - 1:#018x} 0x000000000014220c\n" + unused)
        folder = root / "sys/kernel/iommu_groups" / str(group)
        (folder / "devices").mkdir(parents=True)
        (folder / "devices" / bdf).write_text(f"../../../../bus/pci/devices/{bdf}")
        (folder / "type").write_text("DMA\n")
        (folder / "reserved_regions").write_text("0x00000000fee00000 0x00000000feefffff msi\n"
                                                 "0x000000fd00000000 0x000000ffffffffff reserved\n")
    return root


FOUR = """name: four
accel: tcg
cpu: {model: EPYC, count: 1}
memory: {size: 900G}
firmware: seabios
devices: [0000:41:00.0, 0000:42:00.0, 0000:43:00.0, 0000:44:00.0]
"""


@pytest.mark.parametrize(("pin", "route"), [
    ("", ""),  # the plan chooses: a 64-bit hole that reaches the HT range
    # the hole pinned at QEMU's 32G: the "no" offers the device-memory route, which plans
    ("pci_hole64: 32G\n", "memory.hotplug"),
])
def test_four_32g_bars_on_900g_plan_and_boot_clear(tmp_path: Path, pin: str, route: str) -> None:
    """Issue 22, 4b: 900G, four 32 GiB BARs, SeaBIOS 1.16.2 (QEMU 7.2), the AMD HT hole. The
    plan (or, with the hole pinned, the suggested `-m 900G,slots=1,maxmem=...`: device memory
    reaching the HT range makes QEMU move RAM and it past 1 TiB) booted with the real SeaBIOS
    puts all four BARs where planned, clear of every hole, and the running guest's RAM is
    clear (`check --qmp`)."""
    host = four_gpus(tmp_path / "host")
    spec = tmp_path / "vm.yaml"
    spec.write_text(FOUR + pin)
    if route:
        no = run_layoutd("plan", str(spec), "--host", str(host), "--qemu-version", "7.2",
                         "--format", "json")
        assert no.returncode == 1, no.stdout + no.stderr
        change = next(idea["change"] for idea in json.loads(no.stdout)["would_work"]
                      if route in idea["change"])
        hotplug = change[route]
        assert hotplug["slots"] == 1
        spec.write_text(FOUR.replace("size: 900G}", f"size: 900G, hotplug: {{slots: 1, max: "
                                                    f"{hotplug['max']}}}}}") + pin)
    result = run_layoutd("plan", str(spec), "--host", str(host), "--qemu-version", "7.2",
                         "--format", "json")
    assert result.returncode == 0, result.stdout + result.stderr
    plan = json.loads(result.stdout)
    if route:
        assert any(word.startswith("900G,slots=1,maxmem=") for word in plan["qemu_argv"])
    boots_clear(plan, host)


def test_an_old_machine_type_takes_the_device_memory_route_and_boots_clear(tmp_path: Path) -> None:
    """pc-q35-6.2 has no AMD relocation, so no 64-bit hole moves SeaBIOS's window past the HT
    hole; the plan chooses one slot and a maxmem whose device memory ends past it (SeaBIOS
    starts its window after etc/reserved-memory-end). Booted with the real SeaBIOS 1.16.2 the
    BARs land where planned, and the guest's RAM is clear."""
    spec = tmp_path / "vm.yaml"
    spec.write_text(SPEC.format(name="old").replace("8G", "960G").replace(
        "0000:01:00.0, 0000:01:00.1", "0000:29:00.0, 0000:2a:00.0").replace(
        "machine: q35", "machine: pc-q35-6.2") + "firmware: seabios\n")
    result = run_layoutd("plan", str(spec), "--host", str(AMD), "--qemu-version", "7.2",
                         "--format", "json")
    assert result.returncode == 0, result.stdout + result.stderr
    plan = json.loads(result.stdout)
    assert any(w.startswith("memory.hotplug {slots: 1, max: ") for w in plan["warnings"])
    assert any(word.startswith("960G,slots=1,maxmem=") for word in plan["qemu_argv"])
    boots_clear(plan, AMD)
