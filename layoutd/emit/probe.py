"""What `layoutd probe` prints: the HostView as JSON (the contract's keys) or as tables. Pure."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from layoutd.models.validate import to_json
from layoutd.models.warning_codes import coded
from layoutd.units import hex_addr, human_size

if TYPE_CHECKING:
    from layoutd.models.host import HostView


def render_json(view: HostView) -> str:
    """The contract's keys (usable, reserved, aperture_end, source) and the rest of the view;
    schemas/probe.schema.json describes it."""
    return json.dumps({**to_json(view), "warning_codes": coded(view.warnings)}, indent=2)


def render_text(view: HostView) -> str:
    def table(rows: list[list[str]]) -> list[str]:
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        return ["  " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
                for row in rows]

    lines = [f"source: {view.source}"]
    cpu = view.cpu
    bits = f", {cpu.phys_bits} physical address bits" if cpu.phys_bits else ""
    lines.append(f"cpu: {cpu.vendor}{bits}{' (' + cpu.model_name + ')' if cpu.model_name else ''}")
    top = hex_addr(view.aperture_end) if view.aperture_end is not None else "unknown"
    lines.append(f"aperture end: {top}")
    drivers = {d.address: d for d in view.devices}
    rows = [["GROUP", "TYPE", "DEVICE", "DRIVER", "CLASS"]]
    for group in view.groups:
        for address in group.devices:
            device = drivers.get(address)
            rows.append([str(group.number), group.type or "-", address,
                         (device.driver if device else None) or "(none)",
                         (device.pci_class if device else None) or "-"])
    lines += ["", "groups and devices:", *table(rows)]
    rows = [["DEVICE", "BAR", "TYPE", "SIZE", "HOST ADDRESS"]]
    for device in view.devices:
        rows += [[device.address, str(bar.index), bar.kind(), human_size(bar.size),
                  f"{hex_addr(bar.start)}-{hex_addr(bar.end)}"] for bar in device.bars]
    if len(rows) > 1:
        lines += ["", "BARs (sysfs resource):", *table(rows)]
    rows = [["TYPE", "START", "END", "SIZE", "GROUP", "BLOCKS DMA"]]
    for hole in view.reserved:
        rows.append([hole.type, hex_addr(hole.start), hex_addr(hole.end), human_size(hole.size),
                     str(hole.group), "no" if hole.type == "direct-relaxable" else "yes"])
    lines += ["", "reserved regions:", *(table(rows) if len(rows) > 1 else ["  (none)"])]
    rows = [["START", "END", "SIZE"]]
    rows += [[hex_addr(r.start), hex_addr(r.end), human_size(r.size)] for r in view.usable]
    lines += ["", "usable IOVA ranges (every selected device may DMA here):",
              *(table(rows) if len(rows) > 1 else ["  (none)"])]
    if view.dma_avail is not None:
        lines.append(f"DMA mappings still available: {view.dma_avail}")
    if view.notes:
        lines += ["", "notes:", *(f"  - {note}" for note in view.notes)]
    if view.warnings:
        lines += ["", "warnings (each says what to do):", *(f"  - {w}" for w in view.warnings)]
    return "\n".join(lines)
