"""q35 and pc (i440fx): hw/i386/pc_q35.c, pc_piix.c (RAM split) and pc.c (pc_memory_init).

- split: q35 keeps RAM below 0xb0000000 whole, else 2 GiB low; pc 3.5 GiB / 3 GiB (gigabyte
  aligned); `max-ram-below-4g` can only lower it (at most 4 GiB).
- high RAM at 4 GiB; device memory at ROUND_UP(end of high RAM, 1 GiB), size
  maxmem - ram + slots * 1 GiB; the 64-bit PCI hole at ROUND_UP(end of device memory, 1 GiB),
  `pci-hole64-size` long (q35 32 GiB, pc 2 GiB by default).
- AMD guest CPU (machine 7.1+): when the hole's end reaches 0xfd00000000, high RAM (and all
  after it) starts at 1 TiB instead.
- then QEMU exits unless the hole's end fits the guest's phys-bits.
"""

from collections.abc import Sequence

from layoutd.errors import QemuRefusal, UnsupportedOption
from layoutd.models.common import Range
from layoutd.models.guest import NamedRegion
from layoutd.qemu.boot import ACPI_MAX_RAM_SLOTS, BootRam
from layoutd.qemu.config import VmConfig, flag
from layoutd.qemu.cpus import GuestCpu, HostCpu, address_limit
from layoutd.qemu.machines import Machine
from layoutd.qemu.memdev import DeviceMemory, device_memory_base, device_memory_size
from layoutd.qemu.options import parse_bool
from layoutd.qemu.render import Piece, boot_pieces, cut
from layoutd.qemu.versions import QemuRelease, Version, amd_1tib_rule, checks_32bit_memory_end
from layoutd.record import Record
from layoutd.units import GiB, MiB, TiB, align_up, parse_size

CXL_HOST_REG = 1 * MiB
CXL_WINDOW_ALIGN = 256 * MiB
AMD_HT_START = 0xFD00000000
AMD_HT_END = 0xFFFFFFFFFF
AMD_ABOVE_1TB = 1 * TiB  # above_4g_mem_start when the AMD rule moves high RAM
FOUR_GIB = 4 * GiB
MSI_WINDOW = (0xFEE00000, 0xFEEFFFFF)  # the IOAPIC/MSI window: every x86 IOMMU group reserves it
HOLE64_DEFAULT = {"q35": 32 * GiB, "pc": 2 * GiB}
BRIDGE = {"q35": "q35-pcihost", "pc": "i440FX-pcihost"}
ROM_WINDOW = (0xC0000, 0xFFFFF)
VGA_WINDOW = (0xA0000, 0xBFFFF)
Q35_MMCONFIG = (0xB0000000, 0xBFFFFFFF)
IOAPIC = 0xFEC00000
SMALL_LOW = {"q35": 0xB0000000, "pc": 0xE0000000}  # boot RAM below this stays below 4 GiB whole
LARGE_LOW = {"q35": 0x80000000, "pc": 0xC0000000}  # the low part of larger boot RAM


class X86Plan(Record, kw_only=False):
    below: int
    above: int
    above_start: int
    device_memory: DeviceMemory  # size 0: none
    hole64_start: int
    hole64_size: int
    highest: int
    warnings: tuple[str, ...]
    cxl: tuple[int, ...] | None = None  # fixed memory window sizes with cxl=on


def split(machine: Machine, ram: int, props: dict[str, str]) -> tuple[int, int, list[str]]:
    """(below 4G, above 4G) sizes, and QEMU's warnings."""
    limit = parse_size(props["max-ram-below-4g"]) if "max-ram-below-4g" in props else 0
    if limit > FOUR_GIB:
        raise QemuRefusal(f"Machine option 'max-ram-below-4g={limit}' expects size less than "
                          "or equal to 4G")
    warnings = []
    if limit and limit < 1 << 20:
        warnings.append(f"max-ram-below-4g={limit:#x} leaves less than 1 MiB of RAM below 4 GiB")
    below, above = split_sizes(machine.family, ram, limit or None)
    return below, above, warnings


