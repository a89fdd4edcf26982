"""The solver's records, and the problem: the spec reduced to numbers, with the highest address
the layout may use (every host's IOMMU and CPU, the guest's phys-bits) as QEMU and the hosts set it.
"""

from layoutd.models.ranges import Span
from layoutd.models.spec import VmSpec
from layoutd.qemu import x86
from layoutd.qemu.arm import RAM_BASE as ARM_RAM_START
from layoutd.qemu.machines import resolve
from layoutd.qemu.versions import DEFAULT, QemuRelease, Version, row
from layoutd.record import Record, field
from layoutd.solver.machine import PlannedCpu, TargetCpu, planned_cpu
from layoutd.solver.target import Target


class Problem(Record):
    """The spec reduced to numbers, with the combined hosts' free space."""

    family: str
    arch: str
    total: int
    align: int
    nodes: tuple[int, ...]  # size of each NUMA node (one entry when no NUMA)
    room: int  # hotplug room: hotplug.max - size
    spec_slots: int
    cpu: PlannedCpu  # what QEMU makes of the spec's CPU: vendor, default phys-bits
    phys_bits: int | None  # from the spec
    limit: int  # highest address allowed: every host's top and the guest's phys-bits
    limit_reason: str
    free: tuple[Span, ...]
    starts: tuple[int, ...]
    target: Target
    qemu: QemuRelease = field(default_factory=lambda: row(DEFAULT))  # the QEMU whose rules apply
    vga_window: bool = True  # x86: the default VGA's 0xa0000-0xbffff window is not RAM
    amd_rule: bool = False  # QEMU moves high RAM to 1 TiB at the HT range (AMD, types 7.1+)
    hole64: int | None = None  # the spec's pci-hole64-size; None: QEMU's default, lowered if need be
    numa: bool = False  # the spec has NUMA cells (one cell too: -numa gives its RAM node 0)
    windows: bool = False  # never RAM past 1 TiB by QEMU's AMD rule (Windows: RHEL-98247)

    @property
    def ram_start(self) -> int:
        return ARM_RAM_START if self.family == "virt" else 0

    @property
    def vendor(self) -> str:
        return self.cpu.vendor

    @property
    def emitted_bits(self) -> int:
        """phys-bits as far as QEMU's relocation rule cares: the spec's, else at least the default."""
        return self.phys_bits or self.cpu.default_bits


class Choice(Record):
    ram: int  # -m SIZE: boot RAM
    max_below_4g: int | None
    start: int  # where high RAM (x86) or boot RAM (arm) begins


class Rejection(Record, frozen=False):
    stage: str  # low | high | boot | devices | slots | hotplug | top | regime
    text: str
    blocked: tuple[int, int] | None = None  # the guest range that would have hit a hole


class Solution(Record, frozen=False):
    choice: Choice
    low: int
    high: int
    nodes_boot: tuple[int, ...]
    devices: tuple[tuple[int, int, int], ...]  # (node, start, end)
    room: tuple[Span, ...]
    slots: int
    maxmem: int | None
    hole64: int | None  # pci-hole64-size to set; None: QEMU's default
    phys_bits: int | None
    highest: int
    relocated: bool
    warnings: list[str] = field(default_factory=list)
    default_layout: bool = False

    @property
    def key(self) -> tuple[int, int, int, int]:
        return (len(self.devices), self.highest, self.split_nodes, self.extras)

    @property
    def split_nodes(self) -> int:
        return sum(
            len({start for n, start, _ in self.devices if n == node}) > 1
            for node in {n for n, _, _ in self.devices}
        )

    @property
    def extras(self) -> int:
        return sum(x is not None for x in (self.choice.max_below_4g, self.hole64, self.maxmem))


def problem_for(spec: VmSpec, target: Target, version: str | Version = DEFAULT) -> Problem:
    qemu = row(version)
    host = TargetCpu(target.host_vendor, target.host_phys_bits, target.kvm_smm)
    cpu = planned_cpu(spec, host, qemu, target.mixed_vendors)
    limit, reason = top_limit(spec, target, cpu)
    free = [(r.start, min(r.end, limit)) for r in target.usable if r.start <= limit]
    return Problem(
        family=spec.family,
        arch=spec.arch,
        total=spec.memory.size,
        align=spec.memory.alignment,
        nodes=tuple(cell.size for cell in spec.numa) or (spec.memory.size,),
        numa=bool(spec.numa),
        room=spec.hotplug_room,
        spec_slots=spec.hotplug_slots,
        cpu=cpu,
        phys_bits=spec.cpu.phys_bits,
        limit=limit,
        limit_reason=reason,
        free=tuple(free),
        starts=tuple(start for start, _ in free),
        target=target,
        qemu=qemu,
        amd_rule=x86.amd_rule(cpu.vendor, resolve(spec.machine_type, spec.arch, qemu)),
        hole64=spec.pci_hole64,
        windows=spec.windows,
        vga_window=spec.arch == "x86_64" and x86.vga_hides_ram(
            spec.family, qemu, True, x86.smm_auto(spec.accelerator, target.kvm_smm)),
    )


def top_limit(spec: VmSpec, target: Target, cpu: PlannedCpu) -> tuple[int, str]:
    """The highest guest address the layout may use, and what sets it (every part that does)."""
    limits: list[tuple[int, str]] = [(target.iommu_top, "the top every host's IOMMU can map")]
    if target.host_phys_bits:
        bits = target.host_phys_bits
        limits.append(((1 << bits) - 1, f"the host CPU's {bits} physical address bits"))
    if spec.arch == "x86_64" and spec.cpu.phys_bits:
        limits.append(((1 << spec.cpu.phys_bits) - 1, f"the guest's phys-bits ({spec.cpu.phys_bits})"))
    elif spec.arch == "aarch64" and cpu.default_bits:  # the CPU model's PA size, enforced by QEMU
        limits.append(((1 << cpu.default_bits) - 1,
                       f"the PA size of the guest's {cpu.model} ({cpu.default_bits})"))
    limit = min(min(top for top, _ in limits), target.top)
    reasons = list(dict.fromkeys(text for top, text in limits if top == limit))
    return limit, " and ".join(reasons) or "the top every host's IOMMU can map"
