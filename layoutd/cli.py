"""Command-line edge: parsing and exit codes only. Errors become one-paragraph messages.

Only `sys` at module level: the hook's no-op answers must cost no more than a bare start.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False  # typing itself costs the no-op hook a bare start

if TYPE_CHECKING:
    import argparse
    import typing
    from collections.abc import Sequence

# name -> (module, one-line help). Modules are imported only for the command that runs.
COMMANDS: dict[str, tuple[str, str]] = {
    "probe": ("layoutd.commands.probe", "what may the host's devices DMA to"),
    "check": ("layoutd.commands.check", "predict a VM's guest RAM map and find collisions"),
    "plan": ("layoutd.commands.plan", "solve a layout from a VM spec and emit it"),
    "hotplug": ("layoutd.commands.hotplug", "place hotplugged memory outside every hole"),
    "hook": ("layoutd.commands.hook", "libvirt hook entry (domain XML on standard input)"),
    "install-hook": ("layoutd.commands.install_hook", "install the libvirt hook"),
    "proxmox-hook": ("layoutd.commands.proxmox_hook", "Proxmox VE hookscript entry (VMID PHASE)"),
    "libvirt": ("layoutd.commands.libvirt", "apply a layout to an existing libvirt domain XML"),
    "fleet": ("layoutd.commands.fleet", "publish a host's facts and layout pools for schedulers"),
    "kubevirt": ("layoutd.commands.kubevirt", "KubeVirt's OnDefineDomain hook (sidecar-shim, gRPC)"),
}


def _usage() -> str:
    lines = ["usage: layoutd COMMAND [OPTIONS]", "", "commands:"]
    lines += [f"  {name:<13} {help_text}" for name, (_, help_text) in COMMANDS.items()]
    lines += ["", "options:", "  -h, --help     show this help", "  --version      print layoutd's version",
              "", "Run 'layoutd COMMAND --help' for a command's options.", "", EXIT_CODES]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["hook"]:
        # libvirt runs the hook five times per VM: no argparse, no planner
        from layoutd.commands.hook import main as hook_main

        return hook_main(args[1:])
    if not args or args[0] in ("-h", "--help"):
        print(_usage(), file=sys.stdout if args else sys.stderr)
        return 0 if args else 2
    if args[0] == "--version":
        # only --version asks
        from layoutd import __version__

        print(f"layoutd {__version__}")
        return 0
    name = args[0]
    if name not in COMMANDS:
        print(f"layoutd: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    # stdlib, for the commands only (not the hook)
    import gc

    # A command lives well under a second: the cycle collector's passes over what the imports
    # create cost it ~10 ms and free next to nothing. Paused while it runs, as it was after.
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _command(name, args)
    finally:
        if collecting:
            gc.enable()


def _command(name: str, args: list[str]) -> int:
    # the chosen command's module only
    import importlib

    module_name, help_text = COMMANDS[name]
    module = importlib.import_module(module_name)
    parser = _parser(name, help_text)
    module.add_arguments(parser)
    try:
        options = parser.parse_args(args[1:])
    except UsageError as error:
        print(parser.format_usage().rstrip(), file=sys.stderr)
        print(f"layoutd {name}: {error}", file=sys.stderr)
        if _wants_json(args):
            _print_json(name, None, message=str(error), exit_code=2, kind="usage")
        return 2
    except SystemExit as exit_:
        return 0 if exit_.code in (0, None) else 2
    return run_reporting_errors(name, module.run, options)


EXIT_CODES = ("exit status: 0 done, nothing wrong; 1 the answer is no (a collision, no layout, a "
              "refused hotplug); 2 bad input or usage; 3 the host could not be asked")


class UsageError(Exception):
    pass


def _parser(name: str, help_text: str) -> argparse.ArgumentParser:
    """argparse that raises instead of printing and exiting, so --format json can answer too."""
    # argparse: not on the hook's path
    import argparse

    class Parser(argparse.ArgumentParser):
        def error(self, message: str) -> typing.NoReturn:
            raise UsageError(message)

    class Formatter(argparse.RawDescriptionHelpFormatter):
        """argparse's own width, found without importing shutil (3 ms of every command)."""

        def __init__(self, prog: str, indent_increment: int = 2, max_help_position: int = 24,
                     width: int | None = None) -> None:
            super().__init__(prog, indent_increment, max_help_position,
                             _columns() - 2 if width is None else width)

    return Parser(prog=f"layoutd {name}", description=help_text, epilog=EXIT_CODES,
                  formatter_class=Formatter)


