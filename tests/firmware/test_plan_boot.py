"""Plans' command lines booted with real firmware under TCG: every assigned BAR lands where the
plan says, below the IOMMU top of the host (intel-46bit-cpu-39bit-iommu: 39 bits).

The host's GPU cannot be assigned here, so each of its 64-bit BARs gets a stand-in of the same
size in its place (pci-testdev membar=SIZE for the first, ivshmem-plain for the others); the rest
of the command line is the plan's, booted as it is (its -bios, its -fw_cfg, QEMU's defaults).
"""

import json
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES, need, run_layoutd
from tests.support.firmware_runner import TRIXIE_ROOT, booted_bars, stand_in_argv
from tests.support.qemu_runner import qemu_binary

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
