"""From a QEMU command line, the predicted guest map and the host's devices to the firmware
model's `Board`. Pure: the caller reads the host and identifies the firmware file.

QEMU gives each device without `addr=` the first free slot of its bus in creation order: the
machine's own devices first (q35: the host bridge at 0 and ICH9 at 0x1f; pc: PIIX3 at 1), then
the default VGA and NIC (without -nodefaults), then -device in command-line order. A
pcie-root-port's bus has one slot.
"""

from collections.abc import Mapping, Sequence

from layoutd.firmware.board import PORT_BARS, Bar, Board, PciDevice, RootPort
from layoutd.models.guest import GuestMap
from layoutd.models.host import Device
from layoutd.qemu.options import keyval, parse_int, split_argv
from layoutd.qemu.versions import v
from layoutd.qemu.x86 import FOUR_GIB
from layoutd.record import Record, field
from layoutd.units import GiB, KiB, MiB, align_up, parse_size

MMIO64_FILE = "opt/ovmf/X-PciMmio64Mb"
ROOT_BUSES = {"q35": "pcie.0", "pc": "pci.0", "virt": "pcie.0"}  # on q35, `pci.0` is a bridge's id
# (Proxmox names its PCI bridges pci.0-pci.3)
# bridges: driver -> (its own BARs, a hotplug slot below it: PCIe downstream ports with a slot,
# PCI-PCI bridges with SHPC; SeaBIOS's pci_bus_hotplug_support)
SHPC_BAR = (Bar(0, 256, True, False),)  # pci-bridge's and pcie-pci-bridge's SHPC/MSI-X BAR
BRIDGES: dict[str, tuple[tuple[Bar, ...], bool]] = {
    "pcie-root-port": (PORT_BARS, True), "ioh3420": (PORT_BARS, True),
    "x3130-upstream": ((), False), "xio3130-downstream": ((), True),
    "pci-bridge": (SHPC_BAR, True), "pcie-pci-bridge": (SHPC_BAR, False),
    "i82801b11-bridge": ((), False),  # the DMI-to-PCI bridge (Proxmox's pcidmi): no BAR, no slot
}
PORTS = tuple(BRIDGES)
NOT_PCI = frozenset(["vmgenid", "pvpanic", "tpm-tis", "tpm-crb", "scsi-hd", "scsi-cd",
                     "scsi-block", "scsi-generic", "virtserialport", "virtconsole", "hda-duplex",
                     "hda-micro", "hda-output"])
NOT_PCI_PREFIXES = ("usb-", "ide-", "isa-")

# BAR shapes of the devices QEMU makes: index -> (size, 64-bit, prefetchable, io), and the ROM
MEM32, IO = (False, False, False), (False, False, True)
SHAPES: dict[str, tuple[dict[int, tuple[int, bool, bool, bool]], int]] = {
    "VGA": ({0: (16 * MiB, False, True, False), 2: (4 * KiB, *MEM32)}, 64 * KiB),
    "e1000e": ({0: (128 * KiB, *MEM32), 1: (128 * KiB, *MEM32), 2: (32, *IO),
                3: (16 * KiB, *MEM32)}, 256 * KiB),
    "e1000": ({0: (128 * KiB, *MEM32), 1: (64, *IO)}, 256 * KiB),
    "ich9-ahci": ({4: (32, *IO), 5: (4 * KiB, *MEM32)}, 0),
    "virtio": ({1: (4 * KiB, *MEM32), 4: (16 * KiB, True, True, False)}, 0),
    "qemu-xhci": ({0: (16 * KiB, True, False, False)}, 0),
}
# CPU models whose CPUID has 1 GiB pages (pdpe1gb) in QEMU's tables (query-cpu-model-expansion
# of QEMU 7.2 and 10.0; tests/firmware/test_cpu_pages.py); `host` is taken to have them
PAGE_1G = ("Skylake-Server", "Cascadelake-Server", "Cooperlake", "Icelake-Server",
           "SapphireRapids", "GraniteRapids", "SierraForest", "ClearwaterForest", "EPYC",
           "Opteron_G4", "Opteron_G5", "Dhyana", "YongFeng", "Denverton", "Snowridge",
           "KnightsMill", "phenom", "max", "host")


