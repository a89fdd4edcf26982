"""The plan for people: the map as a table, then one line per region of the address space."""

from layoutd.emit.argv import shell_lines
from layoutd.models.common import Hole
from layoutd.models.guest import NamedRegion
from layoutd.models.plan import Plan
from layoutd.qemu.x86 import hole64_with_bars
from layoutd.units import hex_addr, human_size

Row = tuple[int, int, str, str]  # start, end, mark, text


def render(plan: Plan) -> str:
    lines = [
        f"plan for {plan.name}, made for {plan.planned_for or f'QEMU {plan.qemu_version}'}",
        f"machine {plan.config.machine}, valid on " + ", ".join(plan.hosts),
    ]
    if plan.not_judged:
        lines.append(plan.not_judged_line())
    if plan.default_layout:
        lines.append("QEMU's default layout already avoids every hole: nothing extra is emitted.")
    rows = picture_rows(plan)
    wide = max([7, *(len(human_size(r.size)) for r in plan.layout),
                *(len(human_size(end - start + 1)) for start, end, _, _ in rows)])
    lines += ["", "guest RAM:", f"  {'start':>18} {'end':>18} {'size':>{wide}}  {'kind':<10} {'id':<12} node"]
    for region in plan.layout:
        node = "-" if region.node is None else str(region.node)
        lines.append(
            f"  {hex_addr(region.start):>18} {hex_addr(region.end):>18} "
            f"{human_size(region.size):>{wide}}  {region.kind:<10} {region.id:<12} {node}"
        )
    if plan.bars:
        lines += ["", f"assigned 64-bit BARs (placed as {plan.firmware} places them):"]
        lines += [f"  {bar.device} BAR{bar.bar}  " + (
            f"{hex_addr(bar.start)}-{hex_addr(bar.end)}  {human_size(bar.end - bar.start + 1)}"
            if bar.start is not None and bar.end is not None else "left unassigned")
            for bar in plan.bars]
    lines += ["", "address space (# RAM, ! host hole, . free, = PCI hole):"]
    lines += [
        f"  {mark} {hex_addr(start):>18}-{hex_addr(end):<18} {human_size(end - start + 1):>{wide}}  {text}"
        for start, end, mark, text in rows
    ]
    if plan.warnings:
        lines += ["", "warnings:"] + [f"  - {warning}" for warning in dict.fromkeys(plan.warnings)]
    if plan.notes:
        lines += ["", "notes:"] + [f"  - {note}" for note in plan.notes]
    binary = "qemu-system-aarch64" if plan.config.arch == "aarch64" else "qemu-system-x86_64"
    lines += ["", "QEMU command line:", shell_lines(plan.qemu_argv, binary).rstrip()]
    return "\n".join(lines) + "\n"


PCI_WINDOWS = {"pci-hole64": "64-bit PCI hole", "high-pcie-mmio": "64-bit PCIe MMIO window"}
"""The QEMU model's regions (GuestMap.regions) a picture shows, and their captions."""


def picture_rows(plan: Plan) -> list[Row]:
    """RAM, holes, the 64-bit PCI windows and the free gaps between them, in address order.
    Everything about QEMU's own regions comes from the model's map the plan carries."""
    top = plan.highest_address or max((r.end for r in plan.layout), default=0)
    rows: list[Row] = [
        (start, end, "#", f"{kind} {name}" + ("" if node is None else f" node {node}"))
        for start, end, kind, name, node in _merged_layout(plan)
    ]
    rows += [
        (hole.start, min(hole.end, top), "!", _hole_text(hole)) for hole in plan.holes if hole.start <= top
    ]
    rows += [(region.start, region.end, "=", PCI_WINDOWS[region.name])
             for region in guest_regions(plan) if region.name in PCI_WINDOWS]
    rows.sort(key=lambda row: (row[0], row[1]))
    return _with_gaps(rows)


def guest_regions(plan: Plan) -> tuple[NamedRegion, ...]:
    """QEMU's regions as the booted guest sees them: the 64-bit PCI hole widened to the BARs
    the firmware placed (QEMU's model map is taken at -S, before the firmware runs)."""
    spans = [(bar.start, bar.end) for bar in plan.bars if bar.start is not None and bar.end is not None]
    return hole64_with_bars(plan.regions, spans)


def _merged_layout(plan: Plan) -> list[tuple[int, int, str, str, int | None]]:
    """Pieces of one region split only by the windows below 1 MiB are shown as one."""
    merged: list[tuple[int, int, str, str, int | None]] = []
    for region in sorted(plan.layout, key=lambda r: r.start):
        last = merged[-1] if merged else None
        if last and last[3] == region.id and last[1] + 1 >= region.start - (1 << 20):
            merged[-1] = (last[0], region.end, last[2], last[3], last[4])
        else:
            merged.append((region.start, region.end, region.kind, region.id, region.node))
    return merged


def _hole_text(hole: Hole) -> str:
    return hole.describe()


def _with_gaps(rows: list[Row]) -> list[Row]:
    result: list[Row] = []
    cursor = 0
    for start, end, mark, text in rows:
        if start > cursor:
            result.append((cursor, start - 1, ".", "free"))
        result.append((start, end, mark, text))
        cursor = max(cursor, end + 1)
    return result
