"""Policy: choose boot RAM, the low/high split and memory devices so guest RAM avoids every hole.

Pure and deterministic. A handful of candidate boot-RAM sizes is evaluated in full; the best valid
one wins by (fewest memory devices, lowest highest address, most contiguous NUMA nodes, fewest
non-default options). Every rejection is kept so a "no" can say what blocked what.
"""

from collections.abc import Sequence
from itertools import permutations

from layoutd.errors import UnsupportedOption
from layoutd.models.common import GuestRegion, Range
from layoutd.models.ranges import Span, merge_spans, subtract_spans
from layoutd.models.spec import VmSpec
from layoutd.qemu import x86
from layoutd.qemu.arm import RAM_BASE as ARM_RAM_START
from layoutd.qemu.boot import ACPI_MAX_RAM_SLOTS as MAX_SLOTS
from layoutd.qemu.machines import BOOT_RAM, resolve
from layoutd.qemu.memdev import SLOT_SIZE, device_memory_base, device_memory_size
from layoutd.qemu.versions import DEFAULT, QemuRelease, Version, row
from layoutd.record import Record, field
from layoutd.solver import allocator
from layoutd.solver.machine import MIN_LOW_RAM, PlannedCpu, TargetCpu, planned_cpu
from layoutd.solver.target import Target
from layoutd.units import GiB, align_down, align_up, format_size, hex_addr

ONLINE = ("the guest must online hotplugged memory to use it (Linux: memhp_default_state=online "
          "on the kernel command line, or a udev rule)")
ONLINE_WINDOWS = ("the guest sees it as hot-added memory (ACPI memory devices): Windows onlines it "
                  "itself where its edition supports memory hot-add")


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


class Choice(Record, kw_only=False):
    ram: int  # -m SIZE: boot RAM
    max_below_4g: int | None
    start: int  # where high RAM (x86) or boot RAM (arm) begins


class Rejection(Record, kw_only=False, frozen=False):
    stage: str  # low | high | boot | devices | slots | hotplug | top | regime
    text: str
    blocked: tuple[int, int] | None = None  # the guest range that would have hit a hole


class Solution(Record, kw_only=False, frozen=False):
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
    limit, reason = _limit(spec, target, cpu)
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


def _limit(spec: VmSpec, target: Target, cpu: PlannedCpu) -> tuple[int, str]:
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


def solve(problem: Problem) -> tuple[Solution | None, list[Rejection]]:
    """The preferred solution, or None with every rejection met on the way."""
    rejections: list[Rejection] = []
    best: Solution | None = None
    for choice in candidates(problem):
        result = evaluate(problem, choice)
        if isinstance(result, Rejection):
            rejections.append(result)
            continue
        if result.default_layout and not result.devices:
            return result, rejections
        if best is None or result.key < best.key:
            best = result
    return best, rejections


def main_reason(problem: Problem, rejections: Sequence[Rejection]) -> Rejection:
    if problem.family != "virt" and hole_at(problem, 0):
        return Rejection(
            "low",
            "x86 guest RAM must start at guest address 0x0, which the host cannot map",
            (0, problem.align - 1),
        )
    if problem.family == "virt" and hole_at(problem, problem.ram_start):
        return Rejection(
            "boot",
            f"arm virt guest RAM must start at {hex_addr(problem.ram_start)}, which the host cannot map",
            (problem.ram_start, problem.ram_start + problem.align - 1),
        )
    order = ("slots", "hotplug", "devices", "top", "high", "boot", "low", "regime")
    useful = [r for r in rejections if r.stage != "regime"] or list(rejections)
    if not useful:
        return Rejection("devices", "nothing fits")
    return min(useful, key=lambda r: order.index(r.stage))


def hole_at(problem: Problem, address: int) -> bool:
    return not any(start <= address <= end for start, end in problem.free)


