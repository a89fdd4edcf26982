"""The layout solver: pure, deterministic, no I/O. Explains every "no".

`solve_spec(spec, target, qemu_version)` returns the `Solved` configuration or raises NoAnswer.
"""

from layoutd.errors import InputError
from layoutd.models.spec import VmSpec
from layoutd.qemu.machines import FAMILIES
from layoutd.qemu.versions import WITHOUT_AMD_1TIB
from layoutd.record import replace
from layoutd.solver.build import Solved, build
from layoutd.solver.explain import explain
from layoutd.solver.problem import Problem, problem_for
from layoutd.solver.solve import solve
from layoutd.solver.suggest import Accept, TargetFor
from layoutd.solver.target import Target, combine

__all__ = ["Problem", "Solved", "Target", "TargetFor", "combine", "solve_spec"]


def solve_spec(spec: VmSpec, target: Target, qemu_version: str,
               target_for: TargetFor | None = None, accept: Accept | None = None) -> Solved:
    """The solved configuration, or NoLayout with what blocks and the suggestions that plan.

    `target_for(devices)` reads the hosts again for other devices (to verify dropping one);
    `accept(spec)` is what else a suggested spec must pass (the BARs' placement)."""
    foreign = _foreign_guest(spec, target)
    problem = problem_for(spec, target, qemu_version)
    solution, rejections = solve(problem)
    said: tuple[str, ...] = ()
    if solution is None and problem.windows and problem.amd_rule and spec.machine_type == spec.family:
        older = windows_machine(spec)  # RAM stays below the HT hole, the rest in DIMMs at 1 TiB
        retry = problem_for(older, target, qemu_version)
        solution = solve(retry)[0]
        if solution is not None:
            spec, problem = older, retry
            said = (f"machine {older.machine_type}: on newer types QEMU moves RAM above 4 GiB "
                    "past 1 TiB for this AMD guest, which Windows drivers fail on (Code 43, "
                    "RHEL-98247); RAM stays below the HyperTransport hole, the rest in DIMMs",)
    if solution is None:
        raise explain(spec, problem, rejections, target, qemu_version, target_for, accept)
    solved = build(spec, problem, solution, qemu_version)
    notes = tuple(target.notes) + foreign + said
    return Solved(
        solved.config,
        solved.layout,
        notes + solved.warnings,
        solved.highest,
        solved.hotplug_room,
        solved.default_layout,
    )


def windows_machine(spec: VmSpec) -> VmSpec:
    """The spec on the newest machine type of its family without QEMU's AMD 1 TiB rule."""
    return replace(spec, machine=FAMILIES[spec.arch][spec.family] + str(WITHOUT_AMD_1TIB))


HOST_ARCH = {"amd": "x86_64", "intel": "x86_64", "hygon": "x86_64", "arm": "aarch64"}


def _foreign_guest(spec: VmSpec, target: Target) -> tuple[str, ...]:
    """A guest of another architecture than the hosts': KVM cannot run it (a "no" naming
    `accel`); under TCG QEMU emulates it, and the plan says so."""
    host = HOST_ARCH.get(target.host_vendor) or getattr(target.platform, "arch", None)
    if host is None or host == spec.arch:
        return ()
    if spec.accelerator == "kvm":
        raise InputError(f"KVM runs only guests of the host's architecture: the host is {host} "
                         f"and the spec's arch {spec.arch}; set accel: tcg to emulate it",
                         field="accel")
    return (f"the host is {host} and the guest {spec.arch}: qemu-system-{spec.arch} emulates it "
            "(TCG) there; the layout is planned for this host's IOMMU",)
