"""A Plan in the format a user asked for: the one dispatcher over the plan's encoders. Pure."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from layoutd.models.validate import to_json
from layoutd.models.warning_codes import coded

if TYPE_CHECKING:
    from layoutd.models.plan import Plan

FORMATS = ("text", "json", "argv", "qmp", "libvirt", "svg")


def render(plan: Plan, kind: str, libvirt: tuple[tuple[int, int], str] | None = None) -> str:
    """`libvirt`: the libvirt version the XML is for and how it was known (default 9.0)."""
    if kind == "json":
        return json.dumps({**to_json(plan), "warning_codes": coded(plan.warnings)}, indent=2) + "\n"
    if kind == "argv":
        from layoutd.emit.argv import shell_lines  # each format loads its own encoder (below too)

        binary = "qemu-system-aarch64" if plan.config.arch == "aarch64" else "qemu-system-x86_64"
        return shell_lines(plan.qemu_argv, binary)
    if kind == "qmp":
        return "".join(json.dumps(command) + "\n" for command in plan.qmp)
    if kind == "svg":
        from layoutd.emit import svg  # as argv's

        return svg.render(plan)
    if kind == "libvirt":
        from layoutd.emit.libvirt import emit_domain  # hashlib, libvirt's versions, XML quoting

        return emit_domain(plan, *libvirt) if libvirt else emit_domain(plan)
    from layoutd.emit import text  # as argv's

    return text.render(plan)
