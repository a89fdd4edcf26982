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

from dataclasses import dataclass

from layoutd.errors import QemuRefusal, UnsupportedOption
from layoutd.models.common import Range
from layoutd.models.guest import NamedRegion
from layoutd.qemu.boot import ACPI_MAX_RAM_SLOTS, BootRam
from layoutd.qemu.config import VmConfig, flag
from layoutd.qemu.cpus import GuestCpu
from layoutd.qemu.machines import Machine
from layoutd.qemu.memdev import NO_DEVICE_MEMORY, DeviceMemory
from layoutd.qemu.render import Piece, boot_pieces, cut
from layoutd.units import GiB, TiB, align_up, parse_size

AMD_HT_START = 0xFD00000000
AMD_HT_END = 0xFFFFFFFFFF
FOUR_GIB = 4 * GiB
HOLE64_DEFAULT = {"q35": 32 * GiB, "pc": 2 * GiB}
BRIDGE = {"q35": "q35-pcihost", "pc": "i440FX-pcihost"}
ROM_WINDOW = (0xC0000, 0xFFFFF)
VGA_WINDOW = (0xA0000, 0xBFFFF)
Q35_MMCONFIG = (0xB0000000, 0xBFFFFFFF)
IOAPIC = 0xFEC00000


@dataclass(frozen=True)
class X86Plan:
    below: int
    above: int
    above_start: int
    device_memory: DeviceMemory  # size 0: none
    hole64_start: int
    hole64_size: int
    highest: int
    warnings: tuple[str, ...]


def split(machine: Machine, ram: int, props: dict[str, str]) -> tuple[int, int, list[str]]:
    """(below 4G, above 4G) sizes, and QEMU's warnings."""
    limit = parse_size(props["max-ram-below-4g"]) if "max-ram-below-4g" in props else 0
    if limit > FOUR_GIB:
        raise QemuRefusal(f"Machine option 'max-ram-below-4g={limit}' expects size less than "
                          "or equal to 4G")
    warnings = []
    if limit and limit < 1 << 20:
        warnings.append(f"max-ram-below-4g={limit:#x} leaves less than 1 MiB of RAM below 4 GiB")
    if machine.family == "q35":
        low = 0x80000000 if ram >= 0xB0000000 else 0xB0000000
        low = min(low, limit or FOUR_GIB)
    else:
        limit = limit or 0xE0000000
        low = limit
        if ram >= limit:
            low = min(low, 0xC0000000)
    if ram < low and ram <= IOAPIC:
        return ram, 0, warnings
    if min(ram, low) > 0xE0000000:
        raise UnsupportedOption(f"max-ram-below-4g: low RAM above 3.5 GiB ({low:#x}) is not "
                                "modelled", field="qemu argv")
    return low, ram - low, warnings


def plan(config: VmConfig, machine: Machine, cpu: GuestCpu, boot: BootRam,
         version: str) -> X86Plan:
    below, above, warnings = split(machine, boot.size, config.machine_props)
    hole64 = config.hole64_size.get(BRIDGE[machine.family], HOLE64_DEFAULT[machine.family])
    start = FOUR_GIB
    if cpu.vendor == "amd" and _max_used(config, boot, cpu, version, start, above, hole64) >= AMD_HT_START:
        start = 1 * TiB
    highest = _max_used(config, boot, cpu, version, start, above, hole64)
    limit = (1 << cpu.phys_bits) - 1
    if limit < highest:
        raise QemuRefusal(f"Address space limit {limit:#x} < {highest:#x} phys-bits too low "
                          f"({cpu.phys_bits})")
    memory = _device_memory(config, boot, start + above, version)
    return X86Plan(below, above, start, memory, _hole64_start(config, boot, start + above),
                   hole64, highest, tuple(warnings))


def _device_range(config: VmConfig, boot: BootRam, high_end: int) -> tuple[int, int] | None:
    if config.maxmem is None or config.maxmem <= boot.size:
        return None
    base = align_up(high_end, GiB)
    return base, config.maxmem - boot.size + config.slots * GiB


def _hole64_start(config: VmConfig, boot: BootRam, high_end: int) -> int:
    device = _device_range(config, boot, high_end)
    end = device[0] + device[1] if device else high_end
    return align_up(end, GiB)


def _max_used(config: VmConfig, boot: BootRam, cpu: GuestCpu, version: str, start: int,
              above: int, hole64: int) -> int:
    if version == "7.2" and cpu.phys_bits <= 32:
        return (1 << cpu.phys_bits) - 1  # 7.2: "32-bit systems don't have hole64"
    return _hole64_start(config, boot, start + above) + hole64 - 1


def _device_memory(config: VmConfig, boot: BootRam, high_end: int, version: str) -> DeviceMemory:
    acpi = config.acpi and flag(config.machine_props, "acpi", True)
    dimm_error = None if acpi else ("memory hotplug is not enabled: missing acpi device or "
                                    "acpi disabled")
    nvdimm_error = None if flag(config.machine_props, "nvdimm", False) else (
        "nvdimm is not enabled: missing 'nvdimm' in '-M'")
    device = _device_range(config, boot, high_end)
    if device and config.slots > ACPI_MAX_RAM_SLOTS:
        raise QemuRefusal(f"unsupported amount of memory slots: {config.slots}")
    if device and config.maxmem is not None and config.maxmem % 4096:
        raise QemuRefusal("maximum memory size must by aligned to multiple of 4096 bytes")
    base, size = device or (0, 0)
    budget = (config.maxmem or boot.size) - boot.size
    return DeviceMemory(base, size, budget, config.slots, boot.nodes, dimm_error, nvdimm_error,
                        NO_DEVICE_MEMORY[version])


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
    if result.hole64_size:
        end = align_up(result.hole64_start + result.hole64_size, GiB) - 1
        found.append(NamedRegion(name="pci-hole64", start=result.hole64_start, end=end))
    if cpu.vendor == "amd" and cpu.phys_bits >= 40:
        found.append(NamedRegion(name="amd-ht-reserved", start=AMD_HT_START, end=AMD_HT_END))
    return sorted(found, key=lambda r: r.start)


def device_range(result: X86Plan) -> Range | None:
    memory = result.device_memory
    if memory.size == 0:
        return None
    return Range(start=memory.base, end=memory.base + memory.size - 1)


def has_vga(config: VmConfig) -> bool:
    """A VGA device maps the legacy 0xa0000-0xbffff window over RAM."""
    if config.vga is not None:
        return config.vga != "none" or config.vga_devices > 0
    return config.vga_devices > 0 or config.defaults
