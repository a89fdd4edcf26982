"""`layoutd libvirt apply DOMAIN.xml SPEC.yaml` / `layoutd libvirt fix DOMAIN.xml`.

Both print the domain XML with the planned layout applied; every other byte is unchanged.
"""

import argparse
import os
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    apply = sub.add_parser("apply", help="apply the plan of SPEC.yaml to DOMAIN.xml")
    apply.add_argument("domain", metavar="DOMAIN.xml")
    apply.add_argument("spec", metavar="SPEC.yaml")
    fix = sub.add_parser("fix", help="plan DOMAIN.xml's own memory around the host's holes")
    fix.add_argument("domain", metavar="DOMAIN.xml")
    fix.add_argument("--devices", default="", metavar="BDF,...",
                     help="PCI addresses to plan for when the domain has no <hostdev> (comma list)")
    for each in (apply, fix):
        each.add_argument("--host", action="append", metavar="SRC", default=None,
                          help="host source (live, a tree, a dump); repeat for migration targets")
        each.add_argument("--qemu-version", default=None, metavar="X.Y",
                          help="QEMU to model (default: the domain's <emulator>, else its machine type)")
        each.add_argument("--libvirt-version", default=None, metavar="X.Y",
                          help="the libvirt the domain is for (default: the installed daemon's, "
                          "else 9.0, whose XML every newer one takes)")
        each.add_argument("-o", "--output", metavar="FILE", help="write here instead of stdout")


def run(args: argparse.Namespace) -> int:
    # this command's modules: not for its --help
    from layoutd.libvirt import fix as fixing
    from layoutd.libvirt_versions import libvirt_target

    data = _read(args.domain)
    libvirt = libvirt_target(args.libvirt_version)
    hosts = args.host or [os.environ.get("LAYOUTD_HOST") or "live"]
    if args.action == "apply":
        # apply only
        from layoutd.specfile import load_spec

        result, plan = fixing.apply(data, args.domain, load_spec(args.spec), hosts, args.qemu_version,
                                    args.spec, libvirt.version)
    else:
        devices = [item.strip() for item in args.devices.split(",") if item.strip()]
        result, plan = fixing.fix(data, args.domain, hosts, args.qemu_version, devices,
                                  libvirt.version)
    from layoutd.errors import exit_status  # stdlib-only

    if plan.not_judged:  # said first, and exit 3 (as plan): never a silent yes
        print(f"layoutd libvirt: {plan.not_judged_line()}", file=sys.stderr)
    for warning in plan.warnings:
        print(f"layoutd libvirt: warning: {warning}", file=sys.stderr)
    print(f"layoutd libvirt: written for {libvirt}", file=sys.stderr)
    _write(result, args.output)
    return exit_status(False, plan.not_judged)


def _read(path: str) -> bytes:
    # as run()
    from layoutd.errors import InputError

    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError as error:
        raise InputError(f"cannot read: {error.strerror}", file=path) from error


def _write(data: bytes, output: str | None) -> None:
    # as run()
    from layoutd.errors import InputError

    if output is None or output == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        return
    try:
        with open(output, "wb") as handle:
            handle.write(data)
    except OSError as error:
        raise InputError(f"cannot write: {error.strerror}", file=output) from error
