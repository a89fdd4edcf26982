"""`layoutd kubevirt on-define-domain --vmi JSON --domain XML` (KubeVirt's sidecar-shim contract:
the domain XML to define on stdout, a non-zero exit stops the VM) and `layoutd kubevirt serve
--socket PATH` (KubeVirt's gRPC hook API v1alpha3; needs the `kubevirt` extra).

The host is --host, else $LAYOUTD_HOST, else live, as for the libvirt hook.
"""

from __future__ import annotations

import argparse
import os
import sys

TIMEOUT = 50.0  # seconds: virt-launcher allows OnDefineDomain one minute


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    define = sub.add_parser("on-define-domain", help="fix or refuse the domain virt-launcher is "
                            "about to define (sidecar-shim: install as /usr/bin/onDefineDomain)")
    define.add_argument("--vmi", required=True, metavar="JSON", help="the VirtualMachineInstance")
    define.add_argument("--domain", required=True, metavar="XML", help="the libvirt domain")
    serve = sub.add_parser("serve", help="serve KubeVirt's hook API v1alpha3 on a unix socket")
    serve.add_argument("--socket", required=True, metavar="PATH",
                       help="the socket, e.g. /var/run/kubevirt-hooks/layoutd.sock")
    for each in (define, serve):
        each.add_argument("--timeout", type=float, default=TIMEOUT, metavar="SECONDS",
                          help=f"time allowed for one judgement (default {TIMEOUT:g}; exit 3, "
                               "or UNAVAILABLE, after it)")
        each.add_argument("--host", default=None, metavar="SRC",
                          help="host source (live, a tree, a dump); default $LAYOUTD_HOST, else live")
        each.add_argument("--qemu-version", default=None, metavar="X.Y",
                          help="QEMU to model (default: ask the domain's emulator, else its "
                               "machine type)")


def run(args: argparse.Namespace) -> int:
    # this command's modules: not for its --help
    from layoutd.errors import InputError

    if not 0 < args.timeout <= 3600:
        raise InputError("must be between 0 and 3600 seconds", field="--timeout")
    host = args.host or os.environ.get("LAYOUTD_HOST") or "live"
    if args.action == "serve":
        # this command's modules: not for its --help
        from layoutd.kubevirt.server import serve

        return serve(args.socket, host, args.qemu_version, timeout=args.timeout)
    # as serve above
    from layoutd.kubevirt.define import on_define_domain

    with time_limit(args.timeout):
        decision = on_define_domain(args.vmi, args.domain, host, args.qemu_version)
    for note in decision.notes:
        print(f"layoutd kubevirt: {note}", file=sys.stderr)
    sys.stdout.buffer.write(decision.xml)
    sys.stdout.flush()
    return 0


class time_limit:  # a `with` statement, named like one
    """TimeLimit (exit 3) once `seconds` have passed; the main thread only (SIGALRM)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def __enter__(self) -> None:
        # only define-domain's time limit
        import signal

        from layoutd.errors import TimeLimit

        def expired(_signum: int, _frame: object) -> None:
            raise TimeLimit(f"the judgement did not finish within {self.seconds:g} s (--timeout)")

        self.previous = signal.signal(signal.SIGALRM, expired)
        signal.setitimer(signal.ITIMER_REAL, self.seconds)

    def __exit__(self, *_: object) -> None:
        # as __enter__
        import signal

        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, self.previous)