class GuestPci(Record, frozen=False):
    devices: list[PciDevice] = field(default_factory=list)
    ports: list[RootPort] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    mmio64_mb: int | None = None
    firmware: str | None = None  # the -bios file or the first pflash unit; None: QEMU's default
    firmware_pflash: bool = False
    data_dirs: list[str] = field(default_factory=list)  # -L: searched first for firmware files


def read_argv(argv: Sequence[str], family: str, host: Mapping[str, Device]) -> GuestPci:
    """The PCI devices, root ports, firmware file and OVMF window size a command line asks for."""
    found = GuestPci()
    backends: dict[str, int] = {}
    nodes: dict[str, dict[str, str]] = {}  # -blockdev node-name -> its properties
    pflash: str | None = None  # -machine pflash0=NODE (as libvirt starts OVMF)
    cli: list[dict[str, str]] = []
    defaults, vga, nic = True, None, True
    for option in split_argv(argv):
        value = option.value or ""
        if option.name == "nodefaults":
            defaults = False
        elif option.name == "vga":
            vga = value
        elif option.name in ("nic", "net", "netdev"):
            nic = False
        elif option.name == "bios":
            found.firmware = found.firmware or value
        elif option.name == "L":
            found.data_dirs.append(value)
        elif option.name == "pflash":
            found.firmware, found.firmware_pflash = found.firmware or value, True
        elif option.name == "drive":
            props = keyval(value, "file", "-drive")
            if props.get("if") == "pflash" and not found.firmware_pflash:
                found.firmware, found.firmware_pflash = props.get("file"), True
        elif option.name == "fw_cfg":
            props = keyval(value, "name", "-fw_cfg")
            if props.get("name") == MMIO64_FILE and "string" in props:
                found.mmio64_mb = parse_int(props["string"], MMIO64_FILE)
        elif option.name == "blockdev":
            props = keyval(value, None, "-blockdev")
            nodes[props.get("node-name", "")] = props
        elif option.name == "machine":
            props = keyval(value, "type", "-machine")
            pflash = pflash or props.get("pflash0")
        elif option.name == "object":
            props = keyval(value, "qom-type", "-object")
            if props.get("qom-type", "").startswith("memory-backend") and "size" in props:
                backends[props.get("id", "")] = parse_size(props["size"], what="-object size")
        elif option.name == "device":
            cli.append(keyval(value, "driver", "-device"))
    if pflash and not found.firmware:
        found.firmware, found.firmware_pflash = _node_file(nodes, pflash), True
    made: list[dict[str, str]] = []
    if defaults:
        if family != "virt" and vga in (None, "std") and not any(d.get("driver") == "VGA" for d in cli):
            made.append({"driver": "VGA", "id": "vga"})
        if nic:
            made.append({"driver": {"q35": "e1000e", "pc": "e1000"}.get(family, "virtio-net-pci"),
                         "id": "nic"})
    _place(found, made + cli, family, host, backends)
    return found


def _node_file(nodes: Mapping[str, dict[str, str]], name: str) -> str | None:
    """The file under a -blockdev node: its filename, or its `file` child's."""
    for _ in range(4):
        props = nodes.get(name, {})
        if "filename" in props:
            return props["filename"]
        name = props.get("file", "")
    return None


def _place(found: GuestPci, items: list[dict[str, str]], family: str, host: Mapping[str, Device],
           backends: Mapping[str, int]) -> None:
    used: dict[str, set[int]] = {"root": {"q35": {0, 0x1F}, "pc": {0, 1}}.get(family, {0})}
    if family == "q35":
        ahci = SHAPES["ich9-ahci"]
        found.devices.append(PciDevice("ich9-ahci", 0x1F, 2, _bars(ahci[0]), ahci[1]))
    for props in items:
        driver = props.get("driver", "")
        if driver in NOT_PCI or driver.startswith(NOT_PCI_PREFIXES):
            continue  # on a USB, SCSI, IDE, ISA or virtio-serial bus, or ACPI only: no BAR
        bus = props.get("bus", "root")
        bus = "root" if bus == ROOT_BUSES.get(family, "pcie.0") else bus
        port = None if bus == "root" else bus
        name = props.get("id") or driver
        if bus not in used:
            found.notes.append(f"-device {driver} {name} sits on bus {bus}, which is not a "
                               "bridge layoutd knows: its BARs are not placed")
            continue
        slot, function = _address(props.get("addr"), used[bus])
        if driver in BRIDGES:
            bars, hotplug = BRIDGES[driver]
            found.ports.append(RootPort(name, slot, function, bars, port, hotplug, driver,
                                        bars == SHPC_BAR))
            used[name] = set()
            continue
        shape = _shape(driver, props, host, backends, found.notes)
        if shape is None:
            continue
        bars, rom, ident = shape
        if props.get("romfile") == "" or props.get("rombar") == "0":
            rom = 0  # no ROM BAR
        found.devices.append(PciDevice(ident or name, slot, function, bars, rom, port))


