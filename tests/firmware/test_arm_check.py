"""`layoutd check` of an arm virt guest places the assigned BARs as edk2 (ArmVirtQemu) does: QEMU's
64-bit window starts at 512 GiB, above a 39-bit IOMMU, and `highmem-mmio=off` (not in QEMU 7.2)
moves small BARs to the 32-bit window. The firmware is known by its file's sha256."""

import json
from pathlib import Path

from layoutd.firmware import place
from layoutd.firmware.board import Bar, Board, PciDevice, RootPort
from layoutd.firmware.builds import ARMVIRT_12
from layoutd.firmware.files import identify
from layoutd.units import GiB, MiB
from tests.conftest import EXAMPLES, need, run_layoutd

HOST = str(EXAMPLES / "hosts/intel-4gpu-39bit")
EFI = "/usr/share/qemu-efi-aarch64/QEMU_EFI.fd"
NIC = ["-device", "vfio-pci,host=0000:05:00.0", "-device", "vfio-pci,host=0000:01:00.1"]


def check(version: str, machine: str = "virt") -> tuple[int, dict[str, object]]:
    need(Path(EFI).exists(), f"{EFI} (Debian package qemu-efi-aarch64)")
    result = run_layoutd("check", "--host", HOST, "--qemu-version", version, "--format", "json",
                         "--", "qemu-system-aarch64", "-machine", machine, "-accel", "tcg",
                         "-cpu", "max", "-m", "2G", "-bios", EFI, *NIC)
    assert "Traceback" not in result.stderr
    return result.returncode, json.loads(result.stdout)


def test_the_high_window_is_above_a_39bit_iommu_and_highmem_mmio_off_works() -> None:
    code, data = check("10.0")
    assert code == 1 and data["firmware"] == "edk2 2022.11 ArmVirtQemu (Debian 12)"
    assert data["bars"] == [
        {"device": "0000:05:00.0", "bar": 0, "start": "0x8000000000", "end": "0x80007fffff"},
        {"device": "0000:05:00.0", "bar": 3, "start": "0x8000800000", "end": "0x8000807fff"}]
    assert data["collisions"][0]["id"] == "0000:05:00.0 BAR0"
    assert [idea["change"] for idea in data["would_work"]] == [  # type: ignore[index]
        {"-machine": "virt,highmem-mmio=off"}]
    code, data = check("10.0", "virt,highmem-mmio=off")
    assert code == 0, data["collisions"]
    assert data["bars"][0]["start"] == "0x10000000"


def test_qemu_7_2_has_no_highmem_mmio_property() -> None:
    code, data = check("7.2")
    assert code == 1 and not data.get("would_work")


def test_arm_firmware_identity() -> None:
    assert identify(None, "10.0", "aarch64")[0] is None
    assert "kernel" in (identify(None, "10.0", "aarch64")[1] or "")
    if Path(EFI).exists():
        assert identify(EFI, "10.0", "aarch64")[0] == ARMVIRT_12
        build, note = identify(EFI, "10.0", "x86_64")
        assert build is None and "not a firmware for x86_64" in (note or "")


def test_equal_bars_order_and_the_rom_entry() -> None:
    """Equal prefetchable 64-bit BARs first, in slot order, then the non-prefetchable ones in
    reverse slot order (measured with Debian 12's QEMU 7.2 and edk2: pci-testdev membar=16K in
    slots 1 and 3, nvme's 16 KiB BAR0 in slots 2 and 4 land at +0, +16K, slot 4 at +32K, slot 2
    at +48K); without a 64-bit window the shared ROM entry (the largest ROM) comes first."""
    def device(name: str, slot: int, pref: bool, rom: int = 0) -> PciDevice:
        return PciDevice(name, slot, bars=(Bar(0, 64 * MiB, True, pref),), rom=rom)

    window = (512 * GiB, 1024 * GiB - 1)
    bars = place(ARMVIRT_12, Board("virt", "arm", 48, False, 0, 0, mmio64=window, devices=(
        device("a", 1, True), device("b", 2, True), device("c", 3, False), device("d", 4, False)))).bars
    assert [(b.device, b.start) for b in bars] == [
        ("a", 512 * GiB), ("b", 512 * GiB + 64 * MiB),
        ("c", 512 * GiB + 192 * MiB), ("d", 512 * GiB + 128 * MiB)]
    low = place(ARMVIRT_12, Board("virt", "arm", 48, False, 0, 0, devices=(
        device("a", 1, True, rom=256 * 1024), device("b", 2, True)))).bars
    assert [(b.device, b.start) for b in low] == [("a", 0x14000000), ("b", 0x10000000)]


def test_root_ports_and_a_device_edk2_drops() -> None:
    """A port's 64-bit window is its BARs. When the BARs do not fit, edk2 drops the device behind
    a port with the largest BAR and places the rest; the root bus's devices stay."""
    window = (512 * GiB, 1024 * GiB - 1)
    ports = (RootPort("p1", 1), RootPort("p2", 2))
    bars = place(ARMVIRT_12, Board("virt", "arm", 48, False, 0, 0, mmio64=window, ports=ports, devices=(
        PciDevice("a", 0, bars=(Bar(2, 16 * GiB, True, True),), port="p1"),
        PciDevice("b", 3, bars=(Bar(2, 64 * GiB, True, True),))))).bars
    assert [(b.device, b.start) for b in bars] == [("a", 576 * GiB), ("b", 512 * GiB)]
    full = place(ARMVIRT_12, Board("virt", "arm", 48, False, 0, 0, mmio64=window, ports=ports, devices=(
        PciDevice("a", 0, bars=(Bar(2, 512 * GiB, True, True),), port="p1"),
        PciDevice("b", 3, bars=(Bar(2, 64 * GiB, True, True),)))))
    assert [(b.device, b.start) for b in full.bars] == [("a", None), ("b", 512 * GiB)]
    assert "drops a" in full.notes[0]


