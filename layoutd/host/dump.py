"""Dumps: `layoutd probe --record FILE` writes what a probe learned; `--host FILE` replays it.

A dump keeps raw inputs (reserved_regions text, the ioctl reply bytes as hex), so a replay runs
the same parsers as the live probe and gives the same answer.
"""

import json
import os
from collections.abc import Sequence

from layoutd import __version__
from layoutd.errors import InputError, ParseError
from layoutd.host.topology import select_groups
from layoutd.host.view import build_view
from layoutd.models.host import DUMP_FORMAT, DUMP_VERSION, HostDump, HostFacts, HostView, IoctlReply
from layoutd.models.validate import Invalid, to_json, validate


def write_dump(
    path: str,
    facts: HostFacts,
    *,
    recorded_from: str,
    selected: Sequence[str] = (),
    reply: IoctlReply | None = None,
    warnings: Sequence[str] = (),
) -> HostDump:
    dump = HostDump(
        recorded_by=f"layoutd {__version__}",
        recorded_from=recorded_from,
        kernel=os.uname().release if recorded_from == "live" else None,
        selected=tuple(selected),
        facts=facts,
        ioctl=reply,
        warnings=tuple(warnings),
    )
    text = json.dumps(to_json(dump), indent=2) + "\n"
    try:
        with open(path, "w") as handle:
            handle.write(text)
    except OSError as error:
        raise InputError(f"cannot write the dump: {error.strerror}", file=path) from error
    return dump


def read_dump(path: str) -> HostDump:
    """Load and validate a dump; every defect names the file and the field."""
    try:
        with open(path) as handle:
            raw = json.loads(handle.read())
    except OSError as error:
        raise InputError(f"cannot read the dump: {error.strerror}", file=path) from error
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ParseError(f"not a layoutd host dump (invalid JSON: {error})", file=path) from error
    if not isinstance(raw, dict) or raw.get("format") != DUMP_FORMAT:
        raise ParseError(f"not a layoutd host dump (no \"format\": \"{DUMP_FORMAT}\")", file=path)
    if raw.get("version") != DUMP_VERSION:
        raise ParseError(
            f"dump format version {raw.get('version')!r} is not supported (this layoutd reads "
            f"version {DUMP_VERSION})",
            file=path,
            field="version",
        )
    try:
        return validate(HostDump, raw)
    except Invalid as error:
        where = ".".join(str(part) for part in error.path)
        raise ParseError(error.message, file=path, field=where) from error


def replay(path: str, devices: Sequence[str] | None) -> HostView:
    dump = read_dump(path)
    devices = list(devices or dump.selected)  # by default, what was selected when recording
    reply = dump.ioctl
    # the recorded reply covers the recorded selection; for another one, use sysfs facts
    if reply is not None and devices and set(select_groups(dump.facts, devices)) != set(reply.groups):
        reply = None
    info = [f"recorded from {dump.recorded_from or 'an unknown source'}"]
    notes = [w for w in dump.warnings if "not viable" not in w]
    if reply is None and dump.ioctl is not None:
        info.append(
            f"the recorded {dump.ioctl.reader} reply covers groups "
            f"{', '.join(map(str, dump.ioctl.groups))}, not this selection: computed from sysfs facts"
        )
    if reply is not None:
        info.append(f"usable ranges from the recorded {reply.reader} reply, parsed again")
    return build_view(dump.facts, devices, f"dump:{path}", reply=reply, warnings=notes, info=info)
