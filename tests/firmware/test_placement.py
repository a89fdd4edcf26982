"""The firmware model against real SeaBIOS and OVMF under TCG, address by address.

Each case is a QEMU command line with stand-in devices (pci-testdev membar=SIZE: a 64-bit
prefetchable BAR; ivshmem-plain: a 64-bit prefetchable BAR the size of its memory backend;
nvme: a 64-bit non-prefetchable BAR),
booted until the firmware has assigned the BARs; layoutd's model reads the same command line
(the QEMU model for RAM and device memory, layoutd.firmware.guest for the devices) and must give
every memory BAR of the stand-ins exactly, or say it is left unassigned.
"""

import itertools
from collections.abc import Sequence

import pytest

from layoutd.firmware import place
from layoutd.firmware.board import Placement
from layoutd.firmware.builds import OVMF_12, OVMF_13, OVMF_SID, SEABIOS_12, Build, default_for_qemu
from layoutd.firmware.guest import BRIDGES, board, page_1g, read_argv
from layoutd.qemu import predict
from tests.support.firmware_runner import Bars, boot_all, booted_bars
from tests.support.qemu_runner import qemu_binary

pytestmark = pytest.mark.qemu  # starts real QEMU or firmware: not in -m "not qemu"

BRIDGE_DRIVERS = tuple(f"{driver}," for driver in BRIDGES)


def stand_ins(*sizes: str, bus: str = "") -> list[str]:
    """pci-testdev stand-ins t1, t2, ... (ids numbered by position)."""
    args = []
    for number, size in enumerate(sizes, start=1):
        where = f",bus={bus}" if bus else ""
        args += ["-device", f"pci-testdev,membar={size},id={bus or 't'}{number}{where}"]
    return args


def nvme(name: str, bus: str = "", queues: int = 0) -> list[str]:
    """QEMU's nvme: a 64-bit NON-prefetchable BAR0 (16 KiB; 32 KiB with 1000 queue pairs, 1 MiB
    with 65535), as NVMe drives have."""
    extra = (f",bus={bus}" if bus else "") + (f",max_ioqpairs={queues}" if queues else "")
    return ["-device", f"nvme,serial={name},id={name}{extra}"]


def device(text: str) -> list[str]:
    return ["-device", text]


def ivshmem(name: str, size: str) -> list[str]:
    return ["-object", f"memory-backend-ram,id=m{name},size={size},share=on",
            "-device", f"ivshmem-plain,memdev=m{name},id={name}"]


def port(name: str, chassis: int) -> list[str]:
    return ["-device", f"pcie-root-port,id={name},chassis={chassis}"]


def bridge(driver: str, name: str, bus: str = "", extra: str = "") -> list[str]:
    """A bridge: x3130-upstream, xio3130-downstream, pci-bridge, pcie-pci-bridge."""
    return ["-device", f"{driver},id={name}" + (f",bus={bus}" if bus else "") + extra]


def base(machine: str, cpu: str, ram: str) -> list[str]:
    return ["-machine", machine, "-accel", "tcg", "-cpu", cpu, "-m", ram, "-nodefaults"]


def ids_of(args: Sequence[str]) -> list[str]:
    found = []
    for flag, value in itertools.pairwise(args):
        if flag == "-device" and "id=" in value and not value.startswith(BRIDGE_DRIVERS):
            found.append(value.split("id=")[1].split(",")[0])
    return found


def model(args: Sequence[str], version: str, build: Build) -> Placement:
    guest = predict(args, version=version)  # ivshmem: a BAR, no RAM at start
    cpu = args[args.index("-cpu") + 1].split(",")
    props = dict(part.split("=", 1) if "=" in part else (part, "on") for part in cpu[1:])
    pci = read_argv(args, "q35" if "q35" in guest.machine else "pc", {})
    return place(build, board(guest, pci, page_1g(cpu[0], props), props))


def expected(placement: Placement, ids: Sequence[str]) -> Bars:
    return {(p.device, p.bar): p.start for p in placement.bars if p.device in ids and p.bar < 6}