def split_sizes(family: str, ram: int, max_below_4g: int | None) -> tuple[int, int]:
    """(below 4G, above 4G) of `ram` bytes of boot RAM on q35 or pc, given max-ram-below-4g."""
    if family == "q35":
        low = LARGE_LOW[family] if ram >= SMALL_LOW[family] else SMALL_LOW[family]
        low = min(low, max_below_4g or FOUR_GIB)
    else:
        low = max_below_4g or SMALL_LOW[family]
        if ram >= low:
            low = min(low, LARGE_LOW[family])
    if ram < low and ram <= IOAPIC:
        return ram, 0
    if min(ram, low) > 0xE0000000:
        raise UnsupportedOption(f"max-ram-below-4g: low RAM above 3.5 GiB ({low:#x}) is not "
                                "modelled", field="qemu argv")
    return low, ram - low


def hole64_start(high_end: int, device_size: int, cxl: tuple[int, ...] | None = None) -> int:
    """The 64-bit PCI hole's start: after device memory (or high RAM) and, with cxl=on, the CXL
    host registers and fixed memory windows (`cxl_ranges`), rounded up to 1 GiB."""
    end = device_memory_base(high_end) + device_size
    if cxl is not None:
        end = cxl_ranges(end, cxl)[-1][1] + 1
    return align_up(end, GiB)


def cxl_ranges(device_end: int, windows: tuple[int, ...]) -> list[tuple[int, int]]:
    """hw/i386/pc.c pc_memory_init with cxl=on: 1 MiB of host registers right after device
    memory (or high RAM; pc_get_cxl_range_start, not rounded: QEMU's own phys-bits cases with
    maxmem=987G, tests/qemu/test_mem_addr_space.py), then each fixed memory window in turn from
    the next 256 MiB. [(start, end)]: the registers first."""
    base = device_end
    found = [(base, base + CXL_HOST_REG - 1)]
    start = align_up(base + CXL_HOST_REG, CXL_WINDOW_ALIGN)
    for size in windows:
        found.append((start, start + size - 1))
        start += size
    return found


def cxl_windows(config: VmConfig, qemu: QemuRelease) -> tuple[int, ...] | None:
    """The -M cxl-fmw.N windows' sizes in index order, None without cxl=on; QEMU's refusals
    of their options (parsed even with cxl=off)."""
    sizes = []
    for index, window in sorted(config.cxl_windows.items()):
        for key in ("size", "targets"):  # CXLFixedMemoryWindowOptions, in QAPI order
            if not any(k.split(".")[0] == key for k in window):
                raise QemuRefusal(f"Parameter 'cxl-fmw.{index}.{key}' is missing")
        size = parse_size(window["size"], what=f"cxl-fmw.{index}.size")
        if size % CXL_WINDOW_ALIGN:
            raise QemuRefusal(qemu.cxl_window_size_refusal)
        sizes.append(size)
    return tuple(sizes) if flag(config.machine_props, "cxl", False) else None


def cxl_links(config: VmConfig) -> None:
    """After the memory map (machine done): targets must name pxb-cxl bridges; bridges need cxl."""
    on = flag(config.machine_props, "cxl", False)
    for _, window in sorted(config.cxl_windows.items()):
        for key, target in window.items():
            if on and key.startswith("targets") and target not in config.cxl_bridges:
                raise QemuRefusal(f"Could not resolve CXLFM target {target}")
    if config.cxl_bridges and not on:
        raise QemuRefusal("CXL host bridges present, but cxl=off")


def highest_used(qemu: QemuRelease, phys_bits: int, start: int, above: int, device_size: int,
                 hole64: int, *, long_mode: bool = True, machine: Version | None = None,
                 cxl: tuple[int, ...] | None = None) -> int:
    """pc_max_used_gpa(): the end of the 64-bit PCI hole, with high RAM at `start`.

    Where the row counts the hole at phys-bits <= 32 (10.0, 11.1), a CPU without long mode has
    no hole: the end of device memory, else of high RAM, is checked on machine types that
    `checks_32bit_memory_end`, and nothing (the CPU's own limit) on older ones."""
    limit = (1 << phys_bits) - 1
    hole_end = hole64_start(start + above, device_size, cxl) + hole64 - 1
    if not qemu.hole64_with_32bit_cpu:
        return limit if phys_bits <= 32 else hole_end
    if long_mode:
        return hole_end
    if machine is not None and not checks_32bit_memory_end(machine):
        return limit
    if device_size:
        return device_memory_base(start + above) + device_size - 1
    return start + above - 1


