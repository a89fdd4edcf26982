"""`layoutd install-hook`: write the libvirt hook and its configuration; touch no other hook."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

HOOK_NAME = "50-layoutd"
SCRIPT = '''#!{python} -I
"""layoutd's libvirt hook, written by `layoutd install-hook`. libvirtd reads hooks when it starts.

Configuration: {config}. `prepare`, `migrate` and `restore` are checked at `begin`; every other
operation returns at once.
"""
import sys

from layoutd.cli import main

sys.exit(main(["hook", "--config", {config!r}, *sys.argv[1:]]))
'''


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--policy", choices=("enforce", "warn"), default="enforce",
                        help="enforce: refuse a colliding domain at start; warn: log and let it start")
    parser.add_argument("--host", default=None, metavar="SRC",
                        help="host source for the hook (live, a tree, a dump); "
                             "default: $LAYOUTD_HOST at hook time, else live")
    parser.add_argument("--devices", default="", metavar="BDF,...",
                        help="PCI addresses to check for domains without <hostdev> (comma list)")
    parser.add_argument("--log", default=None, metavar="FILE",
                        help="hook log file (default /var/log/layoutd/hook.log)")
    parser.add_argument("--root", default="/", metavar="DIR",
                        help="install under this root instead of / (tests)")


def run(args: argparse.Namespace) -> int:
    # this command's modules: not for its --help
    from layoutd.errors import InputError
    from layoutd.libvirt import hookconf

    root = Path(args.root).resolve()
    devices = [item.strip() for item in args.devices.split(",") if item.strip()]
    if args.host and args.host != "live" and not Path(args.host).exists():
        raise InputError("no such host source (give live, a host tree or a dump)", file=args.host)
    hook = root / "etc/libvirt/hooks/qemu.d" / HOOK_NAME
    config = root / "etc/layoutd/hook.conf"
    log = args.log or str(root / "var/log/layoutd/hook.log")
    host = str(Path(args.host).resolve()) if args.host and args.host != "live" else args.host
    try:
        _write(config, hookconf.render(args.policy, host, devices, log), 0o644)
        _write(hook, SCRIPT.format(python=sys.executable, config=str(config)), 0o755)
    except OSError as error:
        raise InputError(f"cannot write: {error.strerror or error}",
                         file=str(error.filename or hook)) from error
    print(f"installed {hook} (policy {args.policy}; configuration {config}; log {log}).")
    print("Restart libvirtd (or virtqemud) once: it reads hooks only when it starts.")
    return 0


def _write(path: Path, text: str, mode: int) -> None:
    """Atomically replace `path` (only ours: the hook file and its configuration)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp{os.getpid()}")
    temporary.write_text(text, encoding="utf-8")
    temporary.chmod(mode)
    temporary.replace(path)
