"""Policy: choose boot RAM, the low/high split and memory devices so guest RAM avoids every hole.

Pure and deterministic. A handful of candidate boot-RAM sizes is evaluated in full; the best valid
one wins by (fewest memory devices, lowest highest address, most contiguous NUMA nodes, fewest
non-default options). Every rejection is kept so a "no" can say what blocked what.
"""

from collections.abc import Sequence
from dataclasses import dataclass, field

from layoutd.models.common import GuestRegion, Range
from layoutd.models.spec import VmSpec
from layoutd.solver import allocator
from layoutd.solver.allocator import Span
from layoutd.solver.machine import (
    AMD_ABOVE_1TB,
    AMD_HT_START,
    ARM_RAM_START,
    BOOT_REGION,
    FOUR_GIB,
    HOLE64_DEFAULT,
    MAX_SLOTS,
    MIN_LOW_RAM,
    ROM_WINDOW,
    SLOT_ALIGN,
    TCG_DEFAULT_PHYS_BITS,
    VGA_AND_ROM_WINDOW,
    default_cpu_model,
    default_low,
    guest_vendor,
    low_size,
)
from layoutd.solver.target import Target
from layoutd.units import GiB, align_down, align_up, format_size, hex_addr


@dataclass(frozen=True)
class Problem:
    """The spec reduced to numbers, with the combined hosts' free space."""

    family: str
    arch: str
    total: int
    align: int
    nodes: tuple[int, ...]  # size of each NUMA node (one entry when no NUMA)
    room: int  # hotplug room: hotplug.max - size
    spec_slots: int
    vendor: str
    phys_bits: int | None  # from the spec
    limit: int  # highest address allowed: every host's top and the guest's phys-bits
    limit_reason: str
    free: tuple[Span, ...]
    starts: tuple[int, ...]
    target: Target

    @property
    def ram_start(self) -> int:
        return ARM_RAM_START if self.family == "virt" else 0


@dataclass(frozen=True)
class Choice:
    ram: int  # -m SIZE: boot RAM
    max_below_4g: int | None
    start: int  # where high RAM (x86) or boot RAM (arm) begins


@dataclass
class Rejection:
    stage: str  # low | high | boot | devices | slots | hotplug | top | regime
    text: str
    blocked: tuple[int, int] | None = None  # the guest range that would have hit a hole


@dataclass
class Solution:
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


def problem_for(spec: VmSpec, target: Target) -> Problem:
    bits = spec.cpu.phys_bits or (target.host_phys_bits if spec.arch == "x86_64" else None)
    limit, reason = target.top, "the top every host's IOMMU can map"
    if bits and (1 << bits) - 1 < limit:
        limit = (1 << bits) - 1
        reason = f"the guest's phys-bits ({bits})" if spec.cpu.phys_bits else f"the host's phys-bits ({bits})"
    free = [(r.start, min(r.end, limit)) for r in target.usable if r.start <= limit]
    model = spec.cpu.model or default_cpu_model(spec.arch)
    return Problem(
        family=spec.family,
        arch=spec.arch,
        total=spec.memory.size,
        align=spec.memory.alignment,
        nodes=tuple(cell.size for cell in spec.numa) or (spec.memory.size,),
        room=spec.hotplug_room,
        spec_slots=spec.hotplug_slots,
        vendor=guest_vendor(model, spec.cpu.vendor, target.host_vendor),
        phys_bits=spec.cpu.phys_bits,
        limit=limit,
        limit_reason=reason,
        free=tuple(free),
        starts=tuple(start for start, _ in free),
        target=target,
    )


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
        cap = align_down(min(zero[1] + 1, FOUR_GIB), align)
        if cap >= MIN_LOW_RAM:
            low_caps.append(cap)
    starts = [FOUR_GIB, AMD_ABOVE_1TB] if problem.vendor == "amd" else [FOUR_GIB]
    for start in starts:
        high_cap = _room_from(problem, start)
        for max_below in low_caps:
            add(total, max_below, start)
            for ram in (total, FOUR_GIB):
                low = low_size(problem.family, ram, max_below)
                add(low + high_cap, max_below, start)
                add(low, max_below, start)
            small = default_low(problem.family, 0) - align
            add(min(small, max_below or small), max_below, start)
    return seen


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
        low = low_size(problem.family, choice.ram, choice.max_below_4g)
        high = choice.ram - low
        if choice.max_below_4g is not None and low < MIN_LOW_RAM:
            return Rejection("low", f"low RAM {format_size(low)} leaves firmware no room")
        block = _check_low(problem, low) or _check_block(problem, "high", choice.start, high)
        if block:
            return block
    nodes_boot, leftover = _split_nodes(problem.nodes, choice.ram)
    base = align_up(choice.start + high, SLOT_ALIGN)
    chunks = allocator.aligned(
        allocator.clip(problem.free, problem.starts, base, problem.limit), problem.align
    )
    placed = _place_devices(problem, chunks, leftover, base)
    if isinstance(placed, Rejection):
        return placed
    devices, chunks = placed
    return _finish(problem, choice, low, high, nodes_boot, devices, chunks, base)


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
    """x86 low RAM, less the ROM window 0xc0000-0xfffff that QEMU does not map as RAM."""
    for start, end in _cut_rom_window(0, low - 1):
        rejection = _check_block(problem, "low", start, end - start + 1)
        if rejection:
            return rejection
    return None


