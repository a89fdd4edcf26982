"""Why no layout exists, and what would work instead (every suggestion solved). Pure."""

from collections.abc import Sequence
from typing import Any

from layoutd.errors import NoLayout
from layoutd.models.common import U64_MAX, Hole
from layoutd.models.spec import VmSpec
from layoutd.solver.problem import Problem, Rejection
from layoutd.solver.reasons import main_reason
from layoutd.solver.suggest import Accept, TargetFor, suggestions
from layoutd.solver.target import Target
from layoutd.units import hex_addr


def explain(spec: VmSpec, problem: Problem, rejections: Sequence[Rejection], target: Target,
            version: str, target_for: TargetFor | None = None,
            accept: Accept | None = None) -> NoLayout:
    """The "no": what blocks what (with ranges), then the changes that plan."""
    reason = main_reason(problem, rejections)
    holes = _blocking_holes(problem, reason)
    blocked = [_hole_json(hole) for hole in holes]
    lines = [f"blocked by the {hole.describe()}" for hole in holes]
    if _reaches_limit(problem, reason):
        blocked.append({"start": hex_addr(problem.limit + 1), "end": hex_addr(U64_MAX),
                        "type": "limit", "group": None, "devices": [],
                        "text": f"above {hex_addr(problem.limit)}: {problem.limit_reason}"})
        lines.append(f"blocked by the limit {hex_addr(problem.limit)} ({problem.limit_reason})")
    found = suggestions(spec, target, version, target_for, accept, reason.stage)
    return NoLayout(f"no layout exists for {spec.name!r}: {reason.text}", lines, found,
                    details={"blocked_by": blocked})


def _reaches_limit(problem: Problem, reason: Rejection) -> bool:
    if reason.stage in ("hotplug", "top"):
        return True
    return reason.blocked is not None and reason.blocked[1] >= problem.limit


def _blocking_holes(problem: Problem, reason: Rejection) -> list[Hole]:
    if reason.blocked is None:
        return []
    low, high = reason.blocked
    found = [hole for hole in problem.target.holes if hole.start <= high and hole.end >= low]
    return found[:6]


def _hole_json(hole: Hole) -> dict[str, Any]:
    return {"start": hex_addr(hole.start), "end": hex_addr(hole.end), "type": hole.type,
            "group": hole.group, "devices": list(hole.devices), "text": hole.describe()}


__all__ = ["explain", "hex_addr"]
