"""What `layoutd check` prints for a guest map on a host: the map, then collisions. Pure.

Shared by the sources of `check` (a QEMU command line, a libvirt domain: `report`; a running VM:
live/audit.py, with `map_json` and `map_text`). The command prints the document and sets the
exit status.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from layoutd.collisions import check
from layoutd.emit.svg import render_check
from layoutd.firmware.check import verdict
from layoutd.models.validate import to_json
from layoutd.models.warning_codes import coded
from layoutd.qemu.x86 import hole64_with_bars
from layoutd.record import replace
from layoutd.units import hex_addr, human_size

if TYPE_CHECKING:
    from collections.abc import Callable

    from layoutd.collisions import Collision
    from layoutd.firmware.check import BarCheck
    from layoutd.fixes import Fix
    from layoutd.models.common import GuestRegion
    from layoutd.models.guest import GuestMap
    from layoutd.models.host import HostView


def report(guest: GuestMap, host: HostView, fmt: str, devices: Sequence[str] = (),
           fixes_for: Callable[[], Sequence[Fix]] | None = None, language: str = "argv",
           bars: BarCheck | None = None) -> tuple[str, list[Collision]]:
    """The document for `fmt` and every collision (of RAM or an assigned BAR) it shows.

    With RAM collisions, `fixes_for()` gives the verified changes that clear them (in
    `language`: argv options or libvirt XML). `bars`: where the firmware puts the assigned
    devices' 64-bit BARs, and their collisions (kind `bar`). How the RAM map is known
    (`guest.how_known`: model | dry-run) is said in JSON's `how_known` with the BARs'."""
    ram = check(guest.layout, host)
    found = verdict(guest, host, bars)
    fixes: list[Any] = list(fixes_for()) if ram and fixes_for else []
    if bars and bars.collisions and bars.fixes:
        fixes += bars.fixes()
    if bars and bars.firmware and bars.how_known == "boot":
        guest = replace(guest, notes=(*guest.notes, f"BARs where {bars.firmware} put them"))
    elif bars and bars.firmware:
        how = f" ({bars.loaded})" if bars.loaded else ""
        guest = replace(guest, notes=(*guest.notes, f"BARs placed as {bars.firmware}{how} places "
                                      "them"))
    if bars and bars.notes:
        guest = replace(guest, warnings=(*guest.warnings, *bars.notes))
    if fmt == "svg":
        return render_check(seen(guest, bars), host.forbidden(), found,
                            bars.bars if bars else []), found
    if fmt == "json":
        data = as_json(guest, host, found, devices)
        data["bars"] = bars.bars if bars else []
        if bars and bars.firmware:
            data["firmware"] = bars.firmware
        data["how_known"] = {"layout": guest.how_known, "bars": bars.how_known if bars else None}
        data["not_judged"] = unjudged(bars)
        if found:
            data["would_work"] = [fix.as_json(language) for fix in fixes]
        return json.dumps(data, indent=2) + "\n", found
    text = as_text(seen(guest, bars), host, found, devices, bars)
    said = [fix.xml_text() if language == "libvirt" else fix.argv_text() for fix in fixes]
    return text + "".join(f"would work: {line}\n" for line in said), found


def unjudged(bars: BarCheck | None) -> list[dict[str, str]]:
    """What nothing could tell (contract: no "no collision" about it)."""
    if bars is None:
        return []
    why = next((note for note in bars.notes), "")
    return [{"what": name, "kind": "bar", "why": why} for name in bars.not_judged]


def seen(guest: GuestMap, bars: BarCheck | None) -> GuestMap:
    """The map as the booted guest sees it: QEMU widens its 64-bit PCI hole to the BARs the
    firmware placed (JSON keeps the model's map at -S)."""
    spans = [(int(str(b["start"]), 16), int(str(b["end"]), 16))
             for b in (bars.bars if bars else []) if b["start"] is not None]
    return replace(guest, regions=hole64_with_bars(guest.regions, spans)) if spans else guest


def as_json(guest: GuestMap, host: HostView, found: Sequence[Collision],
            devices: Sequence[str]) -> dict[str, Any]:
    return {
        **map_json(guest.layout, found),
        "regions": [to_json(region) for region in guest.regions],
        "memory_devices": [to_json(d) for d in guest.memory_devices],
        "device_memory": to_json(guest.device_memory) if guest.device_memory else None,
        "qemu_version": guest.qemu_version,
        "machine": guest.machine,
        "phys_bits": guest.phys_bits,
        "highest_address": hex_addr(guest.highest_address),
        "devices": list(devices),
        "source": host.source,
        "warnings": (warnings := list(dict.fromkeys([*guest.warnings, *host.warnings]))),
        "warning_codes": coded(warnings),
        "notes": list(guest.notes),
    }


def map_json(layout: Sequence[GuestRegion], found: Sequence[Collision]) -> dict[str, Any]:
    """The contract's keys: `layout` and `collisions`."""
    return {
        "layout": [to_json(region) for region in layout],
        "collisions": [_collision_json(c) for c in found],
    }


def _collision_json(collision: Collision) -> dict[str, Any]:
    data = to_json(collision)
    del data["node"]
    data["hole"] = {key: data["hole"][key] for key in ("start", "end", "type", "group", "devices")}
    if collision.hole.type == "unassigned":  # contract: a BAR the firmware left unassigned
        data["start"] = data["end"] = None
    return data


def as_text(guest: GuestMap, host: HostView, found: Sequence[Collision],
            devices: Sequence[str], bars: BarCheck | None = None) -> str:
    header = (f"QEMU {guest.qemu_version} {guest.machine}, phys-bits {guest.phys_bits}, "
              f"host {host.source}, devices: {', '.join(devices) or 'every IOMMU group'}")
    names = {(p.start, p.end): p.name for p in guest.ram_view}
    others = [(other.name, other.start, other.end) for other in guest.regions]
    for bar in bars.bars if bars else []:
        if bar["start"] is not None:
            others.append((f"BAR{bar['bar']} {bar['device']}", int(str(bar["start"]), 16),
                           int(str(bar["end"]), 16)))
    placed = [bar for bar in bars.bars if bar["start"] is not None] if bars else []
    clear = (f"all guest RAM and the {len(placed)} assigned 64-bit BAR(s) are clear of the "
             "host's holes" if placed else CLEAR)
    return map_text(header, guest.layout, found, [*guest.warnings, *host.warnings],
                    names=names, others=others, clear=clear, notes=guest.notes,
                    unjudged=bars.not_judged if bars else ())


CLEAR = "all guest RAM is clear of the host's holes"


def map_text(header: str, layout: Sequence[GuestRegion], found: Sequence[Collision],
             warnings: Sequence[str], *, names: dict[tuple[int, int], str] | None = None,
             others: Sequence[tuple[str, int, int]] = (), clear: str = CLEAR,
             notes: Sequence[str] = (), unjudged: Sequence[str] = ()) -> str:
    """The table every `check` source prints: RAM, other regions, then collisions and warnings."""
    names = names or {}
    rows = [(names.get((r.start, r.end), r.id), r.kind, r.id, "-" if r.node is None else str(r.node),
             r.label(), human_size(r.size)) for r in layout]
    rows += [(name, "(not RAM)", "", "", f"{hex_addr(start)}-{hex_addr(end)}", human_size(end - start + 1))
             for name, start, end in others]
    width = max([14, *(len(row[0]) for row in rows), *(len(row[2]) for row in rows)])
    wide = max([7, *(len(row[5]) for row in rows)])
    lines = [header, "",
             f"{'region':<{width}} {'kind':<11} {'id':<{width}} {'node':>4}  {'range':<37} {'size':>{wide}}"]
    for name, kind, ident, node, label, size in rows:
        lines.append(f"{name:<{width}} {kind:<11} {ident:<{width}} {node:>4}  {label:<37} {size:>{wide}}")
    lines.append("")
    if found:
        lines.append(f"{len(found)} collision(s) with host holes:")
        lines += [f"  {c.describe()}" for c in found]
    elif not unjudged:
        lines.append(f"no collision: {clear}")
    if unjudged:
        lines.append(f"not judged: {', '.join(unjudged)} (where the firmware puts "
                     f"{'it' if len(unjudged) == 1 else 'them'} is not known: see the warnings)")
    lines += [f"note: {note}" for note in notes]
    lines += [f"warning: {warning}" for warning in dict.fromkeys(warnings)]  # each said once
    return "\n".join(lines) + "\n"
