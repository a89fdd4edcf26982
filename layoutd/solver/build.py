"""Turn a solution into the QemuConfig every emitter works from. Pure."""

from layoutd.firmware.builds import BY_NAME
from layoutd.models.common import GuestRegion, Range
from layoutd.models.plan import Backend, NumaNode, PlannedDevice, QemuConfig
from layoutd.models.spec import VmSpec
from layoutd.qemu.versions import ROWS, row
from layoutd.qemu.viommu import machine_describes, machine_msi_window
from layoutd.record import Record
from layoutd.solver.problem import Problem, Solution
from layoutd.solver.solve import boot_region_name, planned_layout, room_ranges
from layoutd.units import GiB, MiB, hex_addr

DEFAULT_FIRMWARE = "/usr/share/qemu-efi-aarch64/QEMU_EFI.fd"


def firmware_file(spec: VmSpec, needs_ged: bool) -> str | None:
    """The -bios file: aarch64's UEFI when memory devices need it; x86 `ovmf` by name, and none
    for `seabios` (QEMU's own bios-256k.bin is SeaBIOS: the plan is made for that build)."""
    if spec.arch == "x86_64":
        named = BY_NAME.get(spec.firmware or "")
        return (named.file or None) if named else spec.firmware
    return (spec.firmware or DEFAULT_FIRMWARE) if (needs_ged or spec.firmware) else None


class Solved(Record, kw_only=False):
    config: QemuConfig
    layout: tuple[GuestRegion, ...]  # the planned blocks (firmware windows not cut)
    warnings: tuple[str, ...]
    highest: int
    hotplug_room: tuple[Range, ...]
    default_layout: bool


def build(spec: VmSpec, problem: Problem, solution: Solution, qemu_version: str) -> Solved:
    numa = len(spec.numa) > 0
    backends: list[Backend] = []
    boot_ids: list[str] = []
    boot_backend = None
    if numa:
        for node, size in enumerate(solution.nodes_boot):
            name = f"ram-node{node}"
            boot_ids.append(name)
            if size:
                backends.append(_backend(spec, name, size))
    elif _needs_backend(spec):
        boot_backend = "ram-boot"
        boot_ids.append(boot_backend)
        backends.append(_backend(spec, boot_backend, solution.choice.ram))
    else:
        boot_ids.append(boot_region_name(problem.family))
    devices: list[PlannedDevice] = []
    for index, (node, start, end) in enumerate(solution.devices):
        backends.append(_backend(spec, f"mem-dimm{index}", end - start + 1))
        devices.append(
            PlannedDevice(
                id=f"dimm{index}",
                kind="dimm",
                backend=f"mem-dimm{index}",
                addr=start,
                size=end - start + 1,
                node=node if numa else None,
            )
        )
    nodes = tuple(
        NumaNode(
            id=node,
            cpus=cell.cpus,
            size=solution.nodes_boot[node],
            backend=f"ram-node{node}" if solution.nodes_boot[node] else None,
        )
        for node, cell in enumerate(spec.numa)
    )
    aarch64 = spec.arch == "aarch64"
    needs_ged = aarch64 and bool(solution.maxmem)
    gic_version = 3 if needs_ged else None
    aw_bits, viommu_note = _viommu(spec, problem, gic_version, qemu_version)
    config = QemuConfig(
        arch=spec.arch,
        machine=spec.machine_type,
        cpu_model=problem.cpu.model,
        cpu_vendor=problem.cpu.vendor_id,
        accel=spec.accelerator,
        phys_bits=solution.phys_bits,
        cpus=spec.cpu.count,
        ram_size=solution.choice.ram,
        slots=solution.slots,
        maxmem=solution.maxmem,
        max_ram_below_4g=solution.choice.max_below_4g,
        pci_hole64_size=solution.hole64,
        backends=tuple(backends),
        boot_backend=boot_backend,
        numa=nodes,
        devices=tuple(devices),
        vfio_devices=spec.pci_devices,
        viommu=spec.viommu,
        viommu_aw_bits=aw_bits,
        firmware=firmware_file(spec, needs_ged),
        pci_window_mb=spec.pci_window // MiB if spec.pci_window else None,
        gic_version=gic_version,
        highmem_mmio=spec.highmem_mmio,
    )
    layout = planned_layout(problem, solution, boot_ids, [d.id for d in devices])
    return Solved(
        config,
        tuple(layout),
        (*solution.warnings, *viommu_note),
        solution.highest,
        room_ranges(solution),
        solution.default_layout,
    )


def _needs_backend(spec: VmSpec) -> bool:
    memory = spec.memory
    return (
        memory.backend != "ram"
        or memory.share
        or memory.prealloc
        or memory.hugepages is not None
        or memory.reserve is not None
    )


def _backend(spec: VmSpec, name: str, size: int) -> Backend:
    memory = spec.memory
    return Backend(
        id=name,
        size=size,
        kind=memory.backend,
        share=memory.share,
        prealloc=memory.prealloc,
        hugepage_size=memory.hugepages,
        path=memory.path,
        reserve=memory.reserve,
    )


def _viommu(spec: VmSpec, problem: Problem, gic_version: int | None, qemu_version: str,
            ) -> tuple[int | None, tuple[str, ...]]:
    """aw-bits within every host's top; for virtio-iommu, what the guest is told of the host holes
    its IOVAs must avoid. QEMU's machines set the device's reserved regions themselves (their MSI
    doorbell) and refuse any other (layoutd.qemu.viommu): the plan says so instead of listing them."""
    if spec.viommu == "none":
        return None, ()
    known = problem.target.top < (1 << 64) - 1
    width = (problem.target.top + 1).bit_length() - 1 if known else None
    if spec.viommu == "intel":
        return (48 if width is None or width >= 48 else 39), ()
    name, first, last = machine_msi_window(problem.family, gic_version)
    holes = [f"{hex_addr(h.start)}-{hex_addr(h.end)} ({h.type})" for h in problem.target.holes
             if h.start < problem.target.top and h.type != "aperture"
             and not (first <= h.start and h.end <= last)]
    qemu = row(qemu_version)
    said = (f"virtio-iommu: on {machine_describes(problem.family, gic_version)} QEMU sets the "
            f"device's reserved regions itself (the {name} {hex_addr(first)}-{hex_addr(last)}) and "
            "refuses more, so the plan lists none; ") if holes else "virtio-iommu: "
    if qemu.virtio_iommu_host_regions:
        return width, ((said + f"QEMU {qemu.version} tells the guest each assigned device's host "
                        f"reserved regions itself: {', '.join(holes)}",) if holes else ())
    if width and not qemu.virtio_iommu_aw_bits:
        holes.append(f"everything above the IOMMU top {hex_addr(problem.target.top)} (no aw-bits)")
    if not holes:
        return width, ()
    passing = ", ".join(str(r.version) for r in ROWS.values() if r.virtio_iommu_host_regions)
    return width, (said + f"QEMU {qemu.version} does not tell the guest {', '.join(holes)}: its "
                   "IOMMU driver may put DMA addresses there, which VFIO refuses to map (a device "
                   f"error in the guest). QEMU {passing} tell it; or plan without viommu",)


__all__ = ["GiB", "Solved", "build"]