SEABIOS_CASES = {
    "issue: 16G and 64G, phys-bits 46": base("q35", "EPYC,phys-bits=46", "2G") + stand_ins("16G", "64G"),
    "qemu64 40 bits, 16G and 64G": base("q35", "qemu64", "2G") + stand_ins("16G", "64G"),
    "small 64-bit BARs fit below 4G": base("q35", "Skylake-Server,phys-bits=39", "8G")
    + stand_ins("16M", "32M"),
    "eight devices 16M-16G, device memory": base("q35", "qemu64,phys-bits=44", "16G,slots=2,maxmem=64G")
    + stand_ins("16M", "32M", "256M", "1G", "2G", "4G", "8G", "16G"),
    "pc: 32G, 1G and ivshmem 256M, 42 bits": base("pc", "qemu64,phys-bits=42", "4G")
    + stand_ins("32G", "1G") + ivshmem("s1", "256M"),
    "root ports, 46 bits": base("q35", "EPYC,phys-bits=46", "8G") + port("rp1", 1) + port("rp2", 2)
    + stand_ins("16G", bus="rp1") + stand_ins("8G", bus="rp2") + stand_ins("1G"),
    "1 TiB RAM, AMD relocation, 128G BAR, 48 bits": base("q35", "EPYC,phys-bits=48", "1T")
    + stand_ins("128G", "16G"),
    "pc 512G RAM, 64G BAR, 40 bits": base("pc", "qemu64", "512G") + stand_ins("64G"),
    "Intel 52 bits, 4x16G": base("q35", "Icelake-Server,phys-bits=52", "64G") + stand_ins(*["16G"] * 4),
    "nvme behind root ports and on the root bus, xhci, VGA 64M":
    base("q35", "Skylake-Server,phys-bits=39", "3G") + device("VGA,id=g1,vgamem_mb=64")
    + port("rp1", 1) + port("rp2", 2) + nvme("n1", "rp1", 1000) + device("qemu-xhci,id=x1,bus=rp2")
    + stand_ins("1G") + nvme("n2"),
    "32-bit window full: root-bus 64-bit BARs move up, nvme behind a port stays":
    base("q35", "qemu64", "2G") + port("rp1", 1) + nvme("n1", "rp1", 65535) + nvme("n2")
    + stand_ins("512M", "512M", "256M"),
    # bridges behind bridges: each bridge's window holds its children's; a switch's upstream
    # port and a pcie-pci-bridge have no hotplug slot (no reserve, no padding), its downstream
    # ports and a pci-bridge (SHPC) do; pci-bridge's own 64-bit BAR moves up on the root bus
    "switch behind a root port, 46 bits": base("q35", "EPYC,phys-bits=46", "8G") + port("rp1", 1)
    + bridge("x3130-upstream", "up1", "rp1") + bridge("xio3130-downstream", "dn1", "up1", ",chassis=2")
    + bridge("xio3130-downstream", "dn2", "up1", ",chassis=3") + stand_ins("16G", bus="dn1")
    + nvme("n1", "dn2") + stand_ins("1G"),
    "switch with an empty downstream port, Intel 39 bits": base("q35", "Skylake-Server,phys-bits=39", "4G")
    + port("rp1", 1) + bridge("x3130-upstream", "up1", "rp1")
    + bridge("xio3130-downstream", "dn1", "up1", ",chassis=2")
    + bridge("xio3130-downstream", "dn2", "up1", ",chassis=3") + stand_ins("2G", bus="dn2")
    + port("rp2", 4) + stand_ins("4G", bus="rp2"),
    "pcie-pci-bridge behind a root port, 32-bit window full": base("q35", "qemu64", "2G") + port("rp1", 1)
    + bridge("pcie-pci-bridge", "pb1", "rp1") + stand_ins("256M", "64M", bus="pb1") + nvme("n1", "pb1")
    + stand_ins("512M"),
    "padded: pcie-pci-bridge, pci-bridge behind pci-bridge": base("q35", "EPYC,phys-bits=46", "8G")
    + port("rp1", 1) + bridge("pcie-pci-bridge", "pb1", "rp1") + stand_ins("1G", bus="pb1")
    + bridge("pci-bridge", "b1", "", ",chassis_nr=3") + bridge("pci-bridge", "b2", "b1", ",chassis_nr=4")
    + stand_ins("2G", bus="b2") + port("rp2", 5) + bridge("pcie-pci-bridge", "pb2", "rp2")
    + nvme("n1", "pb2"),
    "pc: pci-bridge behind pci-bridge, 42 bits": base("pc", "qemu64,phys-bits=42", "4G")
    + bridge("pci-bridge", "b1", "", ",chassis_nr=1") + bridge("pci-bridge", "b2", "b1", ",chassis_nr=2")
    + stand_ins("8G", "32M", bus="b2") + nvme("n1", "b2") + stand_ins("1G"),
    # Proxmox's q35 layout (pve-q35-4.0.cfg): PCI bridges pci.0/pci.1 behind the DMI-to-PCI bridge
    "Proxmox: pci.0 behind i82801b11-bridge, a GPU on a root port": base("q35", "EPYC,phys-bits=46", "8G")
    + device("i82801b11-bridge,id=pcidmi,bus=pcie.0,addr=1e.0")
    + bridge("pci-bridge", "pci.0", "pcidmi", ",addr=1.0,chassis_nr=1")
    + bridge("pci-bridge", "pci.1", "pcidmi", ",addr=2.0,chassis_nr=2") + port("rp1", 1)
    + stand_ins("16G", bus="rp1") + device("pci-testdev,membar=2G,id=t9,bus=pci.0,addr=0x10")
    + nvme("n1", "pci.1"),
    "Proxmox: pci.0 behind i82801b11-bridge, 40 bits": base("q35", "qemu64", "4G")
    + device("i82801b11-bridge,id=pcidmi,bus=pcie.0,addr=1e.0")
    + bridge("pci-bridge", "pci.0", "pcidmi", ",addr=1.0,chassis_nr=1")
    + device("pci-testdev,membar=1G,id=t9,bus=pci.0,addr=0x10") + stand_ins("512M"),
    "pc: empty nested pci-bridges": base("pc", "qemu64", "2G")
    + bridge("pci-bridge", "b1", "", ",chassis_nr=1")
    + bridge("pci-bridge", "b2", "b1", ",chassis_nr=2") + bridge("pci-bridge", "b3", "", ",chassis_nr=3")
    + bridge("pci-bridge", "b4", "b3", ",chassis_nr=4") + stand_ins("512M", bus="b4") + stand_ins("4G"),
}


