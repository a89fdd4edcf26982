"""`layoutd fleet`: what hosts publish for schedulers, and layout pools.

    layoutd fleet publish --host SRC [--pool NAME=PLAN.json ...]
                          --format json|nova|nfd-features|nodefeature [--node NODENAME] [-o FILE]
    layoutd fleet pools   --host SRC [--host SRC ...] [--host-dir DIR] --pool NAME=PLAN.json [...]
                          [--format text|json]

layoutd.fleet does the work; layoutd.emit.fleet writes the documents. Stdlib-only imports here.
"""

from __future__ import annotations

import argparse
import json
import re
import sys

from layoutd.errors import InputError

PUBLISH_FORMATS = ("json", "nova", "nfd-features", "nodefeature")
# a Kubernetes node name: a DNS-1123 subdomain; the node-name label also limits it to 63
NODE_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,61}[a-z0-9])?$")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="publish|pools", required=True)
    publish = actions.add_parser("publish", help="one host's facts and pool memberships, for a scheduler")
    publish.add_argument("--host", metavar="SRC", help="live, a host tree directory, or a dump file")
    _pool_option(publish)
    publish.add_argument("--format", choices=PUBLISH_FORMATS, default="json",
                         help="json; nova: provider.yaml for [compute] provider_config_location; "
                              "nfd-features: a file for NFD's features.d; nodefeature: an NFD "
                              "NodeFeature object")
    publish.add_argument("-o", "--output", metavar="FILE",
                         help="write FILE atomically (a dotfile beside it, then renamed into "
                              "place, as NFD's features.d wants) instead of standard output")
    publish.add_argument("--node", metavar="NODENAME",
                         help="the Kubernetes node the NodeFeature is for (default: this machine's "
                              "name, for a live host)")
    pools = actions.add_parser("pools", help="which of many hosts are members of each pool")
    pools.add_argument("--host", metavar="SRC", action="append", default=[],
                       help="a host source; repeat for every host")
    pools.add_argument("--host-dir", metavar="DIR", action="append", default=[],
                       help="every dump (*.json, from `layoutd probe --record`) in DIR is a host")
    _pool_option(pools)
    pools.add_argument("--format", choices=("text", "json"), default="text")


def _pool_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pool", metavar="NAME=PLAN.json", action="append", default=[],
                        help="a layout pool: a plan from `layoutd plan SPEC --host A --host B "
                             "--format json`, named by the operator; repeatable")


def run(args: argparse.Namespace) -> int:
    if args.action == "publish":
        return _publish(args)
    return _pools(args)


def _publish(args: argparse.Namespace) -> int:
    # this command's modules: not for its --help
    import os

    from layoutd.emit.fleet import render
    from layoutd.fleet import load_pools, publish
    from layoutd.host import resolve_source

    source = resolve_source(args.host)
    node = args.node
    if args.format == "nodefeature":
        if node is None and source == "live":
            node = os.uname().nodename
        if node is None:
            raise InputError("--format nodefeature needs --node NODENAME for a host that is not "
                             "live (the Kubernetes node the object describes)")
    if node is not None and not NODE_NAME.match(node):
        raise InputError(f"--node {node!r}: a Kubernetes node name is 1-63 characters of a-z, 0-9, "
                         "'-' and '.', starting and ending with a letter or digit")
    pools = load_pools(args.pool)
    text = render(publish(source, pools), args.format, node)
    if args.output is None or args.output == "-":
        sys.stdout.write(text)
    else:
        _write_atomically(args.output, text)
    return 0


def _dumps_in(folder: str) -> list[str]:
    # as _publish()
    import os

    try:
        names = sorted(name for name in os.listdir(folder) if name.endswith(".json"))
    except OSError as error:
        raise InputError(f"--host-dir: cannot list it: {error.strerror}", file=folder) from error
    if not names:
        raise InputError("--host-dir: no dump (*.json) in it", file=folder)
    return [os.path.join(folder, name) for name in names]


def _write_atomically(path: str, text: str) -> None:
    """A reader (nfd-worker, nova-compute) sees the old file or the new one, never half."""
    # as _publish()
    import os

    folder, name = os.path.split(os.path.abspath(path))
    temporary = os.path.join(folder, f".{name}.{os.getpid()}")
    try:
        with open(temporary, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(temporary, path)
    except OSError as error:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise InputError(f"cannot write: {error.strerror}", file=path) from error


def _pools(args: argparse.Namespace) -> int:
    # as _publish()
    from layoutd.fleet import load_pools, pool_table, publish

    pools = load_pools(args.pool)
    if not pools:
        raise InputError("give at least one --pool NAME=PLAN.json")
    hosts = [*args.host, *(dump for folder in args.host_dir for dump in _dumps_in(folder))]
    if not hosts:
        raise InputError("give the hosts: --host SRC (repeatable) or --host-dir DIR")
    table = pool_table([publish(source, pools) for source in hosts], pools)
    if args.format == "json":
        sys.stdout.write(json.dumps(table, indent=2) + "\n")
        return 0
    lines = []
    for name, row in table["pools"].items():
        lines.append(f"pool {name} ({row['file']}): {len(row['members'])} of {len(hosts)} hosts")
        lines += [f"  member      {host}" for host in row["members"]]
        for other in row["not_members"]:
            lines.append(f"  not member  {other['host']}: {other['reasons'][0]}")
            lines += [f"              {reason}" for reason in other["reasons"][1:]]
    if table["unpooled"]:
        lines.append("in no pool: " + ", ".join(table["unpooled"]))
    sys.stdout.write("\n".join(lines) + "\n")
    return 0
