"""The running-VM branches of `layoutd check` (`--qmp SOCKET`, `--libvirt-domain NAME`): audit the
VM's real map and report through the same table and JSON as every other `check`."""

from __future__ import annotations

import argparse
import json
from typing import Any

from layoutd.live.audit import AuditResult


def add_qmp_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--qmp", metavar="SOCKET",
                        help="audit a running VM through its QMP socket (read-only)")


def run_live(args: argparse.Namespace) -> int:
    """Exit 1 when some RAM of the VM touches a hole of its devices' groups, else 0."""
    from layoutd.live.audit import audit
    from layoutd.live.session import open_monitor

    given = [d.strip() for d in (getattr(args, "devices", None) or "").split(",") if d.strip()]
    monitor = open_monitor(getattr(args, "qmp", None), getattr(args, "libvirt_domain", None),
                           getattr(args, "connect", None))
    try:
        result = audit(monitor, getattr(args, "host", None), given)
    finally:
        monitor.close()
    if getattr(args, "format", "text") == "json":
        print(json.dumps(audit_json(result), indent=2))
    else:
        print(audit_text(result), end="")
    return 1 if result.collisions else 0


def audit_json(result: AuditResult) -> dict[str, Any]:
    from layoutd.emit.report import map_json

    vm = result.vm
    return {
        **map_json(result.layout, result.collisions),
        "device_memory": vm.device_memory.model_dump(mode="json") if vm.device_memory else None,
        "memory_devices": [
            {"kind": d.kind, "id": d.id, "start": hex(d.start), "end": hex(d.end),
             "node": d.node, "memdev": d.memdev} for d in vm.devices
        ],
        "vm": {"monitor": vm.name, "qemu": ".".join(map(str, vm.version)), "arch": vm.arch,
               "machine": vm.machine, "phys_bits": vm.phys_bits},
        "devices": result.devices,
        "source": result.host.source,
        "warnings": result.warnings,
    }


def audit_text(result: AuditResult) -> str:
    from layoutd.emit.report import map_text

    vm = result.vm
    header = (f"VM {vm.name}: QEMU {'.'.join(map(str, vm.version))} {vm.machine or vm.arch}, "
              f"phys-bits {vm.phys_bits}, host {result.host.source}, "
              f"devices: {', '.join(result.devices) or 'every IOMMU group'}")
    others = []
    if vm.device_memory is not None:
        others.append(("device-memory", vm.device_memory.start, vm.device_memory.end))
    return map_text(header, result.layout, result.collisions, result.warnings, others=others)
