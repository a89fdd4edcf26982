"""Planning: probe the hosts, solve, check the emitted command line on the QEMU model (and,
asked, on the binary by a dry run), place the assigned BARs, and build the Plan.

`make_plan(spec, sources, version)` is what `plan`, `libvirt apply`/`fix` and the tests use;
commands/plan.py only parses arguments and writes the chosen format.
"""

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from layoutd.record import replace

if TYPE_CHECKING:
    from layoutd.models.guest import GuestMap
    from layoutd.models.host import HostView
    from layoutd.models.plan import Plan
    from layoutd.models.spec import VmSpec
    from layoutd.solver import Solved, Target


def model_version(chosen: str | None, binary: str | None) -> tuple[str, str]:
    """The QEMU version whose rules the solver uses, and a note when that is not the binary's:
    --qemu-version; else the binary's own when modelled, else the nearest older modelled one."""
    from layoutd.qemu import versions

    if chosen is not None or binary is None:
        return str(versions.row(chosen or versions.DEFAULT).version), ""
    from layoutd.emulator import version_of_binary

    found = version_of_binary(binary, modelled_only=False)
    if versions.is_modelled(found):
        return found, ""
    nearest = versions.nearest_older(found)
    return str(nearest), f"QEMU {found} is not modelled: planned with QEMU {nearest}'s rules"


def verify(plan: "Plan", binary: str, note: str) -> "Plan":
    """The plan, if a dry run of `binary` with its whole command line (VFIO devices left out)
    starts and builds exactly its RAM map."""
    from layoutd.dryrun import differences, dry_run
    from layoutd.errors import NoAnswer

    run = dry_run(binary, plan.qemu_argv, plan.config.arch, whole=True)
    wrong = differences(plan.layout, run.vm.layout())
    if wrong:
        raise NoAnswer(f"the dry run of {binary} (QEMU {run.version}) does not build the planned "
                       "map: " + "; ".join(wrong) + (f" ({note})" if note else ""))
    said = f"verified: a dry run of {binary} (QEMU {run.version}) builds exactly this map"
    return replace(plan, warnings=(*plan.warnings, *([note] if note else []), said))


def make_plan(spec: "VmSpec", sources: Sequence[str], version: str) -> "Plan":
    """Probe every host, solve, check the argv on the QEMU model, and build the Plan."""
    from layoutd.host import probe_host
    from layoutd.solver import combine, solve_spec

    def views_for(devices: Sequence[str]) -> list["HostView"]:
        return [probe_host(source, list(devices) or None) for source in sources]

    def target_for(devices: Sequence[str]) -> "Target":
        views = views_for(devices)
        return combine(views, [view.source for view in views])

    views = views_for(spec.pci_devices)
    target = combine(views, [view.source for view in views])
    bars = bar_fitter(spec, target, version, views[0], target_for)
    solved = solve_spec(spec, target, version, target_for, bars.accept if bars else None)
    plan = assemble(spec, target, solved, version)
    return bars.fit(spec, plan) if bars else plan


BOOTED_TRIES = 12  # candidate plans whose firmware a plan boots, at most


