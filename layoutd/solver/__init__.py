"""The layout solver: pure, deterministic, no I/O. Explains every "no".

`solve_spec(spec, target, qemu_version)` returns the `Solved` configuration or raises NoAnswer.
"""

from typing import Any

from layoutd.errors import NoAnswer
from layoutd.models.spec import VmSpec
from layoutd.solver.build import Solved, build
from layoutd.solver.explain import explain
from layoutd.solver.solve import Problem, problem_for, solve
from layoutd.solver.target import Target, combine

__all__ = ["Problem", "Solved", "Target", "combine", "solve_spec"]


def solve_spec(spec: VmSpec, target: Target, qemu_version: str) -> Solved:
    problem = problem_for(spec, target, qemu_version)
    solution, rejections = solve(problem)
    if solution is None:
        retry = lambda **change: _works(spec, target, qemu_version, change)  # noqa: E731
        raise NoAnswer(explain(spec.name, problem, rejections, retry))
    solved = build(spec, problem, solution, qemu_version)
    notes = tuple(target.notes)
    return Solved(
        solved.config,
        solved.layout,
        notes + solved.warnings,
        solved.highest,
        solved.hotplug_room,
        solved.default_layout,
    )


def _works(spec: VmSpec, target: Target, qemu_version: str, change: dict[str, Any]) -> bool:
    """Would a layout exist with this one change? (for the suggestions of a "no")"""
    data = spec.model_dump()
    if "size" in change:
        data["memory"]["size"] = change["size"]
        data["memory"]["hotplug"] = None
        data["numa"] = ()
    if "phys_bits" in change:
        data["cpu"]["phys_bits"] = change["phys_bits"]
    if "machine" in change:
        data["machine"] = change["machine"]
        data["viommu"] = "none" if change["machine"] != "q35" and spec.viommu == "intel" else spec.viommu
    try:
        variant = VmSpec.model_validate(data)
    except ValueError:
        return False
    solution, _ = solve(problem_for(variant, change.get("target", target), qemu_version))
    return solution is not None
