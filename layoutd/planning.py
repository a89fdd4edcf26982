"""Planning: probe the hosts, solve, check the emitted command line on the QEMU model (and,
asked, on the binary by a dry run), place the assigned BARs, and build the Plan.

`make_plan(spec, sources, qemu)` is what `plan`, `libvirt apply`/`fix` and the tests use;
commands/plan.py only parses arguments and writes the chosen format. `qemu_target` chooses the
QEMU a plan is made for as `check` does: the binary on PATH (its version, and the firmware files
it would load), unless --qemu-version says otherwise.
"""

from collections.abc import Sequence

from layoutd.emit.argv import qemu_argv
from layoutd.emit.qmp import qmp_commands
from layoutd.emulator import data_dirs, on_path, version_of_binary
from layoutd.errors import HostUnavailable, LayoutdError, NoAnswer, NoLayout
from layoutd.firmware.board import Placement
from layoutd.firmware.builds import Build
from layoutd.firmware.check import unjudged
from layoutd.firmware.files import identify
from layoutd.firmware.guest import family_of, read_argv
from layoutd.host import probe_host
from layoutd.models.guest import GuestMap
from layoutd.models.host import Device, HostView
from layoutd.models.plan import NotJudged, Plan, PlannedHostCpu
from layoutd.models.spec import VmSpec
from layoutd.qemu import versions
from layoutd.record import Record, replace
from layoutd.solver import Solved, Target, TargetFor, combine, solve_spec
from layoutd.solver.fit import fit_bars
from layoutd.solver.oracle import compare, model_map, windows_above
from layoutd.solver.suggest import Suggestion


class QemuTarget(Record, kw_only=False):
    """The QEMU a plan is made for: the version whose rules apply, how it was chosen, and, when
    a binary was asked, the folders it loads firmware from (None: Debian's pairing is taken)."""

    version: str
    how: str  # "--qemu-version", "/usr/bin/qemu-system-x86_64 --version", ...
    dirs: tuple[str, ...] | None = None
    note: str = ""  # a binary whose version is not modelled: whose rules were used instead
    binary: str | None = None  # the binary asked; it boots a firmware without a model


def qemu_target(chosen: str | None, binary: str | None, arch: str) -> QemuTarget:
    """--qemu-version; else the binary (--verify's, else qemu-system-ARCH on PATH, as `check`
    asks it): its own version when modelled, else the nearest older modelled one; with no QEMU
    on PATH, the default version, said so."""
    if chosen is not None:
        return QemuTarget(str(versions.row(chosen).version), "--qemu-version")
    path = on_path(binary or f"qemu-system-{arch}")
    if path is None and binary is None:
        return QemuTarget(str(versions.DEFAULT), f"no qemu-system-{arch} on PATH; --qemu-version "
                          "X.Y chooses another")

    found = version_of_binary(path or str(binary), modelled_only=False)
    how = f"{path or binary} --version"
    dirs = data_dirs(path) if path else None
    if versions.is_modelled(found):
        return QemuTarget(found, how, dirs, binary=path)
    nearest = versions.nearest_older(found)
    return QemuTarget(str(nearest), how, dirs, f"QEMU {found} is not modelled: planned with QEMU "
                      f"{nearest}'s rules" + ("" if binary else "; --verify confirms the plan by "
                                              "a dry run of the binary"), path)


def verify(plan: Plan, binary: str, note: str) -> Plan:
    """The plan, if a dry run of `binary` with its whole command line (VFIO devices left out)
    starts and builds exactly its RAM map (`note`: said with a refusal; the plan has it)."""
    # starts QEMU (socket, subprocess, threading, ctypes: ~10 ms): only a run that needs one
    from layoutd.dryrun import differences, dry_run

    run = dry_run(binary, plan.qemu_argv, plan.config.arch, whole=True)
    wrong = differences(plan.layout, run.vm.layout())
    if wrong:
        raise NoAnswer(f"the dry run of {binary} (QEMU {run.version}) does not build the planned "
                       "map: " + "; ".join(wrong) + (f" ({note})" if note else ""))
    said = f"verified: a dry run of {binary} (QEMU {run.version}) builds exactly this map"
    return replace(plan, notes=(*plan.notes, said))