def amd_rule(vendor: str, machine: Machine) -> bool:
    """QEMU moves high RAM past the HyperTransport range for AMD guest CPUs on 7.1+ types only."""
    return vendor == "amd" and machine.family in ("q35", "pc") and amd_1tib_rule(machine.release)


def high_ram_start(relocates: bool, qemu: QemuRelease, phys_bits: int, above: int,
                   device_size: int, hole64: int, *, long_mode: bool = True,
                   machine: Version | None = None, cxl: tuple[int, ...] | None = None) -> int:
    """above_4g_mem_start: 4 GiB, or 1 TiB when the AMD rule applies (`amd_rule`) and the
    layout from 4 GiB reaches the HyperTransport range."""
    if relocates and highest_used(qemu, phys_bits, FOUR_GIB, above, device_size, hole64,
                                  long_mode=long_mode, machine=machine, cxl=cxl) >= AMD_HT_START:
        return AMD_ABOVE_1TB
    return FOUR_GIB


def plan(config: VmConfig, machine: Machine, cpu: GuestCpu, boot: BootRam,
         qemu: QemuRelease) -> X86Plan:
    below, above, warnings = split(machine, boot.size, config.machine_props)
    hole64 = config.hole64_size.get(BRIDGE[machine.family], HOLE64_DEFAULT[machine.family])
    device_size = device_memory_size(boot.size, config.maxmem, config.slots)
    cxl = cxl_windows(config, qemu)
    start = high_ram_start(amd_rule(cpu.vendor, machine), qemu, cpu.phys_bits, above,
                           device_size, hole64, long_mode=cpu.long_mode, machine=machine.release,
                           cxl=cxl)
    highest = highest_used(qemu, cpu.phys_bits, start, above, device_size, hole64,
                           long_mode=cpu.long_mode, machine=machine.release, cxl=cxl)
    limit = address_limit(cpu.phys_bits)
    if limit < highest:
        raise QemuRefusal(f"Address space limit {limit:#x} < {highest:#x} phys-bits too low "
                          f"({cpu.phys_bits})")
    cxl_links(config)
    memory = _device_memory(config, boot, start + above, qemu)
    return X86Plan(below, above, start, memory, hole64_start(start + above, device_size, cxl),
                   hole64, highest, tuple(warnings), cxl)


def _device_memory(config: VmConfig, boot: BootRam, high_end: int,
                   qemu: QemuRelease) -> DeviceMemory:
    acpi = config.acpi and flag(config.machine_props, "acpi", True)
    dimm_error = None if acpi else ("memory hotplug is not enabled: missing acpi device or "
                                    "acpi disabled")
    nvdimm_error = None if flag(config.machine_props, "nvdimm", False) else (
        "nvdimm is not enabled: missing 'nvdimm' in '-M'")
    size = device_memory_size(boot.size, config.maxmem, config.slots)
    device = (device_memory_base(high_end), size) if size else None
    if device and config.slots > ACPI_MAX_RAM_SLOTS:
        raise QemuRefusal(f"unsupported amount of memory slots: {config.slots}")
    if device and config.maxmem is not None and config.maxmem % 4096:
        raise QemuRefusal("maximum memory size must by aligned to multiple of 4096 bytes")
    base, size = device or (0, 0)
    budget = (config.maxmem or boot.size) - boot.size
    return DeviceMemory(base, size, budget, config.slots, boot.nodes, dimm_error, nvdimm_error,
                        qemu.no_device_memory)


def boot_layout(result: X86Plan, boot: BootRam, vga: bool) -> list[Piece]:
    windows = [(0, 0, result.below)]
    if result.above:
        windows.append((result.above_start, result.below, result.above))
    holes = [ROM_WINDOW] + ([VGA_WINDOW] if vga else [])
    return cut(boot_pieces(windows, boot.backing), sorted(holes))


