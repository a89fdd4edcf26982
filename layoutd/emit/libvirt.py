"""`emit_domain(plan)`: a complete libvirt domain XML that builds exactly the planned map.

Memory, maxMemory slots, NUMA cells, dimms placed with <address type='dimm' base=...>, hostdevs,
CPU with maxphysaddr, <pcihole64>, and <qemu:commandline> for what libvirt cannot say
(max-ram-below-4g). Passes `virt-xml-validate FILE domain`.
"""

from __future__ import annotations

import hashlib

from layoutd.emit import elements as el
from layoutd.emit.markup import escape, quoteattr
from layoutd.firmware.builds import EFI_ARM, EFI_ARM_PFLASH
from layoutd.firmware.guest import MMIO64_FILE
from layoutd.libvirt_versions import (
    OLDEST_LIBVIRT,
    PASSTHROUGH_LIMIT_SINCE,
    VIRTIO_AW_BITS_SINCE,
    LibvirtVersion,
)
from layoutd.models.plan import Plan, QemuConfig
from layoutd.qemu.versions import row

STEP = "  "
UUID_NAMESPACE = bytes.fromhex("7f1d8a523c1e4d7b9b7a6c61796f7574")


def emit_domain(plan: Plan, libvirt: LibvirtVersion = OLDEST_LIBVIRT, how: str = "") -> str:
    """The domain for `libvirt` (`how`: how that version was known, said in a comment, so never
    with a double hyphen); the default, 9.0, writes what every covered libvirt takes."""
    config = plan.config
    domain_type = "kvm" if config.accel == "kvm" else "qemu"
    args = el.machine_args(config)
    overrides = el.virtio_mem_overrides(config, STEP)
    namespace = f" xmlns:qemu='{el.QEMU_NS}'" if args or overrides else ""
    lines = [
        f"<domain type={quoteattr(domain_type)}{namespace}>",
        f"{STEP}<name>{escape(plan.name)}</name>",
        f"{STEP}<uuid>{uuid5(UUID_NAMESPACE, plan.name)}</uuid>",
        f"{STEP}<!-- layoutd plan for QEMU {plan.qemu_version} and "
        f"{plan.firmware or 'no firmware'}; valid on {', '.join(plan.hosts)} -->",
        f"{STEP}<!-- written for libvirt {libvirt[0]}.{libvirt[1]}"
        + (f" ({how.replace('--', '- -')})" if how else "") + " -->",
    ]
    lines += [f"{STEP}{item}" for item in (el.max_memory(config), el.memory(config),
                                           el.current_memory(config)) if item]
    lines.append(f"{STEP}<vcpu placement='static'>{config.cpus}</vcpu>")
    lines += _memory_backing(config)
    lines += _os(config) + _features(config) + _cpu(config, libvirt) + _devices(config, libvirt,
                                                                         plan.qemu_version)
    for block in (el.commandline(args, STEP), overrides):
        if block:
            lines.append(f"{STEP}{block}")
    lines.append("</domain>")
    return "\n".join(lines) + "\n"


def _memory_backing(config: QemuConfig) -> list[str]:
    inner = list(el.memory_backing(config).values())
    if not inner:
        return []
    return [f"{STEP}<memoryBacking>", *(f"{STEP * 2}{item}" for item in inner),
            f"{STEP}</memoryBacking>"]


def _os(config: QemuConfig) -> list[str]:
    lines = [f"{STEP}<os>",
             f"{STEP * 2}<type arch='{config.arch}' machine={quoteattr(config.machine)}>hvm</type>"]
    if config.firmware == EFI_ARM:  # libvirt takes ACPI on arm only with a pflash loader
        lines.append(f"{STEP * 2}<loader readonly='yes' type='pflash'>{EFI_ARM_PFLASH}</loader>")
    elif config.firmware:
        lines.append(f"{STEP * 2}<loader readonly='yes' type='rom'>{escape(config.firmware)}</loader>")
    lines.append(f"{STEP}</os>")
    if config.pci_window_mb:  # OVMF's 64-bit PCI window, as -fw_cfg
        lines += [f"{STEP}<sysinfo type='fwcfg'>",
                  f"{STEP * 2}<entry name='{MMIO64_FILE}'>{config.pci_window_mb}</entry>",
                  f"{STEP}</sysinfo>"]
    return lines


