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
from layoutd.qemu import x86
from layoutd.qemu.arm import RAM_BASE as ARM_RAM_START
from layoutd.qemu.boot import ACPI_MAX_RAM_SLOTS as MAX_SLOTS
from layoutd.qemu.machines import BOOT_RAM
from layoutd.qemu.memdev import device_memory_base, device_memory_size
from layoutd.solver import allocator, limits, reasons
from layoutd.solver.machine import MIN_LOW_RAM
from layoutd.solver.problem import Choice, Problem, Rejection, Solution
from layoutd.units import align_down


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
        choice = Choice(ram=ram, max_below_4g=max_below, start=start)
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
            return reasons.split_not_modelled(choice.max_below_4g, choice.ram)
        low, high = split, choice.ram - split
        if choice.max_below_4g is not None and low < MIN_LOW_RAM:
            return reasons.no_firmware_room(low)
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
        result = (
            reasons.too_many_devices(len(devices))
            if len(devices) > MAX_SLOTS
            else _finish(problem, choice, low, high, nodes_boot, devices, rest, base)
        )
        if best is None or _better(result, best):
            best = result
    return best or reasons.no_placement(base)


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
    return reasons.block_does_not_fit(stage, start, size)


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
        return reasons.devices_do_not_fit(problem, sum(leftover), room, base)
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
            return reasons.hotplug_does_not_fit(problem, free, MAX_SLOTS - len(devices), base)
        room = found
    slots, maxmem = limits.slots_and_maxmem(problem, choice, devices, room, base, warnings)
    device_size = device_memory_size(choice.ram, maxmem, slots)
    if problem.family == "virt":
        highest = base + device_size - 1 if device_size else choice.start + high - 1
        hole64 = None
        relocated = False
    else:
        sized = limits.hole64(problem, x86.hole64_start(choice.start + high, device_size), warnings)
        if isinstance(sized, Rejection):
            return sized
        hole64, highest = sized
        regime = limits.regime(problem, choice, high, device_size, hole64)
        if regime:
            return regime
        relocated = choice.start == x86.AMD_ABOVE_1TB
    if highest > problem.limit:
        return reasons.above_limit(problem, highest)
    phys_bits = limits.phys_bits(problem, highest, warnings)
    if devices:
        warnings.append(reasons.devices_hold_ram(problem, len(devices)))
    if relocated:
        warnings.append(reasons.relocated_to_1tib())
    default = (
        choice.ram == problem.total
        and choice.max_below_4g is None
        and not devices
        and hole64 is None
        and not (maxmem and maxmem != problem.total + problem.room)
    )
    return Solution(choice=choice, low=low, high=high, nodes_boot=nodes_boot,
                    devices=tuple(devices), room=tuple(room), slots=slots, maxmem=maxmem,
                    hole64=hole64, phys_bits=phys_bits, highest=highest, relocated=relocated,
                    warnings=warnings, default_layout=default)


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
