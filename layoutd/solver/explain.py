"""Why no layout exists, and the nearest thing that would work. Pure."""

from collections.abc import Callable, Sequence

from layoutd.models.common import Hole
from layoutd.solver.solve import Problem, Rejection
from layoutd.units import format_size, hex_addr

Retry = Callable[..., bool]


def explain(name: str, problem: Problem, rejections: Sequence[Rejection], retry: Retry) -> str:
    """A paragraph a person can act on: what blocks what, then what would work instead.

    `retry(**changes)` re-runs the solver with one change (size=, target=, phys_bits=, machine=)
    and says whether a layout then exists.
    """
    reason = _main_reason(problem, rejections)
    lines = [f"no layout exists for {name!r}: {reason.text}"]
    for hole in _blocking_holes(problem, reason):
        lines.append(f"  blocked by the {hole.describe()}")
    lines += [f"  would work: {idea}" for idea in _nearest(problem, reason, retry)]
    if len(lines) == 1 + len(_blocking_holes(problem, reason)):
        lines.append("  nothing close works: use other hosts or drop the VFIO devices")
    return "\n".join(lines)


def _main_reason(problem: Problem, rejections: Sequence[Rejection]) -> Rejection:
    if problem.family != "virt" and _hole_at(problem, 0):
        return Rejection(
            "low",
            "x86 guest RAM must start at guest address 0x0, which the host cannot map",
            (0, problem.align - 1),
        )
    if problem.family == "virt" and _hole_at(problem, problem.ram_start):
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


def _hole_at(problem: Problem, address: int) -> bool:
    return not any(start <= address <= end for start, end in problem.free)


def _blocking_holes(problem: Problem, reason: Rejection) -> list[Hole]:
    if reason.blocked is None:
        return []
    low, high = reason.blocked
    found = [hole for hole in problem.target.holes if hole.start <= high and hole.end >= low]
    return found[:6]


def _nearest(problem: Problem, reason: Rejection, retry: Retry) -> list[str]:
    ideas: list[str] = []
    size = _largest_size(problem, retry)
    if size:
        ideas.append(f"memory.size {format_size(size)} (the largest that fits; numa sizes to match)")
    host_bits = problem.target.host_phys_bits
    if problem.phys_bits and host_bits and host_bits > problem.phys_bits and retry(phys_bits=host_bits):
        ideas.append(f"cpu.phys_bits: {host_bits} (the host's width)")
    groups = sorted({hole.group for hole in _blocking_holes(problem, reason) if hole.group is not None})
    groups = groups or sorted({hole.group for hole in problem.target.holes if hole.group is not None})
    for group in groups[:8]:
        devices = sorted({d for hole in problem.target.holes if hole.group == group for d in hole.devices})
        if retry(target=problem.target.without_holes_of({group})):
            who = ", ".join(devices) or f"the devices of IOMMU group {group}"
            ideas.append(f"drop {who} (IOMMU group {group}) from devices")
    for machine in ("q35", "pc"):
        if problem.family != "virt" and machine != problem.family and retry(machine=machine):
            ideas.append(f"machine: {machine}")
    if problem.family != "virt" and reason.stage == "low":
        ideas.append("an aarch64 virt guest, whose RAM starts at 1 GiB (0x40000000)")
    if reason.stage == "slots":
        ideas.append("larger memory.hugepages or fewer NUMA nodes: each piece between holes needs a slot")
    return ideas


def _largest_size(problem: Problem, retry: Retry) -> int | None:
    """Binary search over multiples of the alignment (without NUMA or hotplug)."""
    low, high = 0, problem.total // problem.align - 1
    if high < 1 or not retry(size=problem.align):
        return None
    low = 1
    while low < high:
        middle = (low + high + 1) // 2
        if retry(size=middle * problem.align):
            low = middle
        else:
            high = middle - 1
    return low * problem.align if low * problem.align < problem.total else None


__all__ = ["explain", "hex_addr"]