def _cut_rom_window(start: int, end: int, window: Span = ROM_WINDOW) -> list[Span]:
    pieces = []
    if start < window[0]:
        pieces.append((start, min(end, window[0] - 1)))
    if end > window[1]:
        pieces.append((max(start, window[1] + 1), end))
    return pieces


def _split_nodes(nodes: Sequence[int], ram: int) -> tuple[tuple[int, ...], list[int]]:
    """Boot RAM fills the nodes in order; the rest of each node goes to memory devices."""
    boot: list[int] = []
    left = ram
    for size in nodes:
        part = min(size, left)
        boot.append(part)
        left -= part
    return tuple(boot), [size - part for size, part in zip(nodes, boot, strict=True)]


def _place_devices(
    problem: Problem,
    chunks: list[Span],
    leftover: list[int],
    base: int,
) -> tuple[list[tuple[int, int, int]], list[Span]] | Rejection:
    devices: list[tuple[int, int, int]] = []
    for node, size in enumerate(leftover):
        pieces = allocator.fewest_pieces(chunks, size)
        if pieces is None:
            room = sum(end - start + 1 for start, end in chunks)
            text = (
                f"{format_size(sum(leftover))} of RAM must go in memory devices above "
                f"{hex_addr(base)}, but only {format_size(room)} is usable there below "
                f"{hex_addr(problem.limit)} ({problem.limit_reason})"
            )
            return Rejection("devices", text, (base, problem.limit))
        for start, end in pieces:
            devices.append((node, start, end))
            chunks = allocator.take(chunks, (start, end))
    if len(devices) > MAX_SLOTS:
        return Rejection(
            "slots", f"the RAM would need {len(devices)} memory devices; QEMU allows {MAX_SLOTS} slots"
        )
    return devices, chunks


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
            return Rejection(
                "hotplug",
                f"the hotplug room {format_size(problem.room)} does not fit "
                f"outside holes below {hex_addr(problem.limit)} ({problem.limit_reason}) "
                f"in the {MAX_SLOTS - len(devices)} slots left",
            )
        room = found
    slots, maxmem = _slots_and_maxmem(problem, choice, devices, room, base, warnings)
    region_end = base + (maxmem - choice.ram) + slots * SLOT_ALIGN if maxmem else choice.start + high
    if problem.family == "virt":
        highest = region_end - 1 if maxmem else choice.start + high - 1
        hole64 = None
        relocated = False
    else:
        sized = _hole64(problem, region_end, warnings)
        if isinstance(sized, Rejection):
            return sized
        hole64, highest = sized
        regime = _regime(problem, choice, high, maxmem, slots, hole64)
        if regime:
            return regime
        relocated = choice.start == AMD_ABOVE_1TB
    if highest > problem.limit:
        return Rejection(
            "top",
            f"the layout reaches {hex_addr(highest)}, above {hex_addr(problem.limit)} "
            f"({problem.limit_reason})",
            (problem.limit + 1, highest),
        )
    phys_bits = _phys_bits(problem, highest, warnings)
    if relocated:
        warnings.append(
            "the guest CPU is AMD and the layout reaches the HyperTransport range "
            "0xfd00000000-0xffffffffff, so QEMU moves RAM above 4 GiB to 1 TiB; the plan follows"
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
    needed = (max(ends) + 1 - base - slots * SLOT_ALIGN + choice.ram) if ends else wanted
    maxmem = align_up(max(wanted, needed), problem.align)
    if maxmem > wanted:
        warnings.append(
            f"maxmem raised from {format_size(wanted)} to {format_size(maxmem)} so that "
            f"device memory from {hex_addr(base)} spans the holes up to {hex_addr(max(ends))}"
        )
    if maxmem == choice.ram:
        maxmem += problem.align
    return slots, maxmem


def _hole64(problem: Problem, region_end: int, warnings: list[str]) -> tuple[int | None, int] | Rejection:
    start = align_up(region_end, GiB)
    size = HOLE64_DEFAULT[problem.family]
    if start + size - 1 <= problem.limit:
        return None, start + size - 1
    fits = align_down(problem.limit + 1 - start, GiB) if problem.limit + 1 > start else 0
    if fits < GiB:
        return Rejection(
            "top",
            f"no room for the 64-bit PCI hole after {hex_addr(start)} below "
            f"{hex_addr(problem.limit)} ({problem.limit_reason})",
            (start, start + size - 1),
        )
    warnings.append(
        f"pci-hole64-size lowered from {format_size(size)} to {format_size(fits)} so that "
        f"the 64-bit PCI hole ends below {hex_addr(problem.limit)} ({problem.limit_reason})"
    )
    return fits, start + fits - 1


def _regime(
    problem: Problem, choice: Choice, high: int, maxmem: int | None, slots: int, hole64: int | None
) -> Rejection | None:
    """AMD guests: QEMU relocates to 1 TiB exactly when the 4 GiB layout reaches the HT range."""
    if problem.vendor != "amd":
        return None if choice.start == FOUR_GIB else Rejection("regime", "no relocation for this CPU")
    end = align_up(FOUR_GIB + high, SLOT_ALIGN)
    if maxmem:
        end += maxmem - choice.ram + slots * SLOT_ALIGN
    top = align_up(end, GiB) + (hole64 or HOLE64_DEFAULT[problem.family]) - 1
    relocates = top >= AMD_HT_START
    if relocates == (choice.start == AMD_ABOVE_1TB):
        return None
    return Rejection("regime", "QEMU would choose the other AMD high-RAM start")


def _phys_bits(problem: Problem, highest: int, warnings: list[str]) -> int | None:
    if problem.phys_bits:
        return problem.phys_bits
    if problem.family == "virt" or highest < 1 << TCG_DEFAULT_PHYS_BITS:
        return None
    bits = max(highest.bit_length(), problem.target.host_phys_bits or 0)
    warnings.append(
        f"phys-bits set to {bits}: the layout reaches {hex_addr(highest)}, beyond QEMU's "
        f"default of {TCG_DEFAULT_PHYS_BITS} bits"
    )
    return bits


# ---- the planned map -------------------------------------------------------------------------


def planned_layout(
    problem: Problem, solution: Solution, boot_ids: Sequence[str], device_ids: Sequence[str]
) -> list[GuestRegion]:
    """The RAM blocks the solution puts in place (coarse: firmware windows below 1 MiB not cut)."""
    regions: list[GuestRegion] = []
    numa = len(problem.nodes) > 1
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
        pieces += _cut_rom_window(offset, min(end, solution.low) - 1, VGA_AND_ROM_WINDOW)
    if end > solution.low:
        first = max(offset, solution.low) - solution.low
        pieces.append((solution.choice.start + first, solution.choice.start + end - solution.low - 1))
    return pieces


def boot_region_name(family: str) -> str:
    return BOOT_REGION[family]


def room_ranges(solution: Solution) -> tuple[Range, ...]:
    return tuple(Range(start=start, end=end) for start, end in solution.room)
