"""What the firmware model reads and answers: the guest's PCI devices and bridges (`Board`: what
the firmware learns from QEMU) and where it puts each BAR (`Placement`). Pure records."""

from layoutd.qemu.x86 import FOUR_GIB
from layoutd.record import Record

ROM = 6  # the BAR number reports give the expansion ROM


class Bar(Record, kw_only=False):
    index: int  # 0-5
    size: int
    is64: bool
    prefetchable: bool
    io: bool = False


class PciDevice(Record, kw_only=False):
    id: str  # a host BDF for vfio-pci, else QEMU's id (or the driver's name)
    slot: int  # device number on its bus: the order the firmware finds it
    function: int = 0
    bars: tuple[Bar, ...] = ()
    rom: int = 0  # expansion ROM size; 0: none
    port: str | None = None  # the pcie-root-port it sits behind; None: the root bus


PORT_BARS = (Bar(0, 4096, False, False),)  # QEMU's pcie-root-port has one 4 KiB memory BAR


class RootPort(Record, kw_only=False):
    """A PCI bridge: a root port, a switch's ports, a PCI-PCI bridge."""

    id: str
    slot: int
    function: int = 0
    bars: tuple[Bar, ...] = PORT_BARS
    port: str | None = None  # the bridge it sits behind; None: the root bus
    hotplug: bool = True  # a hotplug slot (PCIe downstream port, or SHPC) below it
    driver: str = "pcie-root-port"
    shpc: bool = False  # a standard hotplug controller (edk2 pads such a bridge too)


class Board(Record, kw_only=False):
    """What the firmware learns from QEMU."""

    machine: str  # q35 | pc
    vendor: str  # CPUID vendor: amd | intel | other
    phys_bits: int  # CPUID 0x80000008 EAX[7:0]
    page_1g: bool  # CPUID pdpe1gb
    ram_below_4g: int
    ram_end: int  # exclusive end of the highest RAM above 4 GiB (E820); 4 GiB when there is none
    guest_phys_bits: int = 0  # CPUID 0x80000008 EAX[23:16] (QEMU's guest-phys-bits); 0: none
    ram_high_start: int = FOUR_GIB  # where RAM above 4 GiB starts (1 TiB when QEMU moved it)
    ext_vendor: bool = True  # CPUID 0x80000000 EBX/ECX/EDX repeat the vendor string
    reserved_memory_end: int | None = None  # fw_cfg etc/reserved-memory-end (device memory end)
    e820_reserved: tuple[tuple[int, int], ...] = ()  # [start, end] reserved above 4 GiB
    mmio64_mb: int | None = None  # fw_cfg opt/ovmf/X-PciMmio64Mb
    devices: tuple[PciDevice, ...] = ()
    ports: tuple[RootPort, ...] = ()
    mmio64: tuple[int, int] | None = None  # arm virt: the device tree's 64-bit PCI window


class Placed(Record, kw_only=False):
    device: str
    bar: int  # 0-5, or ROM (6)
    size: int
    is64: bool
    start: int | None  # None: left unassigned

    @property
    def end(self) -> int | None:
        return None if self.start is None else self.start + self.size - 1


class Placement(Record, kw_only=False):
    firmware: str  # the build's name, "SeaBIOS 1.16.2 (Debian 12)"
    window: tuple[int, int] | None  # the 64-bit window [start, end] the firmware used, if any
    bars: tuple[Placed, ...]  # every memory BAR and ROM of every device
    notes: tuple[str, ...] = ()


def cpuid_phys_bits(board: Board) -> int | None:
    """The guest's phys-bits as SeaBIOS 1.16.3+ and edk2 2022.11+ trust them, else None: QEMU's
    historic default of 40 may be wrong, so below 41 only Intel's 36/39 and AMD's 40 count."""
    bits = board.phys_bits
    if bits >= 41 or (board.vendor == "intel" and bits in (36, 39)) or (board.vendor == "amd" and bits == 40):
        return bits
    return None
