"""`layoutd check`: predict a VM's guest RAM map and find every collision with a host hole.

Sources: a QEMU command line (after `--`), `--libvirt DOMAIN.xml`, or a running VM through
`--qmp SOCKET` or `--libvirt-domain NAME` (libvirt's monitor, via virsh). All of them print through
layoutd.emit.report. Stdlib-only imports here.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from typing import Any

from layoutd.errors import InputError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", metavar="SRC", help="live, a host tree directory, or a dump file")
    parser.add_argument("--devices", metavar="BDF,...", help="host PCI devices given to the VM")
    parser.add_argument("--format", choices=("text", "json", "svg"), default="text",
                        help="svg: the address space as a picture, collisions marked")
    parser.add_argument("--qemu-version", metavar="X.Y", help="model this QEMU version "
                        "(default: ask the binary with --version)")
    parser.add_argument("--verify", action="store_true",
                        help="confirm the map by a dry run of the QEMU binary (started paused, "
                             "nothing of the host's memory taken); a version that is not modelled "
                             "is always answered that way")
    parser.add_argument("--qmp", metavar="SOCKET", help="audit a running VM through its QMP socket")
    parser.add_argument("--libvirt", metavar="DOMAIN.xml", help="check a libvirt domain")
    parser.add_argument("--libvirt-domain", metavar="NAME",
                        help="audit a running libvirt domain through virsh qemu-monitor-command "
                             "(read-only)")
    parser.add_argument("--connect", metavar="URI",
                        help="libvirt connection URI for --libvirt-domain (as virsh -c; default: "
                             "$LIBVIRT_DEFAULT_URI, else virsh's own default)")
    parser.add_argument("qemu", nargs=argparse.REMAINDER, metavar="-- QEMU_BINARY ARG...",
                        help="the QEMU command line, after --")


def run(args: argparse.Namespace) -> int:
    command = list(args.qemu)
    if command[:1] == ["--"]:
        command = command[1:]
    sources = [bool(command), bool(args.qmp), bool(args.libvirt), bool(args.libvirt_domain)]
    if sum(sources) != 1:
        raise InputError("give exactly one of: -- QEMU_BINARY ARG..., --qmp SOCKET, "
                         "--libvirt FILE, --libvirt-domain NAME")
    if args.connect is not None and not args.libvirt_domain:
        raise InputError("--connect URI only applies with --libvirt-domain NAME")
    if args.qmp or args.libvirt_domain:
        from layoutd.live.report import run_live

        return run_live(args)
    if args.libvirt:
        return _run_libvirt(args)
    return _run_argv(args, command)


def device_list(text: str | None) -> list[str]:
    return [d.strip() for d in (text or "").split(",") if d.strip()]


def _run_argv(args: argparse.Namespace, command: list[str]) -> int:
    from layoutd.emit.report import report
    from layoutd.emulator import version_of_binary
    from layoutd.qemu import arch_of_binary, predict
    from layoutd.qemu.cpus import NeedsHostCpu
    from layoutd.qemu.versions import is_modelled

    binary, qemu_args = command[0], command[1:]
    arch = arch_of_binary(binary)
    version = args.qemu_version or version_of_binary(binary, modelled_only=False)
    if not is_modelled(version):
        guest = dry_run_map(binary, qemu_args, arch, f"QEMU {version} is not modelled")
        devices = _merge(guest.vfio_devices, device_list(args.devices))
        origins: dict[str, tuple[str | None, str]] = {
            d: (None, f"-device vfio-pci,host={d}") for d in guest.vfio_devices}
        return report(guest, probe_devices(args.host, devices, origins), args.format, devices)
    try:  # bad command lines fail before the host is asked
        first = predict(qemu_args, version=version, arch=arch, host_cpu=None)
    except NeedsHostCpu:
        first = None
    assigned = first.vfio_devices if first else _vfio_of(qemu_args)
    devices = _merge(assigned, device_list(args.devices))
    host = probe_devices(args.host, devices, {d: (None, f"-device vfio-pci,host={d}") for d in assigned})

    def again(changed: Sequence[str]) -> Any:
        return predict(changed, version=version, arch=arch, host_cpu=host.cpu, host=host.platform)

    guest = _with_host(host, lambda: again(qemu_args))
    if args.verify:
        guest = verified(guest, binary, qemu_args, arch)

    return report(guest, host, args.format, devices, _fixes_for(qemu_args, guest, again, host),
                  bars=bar_check(guest, host, qemu_args, devices))


def bar_check(guest: Any, host: Any, qemu_args: Sequence[str], devices: Sequence[str]) -> Any:
    """Where the firmware puts the assigned devices' 64-bit BARs, and what they collide with."""
    from layoutd.firmware.check import check_bars
    from layoutd.firmware.files import identify
    from layoutd.firmware.guest import family_of, page_1g, read_argv
    from layoutd.qemu.config import parse_config

    if not guest.vfio_devices:
        return None
    pci = read_argv(qemu_args, family_of(guest), {device.address: device for device in host.devices})
    build, note = identify(pci.firmware, guest.qemu_version, guest.arch)
    config = parse_config(qemu_args)
    result = check_bars(guest, host, pci, build, page_1g(config.cpu_model, config.cpu_props),
                        devices)
    if note:
        result.notes.insert(0, note)
    if result.collisions and build is not None:
        result.fixes = lambda: _bar_fixes(qemu_args, guest, host, devices, build)
    return result