def _address(addr: str | None, used: set[int]) -> tuple[int, int]:
    if addr:
        slot_text, _, function_text = addr.partition(".")
        slot = int(slot_text, 16)
        function = int(function_text, 16) if function_text else 0
    else:
        slot = next(number for number in range(32) if number not in used)
        function = 0
    used.add(slot)
    return slot, function


def _bars(table: Mapping[int, tuple[int, bool, bool, bool]]) -> tuple[Bar, ...]:
    return tuple(Bar(index, size, is64, pref, io) for index, (size, is64, pref, io) in table.items())


def _shape(driver: str, props: Mapping[str, str], host: Mapping[str, Device],
           backends: Mapping[str, int], notes: list[str]
           ) -> tuple[tuple[Bar, ...], int, str | None] | None:
    """(BARs, ROM size, the id reports use) of one -device; None: a device with no BARs modelled."""
    if driver == "vfio-pci" and "sysfsdev" in props and "host" not in props:
        props = {**props, "host": props["sysfsdev"].rstrip("/").rsplit("/", 1)[-1]}
    if driver == "vfio-pci" and "host" in props:
        bdf = props["host"] if props["host"].count(":") == 2 else f"0000:{props['host']}"
        device = host.get(bdf)
        if device is None or not device.bars:
            notes.append(f"vfio-pci {bdf}: the host did not say its BARs (sysfs resource)")
            return (), 0, bdf
        bars = tuple(Bar(b.index, b.size, b.is_64, b.prefetchable, not b.is_memory)
                     for b in device.bars if not b.is_rom)
        rom = next((b.size for b in device.bars if b.is_rom), 0)
        return bars, 0 if props.get("rombar") == "0" else rom, bdf
    if driver == "pci-testdev":
        table: dict[int, tuple[int, bool, bool, bool]] = {0: (4 * KiB, *MEM32), 1: (256, *IO)}
        membar = parse_size(props.get("membar", "0"), what="pci-testdev membar")
        if membar:
            table[2] = (membar, True, True, False)
        return _bars(table), 0, None
    if driver in ("ivshmem-plain", "ivshmem-doorbell"):
        size = backends.get(props.get("memdev", ""), 0)
        return _bars({0: (256, *MEM32), 2: (size, True, True, False)}), 0, None
    if driver == "nvme":
        if "cmb_size_mb" in props or "pmrdev" in props:
            notes.append("-device nvme: its CMB and PMR BARs are not modelled (the placement of "
                         "other BARs may differ)")
        return _bars({0: (nvme_bar0(props), True, False, False)}), 0, None
    if driver == "VGA" and "vgamem_mb" in props:
        vgamem = _pow2(max(1, min(512, parse_int(props["vgamem_mb"], "VGA vgamem_mb")))) * MiB
        return _bars({**SHAPES["VGA"][0], 0: (vgamem, False, True, False)}), SHAPES["VGA"][1], None
    if driver in SHAPES:
        table, rom = SHAPES[driver]
        return _bars(table), rom, None
    if driver == "virtio-gpu-pci" and parse_size(props.get("hostmem", "0"), what="hostmem"):
        # with host memory: MSI-X in BAR1, the modern BAR moves to 2, the window is BAR4 (11.1)
        return _bars({1: (4 * KiB, *MEM32), 2: (16 * KiB, True, True, False),
                      4: (parse_size(props["hostmem"], what="hostmem"), True, True, False)}), 0, None
    if driver.startswith("virtio-") and driver.endswith("-pci"):
        return _bars(SHAPES["virtio"][0]), 256 * KiB if driver == "virtio-net-pci" else 0, None
    if driver in ("pc-dimm", "nvdimm") or not driver:
        return None
    notes.append(f"-device {driver}: its BARs are not modelled (the placement of smaller BARs "
                 "may differ)")
    return None


