"""Checking: the services behind `check`.

The judgement itself, `check(layout, host)`, is collisions.check (each RAM range against
`HostView.forbidden()`), and with the BARs `firmware.check.verdict`. `check_command_line` builds
the map `check -- QEMU ARGV` reports (the QEMU model, else a dry run of the binary) with what the
report needs (BARs, fixes); libvirt/guard.py does the same for a domain; commands/check.py
prints it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from layoutd.collisions import check
from layoutd.emulator import binary_version, data_dirs, version_of_binary
from layoutd.errors import InputError, LayoutdError, NotModelled, QemuRefusal, UnknownDevice
from layoutd.firmware import place
from layoutd.firmware.builds import Build
from layoutd.firmware.check import BarCheck, check_bars
from layoutd.firmware.check import unjudged as bars_of
from layoutd.firmware.files import identify
from layoutd.firmware.fixes import arm_bar_fixes, bar_fixes
from layoutd.firmware.guest import board, family_of, page_1g, read_argv
from layoutd.fixes import Fix, Predict, distro_machine_fix, fixes, refusal_fixes
from layoutd.host import probe_host
from layoutd.libvirt_versions import libvirt_target
from layoutd.models.common import GuestRegion
from layoutd.models.guest import GuestMap
from layoutd.models.host import HostView
from layoutd.qemu import arch_of_binary, predict
from layoutd.qemu.config import parse_config, ram_bars_of
from layoutd.qemu.cpus import NeedsHostCpu
from layoutd.qemu.options import split_argv
from layoutd.qemu.readconfig import PROXMOX_FILES, options_of
from layoutd.qemu.versions import Version, is_modelled
from layoutd.qemu.x86 import AMD_ABOVE_1TB
from layoutd.record import Record, replace
from layoutd.units import human_size


def unjudged(bars: BarCheck | None) -> list[str]:
    """The assigned BARs whose place nothing told (`check` then exits 3, never "no collision";
    fleet: not a member)."""
    return list(bars.not_judged) if bars is not None else []


class Checked(Record, kw_only=False, frozen=False):
    """A guest map on a host, and what its report needs."""

    guest: GuestMap
    host: HostView
    devices: list[str]
    fixes_for: Callable[[], list[Fix]] | None = None  # the verified changes that clear collisions
    language: str = "argv"  # how fixes are said: argv options or libvirt XML
    bars: BarCheck | None = None  # the assigned devices' 64-bit BARs


def check_command_line(command: Sequence[str], *, host_source: str | None,
                       given: Sequence[str] = (), version: str | None = None,
                       verify: bool = False, windows: bool = False) -> Checked:
    """`check -- QEMU_BINARY ARG...`: the map the binary builds (modelled, else its dry run)."""
    binary, qemu_args = command[0], command[1:]
    arch = arch_of_binary(binary)
    qemu_args, read = read_configs(qemu_args)
    checked = _check_argv(binary, qemu_args, arch, host_source, given, version, verify, windows)
    if read:
        checked.guest = replace(checked.guest, warnings=(*read, *checked.guest.warnings))
    return checked


def read_configs(qemu_args: Sequence[str]) -> tuple[list[str], list[str]]:
    """The command line with each `-readconfig FILE` replaced by the options the file holds, and
    what was said about them: a Proxmox file that is not here is taken from what qemu-server's
    defines (readconfig.PROXMOX_FILES); any other file that cannot be read is bad input."""
    options = split_argv(qemu_args)
    if not any(option.name == "readconfig" for option in options):
        return list(qemu_args), []
    argv: list[str] = []
    said: list[str] = []
    for option in options:
        if option.name != "readconfig":
            argv += qemu_args[option.position:option.position + (1 if option.value is None else 2)]
            continue
        path = option.value or ""
        try:
            with open(path, encoding="utf-8") as handle:
                text = handle.read(1 << 20)
        except OSError as error:
            if path not in PROXMOX_FILES:
                raise InputError(f"-readconfig {path}: cannot read it ({error.strerror}), and "
                                 "what it defines may change guest memory", field="qemu argv") from error
            text = PROXMOX_FILES[path]
            said.append(f"-readconfig {path} is not on this machine ({error.strerror}): read "
                        "as qemu-server's file defines it (USB, audio, root ports "
                        "ich9-pcie-port-1..4, DMI and PCI bridges pci.0-pci.3)")
        argv += options_of(text, path)
    return argv, said


def _check_argv(binary: str, qemu_args: list[str], arch: str, host_source: str | None,
                given: Sequence[str], version: str | None, verify: bool, windows: bool) -> Checked:
    asked = not version  # --qemu-version: the firmware Debian ships with it
    if version and not is_modelled(version):
        same_binary(binary, version, f"--qemu-version {version} is not modelled")
    given_version = version
    version = version or version_of_binary(binary, modelled_only=False)
    if not is_modelled(version):
        return dry_run_check(binary, qemu_args, arch, f"QEMU {version} is not modelled",
                              host_source, given)
    dirs = binary_dirs(binary) if asked else None
    try:  # bad command lines fail before the host is asked
        first = predict(qemu_args, version=version, arch=arch, host_cpu=None)
    except NeedsHostCpu:
        first = None
    except QemuRefusal as refusal:
        if TOO_FEW_BITS not in refusal.message:
            raise
        first = None  # what makes QEMU take it is said with the host's holes known
    except NotModelled as error:  # a distro machine type...: the binary itself answers
        if given_version:
            same_binary(binary, given_version, f"the QEMU {version} model cannot answer "
                        f"({error.message})")
        return dry_run_check(binary, qemu_args, arch, f"not modelled ({error.message})",
                              host_source, given)
    assigned = first.vfio_devices if first else _vfio_of(qemu_args)
    devices = merge_devices(assigned, list(given))
    host = probe_devices(host_source, devices, {d: (None, f"-device vfio-pci,host={d}") for d in assigned})

    def predicted(changed: Sequence[str]) -> Any:
        return predict(changed, version=version, arch=arch, host_cpu=host.cpu, host=host.platform)

    def again(changed: Sequence[str]) -> GuestMap:  # a fix, with ivshmem & co placed by the model
        return place_ram_bars(predicted(changed), host, changed, devices, dirs=dirs)

    try:
        guest = with_host(host, lambda: predicted(qemu_args))
    except QemuRefusal as refusal:
        raise _refused(refusal, qemu_args, again, host, devices, windows) from refusal
    if verify:
        guest = verified(guest, binary, qemu_args, arch)
    bars = bar_check(guest, host, qemu_args, devices, dirs, binary, verify)
    guest = place_ram_bars(guest, host, qemu_args, devices, bars)
    return Checked(for_windows(guest, windows), host, devices,
                   verified_fixes(qemu_args, guest, again, host, windows), bars=bars)


def binary_dirs(binary: str | None) -> tuple[str, ...] | None:
    """The folders `binary` loads firmware from (None: not known; Debian's pairing is taken)."""
    return data_dirs(binary) if binary else None


TOO_FEW_BITS = "phys-bits too low"


def _refused(refusal: QemuRefusal, args: Sequence[str], again: Predict,
             host: HostView, devices: Sequence[str], windows: bool = False) -> QemuRefusal:
    """QEMU's refusal of `phys-bits too low`, with what would make QEMU take the command line
    (each predicted again, its RAM and assigned BARs clear of the host's holes)."""
    if TOO_FEW_BITS not in refusal.message:
        return refusal
    try:
        ram = parse_config(args).ram_size
    except LayoutdError:
        ram = None

    def clear(guest: GuestMap, changed: Sequence[str]) -> bool:
        bars = bar_check(guest, host, changed, devices)
        return (not check(guest.layout, host) and not (bars and bars.collisions)
                and for_windows(guest, windows) is guest)

    found = refusal_fixes(args, ram, again, clear)
    return QemuRefusal(refusal.message, file=refusal.file, field=refusal.field,
                       fixes=tuple(fix.as_json("argv") for fix in found))


def same_binary(binary: str, version: str, why: str) -> None:
    """What the model cannot answer for --qemu-version X is answered by a dry run of the binary:
    refuse (exit 2, naming both) when the binary says it is another version."""
    found = binary_version(binary)
    if found is not None and found.release != Version.parse(version).release:
        raise InputError(f"{why}, so layoutd asks the binary itself (a dry run), but {binary} is "
                         f"QEMU {found}, not {version}: give the QEMU {version} binary after --, "
                         f"or --qemu-version {found.release}", field="--qemu-version")


def dry_run_check(binary: str, qemu_args: Sequence[str], arch: str, why: str,
                   host_source: str | None, given: Sequence[str]) -> Checked:
    """check's answer from a dry run of the binary (the model cannot answer)."""
    guest = dry_run_map(binary, qemu_args, arch, why)
    devices = merge_devices(guest.vfio_devices, list(given))
    origins: dict[str, tuple[str | None, str]] = {
        d: (None, f"-device vfio-pci,host={d}") for d in guest.vfio_devices}
    host = probe_devices(host_source, devices, origins)

    def again(changed: Sequence[str]) -> GuestMap:
        return dry_run_map(binary, changed, arch, why)

    guest, bars = dry_run_bars(guest, host, qemu_args, devices, binary)
    return Checked(guest, host, devices, _distro_fixes_for(qemu_args, guest, again, host),
                   bars=bars)


def dry_run_bars(guest: GuestMap, host: HostView, qemu_args: Sequence[str],
                 devices: Sequence[str], binary: str, unmodelled: str | None = None
                 ) -> tuple[GuestMap, Any]:
    """A map from a dry run with its RAM-backed BARs placed, and the BARs: where the firmware
    puts them when it can be booted (or is modelled), else (or with `unmodelled`: why no
    firmware model applies) every assigned BAR and RAM-backed BAR is said not judged."""
    bars = _bars_of_dry_run(guest, host, qemu_args, devices, binary, unmodelled)
    return place_ram_bars(guest, host, qemu_args, devices, bars), bars


def _bars_of_dry_run(guest: GuestMap, host: HostView, qemu_args: Sequence[str],
                     devices: Sequence[str], binary: str, why: str | None) -> Any:
    if not guest.vfio_devices and not guest.ram_bars:
        return None
    if why is None:
        try:
            return bar_check(guest, host, qemu_args, devices, None, binary)
        except LayoutdError as error:
            why = error.message
    pci = read_argv(qemu_args, family_of(guest), {d.address: d for d in host.devices})
    return BarCheck(None, notes=[f"BARs not placed: {why}"], how_known="unknown",
                    not_judged=bars_of(pci, devices))


def _distro_fixes_for(args: Sequence[str], guest: GuestMap, again: Predict,
                      host: HostView) -> Callable[[], list[Fix]]:
    """A distro machine type without the AMD 1 TiB rule: its distro's first type with it (RHEL:
    pc-q35-rhel9.2.0), shown only when a dry run of the binary builds it clear of the holes."""
    def found() -> list[Fix]:
        fix = distro_machine_fix(args, again, lambda changed: not check(changed.layout, host))
        return [fix] if fix else []

    return found


def place_ram_bars(guest: GuestMap, host: HostView, qemu_args: Sequence[str], devices: Sequence[str],
                   bars: BarCheck | None = None,
                   dirs: Sequence[str] | None = None) -> GuestMap:
    """The map with the guest memory behind emulated devices' BARs (ivshmem, virtio-gpu host
    memory) in `layout` where the firmware puts it, judged like RAM from then on: VFIO maps it.
    A BAR that could not be placed is said, never judged clear."""
    if not guest.ram_bars:
        return guest
    bars = bars or bar_check(guest, host, qemu_args, devices, dirs)
    placement = bars.placement if bars is not None else None
    placed = {(p.device, p.bar): p for p in placement.bars} if placement else {}
    regions, notes = [], []
    for ram_bar in guest.ram_bars:
        found = placed.get((ram_bar.id, ram_bar.bar))
        what = f"{ram_bar.kind} {ram_bar.id} BAR{ram_bar.bar} ({human_size(ram_bar.size)})"
        if not ram_bar.size:  # ivshmem-doorbell: the ivshmem server gives the memory at start
            notes.append(f"NOT JUDGED: {ram_bar.kind} {ram_bar.id} BAR{ram_bar.bar}: its shared "
                         "memory comes from the ivshmem server at start, so its size and place "
                         "are not known")
            if bars is not None:
                bars.not_judged.append(f"{ram_bar.kind} {ram_bar.id} BAR{ram_bar.bar}")
        elif found is None or placement is None:
            why = (bars.notes[0] if bars is not None and bars.notes else "the firmware is not known")
            notes.append(f"NOT JUDGED: {what}: guest memory VFIO maps once the firmware places "
                         f"it, and its place is not predicted ({why})")
            if bars is not None:
                bars.not_judged.append(f"{ram_bar.kind} {ram_bar.id} BAR{ram_bar.bar}")
        elif found.start is None or found.end is None:
            notes.append(f"{what} is left unassigned by {placement.firmware}: the guest cannot "
                         "use it, and VFIO maps nothing of it")
        else:
            regions.append(GuestRegion(start=found.start, end=found.end, kind=ram_bar.kind,
                                       id=ram_bar.id))
    layout = tuple(sorted((*guest.layout, *regions), key=lambda region: region.start))
    return replace(guest, layout=layout, warnings=(*guest.warnings, *notes))


def domain_ram_bars(guest: GuestMap, host: HostView, argv: Sequence[str], devices: Sequence[str],
                    dirs: Sequence[str] | None = None) -> GuestMap:
    """A libvirt domain's map with its <shmem>s (in `argv`, from with_buses) placed and in
    `layout`, judged like RAM (place_ram_bars)."""
    found = ram_bars_of(argv)
    if not found:
        return guest
    return place_ram_bars(replace(guest, ram_bars=found), host, argv, devices, dirs=dirs)


def bar_check(guest: GuestMap, host: HostView, qemu_args: Sequence[str], devices: Sequence[str],
              dirs: Sequence[str] | None = None, binary: str | None = None,
              verify: bool = False, libvirt: str | None = None) -> Any:
    """Where the firmware puts the assigned devices' 64-bit BARs, and what they collide with:
    the model of a known build; a boot of the firmware (`binary`) for an x86 firmware without a
    model, or for any with `verify`; else nothing judged, said so (`not_judged`).
    `dirs`: the folders the QEMU binary loads firmware from, after the command line's -L;
    `libvirt`: the --libvirt-version the fixes are said for (a domain's check)."""
    if not guest.vfio_devices and not guest.ram_bars:
        return None
    hosted = {device.address: device for device in host.devices}
    pci = read_argv(qemu_args, family_of(guest), hosted)
    search = [*pci.data_dirs, *dirs] if dirs is not None else (pci.data_dirs or None)
    build, note = identify(pci.firmware, guest.qemu_version, guest.arch, search)
    config = parse_config(qemu_args)
    booted = None
    boot_notes: list[str] = []
    missing: list[str] = []
    if binary and guest.arch == "x86_64" and (build is None or verify):
        label = (f"firmware {pci.firmware}" if pci.firmware else
                 f"QEMU {guest.qemu_version}'s own bios-256k.bin")
        # starts QEMU (socket, subprocess, threading, ctypes: ~10 ms): only a run that needs one
        from layoutd.boot import booted_placement

        answer = booted_placement(binary, qemu_args, guest.arch, guest, pci, hosted,
                                  build.name if build else label)
        booted, boot_notes, missing = answer.placement, answer.notes, answer.missing
    result = check_bars(guest, host, pci, build, page_1g(config.cpu_model, config.cpu_props),
                        devices, config.cpu_props, booted)
    if booted is not None and build is not None:
        boot_notes += _model_against_boot(build, guest, pci, config, devices, result)
    unknown = [note] if note and build is None and booted is None else []
    result.notes[:0] = [*unknown, *boot_notes]
    result.loaded = note if build is not None else None
    result.not_judged += missing
    ovmf = build.family == "ovmf" if build else bool(pci.firmware_pflash or str(
        pci.firmware or "").endswith(".fd"))
    if result.collisions and (build is not None or booted is not None):
        result.fixes = lambda: _bar_fixes(qemu_args, guest, host, devices, ovmf, dirs,
                                          binary if booted is not None else None, libvirt)
    return result


def _model_against_boot(build: Build, guest: GuestMap, pci: Any, config: Any, devices: Sequence[str],
                        booted: Any) -> list[str]:
    """--verify with a known build: whether its model put the BARs where the boot found them."""
    model = place(build, board(guest, pci, page_1g(config.cpu_model, config.cpu_props),
                               config.cpu_props))
    said = {(p.device, p.bar): p.start for p in model.bars if p.device in devices and p.is64}
    wrong = []
    for bar in booted.bars:
        start = None if bar["start"] is None else int(str(bar["start"]), 16)
        modelled = said.get((bar["device"], bar["bar"]))
        if start != modelled:
            wrong.append(f"{bar['device']} BAR{bar['bar']} at {bar['start'] or 'unassigned'} "
                         f"(model: {'unassigned' if modelled is None else hex(modelled)})")
    if wrong:
        return [f"--verify: the {build.name} model placed BARs elsewhere; the booted places are "
                f"shown: {'; '.join(wrong)}"]
    return [f"--verify: the {build.name} model put every BAR where the boot found it"]


def _bar_fixes(qemu_args: Sequence[str], guest: GuestMap, host: HostView, devices: Sequence[str],
               ovmf: bool, dirs: Sequence[str] | None, binary: str | None,
               libvirt: str | None = None) -> list[Any]:
    """Fewer phys-bits or OVMF's window, each checked again on the model (RAM and BARs), or by
    booting the firmware again (`binary`: the placement was a boot's); the XML said for
    `libvirt` (--libvirt-version)."""
    budget = [BOOTED_FIXES if binary else 1 << 30]  # each candidate booted: the likeliest few

    def clear(changed: Sequence[str]) -> bool:
        budget[0] -= 1
        if budget[0] < 0:
            return False
        try:
            again = predict(changed, version=guest.qemu_version, arch=guest.arch, host_cpu=host.cpu,
                            host=host.platform)
            bars = bar_check(again, host, changed, devices, dirs, binary)
            again = place_ram_bars(again, host, changed, devices, bars, dirs)
        except LayoutdError:
            return False
        return (not check(again.layout, host) and bars is not None and not bars.collisions
                and not bars.not_judged)

    if guest.arch == "aarch64":
        return arm_bar_fixes(qemu_args, clear)
    config = parse_config(qemu_args)
    top = host.aperture_end if host.aperture_end is not None else (1 << 64) - 1
    host_cpu = config.accel == "kvm" and (config.cpu_model or "") in ("host", "max")

    return bar_fixes(qemu_args, guest.phys_bits, (top + 1).bit_length() - 1, ovmf, host_cpu,
                     clear, libvirt_target(libvirt).version)


BOOTED_FIXES = 1  # boots a booted placement's would_work may cost (OVMF: a minute each)


def verified_fixes(args: Sequence[str], guest: GuestMap, again: Predict,
               host: HostView, windows: bool = False) -> Callable[[], list[Fix]]:
    """The verified changes (a newer machine type, a smaller -m) that clear every collision;
    for a Windows guest never the machine type that moves RAM past 1 TiB."""
    def found() -> list[Fix]:
        return fixes(args, guest, again, lambda changed: not check(changed.layout, host),
                     windows)

    return found


def for_windows(guest: GuestMap, windows: bool) -> GuestMap:
    """A Windows guest whose RAM QEMU moved past 1 TiB (its AMD rule) is warned of it."""
    if not windows or not any(r.kind == "ram" and r.start == AMD_ABOVE_1TB for r in guest.layout):
        return guest
    return replace(guest, warnings=(*guest.warnings, (
        "QEMU moves this AMD guest's RAM above 4 GiB past 1 TiB (machine types 7.1+): Windows "
        "drivers fail on that (NVIDIA: Code 43, RHEL-98247); `layoutd plan --guest windows` "
        "keeps RAM below the HyperTransport hole and the rest in DIMMs")))


def dry_run_map(binary: str, qemu_args: Sequence[str], arch: str, why: str) -> GuestMap:
    """The map the binary itself builds, saying where it came from."""
    # starts QEMU (socket, subprocess, threading, ctypes: ~10 ms): only a run that needs one
    from layoutd.dryrun import dry_run, guest_map

    run = dry_run(binary, qemu_args, arch)
    guest = guest_map(run, qemu_args, arch)
    note = f"{why}: this map comes from a dry run of {binary} (QEMU {run.version}) itself"
    return replace(guest, warnings=(note, *guest.warnings))


def verified(guest: GuestMap, binary: str, qemu_args: Sequence[str], arch: str) -> GuestMap:
    """The model's map when the dry run builds the same RAM map; else the dry run's, saying how
    the model differed."""
    real = dry_run_map(binary, qemu_args, arch, "--verify")
    # starts QEMU (socket, subprocess, threading, ctypes: ~10 ms): only a run that needs one
    from layoutd.dryrun import differences

    wrong = differences(guest.layout, real.layout)
    if not wrong:
        note = f"confirmed by a dry run of {binary} (QEMU {real.qemu_version}): the same RAM map"
        return replace(guest, notes=(*guest.notes, note))
    note = (f"the QEMU {guest.qemu_version} model predicted another map ("
            + "; ".join(w.replace("planned", "predicted") for w in wrong[:5])
            + "): the map shown is the binary's own")
    return replace(real, warnings=(*real.warnings, note))


def probe_devices(source: str | None, devices: Sequence[str],
                  origins: dict[str, tuple[str | None, str]]) -> HostView:
    """probe_host; a device the host lacks is named where it was given (`origins`: device ->
    (file, field)), else as --devices."""
    try:
        return probe_host(source, list(devices) or None)
    except UnknownDevice as error:
        raise error.at(origins) from error


def with_host(host: HostView, prediction: Callable[[], GuestMap]) -> GuestMap:
    """Run a prediction that reads the host CPU; a CPU the host source does not describe is
    bad input naming that source."""
    try:
        return prediction()
    except NeedsHostCpu as error:
        raise InputError(f"{error.message}; host source {host.source} does not describe its CPU",
                         field="/proc/cpuinfo") from error


def _vfio_of(qemu_args: Sequence[str]) -> list[str]:
    return parse_config(qemu_args).vfio


def merge_devices(first: tuple[str, ...] | list[str], second: list[str]) -> list[str]:
    return list(dict.fromkeys([*first, *second]))