def candidates(problem: Problem) -> list[Choice]:
    """Boot-RAM sizes worth evaluating: all of it, or as much as fits before the first hole."""
    total, align = problem.total, problem.align
    seen: list[Choice] = []

    def add(ram: int, max_below: int | None, start: int) -> None:
        ram = align_down(min(ram, total), align)
        choice = Choice(ram, max_below, start)
        if ram > 0 and choice not in seen:
            seen.append(choice)

    if problem.family == "virt":
        cap = _room_from(problem, ARM_RAM_START)
        add(total, None, ARM_RAM_START)
        add(cap, None, ARM_RAM_START)
        return seen
    zero = allocator.containing(problem.free, problem.starts, 0)
    low_caps: list[int | None] = [None]
    if zero is not None:
        cap = align_down(min(zero[1] + 1, x86.FOUR_GIB), align)
        if cap >= MIN_LOW_RAM:
            low_caps.append(cap)
    relocate = problem.amd_rule and not problem.windows
    starts = [x86.FOUR_GIB, x86.AMD_ABOVE_1TB] if relocate else [x86.FOUR_GIB]
    for start in starts:
        high_cap = _room_from(problem, start)
        for max_below in low_caps:
            add(total, max_below, start)
            for ram in (total, x86.FOUR_GIB):
                low = _low_size(problem, ram, max_below)
                if low is not None:
                    add(low + high_cap, max_below, start)
                    add(low, max_below, start)
            small = x86.SMALL_LOW[problem.family] - align
            add(min(small, max_below or small), max_below, start)
    return seen


def _low_size(problem: Problem, ram: int, max_below_4g: int | None) -> int | None:
    """QEMU's RAM below 4 GiB for `ram` of boot RAM; None where the model does not go."""
    try:
        return x86.split_sizes(problem.family, ram, max_below_4g)[0]
    except UnsupportedOption:
        return None


def _room_from(problem: Problem, address: int) -> int:
    found = allocator.containing(problem.free, problem.starts, address)
    return 0 if found is None else align_down(found[1] + 1 - address, problem.align)


def evaluate(problem: Problem, choice: Choice) -> Solution | Rejection:
    """Check one choice in full and place what boot RAM does not hold."""
    if problem.family == "virt":
        low, high = 0, choice.ram
        boot = _check_block(problem, "boot", ARM_RAM_START, choice.ram)
        if boot:
            return boot
    else:
        split = _low_size(problem, choice.ram, choice.max_below_4g)
        if split is None:
            cap = format_size(choice.max_below_4g or 0)
            return Rejection("low", f"max-ram-below-4g {cap} with {format_size(choice.ram)} is not modelled")
        low, high = split, choice.ram - split
        if choice.max_below_4g is not None and low < MIN_LOW_RAM:
            return Rejection("low", f"low RAM {format_size(low)} leaves firmware no room")
        block = _check_low(problem, low) or _check_block(problem, "high", choice.start, high)
        if block:
            return block
    nodes_boot, leftover = _split_nodes(problem.nodes, choice.ram)
    base = device_memory_base(choice.start + high)
    chunks = allocator.aligned(
        allocator.clip(problem.free, problem.starts, base, problem.limit), problem.align
    )
    placements = _place_devices(problem, chunks, leftover, base)
    if isinstance(placements, Rejection):
        return placements
    best: Solution | Rejection | None = None
    for devices, rest in placements:
        too_many = f"the RAM would need {len(devices)} memory devices; QEMU allows {MAX_SLOTS} slots"
        result = (
            Rejection("slots", too_many)
            if len(devices) > MAX_SLOTS
            else _finish(problem, choice, low, high, nodes_boot, devices, rest, base)
        )
        if best is None or _better(result, best):
            best = result
    return best or Rejection("devices", f"no way to place the memory devices above {hex_addr(base)}")


def _better(result: Solution | Rejection, best: Solution | Rejection) -> bool:
    if not isinstance(result, Solution):
        return False
    return isinstance(best, Rejection) or result.key < best.key


def _check_block(problem: Problem, stage: str, start: int, size: int) -> Rejection | None:
    if size == 0:
        return None
    found = allocator.containing(problem.free, problem.starts, start)
    if found is not None and found[1] >= start + size - 1:
        return None
    names = {"low": "low RAM", "high": "high RAM", "boot": "boot RAM"}
    text = (
        f"{names[stage]} {format_size(size)} at {hex_addr(start)}-{hex_addr(start + size - 1)} does not fit"
    )
    return Rejection(stage, text, (start, start + size - 1))


def _check_low(problem: Problem, low: int) -> Rejection | None:
    """x86 low RAM, less the ROM window 0xc0000-0xfffff that QEMU never maps as RAM.

    The VGA window below it is RAM when the guest has no VGA, so it must avoid holes too.
    """
    for start, end in _cut_windows(0, low - 1, [x86.ROM_WINDOW]):
        rejection = _check_block(problem, "low", start, end - start + 1)
        if rejection:
            return rejection
    return None