def _columns() -> int:
    """The terminal's width as shutil.get_terminal_size() says it: $COLUMNS, else the width of
    standard output's terminal, else 80."""
    # only --help formats
    import os

    try:
        columns = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            columns = 0
    return columns or 80


def _wants_json(args: Sequence[str]) -> bool:
    pairs = zip(args, [*args[1:], ""], strict=True)
    return "--format=json" in args or any(a == "--format" and b == "json" for a, b in pairs)


def _print_json(name: str, error: typing.Any, **fields: typing.Any) -> None:
    # errors only
    import json

    from layoutd.emit.outcome import error_document

    try:
        print(json.dumps(error_document(name, error, **fields), indent=2), flush=True)
    except BrokenPipeError:  # the reader is gone (`| head -1`): the exit status still counts
        _drop_stdout()


class HeldStdout:
    """Standard output kept in memory while the command runs and written when it is done, so
    a reader that stops early (`| head -1`) cannot change the exit status the command decided."""

    def __enter__(self) -> None:
        # io: a command's output only, not the hook's
        import io

        self.real = sys.stdout
        self.held = io.BytesIO()
        sys.stdout = io.TextIOWrapper(self.held, encoding=self.real.encoding or "utf-8",
                                      write_through=True)

    def __exit__(self, *_: object) -> None:
        sys.stdout.flush()
        data = self.held.getvalue()
        sys.stdout = self.real
        try:
            if hasattr(self.real, "buffer"):
                self.real.flush()
                self.real.buffer.write(data)
            else:
                self.real.write(data.decode(self.real.encoding or "utf-8"))
            self.real.flush()
        except BrokenPipeError:
            _drop_stdout()


def _drop_stdout() -> None:
    """Point standard output at /dev/null so the interpreter's last flush cannot fail again."""
    # os: only after a broken pipe
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


def run_reporting_errors(name: str, run: object, options: argparse.Namespace) -> int:
    """Run a command; every error becomes a message (and with --format json, a JSON document)."""
    # the hook's path never gets here
    import os

    from layoutd.errors import LayoutdError

    as_json = getattr(options, "format", None) == "json"
    try:
        with HeldStdout():
            code = run(options)  # type: ignore[operator]
        return int(code or 0)
    except LayoutdError as error:
        if os.environ.get("LAYOUTD_DEBUG"):
            # the traceback, with the cause the message leaves out: a debugging run only
            import traceback

            traceback.print_exception(error, file=sys.stderr)
        print(f"layoutd {name}: {error.render()}", file=sys.stderr)
        if as_json:
            _print_json(name, error)
        return error.exit_code
    except KeyboardInterrupt:
        print(f"layoutd {name}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader stopped reading: what it read is all it wanted
        _drop_stdout()
        return 0
    except Exception as error:  # the contract: never a traceback
        if os.environ.get("LAYOUTD_DEBUG"):
            raise
        message = (f"internal error: {type(error).__name__}: {error}. This is a bug in layoutd; "
                   "run again with LAYOUTD_DEBUG=1 for details and report it.")
        print(f"layoutd {name}: {message}", file=sys.stderr)
        if as_json:
            _print_json(name, None, message=message, exit_code=2, kind="internal")
        return 2


if __name__ == "__main__":
    sys.exit(main())
