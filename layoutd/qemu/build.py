"""Put the pieces together: argv -> VmConfig -> machine, CPU, boot RAM, devices -> GuestMap."""

from layoutd.errors import NotModelled, QemuRefusal
from layoutd.models.common import Range
from layoutd.models.guest import GuestMap, NamedRegion, RamBar
from layoutd.qemu import arm, x86
from layoutd.qemu.boot import BootRam, boot_ram, check_memory_options
from layoutd.qemu.config import VmConfig, parse_config
from layoutd.qemu.cpus import GuestCpu, HostCpu, arm_cpu, x86_cpu
from layoutd.qemu.machines import BOOT_RAM, Machine, resolve
from layoutd.qemu.memdev import DeviceMemory, HostMemory, Placed, place_all
from layoutd.qemu.render import Piece, to_layout
from layoutd.qemu.versions import QemuRelease, canonical_region_names, numa_mem_supported
from layoutd.record import replace


def build(argv: list[str], *, qemu: QemuRelease, arch: str, host_cpu: HostCpu | None,
          host: HostMemory | None) -> GuestMap:
    config = parse_config(argv, qemu)
    _check_ram_bars(config, qemu)
    machine = resolve(config.machine, arch, qemu)
    if arch == "x86_64":
        return _x86(config, machine, qemu, host_cpu, host)
    return _arm(config, machine, qemu, host)


def _x86(config: VmConfig, machine: Machine, qemu: QemuRelease, host_cpu: HostCpu | None,
         host: HostMemory | None) -> GuestMap:
    cpu = x86_cpu(config.cpu_model, config.cpu_props, config.accel, qemu, host_cpu)
    boot = boot_ram(config, BOOT_RAM[machine.family], numa_mem_supported(machine.release))
    check_memory_options(config, boot.size)
    result = x86.plan(config, machine, cpu, boot, qemu)
    smm, smm_warnings = x86.smm_enabled(config, config.accel, host_cpu, qemu)
    vga = x86.vga_hides_ram(machine.family, qemu, x86.has_vga(config), smm)
    pieces = x86.boot_layout(result, boot, vga)
    placed = _devices(config, result.device_memory, boot, host)
    smm_matters = x86.has_vga(config) and x86.smm_decides_vga(machine.family, qemu)
    warnings = result.warnings + (tuple(smm_warnings) if smm_matters else ())
    return _guest_map(config, machine, qemu, "x86_64", cpu, boot, pieces, placed,
                      x86.regions(result, machine, cpu, vga), x86.device_range(result),
                      result.highest, warnings)


def _arm(config: VmConfig, machine: Machine, qemu: QemuRelease,
         host: HostMemory | None) -> GuestMap:
    cpu = arm_cpu(config.cpu_model, config.accel, qemu)
    boot = boot_ram(config, BOOT_RAM[machine.family])
    check_memory_options(config, boot.size)
    result = arm.plan(config, machine, cpu, boot, qemu)
    placed = _devices(config, result.device_memory, boot, host)
    memory = result.device_memory
    device_range = (Range(start=memory.base, end=memory.base + memory.size - 1)
                    if memory.size else None)
    return _guest_map(config, machine, qemu, "aarch64", cpu, boot, arm.boot_layout(boot),
                      placed, arm.regions(result), device_range, result.highest, ())


def _devices(config: VmConfig, memory: DeviceMemory, boot: BootRam,
             host: HostMemory | None) -> list[Placed]:
    ids = [d.id for d in config.devices if d.id]
    for name in ids:
        if ids.count(name) > 1:
            raise QemuRefusal(f"Duplicate ID '{name}' for device")
    return place_all(config.devices, config.backends, memory, set(boot.busy), host)


def _device_pieces(placed: list[Placed], numa: bool) -> list[Piece]:
    return [
        Piece(p.device.addr, p.region_size, p.backend.id, 0, p.device.type,
              p.device.id or p.backend.id,
              p.device.node if numa else None)
        for p in placed
    ]


def _named(config: VmConfig, machine: Machine, pieces: list[Piece]) -> list[Piece]:
    """Old x86 machine types show file and memfd backends by QOM path in the flat view."""
    if machine.family not in ("q35", "pc") or not canonical_region_names(machine.release):
        return pieces
    by_path = {b.id for b in config.backends.values()
               if b.type in ("memory-backend-file", "memory-backend-memfd")}
    return [replace(p, name=f"/objects/{p.name}") if p.name in by_path else p for p in pieces]


def _check_ram_bars(config: VmConfig, qemu: QemuRelease) -> None:
    """virtio-gpu-pci's hostmem exists in 11.1 (query-pci: BAR4), not in 7.2 (its refusal)."""
    for device in config.ram_bars:
        if device.kind != "virtio-gpu-hostmem":
            continue
        if qemu.virtio_gpu_hostmem is None:
            raise NotModelled(f"-device {device.text}: virtio-gpu-pci's hostmem on QEMU "
                              f"{qemu.version} is not modelled", field="qemu argv")
        if not qemu.virtio_gpu_hostmem:
            raise QemuRefusal(f"-device {device.text}: Property 'virtio-gpu-pci.hostmem' not found")
    config.ram_bars = [device for device in config.ram_bars  # hostmem=0: no window
                       if device.size or device.kind == "ivshmem"]


def _guest_map(config: VmConfig, machine: Machine, qemu: QemuRelease, arch: str, cpu: GuestCpu,
               boot: BootRam, pieces: list[Piece], placed: list[Placed],
               regions: list[NamedRegion], device_memory: Range | None, highest: int,
               warnings: tuple[str, ...]) -> GuestMap:
    layout, view = to_layout(_named(config, machine, pieces + _device_pieces(placed, boot.nodes > 0)))
    return GuestMap(
        qemu_version=str(qemu.version), arch=arch, machine=machine.name, layout=layout,
        regions=tuple(regions), device_memory=device_memory, slots=config.slots,
        maxmem=config.maxmem, ram_size=boot.size, phys_bits=cpu.phys_bits,
        highest_address=highest, cpu_vendor=cpu.vendor, vfio_devices=tuple(config.vfio),
        memory_devices=tuple(sorted((p.device for p in placed), key=lambda d: d.addr)),
        warnings=warnings, ram_view=view,
        ram_bars=tuple(RamBar(kind=d.kind, id=d.id, bar=d.bar, size=d.size)
                       for d in config.ram_bars),
    )
