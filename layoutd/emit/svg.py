"""The address-space picture as an SVG file: one row per region, RAM green, holes red."""

from xml.sax.saxutils import escape

from layoutd.emit.text import picture_rows
from layoutd.models.plan import Plan
from layoutd.units import hex_addr, human_size

_COLOURS = {"#": "#4caf50", "!": "#e53935", ".": "#eeeeee", "=": "#90caf9"}
_ROW = 22
_WIDTH = 900


def render(plan: Plan) -> str:
    rows = picture_rows(plan)
    height = _ROW * (len(rows) + 2)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_WIDTH}" height="{height}" '
        f'font-family="monospace" font-size="12">',
        f'<text x="8" y="16">{escape(plan.name)}: guest address space '
        f"(QEMU {escape(plan.qemu_version)})</text>",
    ]
    for index, (start, end, mark, text) in enumerate(rows):
        y = _ROW * (index + 1)
        label = f"{hex_addr(start)}-{hex_addr(end)} {human_size(end - start + 1)} {text}"
        parts.append(
            f'<rect x="8" y="{y}" width="16" height="{_ROW - 4}" fill="{_COLOURS[mark]}" stroke="#555"/>'
        )
        parts.append(f'<text x="32" y="{y + 14}">{escape(label)}</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"
