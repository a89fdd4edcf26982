"""What would work instead of a "no": changes to the spec, each solved again before it is shown.

A suggestion is a set of dotted spec paths with their new values (everything that must change
together, such as the NUMA cells with memory.size), as they would be written in the spec, and why
it works, naming the limit that binds one step further. Pure: the caller says how to re-read the
hosts when the devices change.
"""

from collections.abc import Callable, Sequence
from typing import Any

from layoutd.errors import LayoutdError
from layoutd.models.spec import VmSpec, with_changes
from layoutd.qemu.machines import FAMILIES, resolve
from layoutd.qemu.versions import AMD_1TIB_SINCE, WITHOUT_AMD_1TIB, amd_1tib_rule, row
from layoutd.qemu.x86 import AMD_HT_END, AMD_HT_START
from layoutd.record import Record
from layoutd.solver.problem import Problem, Rejection, Solution, problem_for
from layoutd.solver.reasons import ONLINE, main_reason
from layoutd.solver.solve import solve
from layoutd.solver.target import Target
from layoutd.units import format_size, hex_addr

NEWER_MACHINE = str(AMD_1TIB_SINCE)  # QEMU's AMD rule (high RAM to 1 TiB past the HT hole)

TargetFor = Callable[[Sequence[str]], Target]  # the hosts read again for other devices
Accept = Callable[[VmSpec], bool]  # what else a suggested spec must pass (the BARs' placement)


class Suggestion(Record, kw_only=False):
    change: dict[str, Any]  # dotted spec path -> new value, as written in a spec ("480G")
    why: str  # what it buys, naming the limit that binds
    dimms: int = 0  # memory devices the plan then holds RAM in (the guest must online them)

    def text(self) -> str:
        """The spec's language: `memory.hotplug.max: 480G (why)`."""
        said = ", ".join(f"{path}: {value_text(value)}" for path, value in self.change.items())
        return f"{said} ({self.full_why()})"

    def full_why(self) -> str:
        if not self.dimms:
            return self.why
        return f"{self.why}; the plan then puts RAM in {self.dimms} DIMM(s): {ONLINE}"

    def as_json(self) -> dict[str, Any]:
        return {"change": dict(self.change), "text": self.text()}