def _features(config: QemuConfig) -> list[str]:
    gic = f"<gic version='{config.gic_version}'/>" if config.gic_version else ""
    return [f"{STEP}<features><acpi/>{gic}</features>"]


def _cpu(config: QemuConfig, libvirt: LibvirtVersion) -> list[str]:
    mode = el.cpu_mode(config, libvirt)
    if mode != "custom":
        lines = [f"{STEP}<cpu mode='{mode}' check='none'>"]
    else:
        vendor = f" vendor_id={quoteattr(config.cpu_vendor)}" if config.cpu_vendor else ""
        lines = [f"{STEP}<cpu mode='custom' match='exact' check='none'>",
                 f"{STEP * 2}<model fallback='forbid'{vendor}>{escape(config.cpu_model)}</model>"]
    physaddr = el.maxphysaddr(config, libvirt)
    if physaddr:
        lines.append(f"{STEP * 2}{physaddr}")
        if mode == "host-model":
            since = ".".join(map(str, PASSTHROUGH_LIMIT_SINCE))
            lines.append(f"{STEP * 2}<!-- host-passthrough keeps the host's phys-bits, and libvirt "
                         f"before {since} cannot limit them: host-model, the host's own CPU "
                         f"model, takes {config.phys_bits}; plan for libvirt {since} or later "
                         "to keep host-passthrough -->")
    numa = el.numa(config, STEP * 2, STEP)
    if numa:
        lines.append(f"{STEP * 2}{numa}")
    return [*lines, f"{STEP}</cpu>"]


def _devices(config: QemuConfig, libvirt: LibvirtVersion, qemu: str) -> list[str]:
    """`qemu`: the plan's QEMU version (virtio-iommu's aw-bits exists from 9.0)."""
    indent = STEP * 2
    lines = [f"{STEP}<devices>"]
    hole = el.pcihole64(config)
    if hole and config.arch == "x86_64":
        model = el.root_controller_model(config)
        lines.append(f"{indent}<controller type='pci' index='0' model='{model}'>{hole}</controller>")
    if config.arch == "x86_64":  # the plan's argv has QEMU's default VGA: keep its window out of RAM
        lines.append(f"{indent}<video><model type='vga'/></video>")
    lines += [f"{indent}{el.hostdev(bdf, indent, STEP)}" for bdf in config.vfio_devices]
    lines += [f"{indent}{device}" for device in el.memory_devices(config, indent, STEP)]
    if config.viommu != "none":
        virtio = config.viommu == "virtio"
        wanted = config.viommu_aw_bits and (not virtio or row(qemu).virtio_iommu_aw_bits)
        said = wanted and (not virtio or libvirt >= VIRTIO_AW_BITS_SINCE)
        aw = f"<driver aw_bits='{config.viommu_aw_bits}'/>" if said else ""
        lines.append(f"{indent}<iommu model='{config.viommu}'>{aw}</iommu>")
        if wanted and not said:
            lines.append(f"{indent}<!-- libvirt {libvirt[0]}.{libvirt[1]} cannot set virtio-iommu's "
                         f"aw-bits ({config.viommu_aw_bits}): the guest learns the host IOMMU's "
                         "top from the holes QEMU passes it (QEMU 9.1 and later) -->")
    return [*lines, f"{STEP}</devices>"]


def uuid5(namespace: bytes, name: str) -> str:
    """The name-based UUID of RFC 4122 (SHA-1, version 5), as uuid.uuid5 gives it: the uuid
    module imports platform, a few ms of every plan."""
    raw = bytearray(hashlib.sha1(namespace + name.encode()).digest()[:16])
    raw[6] = raw[6] & 0x0F | 0x50
    raw[8] = raw[8] & 0x3F | 0x80
    text = raw.hex()
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"