def _cut_windows(start: int, end: int, windows: Sequence[Span]) -> list[Span]:
    """[start, end] less the (sorted, disjoint) windows."""
    return subtract_spans([(start, end)], list(windows)) if start <= end else []


def _split_nodes(nodes: Sequence[int], ram: int) -> tuple[tuple[int, ...], list[int]]:
    """Boot RAM fills the nodes in order; the rest of each node goes to memory devices."""
    boot: list[int] = []
    left = ram
    for size in nodes:
        part = min(size, left)
        boot.append(part)
        left -= part
    return tuple(boot), [size - part for size, part in zip(nodes, boot, strict=True)]


Placement = tuple[list[tuple[int, int, int]], list[Span]]  # devices (node, start, end), free rest
SEARCH_NODES = 4  # up to this many nodes with RAM in devices, every placement order is tried


def _place_devices(
    problem: Problem,
    chunks: list[Span],
    leftover: list[int],
    base: int,
) -> list[Placement] | Rejection:
    """Ways to put each node's rest in memory devices, the plain one first.

    The plain way places node after node, each in its fewest pieces, lowest first. With a few
    nodes that can cost a device or address space (an early node takes the one span a later
    node needed whole), or end too high while more pieces lower down would fit. So for up to
    SEARCH_NODES nodes every order is tried, each also with the free spans cut at lower ends
    where it needs fewer pieces; `evaluate` keeps the best by the preference.
    """
    needed = [(node, size) for node, size in enumerate(leftover) if size]
    room = sum(end - start + 1 for start, end in chunks)
    if sum(size for _, size in needed) > room:
        text = (
            f"{format_size(sum(leftover))} of RAM must go in memory devices from "
            f"{hex_addr(base)}, but {_room_text(room, base, problem)}"
        )
        return Rejection("devices", text, (base, problem.limit))
    if not needed:
        return [([], chunks)]
    if len(needed) > SEARCH_NODES:
        plain = _greedy(chunks, needed)
        return [plain] if plain else []
    found: list[Placement] = []
    for order in permutations(needed):
        for placement in _by_end(chunks, list(order), problem.align):
            if placement not in found:
                found.append(placement)
    return found


def _room_text(room: int, base: int, problem: Problem) -> str:
    """How much is usable from `base` up to the limit, said without "above X below Y" for X > Y."""
    limit = f"{hex_addr(problem.limit)} ({problem.limit_reason})"
    if base > problem.limit:
        return f"{hex_addr(base)} is already past the highest address allowed, {limit}"
    return f"only {format_size(room)} is usable outside holes from {hex_addr(base)} up to {limit}"


def _greedy(chunks: list[Span], order: Sequence[tuple[int, int]]) -> Placement | None:
    """Node after node in `order`, each in its fewest pieces (lowest top); None: no room."""
    devices: list[tuple[int, int, int]] = []
    chunks = list(chunks)
    for node, size in order:
        pieces = allocator.fewest_pieces(chunks, size)
        if pieces is None:
            return None
        for start, end in pieces:
            devices.append((node, start, end))
            chunks = allocator.take(chunks, (start, end))
    return sorted(devices), chunks


def _by_end(chunks: list[Span], order: list[tuple[int, int]], align: int) -> list[Placement]:
    """The greedy on all free spans, then on the spans cut at lower ends: at every end where it
    needs fewer devices than at any lower one (bisection over aligned ends: the count falls as
    the end rises), down to the lowest end that leaves room enough."""
    total = sum(size for _, size in order)
    room, lowest = 0, chunks[-1][1]
    for start, end in chunks:
        if room + end - start + 1 >= total:
            lowest = start + total - room - 1
            break
        room += end - start + 1
    starts = [start for start, _ in chunks]
    runs: dict[int, Placement | None] = {}

    def run(units: int) -> Placement | None:
        if units not in runs:
            top = units * align - 1
            placed = _greedy(allocator.clip(chunks, starts, 0, top), order)
            above = allocator.clip(chunks, starts, top + 1, chunks[-1][1])
            runs[units] = None if placed is None else (placed[0], merge_spans(placed[1] + above))
        return runs[units]

    def count(units: int) -> int:
        placed = run(units)
        return len(placed[0]) if placed else 1 << 62  # no room: more than any count

    def bisect(low: int, high: int) -> None:
        if high - low > 1 and count(low) != count(high):
            middle = (low + high) // 2
            run(middle)
            bisect(low, middle)
            bisect(middle, high)

    full, least = (chunks[-1][1] + 1) // align, (lowest + 1) // align
    run(full)
    run(least)
    bisect(least, full)
    return [placed for _, placed in sorted(runs.items(), key=lambda item: -item[0]) if placed is not None]