def value_text(value: Any) -> str:
    if value is None:
        return "(remove)"
    if isinstance(value, bool):
        return str(value).lower()  # as a spec writes it
    if isinstance(value, list):
        return "[" + ", ".join(value_text(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {value_text(v)}" for k, v in value.items()) + "}"
    return str(value)


class Solver:
    """Solve variants of one spec on one target (re-read for other devices)."""

    def __init__(self, spec: VmSpec, target: Target, version: str, target_for: TargetFor | None,
                 accept: Accept | None = None):
        self.spec, self.target, self.version, self.target_for = spec, target, version, target_for
        self.accept = accept

    def variant(self, change: dict[str, Any]) -> VmSpec | None:
        try:
            return with_changes(self.spec, change)
        except (ValueError, LayoutdError):
            return None

    def run(self, change: dict[str, Any]) -> tuple[Solution | None, list[Rejection], Problem | None]:
        variant = self.variant(change)
        if variant is None:
            return None, [], None
        target = self.target
        if variant.pci_devices != self.spec.pci_devices:
            if self.target_for is None or not variant.pci_devices:
                return None, [], None  # no devices means every IOMMU group: not a smaller change
            try:
                target = self.target_for(variant.pci_devices)
            except LayoutdError:
                return None, [], None
        try:
            problem = problem_for(variant, target, self.version)
            solution, rejections = solve(problem)
        except LayoutdError:
            return None, [], None
        return solution, rejections, problem

    def works(self, change: dict[str, Any]) -> Solution | None:
        solution = self.run(change)[0]
        if solution is not None and self.accept is not None:
            variant = self.variant(change)
            if variant is None or not self.accept(variant):
                return None
        return solution

    def why_not(self, change: dict[str, Any]) -> str:
        """What blocks `change`: the first reason a "no" would give."""
        solution, rejections, problem = self.run(change)
        if solution is not None and problem is not None:
            return "the assigned devices' BARs would not fit where every IOMMU maps them"
        if problem is None:
            return "it would not validate"
        return main_reason(problem, rejections).text


def suggestions(spec: VmSpec, target: Target, version: str, target_for: TargetFor | None = None,
                accept: Accept | None = None, stage: str = "") -> list[Suggestion]:
    """Every change that works, the simplest first; each one solved (and accepted). `stage`:
    what blocked (larger pages and fewer nodes are offered only when memory slots ran out)."""
    solver = Solver(spec, target, version, target_for, accept)
    found: list[Suggestion] = []
    makers = [_newer_machine, _hotplug, _size, _phys_bits, _devices, _machine_family]
    if stage == "slots":
        makers += [_hugepages, _no_numa]
    for make in makers:
        for change, why in make(solver):
            solution = solver.works(change)
            if solution is not None and all(change != s.change for s in found):
                found.append(Suggestion(change, why, len(solution.devices)))
    return found


Candidate = tuple[dict[str, Any], str]


def _newer_machine(solver: Solver) -> list[Candidate]:
    spec = solver.spec
    if spec.family not in ("q35", "pc"):
        return []
    try:
        machine = resolve(spec.machine_type, spec.arch, row(solver.version))
    except LayoutdError:
        return []
    if spec.windows:  # QEMU's relocation breaks Windows drivers: the type before it instead
        older = FAMILIES[spec.arch][spec.family] + str(WITHOUT_AMD_1TIB)
        if not amd_1tib_rule(machine.release) or spec.machine_type == older:
            return []
        return [({"machine": older}, f"machine types before {NEWER_MACHINE} keep RAM below the "
                 "HyperTransport hole (DIMMs hold the rest at 1 TiB); newer ones move it past "
                 "1 TiB on an AMD guest, which Windows drivers fail on (Code 43, RHEL-98247)")]
    if amd_1tib_rule(machine.release):
        return []
    newer = FAMILIES[spec.arch][spec.family] + NEWER_MACHINE
    why = (f"machine types {NEWER_MACHINE} and newer let QEMU move RAM above 4 GiB to 1 TiB for "
           f"an AMD guest, past the HyperTransport hole {hex_addr(AMD_HT_START)}-"
           f"{hex_addr(AMD_HT_END)}; libvirt keeps a "
           "domain's machine type until it is changed in <os><type machine=...>")
    return [({"machine": newer}, why)]


def _hotplug(solver: Solver) -> list[Candidate]:
    spec = solver.spec
    hotplug = spec.memory.hotplug
    if hotplug is None or spec.hotplug_room == 0:
        return []
    align = spec.memory.alignment
    size = spec.memory.size

    def change(units: int) -> dict[str, Any]:
        return {"memory.hotplug.max": format_size(size + units * align)}

    best = _largest(lambda units: solver.works(change(units)) is not None,
                    spec.hotplug_room // align - 1)
    if best:
        blocked = solver.why_not(change(best + 1))
        why = (f"the most hotplug room that plans, {format_size(best * align)} above memory.size; "
               f"one step more and {blocked}")
        return [(change(best), why)]
    return [({"memory.hotplug": None}, "no hotplug room: " + solver.why_not({}))]


def _size(solver: Solver) -> list[Candidate]:
    """The largest memory.size that plans: with hotplug.max as it is, else keeping the hotplug
    room (max moves with size), else without hotplug."""
    spec = solver.spec
    align = spec.memory.alignment
    modes = ["keep"] + (["room", "drop"] if spec.memory.hotplug is not None else [])
    for mode in modes:
        def change(units: int, mode: str = mode) -> dict[str, Any]:
            return _resized(spec, units * align, mode)

        smallest = -(-spec.memory.size // min(cell.size for cell in spec.numa)) if spec.numa else 1
        best = _largest(lambda units: solver.works(change(units)) is not None,
                        spec.memory.size // align - 1, smallest)
        if not best:
            continue
        blocked = solver.why_not(change(best + 1))
        what = ", numa sizes to match" if spec.numa else ""
        what += {"keep": "", "room": ", the hotplug room kept", "drop": ", without hotplug room"}[mode]
        return [(change(best), f"the largest memory.size that plans{what}; one step more and {blocked}")]
    return []


def _resized(spec: VmSpec, size: int, hotplug: str = "keep") -> dict[str, Any]:
    """memory.size and, in proportion, every NUMA cell (each a multiple of the alignment);
    hotplug.max as it is ("keep"), moved to keep the room ("room"), or removed ("drop")."""
    change: dict[str, Any] = {"memory.size": format_size(size)}
    if hotplug == "room":
        change["memory.hotplug.max"] = format_size(size + spec.hotplug_room)
    elif hotplug == "drop":
        change["memory.hotplug"] = None
    if spec.numa:
        align = spec.memory.alignment
        sizes = [cell.size * size // spec.memory.size // align * align for cell in spec.numa]
        sizes[-1] = size - sum(sizes[:-1])
        if min(sizes) <= 0:
            return {"memory.size": "0"}  # fails validation: too small for every node
        change["numa"] = [{"size": format_size(part), "cpus": cell.cpus}
                          for part, cell in zip(sizes, spec.numa, strict=True)]
    return change


def _largest(works: Callable[[int], bool], high: int, low: int = 1) -> int:
    """The largest units in low..high for which works() holds (0: none), by bisection."""
    if high < low or not works(low):
        return 0
    while low < high:
        middle = (low + high + 1) // 2
        if works(middle):
            low = middle
        else:
            high = middle - 1
    return low


def _phys_bits(solver: Solver) -> list[Candidate]:
    spec, bits = solver.spec, solver.target.host_phys_bits
    if spec.arch != "x86_64" or not spec.cpu.phys_bits or not bits or bits <= spec.cpu.phys_bits:
        return []
    return [({"cpu.phys_bits": bits}, f"the host CPU's width; the guest's {spec.cpu.phys_bits} bits "
             "end the address space too early")]


def _devices(solver: Solver) -> list[Candidate]:
    spec, target = solver.spec, solver.target
    found: list[Candidate] = []
    for device in spec.pci_devices:
        holes = [hole for hole in target.holes if device in hole.devices]
        if not holes:
            continue
        group = holes[0].group
        kept = [d for d in spec.pci_devices
                if not any(d in hole.devices and hole.group == group for hole in target.holes)]
        dropped = [d for d in spec.pci_devices if d not in kept]
        why = (f"drops {', '.join(dropped)} (IOMMU group {group}), whose holes block the layout")
        candidate = ({"devices": kept}, why)
        if candidate[0] not in [c for c, _ in found]:
            found.append(candidate)
    return found[:8]


def _machine_family(solver: Solver) -> list[Candidate]:
    spec = solver.spec
    if spec.family not in ("q35", "pc"):
        return []
    other = "pc" if spec.family == "q35" else "q35"
    change: dict[str, Any] = {"machine": other}
    if other == "pc" and spec.viommu == "intel":
        change["viommu"] = "none"
    return [(change, f"the {other} machine lays out RAM below 4 GiB and the 64-bit PCI hole "
                     "differently")]


def _hugepages(solver: Solver) -> list[Candidate]:
    spec = solver.spec
    page = 1 << 30
    if (spec.memory.hugepages or 0) >= page or spec.memory.size % page:
        return []
    if any(cell.size % page for cell in spec.numa):
        return []
    if spec.memory.hotplug is not None and spec.memory.hotplug.max % page:
        return []
    return [({"memory.hugepages": "1G"}, "larger pieces need fewer memory slots")]


def _no_numa(solver: Solver) -> list[Candidate]:
    if len(solver.spec.numa) < 2:
        return []
    return [({"numa": []}, "one node: each piece between holes needs a slot per node")]