def make_plan(spec: VmSpec, sources: Sequence[str], qemu: str | QemuTarget) -> Plan:
    """Probe every host, solve, check the argv on the QEMU model, and build the Plan, made for
    `qemu` (a version alone: its rules, and the firmware Debian ships with it)."""
    if not isinstance(qemu, QemuTarget):
        qemu = QemuTarget(qemu, "--qemu-version")
    version = qemu.version

    def views_for(devices: Sequence[str]) -> list[HostView]:
        return [probe_host(source, list(devices) or None) for source in sources]

    def target_for(devices: Sequence[str]) -> Target:
        views = views_for(devices)
        return combine(views, [view.source for view in views])

    views = views_for(spec.pci_devices)
    target = combine(views, [view.source for view in views])
    bars = bar_fitter(spec, target, qemu, views[0], target_for)
    solved = solve_spec(spec, target, version, target_for, bars.accept if bars else None)
    plan = assemble(spec, target, solved, version)
    plan = bars.fit(spec, plan) if bars else plan
    build, note = firmware_of(plan, qemu)
    what = (f"{build.name}, {note or plan.config.firmware}" if build is not None
            else note or "no firmware")
    said = f"QEMU {version} ({qemu.how}) and {what}"
    warnings = (*([qemu.note] if qemu.note else []),
                *(w for w in plan.warnings if w != note))  # the firmware is said in planned_for
    return replace(plan, planned_for=said, firmware=build.name if build else None,
                   warnings=tuple(warnings))


def firmware_of(plan: Plan, qemu: QemuTarget) -> tuple[Build | None, str | None]:
    """The firmware build the plan's command line boots on `qemu` (files.identify), and how it
    was found."""
    return identify(plan.config.firmware, qemu.version, plan.config.arch, qemu.dirs)


BOOTED_TRIES = 12  # candidate plans whose firmware a plan boots, at most


class BarFitter:
    """Places the assigned BARs as the plan's firmware does (layoutd.firmware.fit); also the
    check every suggested spec passes before it is shown."""

    def __init__(self, target: Target, qemu: QemuTarget, target_for: TargetFor,
                 devices: dict[str, Device]):
        self.target, self.qemu, self.target_for, self.devices = target, qemu, target_for, devices
        self.version = qemu.version

    def replan(self, variant: VmSpec, oracle: bool = True) -> Plan:
        solved = solve_spec(variant, self.target, self.version, self.target_for)
        return assemble(variant, self.target, solved, self.version, oracle)

    def fit(self, spec: VmSpec, plan: Plan) -> Plan:
        """The plan with its BARs placed, every one where the hosts' IOMMUs map it, or a "no";
        a firmware build layoutd does not know is said so."""
        build, note = firmware_of(plan, self.qemu)
        if build is None and plan.config.arch == "x86_64" and plan.config.firmware:
            return self.fit_booted(spec, plan, plan.config.firmware, note or "")
        if build is None:
            return not_judged(spec, plan, self.devices, note or "the firmware is not known", "")
        try:
            return fit_bars(spec, plan, self.target, self.devices, build, self.replan,
                            lambda other: firmware_of(other, self.qemu)[0])
        except NoLayout as error:
            raise self.newer_qemu(spec, error) from error

    def newer_qemu(self, spec: VmSpec, error: NoLayout) -> NoLayout:
        """arm virt on a QEMU without highmem-mmio (7.2): a "no" with nothing close says when
        the oldest modelled QEMU that has it plans (highmem_mmio: false), planned with it."""
        if error.suggestions or spec.arch != "aarch64" or versions.row(self.version).virt_highmem_props:
            return error
        newer = next((row for row in versions.ROWS.values() if row.virt_highmem_props
                      and versions.is_modelled(str(row.version))), None)
        if newer is None:
            return error
        other = BarFitter(self.target, QemuTarget(str(newer.version), "--qemu-version"),
                          self.target_for, self.devices)
        try:
            placed = other.fit(spec, other.replan(spec))
        except LayoutdError:
            return error
        chosen = [w.split(" chosen so that ")[0] for w in placed.warnings if " chosen so that " in w]
        where = ", ".join(f"{b.device} BAR{b.bar} at {b.start:#x}" for b in placed.bars
                          if b.start is not None)
        idea = Suggestion({"highmem_mmio": False} if "highmem_mmio false" in chosen else {},
                          f"with QEMU {newer.version} or newer (plan --qemu-version "
                          f"{newer.version}): QEMU {self.version} has no -machine highmem-mmio; "
                          f"{placed.firmware} then puts {where}")
        return NoLayout(error.headline, error.lines, [idea], details=dict(error.details))

    def fit_booted(self, spec: VmSpec, plan: Plan, firmware: str, note: str) -> Plan:
        """A firmware without a model: each candidate plan's BARs placed by booting it
        (layoutd.boot) with the QEMU binary asked (else qemu-system-x86_64 on PATH); one that
        cannot be booted is said: the BARs are not judged."""
        binary = self.qemu.binary or on_path("qemu-system-x86_64") or "qemu-system-x86_64"
        label = f"firmware {firmware}"
        said: list[str] = []

        def boot(argv: Sequence[str], guest: GuestMap) -> Placement:
            pci = read_argv(argv, family_of(guest), self.devices)
            # starts QEMU (socket, subprocess, threading, ctypes: ~10 ms): only a run that needs one
            from layoutd.boot import booted_placement

            answer = booted_placement(binary, argv, "x86_64", guest, pci, self.devices, label)
            said[:] = answer.notes
            if answer.placement is None:
                raise HostUnavailable("; ".join(answer.notes))
            return answer.placement

        family = "ovmf" if firmware.endswith(".fd") else "seabios"
        try:
            placed = fit_bars(spec, plan, self.target, self.devices, Build(family, "0", label),
                              self.replan, lambda other: None, boot, BOOTED_TRIES)
        except HostUnavailable as error:
            return not_judged(spec, plan, self.devices, f"BARs not judged: {error.message}", note)
        return replace(placed, warnings=(*placed.warnings, *said))

    def accept(self, variant: VmSpec) -> bool:
        try:
            self.fit(variant, self.replan(variant, oracle=False))
        except LayoutdError:
            return False
        return True


