"""The arm virt model against real edk2 (Debian's qemu-efi-aarch64 QEMU_EFI.fd) under TCG, address
by address: a few command lines per build (the wider sweep is in docs/firmware.md).

Stand-ins are pci-testdev with membar=SIZE (a 64-bit prefetchable BAR); edk2 leaves them
undecoded (no UEFI driver), so tests/support/arm_firmware.py reads the BAR registers it programmed
from the ECAM window. Each boot takes 4-10 s.
"""

from collections.abc import Sequence

import pytest

from layoutd.firmware import place
from layoutd.firmware.builds import ARMVIRT_12, ARMVIRT_13, ARMVIRT_SID, Build
from layoutd.firmware.guest import board, read_argv
from layoutd.qemu import predict
from tests.firmware.test_placement import port, stand_ins
from tests.support.arm_firmware import Bars, arm_boot_all, efi_file
from tests.support.qemu_runner import qemu_binary

pytestmark = pytest.mark.qemu  # starts real QEMU or firmware: not in -m "not qemu"


def virt(machine: str = "virt", cpu: str = "max", ram: str = "1G") -> list[str]:
    """-machine/-cpu/-m for TCG; RAM above 16G comes from a reserve=off backend."""
    if ram.endswith("G") and int(ram[:-1]) > 16:
        return ["-machine", f"{machine},memory-backend=ram0", "-accel", "tcg", "-cpu", cpu,
                "-object", f"memory-backend-ram,id=ram0,size={ram},reserve=off", "-m", ram]
    return ["-machine", machine, "-accel", "tcg", "-cpu", cpu, "-m", ram]


CASES: dict[str, list[tuple[str, list[str]]]] = {
    "bookworm": [  # QEMU 7.2, edk2 2022.11
        ("equal BARs in slot order, largest first", virt() + stand_ins("16G", "64G", "16G")),
        ("eight devices", virt() + stand_ins("16M", "128G", "32M", "1G", "16G", "64M", "32G", "4G")),
        ("highmem=off: 608 MiB in the 752 MiB window", virt("virt,highmem=off")
         + stand_ins("16M", "64M", "256M", "16M", "256M")),
        ("the window cannot hold them: nothing assigned", virt() + stand_ins("512G", "16G")),
        ("root ports", virt() + stand_ins("16G") + port("p1", 1) + stand_ins("64G", bus="p1")
         + port("p2", 2) + port("p3", 3) + stand_ins("16G", bus="p3")),
    ],
    "trixie": [  # QEMU 10.0, edk2 2025.02
        ("600G of RAM: the window at 1 TiB", virt(ram="600G") + stand_ins("128G", "16G", "32M")),
        ("highmem-mmio=off", virt("virt,highmem-mmio=off") + stand_ins("128M", "64M", "16M")),
        ("highmem-mmio-size=2T", virt("virt,highmem-mmio-size=2T") + stand_ins("1T", "32G", "16M")),
        ("40-bit CPU, 600G: no 64-bit window", virt(cpu="cortex-a53", ram="600G")
         + stand_ins("64M", "16M")),
        ("root ports, highmem=off: their 2 MiB reserves", virt("virt,highmem=off")
         + port("p1", 1) + stand_ins("64M", bus="p1") + port("p2", 2) + stand_ins("128M")),
    ],
    "sid": [  # QEMU 11.1, edk2 2026.08
        ("equal BARs in slot order, largest first", virt() + stand_ins("16G", "64G", "16G")),
        ("highmem-mmio-size=1T too small: nothing assigned", virt("virt,highmem-mmio-size=1T")
         + stand_ins("1T", "16M")),
        ("4 x 128G behind ports and 64G: the last port's device dropped", virt()
         + port("p1", 1) + stand_ins("128G", bus="p1") + port("p2", 2) + stand_ins("128G", bus="p2")
         + stand_ins("64G") + port("p3", 3) + stand_ins("128G", bus="p3") + port("p4", 4)
         + stand_ins("128G", bus="p4")),
        ("highmem=off: the 32-bit window", virt("virt,highmem=off") + stand_ins("64M", "128M")),
        ("cortex-a57, 4 x 32G", virt(cpu="cortex-a57") + stand_ins("32G", "32G", "32G", "32G")),
        ("root ports", virt() + port("p1", 1) + stand_ins("1G", bus="p1") + port("p2", 2)
         + stand_ins("32M", bus="p2") + stand_ins("2G")),
    ],
}
BUILDS = {"bookworm": ("7.2", ARMVIRT_12), "trixie": ("10.0", ARMVIRT_13), "sid": ("11.1", ARMVIRT_SID)}


def ids_of(args: Sequence[str]) -> list[str]:
    return [word.split("id=")[1].split(",")[0] for word in args if word.startswith("pci-testdev")]


def expected(args: Sequence[str], version: str, build: Build) -> Bars:
    argv = [*args, "-nodefaults"]
    guest = predict(argv, version=version, arch="aarch64")
    placement = place(build, board(guest, read_argv(argv, "virt", {}), False))
    return {(p.device, p.bar): p.start for p in placement.bars}


@pytest.mark.parametrize("release", list(CASES))
def test_edk2_on_arm_virt(release: str) -> None:
    version, build = BUILDS[release]
    binary = qemu_binary(version, "aarch64")
    cases = CASES[release]
    booted = arm_boot_all(binary, efi_file(release), [(args, ids_of(args)) for _, args in cases])
    for (name, args), real in zip(cases, booted, strict=True):
        want = expected(args, version, build)
        got = {key: address for key, address in real.items() if key in want}
        assert got == want, f"{release}: {name}"
        assert ("nothing assigned" in name) == all(address is None for address in want.values())
