"""Devices and IOMMU groups: selecting a device selects its whole group.

Selecting groups and judging their viability are lookups, answered with plain dicts.
"""

from collections.abc import Sequence

from layoutd.errors import UnknownDevice
from layoutd.host.sysfs import normalize_bdf
from layoutd.models.host import Device, HostFacts

VFIO_DRIVER = "vfio-pci"
BRIDGE_CLASS = "0x0604"  # PCI-to-PCI bridge: never handed to a guest, does not spoil a group


def select_groups(facts: HostFacts, devices: Sequence[str] | None) -> list[int]:
    """The groups the selected devices pull in (every group when none are given)."""
    if not devices:
        return sorted({group.number for group in facts.groups})
    group_of = {device.address: device.group for device in facts.devices}
    chosen: set[int] = set()
    for text in devices:
        address = normalize_bdf(text)
        if address is None:
            raise UnknownDevice(text, f"{text!r} is not a PCI address such as 0000:41:00.0")
        if address not in group_of:
            known = ", ".join(sorted(group_of)[:8])
            raise UnknownDevice(
                address, f"unknown device {address}: it is in no IOMMU group of this host (known: {known})")
        number = group_of[address]
        if number is not None:
            chosen.add(number)
    return sorted(chosen)


def spoilers(devices: Sequence[Device]) -> list[Device]:
    """Devices that keep a group from being viable: bound to something other than vfio-pci."""
    return [
        device
        for device in devices
        if device.driver != VFIO_DRIVER and not (device.pci_class or "").startswith(BRIDGE_CLASS)
    ]


def viability_warnings(facts: HostFacts, groups: Sequence[int]) -> tuple[list[int], list[str]]:
    """(viable group numbers, one warning per non-viable group naming the device and driver)."""
    viable: list[int] = []
    warnings: list[str] = []
    for number in groups:
        members = [device for device in facts.devices if device.group == number]
        bad = spoilers(members)
        if not bad:
            viable.append(number)
            continue
        named = ", ".join(
            f"{d.address} is {'bound to ' + d.driver if d.driver else 'not bound to any driver'}"
            for d in bad
        )
        warnings.append(
            f"IOMMU group {number} is not viable: {named}; every device in the group must be "
            f"bound to {VFIO_DRIVER} (libvirt rebinds managed devices when the VM starts)"
        )
    return viable, warnings