def not_judged(spec: VmSpec, plan: Plan, devices: dict[str, Device], why: str,
               note: str) -> Plan:
    """The plan with the assigned devices' 64-bit BARs said not judged (`why`), as check says
    them: `plan` then exits 3 and never shows the plan as clear."""
    names = unjudged(read_argv(plan.qemu_argv, spec.family, devices), spec.pci_devices)
    said = tuple(NotJudged(what=name, why=why) for name in names)
    warnings = tuple(dict.fromkeys(w for w in (*plan.warnings, note, why) if w))
    return replace(plan, warnings=warnings, not_judged=(*plan.not_judged, *said))


def bar_fitter(spec: VmSpec, target: Target, qemu: QemuTarget, first: HostView,
               target_for: TargetFor) -> BarFitter | None:
    """With devices: the fitter, with the devices' BARs read from the first host."""
    if not spec.pci_devices:
        return None
    return BarFitter(target, qemu, target_for, {d.address: d for d in first.devices})


def assemble(spec: VmSpec, target: Target, solved: Solved, version: str,
             oracle: bool = True) -> Plan:
    """The Plan; `oracle`: check the emitted argv on the QEMU model (off: a trial for the BARs)."""
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
    argv: Sequence[str], solved: Solved, version: str, host_cpu: PlannedHostCpu, target: Target
) -> tuple[GuestMap, tuple[str, ...]]:
    """Run the QEMU model on the emitted argv: the plan stands only if it yields the planned map.
    Returns the model's map: every figure of the plan about QEMU's regions comes from it."""
    guest = model_map(argv, version, host_cpu, solved.config.arch, target.platform)
    predicted = guest.layout
    problems = compare(solved.layout, predicted, target.holes)
    if problems:
        raise NoAnswer(
            "internal disagreement: the QEMU model does not build the planned map from the "
            "emitted arguments: " + "; ".join(problems[:5])
        )
    return guest, tuple(windows_above(guest, target.top))