def test_libvirt_arm_domain_with_root_ports() -> None:
    """An aarch64 domain (TCG, AAVMF pflash, the NIC and an audio function behind two
    pcie-root-ports): the NIC's BARs at 512 GiB, above the host's 39-bit IOMMU: refused."""
    need(Path("/usr/share/AAVMF/AAVMF_CODE.fd").exists(), "AAVMF (Debian package qemu-efi-aarch64)")
    domain = Path(__file__).parent / "data/arm-nic.xml"
    result = run_layoutd("check", "--libvirt", str(domain), "--host", HOST, "--format", "json")
    data = json.loads(result.stdout)
    assert result.returncode == 1 and data["firmware"] == "edk2 2022.11 ArmVirtQemu (Debian 12)"
    assert data["bars"][0] == {"device": "0000:05:00.0", "bar": 0, "start": "0x8000000000",
                               "end": "0x80007fffff"}
    assert data["collisions"][0]["id"] == "0000:05:00.0 BAR0"


ARM_SPEC = """name: arm-nic
arch: aarch64
machine: virt
cpu: {model: max, count: 2}
memory: {size: 2G}
devices: [0000:05:00.0]
firmware: /usr/share/qemu-efi-aarch64/QEMU_EFI.fd
"""


def test_arm_plan_turns_the_high_window_off_or_says_no(tmp_path: Path) -> None:
    """QEMU 10.0: the plan chooses highmem_mmio: false; fixed to true it is a "no" naming the BARs
    whose would-work plans; QEMU 7.2 has no such property: a "no" naming the QEMU that plans it."""
    need(Path(EFI).exists(), f"{EFI} (Debian package qemu-efi-aarch64)")
    spec = tmp_path / "vm.yaml"
    spec.write_text(ARM_SPEC)
    result = run_layoutd("plan", str(spec), "--host", HOST, "--qemu-version", "10.0", "--format", "json")
    data = json.loads(result.stdout)
    assert result.returncode == 0 and "highmem-mmio=off" in " ".join(data["qemu_argv"])
    assert [bar["start"] for bar in data["bars"]] == ["0x10000000", "0x10880000"]
    spec.write_text(ARM_SPEC + "highmem_mmio: true\n")
    result = run_layoutd("plan", str(spec), "--host", HOST, "--qemu-version", "10.0", "--format", "json")
    data = json.loads(result.stdout)
    assert result.returncode == 1 and "0000:05:00.0 BAR0" in data["error"]["message"]
    assert [idea["change"] for idea in data["would_work"]] == [{"highmem_mmio": False}]
    spec.write_text(ARM_SPEC + "highmem_mmio: false\n")
    assert run_layoutd("plan", str(spec), "--host", HOST, "--qemu-version", "10.0").returncode == 0
    spec.write_text(ARM_SPEC)
    result = run_layoutd("plan", str(spec), "--host", HOST, "--qemu-version", "7.2", "--format", "json")
    data = json.loads(result.stdout)
    assert result.returncode == 1 and "qemu_argv" not in data  # 7.2 has no highmem-mmio
    assert [idea["change"] for idea in data["would_work"]] == [{"highmem_mmio": False}]
    assert "plan --qemu-version 10.0" in data["would_work"][0]["text"]


def test_a_device_edk2_drops_and_the_larger_window_that_keeps_it() -> None:
    """A 512 GiB stand-in fills QEMU's window; edk2 drops the NIC behind its root port (a "no":
    unassigned); `highmem-mmio-size=1T` is suggested, checked again, and clears it."""
    need(Path(EFI).exists(), f"{EFI} (Debian package qemu-efi-aarch64)")
    args = ["-accel", "tcg", "-cpu", "max", "-m", "2G", "-bios", EFI, "-device", "pci-testdev,membar=512G",
            "-device", "pcie-root-port,id=p1,chassis=1", "-device", "vfio-pci,host=0000:05:00.0,bus=p1"]

    def run(machine: str) -> tuple[int, dict[str, object]]:
        result = run_layoutd("check", "--host", str(EXAMPLES / "hosts/arm-kunpeng-pci-windows"),
                             "--qemu-version", "10.0", "--format", "json", "--", "qemu-system-aarch64",
                             "-machine", machine, *args)
        return result.returncode, json.loads(result.stdout)

    code, data = run("virt")
    assert code == 1 and data["bars"] == [{"device": "0000:05:00.0", "bar": 0, "start": None, "end": None}]
    assert [idea["change"] for idea in data["would_work"]] == [  # type: ignore[index]
        {"-machine": "virt,highmem-mmio-size=1T"}]
    code, data = run("virt,highmem-mmio-size=1T")
    assert code == 0 and data["bars"][0]["start"] == "0x18000000000"  # after the 512G one, at 1T
