"""`layoutd check --qmp`: which RAM of a running VM lies in a hole of its devices' IOMMU groups.

Read-only: works on a paused or running VM and never changes it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from layoutd.collisions import Collision, check
from layoutd.emit.report import map_json, map_text
from layoutd.host import probe_host
from layoutd.live.session import Monitor
from layoutd.live.vm import LiveVm, read_vm
from layoutd.models.common import GuestRegion
from layoutd.models.host import HostView
from layoutd.models.validate import to_json
from layoutd.models.warning_codes import coded
from layoutd.record import Record, field


class AuditResult(Record, kw_only=False, frozen=False):
    vm: LiveVm
    host: HostView
    devices: list[str]  # the host devices whose groups count (empty: every group)
    layout: list[GuestRegion]
    collisions: list[Collision]
    warnings: list[str] = field(default_factory=list)


def vm_devices(vm: LiveVm, given: Sequence[str]) -> list[str]:
    """The VM's own vfio-pci devices plus any given on the command line, in order, once each."""
    devices: list[str] = []
    for device in [*vm.vfio, *given]:
        if device and device not in devices:
            devices.append(device)
    return devices


def host_for(vm: LiveVm, source: str | None, given: Sequence[str]) -> tuple[HostView, list[str]]:
    devices = vm_devices(vm, given)
    return probe_host(source, devices or None), devices


def audit(monitor: Monitor, source: str | None, given: Sequence[str]) -> AuditResult:
    vm = read_vm(monitor)
    host, devices = host_for(vm, source, given)
    layout = vm.layout()
    warnings = [*vm.warnings, *host.warnings]
    if not devices:
        warnings.append("the VM has no vfio-pci device and none was given: every IOMMU group "
                        "of the host counts")
    return AuditResult(vm, host, devices, layout, check(layout, host), warnings)


def audit_json(result: AuditResult) -> dict[str, Any]:
    """`check --qmp` / `--libvirt-domain`: the running VM's real map, as JSON."""
    vm = result.vm
    return {
        **map_json(result.layout, result.collisions),
        "device_memory": to_json(vm.device_memory) if vm.device_memory else None,
        "memory_devices": [
            {"kind": d.kind, "id": d.id, "start": hex(d.start), "end": hex(d.end),
             "node": d.node, "memdev": d.memdev} for d in vm.devices
        ],
        "vm": {"monitor": vm.name, "qemu": ".".join(map(str, vm.version)), "arch": vm.arch,
               "machine": vm.machine, "phys_bits": vm.phys_bits},
        "devices": result.devices,
        "source": result.host.source,
        "warnings": result.warnings,
        "warning_codes": coded(result.warnings),
    }


def audit_text(result: AuditResult) -> str:
    vm = result.vm
    header = (f"VM {vm.name}: QEMU {'.'.join(map(str, vm.version))} {vm.machine or vm.arch}, "
              f"phys-bits {vm.phys_bits}, host {result.host.source}, "
              f"devices: {', '.join(result.devices) or 'every IOMMU group'}")
    others: list[tuple[str, int, int]] = []
    if vm.device_memory is not None:
        others.append(("device-memory", vm.device_memory.start, vm.device_memory.end))
    return map_text(header, result.layout, result.collisions, result.warnings, others=others)
