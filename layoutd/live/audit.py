"""`layoutd check --qmp`: which RAM of a running VM lies in a hole of its devices' IOMMU groups.

Read-only: works on a paused or running VM and never changes it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from layoutd.checking import check
from layoutd.collisions import Collision
from layoutd.live.vm import LiveVm, read_vm
from layoutd.models.common import GuestRegion
from layoutd.record import Record, field

if TYPE_CHECKING:
    from layoutd.live.session import Monitor
    from layoutd.models.host import HostView


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
    from layoutd.host import probe_host

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