def regions(result: X86Plan, machine: Machine, cpu: GuestCpu, vga: bool) -> list[NamedRegion]:
    found = [NamedRegion(name="rom", start=ROM_WINDOW[0], end=ROM_WINDOW[1])]
    if vga:
        found.append(NamedRegion(name="vga", start=VGA_WINDOW[0], end=VGA_WINDOW[1]))
    if machine.family == "q35":
        found.append(NamedRegion(name="pcie-mmcfg", start=Q35_MMCONFIG[0], end=Q35_MMCONFIG[1]))
    memory = result.device_memory
    if memory.size:
        found.append(NamedRegion(name="device-memory", start=memory.base,
                                 end=memory.base + memory.size - 1))
    if result.cxl is not None:
        memory_end = device_memory_base(result.above_start + result.above) + memory.size
        names = ["cxl-host-reg"] + [f"cxl-fmw-{i}" for i in range(len(result.cxl))]
        for name, (start, end) in zip(names, cxl_ranges(memory_end, result.cxl), strict=True):
            found.append(NamedRegion(name=name, start=start, end=end))
    if result.hole64_size:
        end = align_up(result.hole64_start + result.hole64_size, GiB) - 1
        found.append(NamedRegion(name="pci-hole64", start=result.hole64_start, end=end))
    if amd_rule(cpu.vendor, machine) and cpu.phys_bits >= 40:  # e820 entry of 7.1+ types only
        found.append(NamedRegion(name="amd-ht-reserved", start=AMD_HT_START, end=AMD_HT_END))
    return sorted(found, key=lambda r: r.start)


def hole64_with_bars(regions: Sequence[NamedRegion], bars: Sequence[tuple[int, int]]
                     ) -> tuple[NamedRegion, ...]:
    """The 64-bit PCI hole the guest is told of (ACPI) once the firmware has placed the 64-bit
    BARs `bars` [(start, end)]: QEMU's pci-hole64-start is then the lowest of them above 4 GiB,
    its end the higher of the last BAR's and start + pci-hole64-size, rounded up to 1 GiB
    (hw/pci-host/q35.c and i440fx.c, `*_get_pci_hole64_start/end`, pci_bus_get_w64_range)."""
    spans = [(max(start, FOUR_GIB), end) for start, end in bars if end >= FOUR_GIB]
    if not spans:
        return tuple(regions)
    start = min(low for low, _ in spans)
    found = []
    for region in regions:
        if region.name == "pci-hole64":
            size = region.end + 1 - region.start
            end = max(max(high for _, high in spans) + 1, align_up(start + size, GiB)) - 1
            region = NamedRegion(name=region.name, start=start, end=end)
        found.append(region)
    return tuple(found)


def device_range(result: X86Plan) -> Range | None:
    memory = result.device_memory
    if memory.size == 0:
        return None
    return Range(start=memory.base, end=memory.base + memory.size - 1)


def smm_enabled(config: VmConfig, accel: str, host: HostCpu | None,
                qemu: QemuRelease) -> tuple[bool, list[str]]:
    """-machine smm= (on|off|auto): auto is on under TCG and, under KVM, what KVM supports."""
    kvm_smm = host.kvm_smm if host is not None else None
    setting = config.machine_props.get("smm", "auto")
    if setting != "auto":
        on = parse_bool(setting, "-machine smm")
        if on and accel == "kvm" and kvm_smm is False:
            where = (f"{config.accel_option}: " if config.accel_option and qemu.accel_errors_located
                     else "")  # only the -accel option is named (not -enable-kvm, accel=)
            raise QemuRefusal(f"{where}System Management Mode not supported by this hypervisor.")
        return on, []
    unknown = accel == "kvm" and kvm_smm is None
    return smm_auto(accel, kvm_smm), ([
        "whether KVM on the host runs System Management Mode is unknown (probe the host live to "
        "know); assumed it does, as on bare metal"] if unknown else [])


def smm_auto(accel: str, kvm_smm: bool | None) -> bool:
    """smm=auto: on under TCG; under KVM what KVM supports (unknown: on, as on bare metal)."""
    return accel != "kvm" or kvm_smm is not False


def smm_decides_vga(family: str, qemu: QemuRelease) -> bool:
    """q35's SMRAM ranges, which map the VGA window over RAM, exist only with SMM on where
    `q35_vga_follows_smm` (pc always has them)."""
    return family == "q35" and qemu.q35_vga_follows_smm


def vga_hides_ram(family: str, qemu: QemuRelease, vga: bool, smm: bool) -> bool:
    """A VGA device's 0xa0000-0xbffff window is not RAM (see smm_decides_vga)."""
    return vga and (smm or not smm_decides_vga(family, qemu))


def has_vga(config: VmConfig) -> bool:
    """A VGA device maps the legacy 0xa0000-0xbffff window over RAM."""
    if config.vga is not None:
        return config.vga != "none" or config.vga_devices > 0
    return config.vga_devices > 0 or config.defaults
