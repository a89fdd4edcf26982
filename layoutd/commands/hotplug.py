"""`layoutd hotplug`: place memory for a running VM outside every hole (and plug it with --execute)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from layoutd.models.validate import to_json
from layoutd.models.warning_codes import coded

if TYPE_CHECKING:
    from layoutd.live.hotplug import Command, HotplugPlan
    from layoutd.live.placement import Refusal
    from layoutd.models.host import HostView


def add_arguments(parser: argparse.ArgumentParser) -> None:
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--qmp", metavar="SOCKET", help="the VM's QMP unix socket")
    where.add_argument("--libvirt-domain", metavar="NAME",
                       help="a libvirt-managed VM: read with virsh qemu-monitor-command, a DIMM "
                            "attached with virsh attach-device")
    parser.add_argument("--connect", metavar="URI",
                        help="libvirt connection URI for --libvirt-domain (as virsh -c; default: "
                             "$LIBVIRT_DEFAULT_URI, else virsh's own default)")
    parser.add_argument("--size", required=True, help="memory to add: 4G, 512M ...")
    parser.add_argument("--node", type=int, help="guest NUMA node of the new memory")
    parser.add_argument("--kind", choices=("dimm", "virtio-mem"), default="dimm")
    parser.add_argument("--block-size", metavar="SIZE",
                        help="virtio-mem block size (default: the smallest that keeps the VFIO "
                             "DMA mappings under the container's limit)")
    parser.add_argument("--id", help="device id (default: layoutd-dimmN / layoutd-vmemN); "
                                     "the backend is ID-mem")
    parser.add_argument("--host", metavar="SRC",
                        help="live, a host tree directory, or a dump file "
                             "(default: $LAYOUTD_HOST, else live)")
    parser.add_argument("--devices", metavar="BDF,...",
                        help="host devices whose holes count, beyond the VM's own vfio-pci ones")
    parser.add_argument("--execute", action="store_true",
                        help="send the commands, verify the placement, undo on failure")
    parser.add_argument("--format", choices=("text", "json"), default="text")


def run(args: argparse.Namespace) -> int:
    # this command's modules: cli.py loads a command module for its --help too
    from layoutd.live.audit import host_for
    from layoutd.live.hotplug import HotplugFailed, execute, execute_libvirt, plan
    from layoutd.live.lock import vm_lock
    from layoutd.live.placement import Refusal
    from layoutd.live.virsh import VirshMonitor, open_monitor
    from layoutd.live.vm import read_vm

    request = make_request(args)
    given = [d.strip() for d in (args.devices or "").split(",") if d.strip()]
    monitor = open_monitor(args.qmp, args.libvirt_domain, args.connect)
    libvirt = isinstance(monitor, VirshMonitor)
    try:
        with vm_lock(monitor.lock_key):
            vm = read_vm(monitor)
            host, _ = host_for(vm, args.host, given)
            chosen = plan(vm, host, request, monitor, libvirt=libvirt and request.kind == "dimm")
            if isinstance(chosen, Refusal):
                return refuse(args, request.size, chosen)
            if libvirt and chosen.libvirt_xml is None:
                chosen.warnings.append(
                    "libvirt has no element for a virtio-mem device at a fixed address, so it is "
                    "added over the monitor: libvirt does not know it (virsh dumpxml will not list "
                    "it; save, migration or a managed restart lose it)")
            sent: list[Command] = []
            if args.execute:
                try:
                    if isinstance(monitor, VirshMonitor) and chosen.libvirt_xml is not None:
                        sent = execute_libvirt(monitor, chosen)
                    else:
                        sent = execute(monitor, chosen)
                except HotplugFailed as failed:
                    return failure(args, chosen, host, failed)
            show(args, plan_json(chosen, host, sent, args.execute), render_plan(chosen, args.execute))
            return 0
    finally:
        monitor.close()


def make_request(args: argparse.Namespace) -> Any:
    # as run() (see there)
    from layoutd.errors import InputError
    from layoutd.live.hotplug import Request
    from layoutd.units import parse_size

    if args.block_size and args.kind != "virtio-mem":
        raise InputError("--block-size only applies to --kind virtio-mem")
    if args.node is not None and args.node < 0:
        raise InputError(f"--node {args.node} must be 0 or more")
    block = parse_size(args.block_size, what="--block-size") if args.block_size else None
    return Request(size=parse_size(args.size, what="--size"), kind=args.kind, node=args.node,
                   id=args.id, block_size=block)


def show(args: argparse.Namespace, document: dict[str, Any], text: str) -> None:
    if args.format == "json":
        print(json.dumps(document, indent=2))
    else:
        print(text)


def refuse(args: argparse.Namespace, size: int, refusal: Refusal) -> int:
    # as run() (see there)
    from layoutd.units import format_size, hex_addr

    message = f"cannot place {format_size(size)}: {refusal.message()}; nothing was added"
    document = {"placement": None, "qmp": [], "executed": False, "refused": refusal.reason,
                "largest_fit": hex_addr(refusal.largest) if refusal.largest else None,
                "suggestions": list(refusal.suggestions)}
    show(args, document, message)
    print(f"layoutd hotplug: {message}", file=sys.stderr)
    return 1


def failure(args: argparse.Namespace, chosen: HotplugPlan, host: HostView, failed: Exception) -> int:
    sent = getattr(failed, "sent", [])
    document = plan_json(chosen, host, sent, False) | {"error": str(failed)}
    show(args, document, render_plan(chosen, False, sent))
    print(f"layoutd hotplug: {failed}", file=sys.stderr)
    return 1


def plan_json(chosen: HotplugPlan, host: HostView, sent: list[Command], executed: bool) -> dict[str, Any]:
    # as run() (see there)
    from layoutd.units import hex_addr

    document: dict[str, Any] = {
        "placement": to_json(chosen.placement.range),
        "qmp": sent if sent else chosen.commands,
        "executed": executed,
        "kind": chosen.kind,
        "id": chosen.id,
        "memdev": chosen.memdev,
        "size": hex_addr(chosen.size),
        "node": chosen.node,
        "alignment": hex_addr(chosen.alignment),
        "device_memory": to_json(chosen.region),
        "avoided": [to_json(hole) for hole in chosen.placement.avoided],
        "host": host.source,
        "warnings": (warnings := [*host.warnings, *chosen.warnings]),
        "warning_codes": coded(warnings),
    }
    if chosen.libvirt_xml is not None:
        document["libvirt_xml"] = chosen.libvirt_xml
    if chosen.block is not None:
        document["block_size"] = hex_addr(chosen.block.block_size)
        document["dma_mappings"] = {"device": chosen.block.mappings, "used": chosen.block.used,
                                    "limit": chosen.block.limit}
    return document


def render_plan(chosen: HotplugPlan, executed: bool, sent: list[Command] | None = None) -> str:
    # as run() (see there)
    from layoutd.units import format_size

    node = f" on node {chosen.node}" if chosen.node is not None else ""
    lines = [f"{chosen.kind} {chosen.id!r} ({format_size(chosen.size)}){node} at "
             f"{chosen.placement.range.label()}",
             f"  device memory {chosen.region.label()}, alignment {format_size(chosen.alignment)}"]
    lines += [f"  avoids the {hole.describe()}" for hole in chosen.placement.avoided]
    if chosen.block is not None:
        block = chosen.block
        lines.append(f"  block size {format_size(block.block_size)}: up to {block.mappings} DMA "
                     f"mappings, {block.used} in use, limit {block.limit}")
    if chosen.libvirt_xml is not None:
        lines.append("attached with virsh attach-device --live (verified with query-memory-devices):"
                     if executed else
                     "libvirt device (not attached; add --execute to attach it with virsh "
                     "attach-device --live):")
        lines += [f"  {line}" for line in chosen.libvirt_xml.splitlines()]
    else:
        if sent:
            lines.append("QMP commands sent:")
        elif executed:
            lines.append("QMP commands sent (verified with query-memory-devices):")
        else:
            lines.append("QMP commands (not sent; add --execute to send them):")
        lines += [f"  {json.dumps(command)}" for command in (sent or chosen.commands)]
    lines += [f"warning: {warning}" for warning in chosen.warnings]
    return "\n".join(lines)
