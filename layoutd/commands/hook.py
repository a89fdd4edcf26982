"""`layoutd hook NAME OPERATION SUBOP EXTRA`: the libvirt hook (domain XML on standard input).

`prepare begin` (a start), `migrate begin` (on the destination, the incoming domain) and
`restore begin` (the domain of a saved image) are judged by one rule; every other operation
returns 0 at once, importing nothing but the standard library and the hook's configuration
reader. libvirt runs this as root for every domain, so: no entity expansion, no calls back into
libvirt, and a time limit on everything. Nothing is ever written to standard output: at
`migrate` and `restore` libvirt would take it as a replacement domain XML.
"""

from __future__ import annotations

import os
import sys

from layoutd.libvirt import hookconf

TYPE_CHECKING = False  # typing itself costs the no-op hook a bare start

if TYPE_CHECKING:  # nothing more at start-up: every operation but the judged ones is a no-op
    import argparse
    from collections.abc import Sequence

USAGE = ("usage: layoutd hook [--config FILE] NAME OPERATION SUBOP [EXTRA]  (domain XML on stdin)\n"
         "judged: prepare begin (start), migrate begin (destination), restore begin\n"
         "exit status: 0 the domain may start; 1 a proven collision (policy enforce); 2 bad input\n"
         "under policy enforce; libvirt refuses the start, migration or restore on any non-zero status")
STDIN_LIMIT = 16 * 1024 * 1024
JUDGED = {"prepare": "start", "migrate": "accept the incoming migration of", "restore": "restore"}
"""Operations judged at `begin`, and the verb of their refusal."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default=None, help="hook configuration file "
                        f"(default: $LAYOUTD_HOOK_CONFIG, else {hookconf.DEFAULT_CONFIG})")
    parser.add_argument("hook_args", nargs="*", metavar="NAME OPERATION SUBOP EXTRA")


def run(args: argparse.Namespace) -> int:
    config = ["--config", args.config] if args.config else []
    return main([*config, *args.hook_args])


def main(args: Sequence[str]) -> int:
    """The whole hook; `cli.main` and the installed script call this before anything else."""
    rest = list(args)
    path = os.environ.get("LAYOUTD_HOOK_CONFIG") or hookconf.DEFAULT_CONFIG
    if rest[:1] == ["--config"] and len(rest) >= 2:
        path, rest = rest[1], rest[2:]
    if rest[:1] in (["-h"], ["--help"]):
        print(USAGE)
        return 0
    if len(rest) < 3:
        print(f"layoutd hook: expected NAME OPERATION SUBOP\n{USAGE}", file=sys.stderr)
        return 2
    name, operation, subop = rest[:3]
    config = hookconf.load(path)
    if subop != "begin" or operation not in JUDGED:
        if config.problems:
            hookconf.log_line(config, f"{name} {operation} {subop}: ignoring a broken "
                              f"configuration (fail open): {'; '.join(config.problems)}")
        return 0
    return prepare(Call(name, operation), config)


class Call:
    """Which domain and which judged operation (`prepare`, `migrate`, `restore`) at `begin`."""

    def __init__(self, name: str, operation: str = "prepare") -> None:
        self.name, self.operation = name, operation

    def __str__(self) -> str:
        return f"{self.name} {self.operation} begin"


def prepare(call: Call, config: hookconf.HookConfig) -> int:
    """Check the domain on stdin; refuse (non-zero) only under `enforce`."""
    return hookconf.guarded(config, lambda: check(call, config),
                            lambda code, text: verdict(config, call, code, text), "domains")


def check(call: Call, config: hookconf.HookConfig) -> int:
    """Refuse only a proven collision: where the model cannot answer (not modelled) or says QEMU
    itself would refuse the domain, log a warning and let libvirt go on."""
    # the check itself: a judged operation only
    from layoutd.errors import LayoutdError, NotModelled, QemuRefusal, TimeLimit

    try:
        xml = sys.stdin.buffer.read(STDIN_LIMIT + 1)
        # loaded under the time limit, like the rest of the check
        from layoutd.libvirt.guard import check_domain

        report = check_domain(xml, config)
    except TimeLimit:
        raise
    except NotModelled as error:
        hookconf.log_line(config, f"{call}: allowed unchecked (warning): layoutd "
                          f"cannot model this domain: {error.render()}")
        return 0
    except QemuRefusal as error:
        hookconf.log_line(config, f"{call}: allowed (warning): QEMU is expected to "
                          f"refuse this domain itself: {error.render()}")
        return 0
    except LayoutdError as error:
        return verdict(config, call, error.exit_code, f"cannot check the domain: {error.render()}")
    except Exception as error:  # the hook must never print a traceback to libvirt
        return verdict(config, call, 2, f"internal error: {type(error).__name__}: {error}")
    for warning in report.warnings:
        hookconf.log_line(config, f"{call}: warning: {warning}")
    if report.refusal:
        return verdict(config, call, 1, report.refusal)
    hookconf.log_line(config, f"{call}: ok: {report.summary}")
    return 0


def verdict(config: hookconf.HookConfig, call: Call, code: int, reason: str) -> int:
    """Enforce: refuse with the reason on stderr (libvirt shows it). Warn: log and allow."""
    if config.policy == "warn":
        hookconf.log_line(config, f"{call}: allowed (policy warn): {reason}")
        return 0
    hookconf.log_line(config, f"{call}: refused: {reason}")
    print(f"layoutd hook: refusing to {JUDGED[call.operation]} domain {call.name!r}: {reason}",
          file=sys.stderr)
    return code