@pytest.mark.parametrize("version", ["7.2", "10.0", "11.1"])
@pytest.mark.parametrize("name", sorted(SEABIOS_CASES))
def test_seabios(name: str, version: str) -> None:
    """QEMU 7.2 with Debian 12's SeaBIOS 1.16.2, QEMU 10.0 with its own (1.16.3 from backports),
    QEMU 11.1 in the sid root with sid's (1.17.0)."""
    args = SEABIOS_CASES[name]
    binary = qemu_binary(version)
    ids = ids_of(args)
    build = SEABIOS_12 if version == "7.2" else default_for_qemu(version)
    real = booted_bars(binary, args, ids, firmware="seabios" if version == "7.2" else "default",
                       timeout=60)
    assert real == expected(model(args, version, build), ids)


OVMF_CASES = {
    "issue: 16G and 64G, phys-bits 46, dynamic window": base("q35", "EPYC,phys-bits=46", "2G")
    + stand_ins("16G", "64G"),
    "issue: phys-bits 39 on an AMD CPU: classic 32G window, nothing assigned":
    base("q35", "qemu64,phys-bits=39", "2G") + stand_ins("16G", "64G"),
    "root ports padded to 1/256 of the window": base("q35", "EPYC,phys-bits=42", "8G")
    + port("rp1", 1) + port("rp2", 2) + stand_ins("1G", bus="rp1") + stand_ins("64G", bus="rp2")
    + stand_ins("4G"),
    "qemu64 has no 1 GiB pages: 46 phys-bits count as 40": base("q35", "qemu64,phys-bits=46", "2G")
    + stand_ins("16G", "64G"),
    "X-PciMmio64Mb above device memory, equal BARs in order": [
        *base("q35", "Skylake-Server,phys-bits=39", "4G,slots=2,maxmem=32G"),
        "-fw_cfg", "name=opt/ovmf/X-PciMmio64Mb,string=65536", *stand_ins("16G", "32G", "16G")],
    # 64-bit non-prefetchable BARs: equal ones on the root bus in reverse slot order; behind a
    # root port in its 32-bit window (0xc0000000 up)
    "nvme: root bus in reverse slot order, behind ports below 4 GiB":
    base("q35", "EPYC,phys-bits=46", "2G") + nvme("n1") + nvme("n2") + nvme("n3") + stand_ins("1G")
    + port("rp1", 1) + port("rp2", 2) + nvme("n4", "rp1", 1000) + device("qemu-xhci,id=x1,bus=rp2"),
    "64-bit BARs larger than X-PciMmio64Mb fall back to the 32-bit window (pc)": [
        *base("pc", "qemu64,phys-bits=39", "1G"), "-fw_cfg", "name=opt/ovmf/X-PciMmio64Mb,string=1024",
        *stand_ins("1G", "256M"), *nvme("n1")],
    "a root port's window rounded to 1 MiB, not to its largest BAR":
    base("q35", "EPYC,phys-bits=42", "4G") + port("rp1", 1)
    + device("pci-testdev,bus=rp1,addr=0.0,multifunction=on,membar=16G,id=m1")
    + device("pci-testdev,bus=rp1,addr=0.1,membar=32M,id=m2") + stand_ins("8G") + nvme("n1"),
    "the 32-bit window too small: the device behind the root port dropped": [
        *base("q35", "qemu64,phys-bits=39", "2G"), "-fw_cfg", "name=opt/ovmf/X-PciMmio64Mb,string=0",
        *port("rp1", 1), *stand_ins("1G", bus="rp1"), *stand_ins("256M"), *nvme("n1")],
    # bridges behind bridges: each bridge's windows are entries of its parent's; downstream
    # ports and pci-bridges (SHPC) are padded, a switch's upstream port is not
    "a switch behind a root port: its downstream ports padded": base("q35", "EPYC,phys-bits=42", "4G")
    + port("rp1", 1) + bridge("x3130-upstream", "up1", "rp1")
    + bridge("xio3130-downstream", "dn1", "up1", ",chassis=2")
    + bridge("xio3130-downstream", "dn2", "up1", ",chassis=3") + stand_ins("16G", bus="dn1")
    + nvme("n1", "dn2") + stand_ins("1G"),
    "pc: pci-bridge behind pci-bridge": base("pc", "EPYC,phys-bits=44", "4G")
    + bridge("pci-bridge", "b1", "", ",chassis_nr=1") + bridge("pci-bridge", "b2", "b1", ",chassis_nr=2")
    + stand_ins("8G", "32M", bus="b2") + nvme("n1", "b2") + stand_ins("1G")
    + bridge("pci-bridge", "b3", "", ",chassis_nr=3"),
    **{name: args for name, args in SEABIOS_CASES.items() if name.startswith("Proxmox")},
}


