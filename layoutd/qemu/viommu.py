"""virtio-iommu-pci's reserved regions: which ones QEMU's machines set themselves. Pure.

A machine with an MSI controller sets the device's `reserved-regions` to its MSI doorbell in its
pre-plug hook (hw/i386/pc.c, hw/arm/virt.c) and then refuses any a user gave: 7.2 says "array
size property len-reserved-regions may not be set more than once", 10.0 and 11.1 abort on the
JSON list form. x86 pc and q35 always have one; arm virt has a GICv2m (gic-version 2, the
default) or an ITS (gic-version=3); only virt with gic-version=3,its=off, whose devices then
have no MSI, takes a user's list. Read back over QMP (qom-get) on 7.2, 10.0 and 11.1 at -S.
"""

from layoutd.qemu.x86 import MSI_WINDOW

VIRT_ITS_DOORBELL = (0x8090000, 0x809FFFF)  # GITS_TRANSLATER page of the ITS at 0x8080000
VIRT_GICV2M_DOORBELL = (0x8020000, 0x8020FFF)  # the GICv2m MSI_SETSPI_NS page


def machine_msi_window(family: str, gic_version: int | None) -> tuple[str, int, int]:
    """The MSI doorbell QEMU itself sets as virtio-iommu-pci's only reserved region: its name,
    first and last address."""
    if family != "virt":
        return "MSI window", *MSI_WINDOW
    if gic_version == 3:
        return "ITS doorbell", *VIRT_ITS_DOORBELL
    return "GICv2m doorbell", *VIRT_GICV2M_DOORBELL


def machine_describes(family: str, gic_version: int | None) -> str:
    """'q35', 'virt with gic-version=3': for messages."""
    return f"{family} with gic-version={gic_version}" if family == "virt" and gic_version else family
