"""What QEMU makes of a placed layout: slots and maxmem, the 64-bit PCI hole, where high RAM
starts, phys-bits; each within the problem's limit, or the rejection saying why not. Pure."""

from layoutd.models.ranges import Span
from layoutd.qemu import x86
from layoutd.qemu.memdev import SLOT_SIZE
from layoutd.solver import reasons
from layoutd.solver.problem import Choice, Problem, Rejection
from layoutd.units import GiB, align_down, align_up


def slots_and_maxmem(
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
        warnings.append(reasons.slots_raised(problem.spec_slots, slots, len(devices), len(room)))
    ends = [end for _, _, end in devices] + [end for _, end in room]
    wanted = problem.total + problem.room
    needed = (max(ends) + 1 - base - slots * SLOT_SIZE + choice.ram) if ends else wanted
    maxmem = align_up(max(wanted, needed), problem.align)
    if maxmem > wanted:
        warnings.append(reasons.maxmem_raised(wanted, maxmem, base, max(ends)))
    if maxmem == choice.ram:
        maxmem += problem.align
    return slots, maxmem


def hole64(problem: Problem, start: int, warnings: list[str]) -> tuple[int | None, int] | Rejection:
    size = problem.hole64 or x86.HOLE64_DEFAULT[problem.family]
    if start + size - 1 <= problem.limit:
        return problem.hole64, start + size - 1
    if problem.hole64:
        return reasons.hole64_above_limit(problem, start, size)
    fits = align_down(problem.limit + 1 - start, GiB) if problem.limit + 1 > start else 0
    if fits < GiB:
        return reasons.no_room_for_hole64(problem, start, size)
    warnings.append(reasons.hole64_lowered(problem, size, fits))
    return fits, start + fits - 1


def regime(
    problem: Problem, choice: Choice, high: int, device_size: int, hole64: int | None
) -> Rejection | None:
    """High RAM must start where QEMU puts it (AMD guests: 1 TiB once the HT range is reached)."""
    hole = hole64 or problem.hole64 or x86.HOLE64_DEFAULT[problem.family]
    start = x86.high_ram_start(problem.amd_rule, problem.qemu, problem.emitted_bits, high,
                               device_size, hole)
    if start == choice.start:
        return None
    return reasons.other_regime(problem)


def phys_bits(problem: Problem, highest: int, warnings: list[str]) -> int | None:
    if problem.phys_bits:
        return problem.phys_bits
    default = problem.cpu.default_bits
    if problem.family == "virt" or highest < 1 << default:
        return None
    bits = max(highest.bit_length(), problem.target.host_phys_bits or 0)
    warnings.append(reasons.phys_bits_set(bits, highest, default))
    return bits