def _bar_fixes(qemu_args: Sequence[str], guest: Any, host: Any, devices: Sequence[str],
               build: Any) -> list[Any]:
    """Fewer phys-bits or OVMF's window, each checked again on the model (RAM and BARs)."""
    from layoutd.emit.report import collisions
    from layoutd.errors import LayoutdError
    from layoutd.firmware.fixes import bar_fixes
    from layoutd.qemu import predict
    from layoutd.qemu.config import parse_config

    def clear(changed: Sequence[str]) -> bool:
        try:
            again = predict(changed, version=guest.qemu_version, arch=guest.arch, host_cpu=host.cpu)
            check = bar_check(again, host, changed, devices)
        except LayoutdError:
            return False
        return not collisions(again, host) and check is not None and not check.collisions

    config = parse_config(qemu_args)
    top = host.aperture_end if host.aperture_end is not None else (1 << 64) - 1
    host_cpu = config.accel == "kvm" and (config.cpu_model or "") in ("host", "max")
    return bar_fixes(qemu_args, guest.phys_bits, (top + 1).bit_length() - 1,
                     build.family == "ovmf", host_cpu, clear)


def _fixes_for(args: Sequence[str], guest: Any, again: Callable[[Sequence[str]], Any],
               host: Any) -> Any:
    """The verified changes (a newer machine type, a smaller -m) that clear every collision."""
    from layoutd.emit.report import collisions
    from layoutd.fixes import fixes

    return lambda: fixes(args, guest, again, lambda changed: not collisions(changed, host))


def dry_run_map(binary: str, qemu_args: Sequence[str], arch: str, why: str) -> Any:
    """The map the binary itself builds, saying where it came from."""
    from layoutd.dryrun import dry_run, guest_map

    run = dry_run(binary, qemu_args, arch)
    guest = guest_map(run, qemu_args, arch)
    note = f"{why}: this map comes from a dry run of {binary} (QEMU {run.version}) itself"
    return guest.model_copy(update={"warnings": (note, *guest.warnings)})


