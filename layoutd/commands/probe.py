"""`layoutd probe`: what may the host's devices DMA to?"""

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", metavar="SRC",
                        help="live, a host tree directory, or a dump file "
                             "(default: $LAYOUTD_HOST, else live)")
    parser.add_argument("--devices", metavar="BDF,...",
                        help="PCI devices given to the VM (default: every IOMMU group)")
    parser.add_argument("--format", choices=("text", "json"), default="text")
    parser.add_argument("--record", metavar="FILE",
                        help="also write everything learned to FILE (replay it: --host SRC with SRC = FILE)")


def run(args: argparse.Namespace) -> int:
    import json

    from layoutd.host import probe_host, record_host

    devices = [d for d in (args.devices or "").split(",") if d.strip()]
    record = args.record
    view = record_host(record, args.host, devices) if record else probe_host(args.host, devices)
    if args.format == "json":
        print(json.dumps(view_json(view), indent=2))
    else:
        print(render_text(view))
    return 0


def view_json(view: "HostView") -> dict[str, object]:
    """The contract's keys (usable, reserved, aperture_end, source) and the rest of the view;
    schemas/probe.schema.json describes it."""
    data: dict[str, object] = view.model_dump(mode="json")
    return data


def render_text(view: "HostView") -> str:
    from layoutd.units import hex_addr, human_size

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


if False:  # for type checkers only: keeps start-up free of pydantic
    from layoutd.models.host import HostView
