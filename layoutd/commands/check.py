"""`layoutd check`: predict a VM's guest RAM map and find every collision with a host hole.

Sources: a QEMU command line (after `--`), `--libvirt DOMAIN.xml`, or a running VM through
`--qmp SOCKET` or `--libvirt-domain NAME` (libvirt's monitor, via virsh). All of them print through
layoutd.emit.report. Stdlib-only imports here.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from layoutd.errors import InputError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", metavar="SRC", help="live, a host tree directory, or a dump file")
    parser.add_argument("--devices", metavar="BDF,...", help="host PCI devices given to the VM")
    parser.add_argument("--format", choices=("text", "json"), default="text")
    parser.add_argument("--qemu-version", metavar="X.Y", help="model this QEMU version "
                        "(default: ask the binary with --version)")
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
    from layoutd.emulator import modelled_version
    from layoutd.host import probe_host
    from layoutd.qemu import arch_of_binary, predict
    from layoutd.qemu.cpus import NeedsHostCpu

    binary, qemu_args = command[0], command[1:]
    arch = arch_of_binary(binary)
    version = args.qemu_version or modelled_version(binary)
    try:  # bad command lines fail before the host is asked
        first = predict(qemu_args, version=version, arch=arch, host_cpu=None)
    except NeedsHostCpu:
        first = None
    devices = _merge(first.vfio_devices if first else _vfio_of(qemu_args), device_list(args.devices))
    host = probe_host(args.host, devices or None)
    guest = _with_host(host, lambda: predict(qemu_args, version=version, arch=arch,
                                             host_cpu=host.cpu, host=host.platform))
    return report(guest, host, args.format, devices)


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
    from layoutd.host import probe_host
    from layoutd.libvirt.argv import translate_xml
    from layoutd.libvirt.guard import qemu_version
    from layoutd.qemu import predict

    try:
        with open(args.libvirt, "rb") as handle:
            data = handle.read()
    except OSError as error:
        raise InputError(f"cannot read: {error.strerror}", file=args.libvirt) from None
    translation = translate_xml(data, args.libvirt)
    version = qemu_version(translation, args.qemu_version)
    devices = _merge(translation.devices, device_list(args.devices))
    host = probe_host(args.host, devices or None)
    guest = _with_host(host, lambda: predict(translation.argv, version=version, host_cpu=host.cpu,
                                             arch=translation.domain.arch, host=host.platform))
    return report(guest, host, args.format, devices)
