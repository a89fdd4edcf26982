"""The layout solver: pure, deterministic, no I/O. Explains every "no".

`solve_spec(spec, target, qemu_version)` returns the `Solved` configuration or raises NoAnswer.
"""

from layoutd.models.spec import VmSpec
from layoutd.solver.build import Solved, build
from layoutd.solver.explain import explain
from layoutd.solver.solve import Problem, problem_for, solve
from layoutd.solver.suggest import Accept, TargetFor
from layoutd.solver.target import Target, combine

__all__ = ["Problem", "Solved", "Target", "TargetFor", "combine", "solve_spec"]


def solve_spec(spec: VmSpec, target: Target, qemu_version: str,
               target_for: TargetFor | None = None, accept: Accept | None = None) -> Solved:
    """The solved configuration, or NoLayout with what blocks and the suggestions that plan.

    `target_for(devices)` reads the hosts again for other devices (to verify dropping one);
    `accept(spec)` is what else a suggested spec must pass (the BARs' placement)."""
    problem = problem_for(spec, target, qemu_version)
    solution, rejections = solve(problem)
    if solution is None:
        raise explain(spec, problem, rejections, target, qemu_version, target_for, accept)
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