class BarFitter:
    """Places the assigned BARs as the plan's firmware does (layoutd.firmware.fit); also the
    check every suggested spec passes before it is shown."""

    def __init__(self, target: "Target", version: str, target_for: Any, devices: dict[str, Any],
                 binary: str = "qemu-system-x86_64"):
        self.target, self.version, self.target_for, self.devices = target, version, target_for, devices
        self.binary = binary  # what boots a firmware without a model

    def replan(self, variant: "VmSpec", oracle: bool = True) -> "Plan":
        from layoutd.solver import solve_spec

        solved = solve_spec(variant, self.target, self.version, self.target_for)
        return assemble(variant, self.target, solved, self.version, oracle)

    def fit(self, spec: "VmSpec", plan: "Plan") -> "Plan":
        """The plan with its BARs placed, every one where the hosts' IOMMUs map it, or a "no";
        a firmware build layoutd does not know is said so."""
        from layoutd.firmware.files import identify
        from layoutd.firmware.fit import fit_bars

        build, note = identify(plan.config.firmware, self.version, plan.config.arch)
        if build is None and plan.config.arch == "x86_64" and plan.config.firmware:
            return self.fit_booted(spec, plan, plan.config.firmware, note or "")
        if build is None:
            return replace(plan, warnings=(*plan.warnings, note or ""))
        placed = fit_bars(spec, plan, self.target, self.devices, build, self.replan)
        return replace(placed, warnings=(*placed.warnings, *([note] if note else [])))

    def fit_booted(self, spec: "VmSpec", plan: "Plan", firmware: str, note: str) -> "Plan":
        """A firmware without a model: each candidate plan's BARs placed by booting it
        (layoutd.boot) with this QEMU binary; one that cannot be booted is said, not judged."""
        from layoutd.boot import booted_placement
        from layoutd.errors import HostUnavailable, NoLayout
        from layoutd.firmware.builds import Build
        from layoutd.firmware.fit import fit_bars
        from layoutd.firmware.guest import family_of, read_argv

        label = f"firmware {firmware}"
        family = "ovmf" if firmware.endswith(".fd") else "seabios"
        said: list[str] = []

        def boot(argv: Sequence[str], guest: "GuestMap") -> Any:
            pci = read_argv(argv, family_of(guest), self.devices)
            answer = booted_placement(self.binary, argv, "x86_64", guest, pci,
                                      self.devices, label)
            said[:] = answer.notes
            if answer.placement is None:
                raise HostUnavailable("; ".join(answer.notes))
            return answer.placement

        try:
            placed = fit_bars(spec, plan, self.target, self.devices,
                              Build(family, "0", label), self.replan, boot, BOOTED_TRIES)
        except HostUnavailable as error:
            return replace(plan, warnings=(*plan.warnings, note, f"BARs not judged: {error.message}"))
        except NoLayout:
            raise
        return replace(placed, warnings=(*placed.warnings, *said))

    def accept(self, variant: "VmSpec") -> bool:
        from layoutd.errors import LayoutdError

        try:
            self.fit(variant, self.replan(variant, oracle=False))
        except LayoutdError:
            return False
        return True


def bar_fitter(spec: "VmSpec", target: "Target", version: str, first: "HostView",
               target_for: Any) -> BarFitter | None:
    """With devices: the fitter, with the devices' BARs read from the first host."""
    if not spec.pci_devices:
        return None
    return BarFitter(target, version, target_for, {d.address: d for d in first.devices})


def assemble(spec: "VmSpec", target: "Target", solved: "Solved", version: str,
             oracle: bool = True) -> "Plan":
    """The Plan; `oracle`: check the emitted argv on the QEMU model (off: a trial for the BARs)."""
    from layoutd.emit.argv import qemu_argv
    from layoutd.emit.qmp import qmp_commands
    from layoutd.models.plan import Plan, PlannedHostCpu

    argv = qemu_argv(solved.config, qemu_version=version)
    host_cpu = PlannedHostCpu(vendor=target.host_vendor, phys_bits=target.host_phys_bits,
                              kvm_smm=target.kvm_smm)
    guest, notes = (oracle_check(argv, solved, version, host_cpu, target) if oracle
                    else (None, ()))
    return Plan(
        name=spec.name,
        qemu_version=version,
        config=solved.config,
        layout=guest.layout if guest else solved.layout,
        qemu_argv=tuple(argv),
        qmp=tuple(qmp_commands(solved.config)),
        warnings=solved.warnings + notes,
        hosts=target.hosts,
        usable=target.usable,
        holes=target.holes,
        highest_address=guest.highest_address if guest else solved.highest,
        hotplug_room=solved.hotplug_room,
        default_layout=solved.default_layout,
        host_cpu=host_cpu,
        regions=guest.regions if guest else (),
        host_platform=target.platform,
    )


def oracle_check(
    argv: Sequence[str], solved: "Solved", version: str, host_cpu: Any, target: "Target"
) -> tuple["GuestMap", tuple[str, ...]]:
    """Run the QEMU model on the emitted argv: the plan stands only if it yields the planned map.
    Returns the model's map: every figure of the plan about QEMU's regions comes from it."""
    from layoutd.errors import NoAnswer
    from layoutd.solver.oracle import compare, model_map, windows_above

    guest = model_map(argv, version, host_cpu, solved.config.arch, target.platform)
    predicted = guest.layout
    problems = compare(solved.layout, predicted, target.holes)
    if problems:
        raise NoAnswer(
            "internal disagreement: the QEMU model does not build the planned map from the "
            "emitted arguments: " + "; ".join(problems[:5])
        )
    return guest, tuple(windows_above(guest, target.top))