MMIO64 = "name=opt/ovmf/X-PciMmio64Mb,string="
# edk2 2025.02 and 2026.08 as Debian builds them: what changed since 2022.11
NEW_OVMF_CASES = {
    "phys-bits 48 capped to 46 (4-level paging)": base("q35", "EPYC,phys-bits=48", "2G")
    + stand_ins("16G", "64G"),
    "AMD 40 bits: the window moves below QEMU's HyperTransport reservation":
    base("q35", "EPYC,phys-bits=40", "2G") + stand_ins("16G", "64G"),
    "guest-phys-bits makes qemu64's 39 trusted": base("q35", "qemu64,phys-bits=39,guest-phys-bits=39", "2G")
    + stand_ins("16G", "32G"),
    "X-PciMmio64Mb taken as it is, not the dynamic window": [
        *base("q35", "Skylake-Server,phys-bits=46", "4G"), "-fw_cfg", MMIO64 + "65536",
        *stand_ins("16G", "32G")],
    "X-PciMmio64Mb smaller than the BARs: nothing assigned": [
        *base("q35", "Skylake-Server,phys-bits=46", "4G"), "-fw_cfg", MMIO64 + "16384",
        *stand_ins("16G", "32G")],
    # QEMU 10.1+ machine types leave CPUID 0x80000000's vendor empty for Intel: OVMF then does
    # not trust 39 bits (QEMU 10.0's q35 is pc-q35-10.0: trusted; 11.1's pc-q35-11.1: nothing)
    "Intel 39 bits: trusted while CPUID 0x80000000 names the vendor":
    base("q35", "Skylake-Server,phys-bits=39", "4G") + stand_ins("16G", "32G"),
    "pc, 42 bits: the dynamic window as before": base("pc", "Skylake-Server,phys-bits=42", "4G")
    + stand_ins("32G", "1G") + ivshmem("s1", "256M"),
    "root ports padded to 1/256 of the window, as before": base("q35", "EPYC,phys-bits=42", "8G")
    + port("rp1", 1) + port("rp2", 2) + stand_ins("1G", bus="rp1") + stand_ins("64G", bus="rp2")
    + stand_ins("4G"),
    # the 32-bit window starts at Uc32Base on q35 too (MMCONFIG moved to 0xe0000000)
    "nvme behind root ports: q35's 32-bit window from 0x80000000":
    base("q35", "EPYC,phys-bits=46", "2G") + port("rp1", 1) + port("rp2", 2)
    + nvme("n1", "rp1", 65535) + nvme("n2", "rp2") + stand_ins("16G") + nvme("n3"),
    "64-bit BARs larger than X-PciMmio64Mb fall back to the 32-bit window (q35)": [
        *base("q35", "qemu64,phys-bits=39", "2G"), "-fw_cfg", MMIO64 + "1024",
        *stand_ins("1G", "256M"), *nvme("n1")],
    "pcie-pci-bridge behind a root port (SHPC: padded)": base("q35", "EPYC,phys-bits=46", "2G")
    + port("rp1", 1) + bridge("pcie-pci-bridge", "pb1", "rp1") + stand_ins("1G", "64M", bus="pb1")
    + stand_ins("4G") + port("rp2", 2) + stand_ins("2G", bus="rp2"),
    "empty pcie-pci-bridge, a switch, Intel 39 bits": base("q35", "Skylake-Server,phys-bits=39", "2G")
    + port("rp1", 1) + bridge("pcie-pci-bridge", "pb1", "rp1") + port("rp2", 2)
    + bridge("x3130-upstream", "up2", "rp2") + bridge("xio3130-downstream", "dn2", "up2", ",chassis=4")
    + stand_ins("4G", bus="dn2") + stand_ins("8G"),
}


