"""`emit_domain(plan)`: a complete libvirt domain XML that builds exactly the planned map.

Memory, maxMemory slots, NUMA cells, dimms placed with <address type='dimm' base=...>, hostdevs,
CPU with maxphysaddr, <pcihole64>, and <qemu:commandline> for what libvirt cannot say
(max-ram-below-4g). Passes `virt-xml-validate FILE domain`.
"""

from __future__ import annotations

import uuid
from xml.sax.saxutils import escape, quoteattr

from layoutd.firmware.guest import MMIO64_FILE
from layoutd.libvirt import elements as el
from layoutd.models.plan import Plan, QemuConfig

STEP = "  "
UUID_NAMESPACE = uuid.UUID("7f1d8a52-3c1e-4d7b-9b7a-6c61796f7574")


def emit_domain(plan: Plan) -> str:
    config = plan.config
    domain_type = "kvm" if config.accel == "kvm" else "qemu"
    args = el.machine_args(config)
    overrides = el.virtio_mem_overrides(config, STEP)
    namespace = f" xmlns:qemu='{el.QEMU_NS}'" if args or overrides else ""
    lines = [
        f"<domain type={quoteattr(domain_type)}{namespace}>",
        f"{STEP}<name>{escape(plan.name)}</name>",
        f"{STEP}<uuid>{uuid.uuid5(UUID_NAMESPACE, plan.name)}</uuid>",
        f"{STEP}<!-- layoutd plan for QEMU {plan.qemu_version} and "
        f"{plan.firmware or 'no firmware'}; valid on {', '.join(plan.hosts)} -->",
    ]
    lines += [f"{STEP}{item}" for item in (el.max_memory(config), el.memory(config),
                                           el.current_memory(config)) if item]
    lines.append(f"{STEP}<vcpu placement='static'>{config.cpus}</vcpu>")
    lines += _memory_backing(config)
    lines += _os(config) + _features(config) + _cpu(config) + _devices(config)
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
    if config.firmware:
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


def _cpu(config: QemuConfig) -> list[str]:
    if config.cpu_model == "host":
        lines = [f"{STEP}<cpu mode='host-passthrough' check='none'>"]
    else:
        vendor = f" vendor_id={quoteattr(config.cpu_vendor)}" if config.cpu_vendor else ""
        lines = [f"{STEP}<cpu mode='custom' match='exact' check='none'>",
                 f"{STEP * 2}<model fallback='forbid'{vendor}>{escape(config.cpu_model)}</model>"]
    physaddr = el.maxphysaddr(config)
    if physaddr:
        lines.append(f"{STEP * 2}{physaddr}")
        if config.cpu_model == "host" and config.accel == "kvm":
            lines.append(f"{STEP * 2}<!-- QEMU keeps host-passthrough's own phys-bits whatever "
                         "mode='emulate' says; libvirt 9.3 and later: <maxphysaddr "
                         f"mode='passthrough' limit='{config.phys_bits}'/> instead -->")
    numa = el.numa(config, STEP * 2, STEP)
    if numa:
        lines.append(f"{STEP * 2}{numa}")
    return [*lines, f"{STEP}</cpu>"]


def _devices(config: QemuConfig) -> list[str]:
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
        aw = f"<driver aw_bits='{config.viommu_aw_bits}'/>" if config.viommu_aw_bits else ""
        lines.append(f"{indent}<iommu model='{config.viommu}'>{aw}</iommu>")
    return [*lines, f"{STEP}</devices>"]