def nvme_bar0(props: Mapping[str, str]) -> int:
    """QEMU's nvme BAR0 (64-bit, non-prefetchable; nvme_mbar_size): the registers, a doorbell
    pair per queue (max_ioqpairs + 1), the MSI-X table and PBA (msix_qsize), to a power of two."""
    queues = parse_int(props.get("max_ioqpairs", "64"), "nvme max_ioqpairs") + 1
    vectors = parse_int(props.get("msix_qsize", "65"), "nvme msix_qsize")
    size = align_up(4 * KiB + 2 * queues * 4, 4 * KiB) + 16 * vectors
    size = align_up(size, 4 * KiB) + align_up(vectors, 64) // 8
    return _pow2(size)


def _pow2(value: int) -> int:
    return 1 << (value - 1).bit_length()


def page_1g(model: str | None, props: Mapping[str, str]) -> bool:
    """Whether the guest CPU advertises 1 GiB pages (CPUID pdpe1gb)."""
    flag = props.get("pdpe1gb")
    if flag is not None:
        return flag in ("on", "true", "yes")
    if "+pdpe1gb" in props:
        return True
    if "-pdpe1gb" in props:
        return False
    name = model or "qemu64"
    return any(name == p or name.startswith(p + "-") for p in PAGE_1G)


def ext_vendor(guest: GuestMap, props: Mapping[str, str]) -> bool:
    """Whether CPUID 0x80000000 repeats the vendor string: QEMU 10.1 zeroes it for Intel CPUs on
    machine types 10.1 and later (x-vendor-cpuid-only-v2, which a -cpu property overrides)."""
    flag = props.get("x-vendor-cpuid-only-v2")
    if flag is not None:
        return flag not in ("on", "true", "yes") or guest.cpu_vendor != "intel"
    release = guest.machine.rsplit("-", 1)[-1]
    return guest.cpu_vendor != "intel" or not release[:1].isdigit() or v(release) < v("10.1")


def guest_phys_bits(props: Mapping[str, str]) -> int:
    """CPUID's GuestPhysBits as QEMU sets it from -cpu ...,guest-phys-bits=N; 0 without it (what
    TCG gives; under KVM, QEMU 9.0+ takes the kernel's value, which a command line does not say)."""
    value = props.get("guest-phys-bits")
    return parse_int(value, "-cpu guest-phys-bits") if value else 0


def family_of(guest: GuestMap) -> str:
    """q35 | pc | virt, from the resolved machine type."""
    if guest.arch == "aarch64":
        return "virt"
    return "q35" if "q35" in guest.machine else "pc"


def board(guest: GuestMap, pci: GuestPci, page1g: bool, props: Mapping[str, str] | None = None
          ) -> Board:
    """What the firmware reads from QEMU for this guest map (`props`: the -cpu properties)."""
    props = props or {}
    family = family_of(guest)
    below = max((r.end + 1 for r in guest.layout if r.kind == "ram" and r.start < FOUR_GIB),
                default=0)
    high = [r.end + 1 for r in guest.layout if r.kind == "ram" and r.start >= FOUR_GIB]
    high_start = min((r.start for r in guest.layout if r.kind == "ram" and r.start >= FOUR_GIB),
                     default=FOUR_GIB)
    reserved_end = None
    if guest.device_memory is not None:
        reserved_end = align_up(guest.device_memory.end + 1, GiB)
    e820 = tuple((r.start, r.end) for r in guest.regions if r.name == "amd-ht-reserved")
    return Board(
        machine=family,
        vendor=guest.cpu_vendor,
        phys_bits=guest.phys_bits,
        page_1g=page1g,
        ram_below_4g=below,
        ram_end=max(high, default=FOUR_GIB),
        guest_phys_bits=guest_phys_bits(props),
        ext_vendor=ext_vendor(guest, props),
        ram_high_start=high_start,
        reserved_memory_end=reserved_end,
        e820_reserved=e820,
        mmio64_mb=pci.mmio64_mb,
        devices=tuple(pci.devices),
        ports=tuple(pci.ports),
        mmio64=next(((r.start, r.end) for r in guest.regions if r.name == "high-pcie-mmio"), None),
    )
