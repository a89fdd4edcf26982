"""An arm plan's command line booted with real edk2 under TCG (QEMU 10.0): the plan turns QEMU's
64-bit window off (`highmem_mmio: false` chosen) because the window starts at 512 GiB, above the
host's 39-bit IOMMU, and edk2 then puts the NIC's BARs in the 32-bit window where the plan says.

The host's NIC (examples/hosts/intel-4gpu-39bit 0000:05:00.0: 64-bit BARs of 8 MiB and 32 KiB, a
512 KiB ROM) is played by pci-testdev membar=8M with a 512 KiB romfile and ivshmem-plain with
32 KiB; the entries at least as large as 32 KiB, which set those BARs' offsets, are the same.
"""

import json
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES, need, run_layoutd
from tests.firmware.test_arm_check import ARM_SPEC
from tests.support.arm_firmware import arm_bars
from tests.support.qemu_runner import qemu_binary

pytestmark = pytest.mark.qemu  # starts real QEMU or firmware: not in -m "not qemu"

HOST = EXAMPLES / "hosts/intel-4gpu-39bit"
TOP = (1 << 39) - 1
EFI = "/usr/share/qemu-efi-aarch64/QEMU_EFI.fd"


def test_arm_plan_boots_with_the_bars_below_4g(tmp_path: Path) -> None:
    need(Path(EFI).exists(), f"{EFI} (Debian package qemu-efi-aarch64)")
    spec = tmp_path / "vm.yaml"
    spec.write_text(ARM_SPEC)
    result = run_layoutd("plan", str(spec), "--host", str(HOST), "--qemu-version", "10.0",
                         "--format", "json")
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    assert any(w.startswith("highmem_mmio false chosen") for w in plan["warnings"]), plan["warnings"]
    planned = {(bar["device"], bar["bar"]): int(bar["start"], 16) for bar in plan["bars"]}
    assert len(planned) == 2 and all(int(bar["end"], 16) <= TOP for bar in plan["bars"])
    rom = tmp_path / "rom.bin"
    rom.write_bytes(bytes(512 * 1024))
    argv = list(plan["qemu_argv"])
    at = argv.index("vfio-pci,host=0000:05:00.0,id=hostdev0")
    argv[at - 1:at + 1] = [
        "-device", f"pci-testdev,membar=8M,romfile={rom},id=b0",
        "-object", "memory-backend-ram,id=mb3,size=32K,share=on",
        "-device", "ivshmem-plain,memdev=mb3,id=b3"]
    real = arm_bars(qemu_binary("10.0", "aarch64"), None, argv, ["b0", "b3"], nodefaults=False)
    assert {("0000:05:00.0", 0): real[("b0", 2)], ("0000:05:00.0", 3): real[("b3", 2)]} == planned
