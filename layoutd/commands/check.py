"""`layoutd check`: predict a VM's guest RAM map and find every collision with a host hole.

Sources: a QEMU command line (after `--`), `--libvirt DOMAIN.xml`, or a running VM through
`--qmp SOCKET` or `--libvirt-domain NAME` (libvirt's monitor, via virsh). All of them print through
layoutd.emit.report; layoutd.checking does the work. Stdlib-only imports here.
"""

from __future__ import annotations

import argparse
import json
import sys

from layoutd.errors import InputError, exit_status


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
    parser.add_argument("--guest", choices=("windows", "other"), default=None,
                        help="the guest OS: for windows never suggest the machine types that "
                             "move an AMD guest's RAM past 1 TiB (its drivers fail: Code 43)")
    parser.add_argument("--qmp", metavar="SOCKET", help="audit a running VM through its QMP socket")
    parser.add_argument("--libvirt", metavar="DOMAIN.xml", help="check a libvirt domain")
    parser.add_argument("--libvirt-version", metavar="X.Y",
                        help="with --libvirt: the libvirt the suggested XML is for (default: the "
                             "installed daemon's, else 9.0, whose XML every newer one takes)")
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
    if command and (command[0] in ("taskset", "/usr/bin/taskset")
                    or any(word[:1] in ("'", '"') for word in command)):
        from layoutd.proxmox import command_words  # `$(qm showcmd VMID)`: quotes left in words

        command = command_words(command)
    sources = [bool(command), bool(args.qmp), bool(args.libvirt), bool(args.libvirt_domain)]
    if sum(sources) != 1:
        raise InputError("give exactly one of: -- QEMU_BINARY ARG..., --qmp SOCKET, "
                         "--libvirt FILE, --libvirt-domain NAME")
    if args.connect is not None and not args.libvirt_domain:
        raise InputError("--connect URI only applies with --libvirt-domain NAME")
    if args.qmp or args.libvirt_domain:
        return _run_live(args)
    # the QEMU model (a dry run if need be) and the report: for a command line or a domain
    from layoutd.checking import check_command_line, unjudged
    from layoutd.emit.report import report

    options = {"host_source": args.host, "given": device_list(args.devices),
               "version": args.qemu_version, "verify": args.verify,
               "windows": args.guest == "windows"}
    if args.libvirt_version is not None and not args.libvirt:
        raise InputError("--libvirt-version X.Y only applies with --libvirt DOMAIN.xml")
    if args.libvirt:
        from layoutd.libvirt.guard import check_domain_file  # the domain reader: --libvirt only

        checked = check_domain_file(args.libvirt, libvirt=args.libvirt_version, **options)
    else:
        checked = check_command_line(command, **options)
    text, found = report(checked.guest, checked.host, args.format, checked.devices,
                         checked.fixes_for, checked.language, checked.bars)
    if args.libvirt and args.format == "text" and "\nwould work: <" in text:
        from layoutd.libvirt_versions import libvirt_target  # loaded already (check_domain_file)

        text += f"note: the XML above is for {libvirt_target(args.libvirt_version)}\n"
    sys.stdout.write(text)
    return exit_status(bool(found), unjudged(checked.bars))


def _run_live(args: argparse.Namespace) -> int:
    """Audit a running VM's real map: exit 1 when some RAM touches a forbidden range."""
    # QMP: --qmp and --libvirt-domain only
    from layoutd.live.audit import audit, audit_json, audit_text
    from layoutd.live.virsh import open_monitor

    monitor = open_monitor(args.qmp, args.libvirt_domain, args.connect)
    try:
        result = audit(monitor, args.host, device_list(args.devices))
    finally:
        monitor.close()
    if args.format == "json":
        sys.stdout.write(json.dumps(audit_json(result), indent=2) + "\n")
    else:
        sys.stdout.write(audit_text(result))
    return 1 if result.collisions else 0


def device_list(text: str | None) -> list[str]:
    return [d.strip() for d in (text or "").split(",") if d.strip()]