def _finish(
    problem: Problem,
    choice: Choice,
    low: int,
    high: int,
    nodes_boot: tuple[int, ...],
    devices: list[tuple[int, int, int]],
    chunks: list[Span],
    base: int,
) -> Solution | Rejection:
    warnings: list[str] = []
    room: list[Span] = []
    if problem.room:
        found = allocator.first_fit(chunks, problem.room, MAX_SLOTS - len(devices))
        if found is None:
            free = sum(end - start + 1 for start, end in chunks)
            where = (_room_text(free, base, problem) if free < problem.room else
                     f"the {format_size(free)} free outside holes is in more than the "
                     f"{MAX_SLOTS - len(devices)} pieces QEMU's memory slots allow")
            return Rejection("hotplug", f"the hotplug room {format_size(problem.room)} does not "
                             f"fit: {where}", (base, problem.limit))
        room = found
    slots, maxmem = _slots_and_maxmem(problem, choice, devices, room, base, warnings)
    device_size = device_memory_size(choice.ram, maxmem, slots)
    if problem.family == "virt":
        highest = base + device_size - 1 if device_size else choice.start + high - 1
        hole64 = None
        relocated = False
    else:
        sized = _hole64(problem, x86.hole64_start(choice.start + high, device_size), warnings)
        if isinstance(sized, Rejection):
            return sized
        hole64, highest = sized
        regime = _regime(problem, choice, high, device_size, hole64)
        if regime:
            return regime
        relocated = choice.start == x86.AMD_ABOVE_1TB
    if highest > problem.limit:
        return Rejection(
            "top",
            f"the layout reaches {hex_addr(highest)}, above {hex_addr(problem.limit)} "
            f"({problem.limit_reason})",
            (problem.limit + 1, highest),
        )
    phys_bits = _phys_bits(problem, highest, warnings)
    if devices:
        online = ONLINE_WINDOWS if problem.windows else ONLINE
        warnings.append(f"{len(devices)} memory device(s) hold RAM the boot RAM cannot: {online}")
    if relocated:
        warnings.append(
            "the guest CPU is AMD and the layout reaches the HyperTransport range "
            f"{hex_addr(x86.AMD_HT_START)}-{hex_addr(x86.AMD_HT_END)}, so QEMU moves RAM above "
            "4 GiB to 1 TiB; the plan follows"
        )
    default = (
        choice.ram == problem.total
        and choice.max_below_4g is None
        and not devices
        and hole64 is None
        and not (maxmem and maxmem != problem.total + problem.room)
    )
    return Solution(
        choice,
        low,
        high,
        nodes_boot,
        tuple(devices),
        tuple(room),
        slots,
        maxmem,
        hole64,
        phys_bits,
        highest,
        relocated,
        warnings,
        default,
    )


def _slots_and_maxmem(
    problem: Problem,
    choice: Choice,
    devices: list[tuple[int, int, int]],
    room: list[Span],
    base: int,
    warnings: list[str],
) -> tuple[int, int | None]:
    used = len(devices) + len(room)
    if not used and not problem.spec_slots and not problem.room:
        return 0, None
    slots = max(problem.spec_slots, used, 1)
    if slots > problem.spec_slots and problem.spec_slots:
        warnings.append(
            f"slots raised from {problem.spec_slots} to {slots}: {len(devices)} memory "
            f"device(s) hold RAM that cannot sit in boot RAM, and the hotplug room needs {len(room)}"
        )
    ends = [end for _, _, end in devices] + [end for _, end in room]
    wanted = problem.total + problem.room
    needed = (max(ends) + 1 - base - slots * SLOT_SIZE + choice.ram) if ends else wanted
    maxmem = align_up(max(wanted, needed), problem.align)
    if maxmem > wanted:
        warnings.append(
            f"maxmem raised from {format_size(wanted)} to {format_size(maxmem)} so that "
            f"device memory from {hex_addr(base)} spans the holes up to {hex_addr(max(ends))}"
        )
    if maxmem == choice.ram:
        maxmem += problem.align
    return slots, maxmem