def verified(guest: Any, binary: str, qemu_args: Sequence[str], arch: str) -> Any:
    """The model's map when the dry run builds the same RAM map; else the dry run's, saying how
    the model differed."""
    from layoutd.dryrun import differences

    real = dry_run_map(binary, qemu_args, arch, "--verify")
    wrong = differences(guest.layout, real.layout)
    if not wrong:
        note = f"confirmed by a dry run of {binary} (QEMU {real.qemu_version}): the same RAM map"
        return guest.model_copy(update={"warnings": (*guest.warnings, note)})
    note = (f"the QEMU {guest.qemu_version} model predicted another map ("
            + "; ".join(w.replace("planned", "predicted") for w in wrong[:5])
            + "): the map shown is the binary's own")
    return real.model_copy(update={"warnings": (*real.warnings, note)})


def probe_devices(source: str | None, devices: Sequence[str],
                  origins: dict[str, tuple[str | None, str]]) -> Any:
    """probe_host; a device the host lacks is named where it was given (`origins`: device ->
    (file, field)), else as --devices."""
    from layoutd.errors import UnknownDevice
    from layoutd.host import probe_host

    try:
        return probe_host(source, list(devices) or None)
    except UnknownDevice as error:
        raise error.at(origins) from None


def _with_host(host: Any, prediction: Callable[[], Any]) -> Any:
    """Run a prediction that reads the host CPU; a CPU the host source does not describe is
    bad input naming that source."""
    from layoutd.qemu.cpus import NeedsHostCpu

    try:
        return prediction()
    except NeedsHostCpu as error:
        raise InputError(f"{error.message}; host source {host.source} does not describe its CPU",
                         field="/proc/cpuinfo") from None


def _vfio_of(qemu_args: list[str]) -> list[str]:
    from layoutd.qemu.config import parse_config

    return parse_config(qemu_args).vfio


def _merge(first: tuple[str, ...] | list[str], second: list[str]) -> list[str]:
    return list(dict.fromkeys([*first, *second]))


def _run_libvirt(args: argparse.Namespace) -> int:
    from layoutd.emit.report import report
    from layoutd.libvirt.guard import DEFAULT_EMULATOR, qemu_version, translate_domain
    from layoutd.qemu import predict
    from layoutd.qemu.versions import is_modelled

    try:
        with open(args.libvirt, "rb") as handle:
            data = handle.read()
    except OSError as error:
        raise InputError(f"cannot read: {error.strerror}", file=args.libvirt) from None
    translation = translate_domain(data, args.libvirt)
    version = qemu_version(translation, args.qemu_version)
    devices = _merge(translation.devices, device_list(args.devices))
    host = probe_devices(args.host, devices,
                         {d: (args.libvirt, f"<hostdev> {d}") for d in translation.devices})
    domain = translation.domain
    emulator = domain.emulator or DEFAULT_EMULATOR.get(domain.arch, "")
    if not is_modelled(version):
        guest = dry_run_map(emulator, translation.argv, domain.arch,
                            f"QEMU {version} is not modelled")
        return report(guest, host, args.format, devices)

    def again(changed: Sequence[str]) -> Any:
        return predict(changed, version=version, host_cpu=host.cpu, arch=domain.arch,
                       host=host.platform)

    guest = _with_host(host, lambda: again(translation.argv))
    if args.verify:
        guest = verified(guest, emulator, translation.argv, domain.arch)
    return report(guest, host, args.format, devices,
                  _fixes_for(translation.argv, guest, again, host), language="libvirt",
                  bars=bar_check(guest, host, _with_buses(translation.argv, data, args.libvirt),
                                 devices))


def _with_buses(argv: Sequence[str], data: bytes, source: str) -> list[str]:
    """The translated arguments with the domain's firmware, root ports and <hostdev> addresses
    (what the BAR placement needs) instead of the plain vfio-pci devices."""
    from layoutd.firmware.libvirt import pci_argv

    kept: list[str] = []
    for word in argv:
        if kept and kept[-1] == "-device" and word.startswith("vfio-pci,"):
            kept.pop()
        else:
            kept.append(word)
    return kept + pci_argv(data, source)
