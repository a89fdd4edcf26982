"""`layoutd plan SPEC.yaml`: solve a layout that avoids every hole of every host, and emit it."""

import argparse
import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    pass

FORMATS = ("text", "json", "argv", "qmp", "libvirt", "svg")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("spec", metavar="SPEC.yaml", help="the VM spec (see docs/guide.md)")
    parser.add_argument(
        "--host",
        action="append",
        metavar="SRC",
        default=None,
        help="host source (live, a root tree, or a dump); repeat for migration targets",
    )
    # the version table, for --help's list of versions
    from layoutd.qemu import versions

    parser.add_argument(
        "--qemu-version",
        default=None,
        metavar="X.Y",
        help=f"QEMU whose layout rules apply ({versions.names()}); default: as check, the "
        "version of qemu-system-ARCH on PATH (with --verify, of that binary), or the nearest "
        f"older modelled one, and the firmware files it loads; {versions.DEFAULT} without one",
    )
    parser.add_argument(
        "--verify",
        nargs="?",
        const="",
        default=None,
        metavar="QEMU_BINARY",
        help="print the plan only if a dry run of the QEMU binary (default qemu-system-ARCH on "
        "PATH) builds exactly the planned map",
    )
    parser.add_argument("--guest", choices=("windows", "other"), default=None,
                        help="the guest OS (the spec's guest): windows never gets QEMU's AMD "
                        "move of RAM past 1 TiB (Windows drivers fail on it: Code 43)")
    parser.add_argument("--format", choices=FORMATS, default="text")
    parser.add_argument("--libvirt-version", metavar="X.Y", default=None,
                        help="--format libvirt: the libvirt the domain is for (default: the "
                        "installed daemon's, else 9.0, whose XML every newer one takes)")
    parser.add_argument("-o", "--output", metavar="FILE", help="write here instead of standard output")


def run(args: argparse.Namespace) -> int:
    # this command's modules: not for its --help
    from layoutd.errors import InputError, UnknownDevice, exit_status
    from layoutd.planning import make_plan, qemu_target, verify
    from layoutd.qemu import versions
    from layoutd.record import replace
    from layoutd.specfile import load_spec, spec_device_origins

    if args.qemu_version is not None and not versions.is_modelled(args.qemu_version):
        raise InputError(f"--qemu-version {args.qemu_version!r}: modelled versions are "
                         f"{versions.names()}")
    spec = load_spec(args.spec)
    if args.guest is not None:
        spec = replace(spec, guest=args.guest)
    sources = args.host or [os.environ.get("LAYOUTD_HOST") or "live"]
    binary = (args.verify or f"qemu-system-{spec.arch}") if args.verify is not None else None
    qemu = qemu_target(args.qemu_version, binary, spec.arch)
    try:
        plan = make_plan(spec, sources, qemu)
    except UnknownDevice as error:
        raise error.at(spec_device_origins(spec, args.spec)) from error
    if binary is not None:
        plan = verify(plan, binary, qemu.note)
    # the planner's encoders, after the plan
    from layoutd.emit.plan import render

    target = None
    if args.format == "libvirt":
        # --format libvirt only
        from layoutd.libvirt_versions import libvirt_target

        found = libvirt_target(args.libvirt_version)
        target = (found.version, found.how)
    _write(render(plan, args.format, target), args.output)
    if plan.not_judged and args.format not in ("text", "json"):  # said in those; here too
        sys.stderr.write(f"layoutd plan: {plan.not_judged_line()}\n")
    return exit_status(False, plan.not_judged)


def _write(text: str, output: str | None) -> None:
    # as run()
    from layoutd.errors import InputError

    if output is None or output == "-":
        sys.stdout.write(text)
        return
    try:
        with open(output, "w", encoding="utf-8") as handle:
            handle.write(text)
    except OSError as error:
        raise InputError(f"cannot write: {error.strerror}", file=output) from error