@pytest.mark.parametrize(("firmware", "version", "build", "cases"), [
    ("ovmf", "7.2", OVMF_12, OVMF_CASES),
    ("ovmf-13", "10.0", OVMF_13, NEW_OVMF_CASES),
    ("ovmf-sid", "11.1", OVMF_SID, NEW_OVMF_CASES),
], ids=["2022.11", "2025.02", "2026.08"])
def test_ovmf(firmware: str, version: str, build: Build, cases: dict[str, list[str]]) -> None:
    """Debian 12's OVMF (edk2 2022.11) with QEMU 7.2, Debian 13's (2025.02, the trixie root) with
    QEMU 10.0, sid's (2026.08) with sid's QEMU 11.1: each build's cases booted at once."""
    binary = qemu_binary(version)
    names = sorted(cases)
    expect = {name: expected(model(cases[name], version, build), ids_of(cases[name])) for name in names}
    jobs = [(cases[name], ids_of(cases[name]),
             all(start is not None for start in expect[name].values())) for name in names]
    assert [assigns for _, _, assigns in jobs].count(False) == {"7.2": 2, "10.0": 1, "11.1": 2}[version]
    real = boot_all(binary, jobs, firmware=firmware, timeout=400, margin=30)
    # the model says where 64-bit BARs go (what VFIO must map); 32-bit ones stay below 4 GiB
    got = {name: {key: bars[key] for key in expect[name]} for name, bars in zip(names, real, strict=True)}
    assert got == expect


DEFAULTS = [
    ["-machine", "q35", "-accel", "tcg", "-m", "2G", *stand_ins("512M", "256M")],
    ["-machine", "pc", "-accel", "tcg", "-m", "3G", *stand_ins("256M"),
     "-device", "virtio-net-pci,id=t3"],
]


@pytest.mark.parametrize("args", DEFAULTS, ids=["q35", "pc"])
def test_seabios_with_qemus_default_devices(args: list[str]) -> None:
    """Without -nodefaults (QEMU's VGA and NIC, their ROMs) small 64-bit BARs stay below 4 GiB."""
    ids = ids_of(args)
    real = booted_bars(qemu_binary("7.2"), args, ids, firmware="seabios", nodefaults=False)
    assert real == expected(model([*args, "-cpu", "qemu64"], "7.2", SEABIOS_12), ids)


HOLE_ARGS = base("q35", "Skylake-Server,phys-bits=46", "8G") + stand_ins("16G", "64G", "32M")


@pytest.mark.parametrize("version", ["7.2", "10.0"])
def test_seabios_does_not_read_the_hole64_size(version: str) -> None:
    """BARs of 80 GiB in all, more than q35's default 32 GiB hole: SeaBIOS (1.16.2 and 1.16.3)
    puts them at the same addresses whatever pci-hole64-size says (2G, default, 512G), as the
    model does (QEMU widens the ACPI window to what the firmware placed). On an Intel CPU the
    size moves no RAM, so plan has no reason to set it."""
    ids = ids_of(HOLE_ARGS)
    build = SEABIOS_12 if version == "7.2" else default_for_qemu(version)
    assert build is not None
    found = []
    for size in ("2G", None, "512G"):
        args = HOLE_ARGS + (["-global", f"q35-pcihost.pci-hole64-size={size}"] if size else [])
        real = booted_bars(qemu_binary(version), args, ids,
                           firmware="seabios" if version == "7.2" else "default", timeout=60)
        assert real == expected(model(args, version, build), ids), size
        found.append(real)
    assert found[0] == found[1] == found[2]
