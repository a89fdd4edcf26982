"""arm64 virt: hw/arm/virt.c (base_memmap, virt_set_memmap, virt_set_high_memmap).

- RAM at 1 GiB, one block; device memory at ROUND_UP(1 GiB + ram, 1 GiB), size
  maxmem - ram + slots * 1 GiB (it exists whenever that is non-zero);
- memory must end within the CPU's PA size (32 bits with highmem=off), else QEMU exits;
- the high IO regions float above max(end of device memory, 256 GiB), each aligned to its size;
  one that does not fit the PA size is dropped, and with compact-highmem (virt-7.2 and newer)
  takes no room;
- pc-dimm/nvdimm need the ACPI GED, created only with firmware (-bios or pflash), a 64-bit CPU
  and ACPI on.
"""

from layoutd.errors import QemuRefusal, UnsupportedOption
from layoutd.models.guest import NamedRegion
from layoutd.qemu.boot import ACPI_MAX_RAM_SLOTS, BootRam
from layoutd.qemu.config import VmConfig, flag
from layoutd.qemu.cpus import GuestCpu
from layoutd.qemu.machines import Machine
from layoutd.qemu.memdev import DeviceMemory, device_memory_base, device_memory_size
from layoutd.qemu.render import Piece, boot_pieces
from layoutd.qemu.versions import QemuRelease, compact_highmem
from layoutd.record import Record
from layoutd.units import GiB, MiB, align_up, parse_size

RAM_BASE = 1 * GiB
LEGACY_RAMLIMIT = 255 * GiB
DEFAULT_MMIO_SIZE = 512 * GiB  # extended_memmap[VIRT_HIGH_PCIE_MMIO]
LOW_REGIONS = (
    ("flash", 0x0, 0x7FFFFFF),
    ("platform-io", 0x8000000, 0xFFFFFFF),
    ("pcie-mmio", 0x10000000, 0x3EFEFFFF),
    ("pcie-pio", 0x3EFF0000, 0x3EFFFFFF),
    ("pcie-ecam", 0x3F000000, 0x3FFFFFFF),
)


class ArmPlan(Record, kw_only=False):
    device_memory: DeviceMemory  # size 0: none
    high: tuple[NamedRegion, ...]
    highest: int
    pa_bits: int


def plan(config: VmConfig, machine: Machine, cpu: GuestCpu, boot: BootRam,
         qemu: QemuRelease) -> ArmPlan:
    props = config.machine_props
    for key in ("mte", "secure", "virtualization"):
        if flag(props, key, False):
            raise UnsupportedOption(f"-machine virt,{key}=on: not modelled", field="qemu argv")
    if config.slots > ACPI_MAX_RAM_SLOTS:
        raise QemuRefusal(f"unsupported number of memory slots: {config.slots}")
    pa_bits = cpu.phys_bits if flag(props, "highmem", True) else 32
    base = device_memory_base(RAM_BASE + boot.size)
    size = device_memory_size(boot.size, config.maxmem, config.slots)
    memtop = base + align_up(size, GiB)
    if memtop > 1 << pa_bits:
        raise QemuRefusal(f"Addressing limited to {pa_bits} bits, but memory exceeds it by "
                          f"{memtop - (1 << pa_bits)} bytes")
    _check_highmem_props(props, machine, qemu)
    high, highest = _high_regions(config, machine, max(memtop, RAM_BASE + LEGACY_RAMLIMIT),
                                  pa_bits, memtop - 1)
    memory = _device_memory(config, cpu, boot, (base, size), qemu)
    return ArmPlan(memory, high, highest, pa_bits)


HIGHMEM_PROPS = ("compact-highmem", "highmem-redists", "highmem-ecam", "highmem-mmio",
                 "highmem-mmio-size")


def _check_highmem_props(props: dict[str, str], machine: Machine, qemu: QemuRelease) -> None:
    """QEMU's refusals of the high-memory properties (virt_set_highmem_mmio_size)."""
    for key in HIGHMEM_PROPS:
        if key in props and not qemu.virt_highmem_props:
            raise QemuRefusal(f"Property '{machine.name}-machine.{key}' not found")
    if "highmem-mmio-size" in props:
        size = parse_size(props["highmem-mmio-size"], what="-machine highmem-mmio-size")
        if size & (size - 1) or not size:
            raise QemuRefusal("highmem-mmio-size is not a power of 2")
        if size < DEFAULT_MMIO_SIZE:
            raise QemuRefusal("highmem-mmio-size cannot be set to a lower value than the default "
                              "(512 GiB)")


def _high_regions(config: VmConfig, machine: Machine, base: int, pa_bits: int,
                  highest: int) -> tuple[tuple[NamedRegion, ...], int]:
    props = config.machine_props
    compact = flag(props, "compact-highmem", compact_highmem(machine.release))
    highmem = flag(props, "highmem", True)
    mmio_size = parse_size(props.get("highmem-mmio-size", DEFAULT_MMIO_SIZE))
    wanted = (
        ("high-gic-redist2", 64 * MiB, flag(props, "highmem-redists", highmem)),
        ("high-pcie-ecam", 256 * MiB, flag(props, "highmem-ecam", highmem)),
        ("high-pcie-mmio", mmio_size, flag(props, "highmem-mmio", highmem)),
    )
    found = []
    for name, size, enabled in wanted:
        start = align_up(base, size)
        fits = start + size <= 1 << pa_bits
        enabled = enabled and fits
        if compact and not enabled:
            continue
        base = start + size
        if fits:
            highest = base - 1
        if enabled:
            found.append(NamedRegion(name=name, start=start, end=start + size - 1))
    return tuple(found), highest


def _device_memory(config: VmConfig, cpu: GuestCpu, boot: BootRam, where: tuple[int, int],
                   qemu: QemuRelease) -> DeviceMemory:
    base, size = where if where[1] else (0, 0)
    props = config.machine_props
    firmware = config.firmware or "pflash0" in props
    ged = firmware and cpu.aarch64 and flag(props, "acpi", True)
    dimm_error = None if ged else "memory hotplug is not enabled: missing acpi-ged device"
    nvdimm_error = None if flag(props, "nvdimm", False) else (
        "nvdimm is not enabled: add 'nvdimm=on' to '-M'")
    budget = (config.maxmem or boot.size) - boot.size
    return DeviceMemory(base, size, budget, config.slots, boot.nodes, dimm_error, nvdimm_error,
                        qemu.virt_no_device_memory)


def boot_layout(boot: BootRam) -> list[Piece]:
    return boot_pieces([(RAM_BASE, 0, boot.size)], boot.backing)


def regions(result: ArmPlan) -> list[NamedRegion]:
    found = [NamedRegion(name=name, start=start, end=end) for name, start, end in LOW_REGIONS]
    memory = result.device_memory
    if memory.size:
        found.append(NamedRegion(name="device-memory", start=memory.base,
                                 end=memory.base + memory.size - 1))
    return found + list(result.high)
