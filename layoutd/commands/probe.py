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
    # this command's modules: not for its --help
    from layoutd.emit.probe import render_json, render_text
    from layoutd.host import probe_host, record_host

    devices = [d for d in (args.devices or "").split(",") if d.strip()]
    record = args.record
    view = record_host(record, args.host, devices) if record else probe_host(args.host, devices)
    print(render_json(view) if args.format == "json" else render_text(view))
    return 0