def _hole64(problem: Problem, start: int, warnings: list[str]) -> tuple[int | None, int] | Rejection:
    size = problem.hole64 or x86.HOLE64_DEFAULT[problem.family]
    if start + size - 1 <= problem.limit:
        return problem.hole64, start + size - 1
    if problem.hole64:
        return Rejection("top", f"the 64-bit PCI hole of {format_size(size)} (pci_hole64) from "
                         f"{hex_addr(start)} ends above {hex_addr(problem.limit)} "
                         f"({problem.limit_reason})", (start, start + size - 1))
    fits = align_down(problem.limit + 1 - start, GiB) if problem.limit + 1 > start else 0
    if fits < GiB:
        where = (f"it would start at {hex_addr(start)}, past" if start > problem.limit else
                 f"less than 1G is left from {hex_addr(start)} up to")
        return Rejection(
            "top",
            f"no room for the 64-bit PCI hole: {where} the highest address allowed, "
            f"{hex_addr(problem.limit)} ({problem.limit_reason})",
            (start, start + size - 1),
        )
    warnings.append(
        f"pci-hole64-size lowered from {format_size(size)} to {format_size(fits)} so that "
        f"the 64-bit PCI hole ends below {hex_addr(problem.limit)} ({problem.limit_reason})"
    )
    return fits, start + fits - 1


def _regime(
    problem: Problem, choice: Choice, high: int, device_size: int, hole64: int | None
) -> Rejection | None:
    """High RAM must start where QEMU puts it (AMD guests: 1 TiB once the HT range is reached)."""
    hole = hole64 or problem.hole64 or x86.HOLE64_DEFAULT[problem.family]
    start = x86.high_ram_start(problem.amd_rule, problem.qemu, problem.emitted_bits, high,
                               device_size, hole)
    if start == choice.start:
        return None
    if not problem.amd_rule:
        return Rejection("regime", "no relocation for this CPU and machine type")
    if problem.windows:
        return Rejection("regime", "QEMU would move RAM above 4 GiB past 1 TiB, which a Windows "
                         "guest must not get (Code 43)")
    return Rejection("regime", "QEMU would choose the other AMD high-RAM start")


def _phys_bits(problem: Problem, highest: int, warnings: list[str]) -> int | None:
    if problem.phys_bits:
        return problem.phys_bits
    default = problem.cpu.default_bits
    if problem.family == "virt" or highest < 1 << default:
        return None
    bits = max(highest.bit_length(), problem.target.host_phys_bits or 0)
    warnings.append(
        f"phys-bits set to {bits}: the layout reaches {hex_addr(highest)}, beyond QEMU's "
        f"default of {default} bits"
    )
    return bits


# ---- the planned map -------------------------------------------------------------------------


def planned_layout(
    problem: Problem, solution: Solution, boot_ids: Sequence[str], device_ids: Sequence[str]
) -> list[GuestRegion]:
    """The RAM blocks the solution puts in place (coarse: firmware windows below 1 MiB not cut)."""
    regions: list[GuestRegion] = []
    numa = problem.numa or len(problem.nodes) > 1
    offset = 0
    for node, size in enumerate(solution.nodes_boot):
        for start, end in _boot_pieces(problem, solution, offset, size):
            regions.append(
                GuestRegion(start=start, end=end, kind="ram", id=boot_ids[node], node=node if numa else None)
            )
        offset += size
    for (node, start, end), name in zip(solution.devices, device_ids, strict=True):
        regions.append(GuestRegion(start=start, end=end, kind="dimm", id=name, node=node if numa else None))
    return sorted(regions, key=lambda r: r.start)


def _boot_pieces(problem: Problem, solution: Solution, offset: int, size: int) -> list[Span]:
    if size == 0:
        return []
    if problem.family == "virt":
        return [(ARM_RAM_START + offset, ARM_RAM_START + offset + size - 1)]
    pieces: list[Span] = []
    end = offset + size
    if offset < solution.low:
        windows = [x86.VGA_WINDOW, x86.ROM_WINDOW] if problem.vga_window else [x86.ROM_WINDOW]
        pieces += _cut_windows(offset, min(end, solution.low) - 1, windows)
    if end > solution.low:
        first = max(offset, solution.low) - solution.low
        pieces.append((solution.choice.start + first, solution.choice.start + end - solution.low - 1))
    return pieces


def boot_region_name(family: str) -> str:
    return BOOT_RAM[family]


def room_ranges(solution: Solution) -> tuple[Range, ...]:
    return tuple(Range(start=start, end=end) for start, end in solution.room)
