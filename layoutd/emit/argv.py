"""QEMU arguments from a QemuConfig. Pure: the same config always gives the same argv."""

import shlex
from collections.abc import Sequence

from layoutd.emit.qmp import DRIVER, QOM_TYPE
from layoutd.firmware.guest import MMIO64_FILE
from layoutd.models.plan import Backend, PlannedDevice, QemuConfig
from layoutd.qemu.versions import DEFAULT, QemuRelease, Version, row
from layoutd.qemu.x86 import BRIDGE
from layoutd.solver.spec_family import family_of
from layoutd.units import format_size, hex_addr


def qemu_argv(config: QemuConfig, *, qemu_version: str | Version = DEFAULT) -> list[str]:
    """The arguments after the binary name, ready to exec."""
    args = ["-accel", "kvm"] if config.accel == "kvm" else []
    args += [
        "-machine",
        _machine(config),
        "-cpu",
        _cpu(config),
        "-smp",
        str(config.cpus),
        "-m",
        _memory(config),
    ]
    if config.firmware:
        args += ["-bios", config.firmware]
    if config.pci_window_mb:
        args += ["-fw_cfg", f"name={MMIO64_FILE},string={config.pci_window_mb}"]
    for backend in config.backends:
        args += ["-object", backend_option(backend)]
    for node in config.numa:
        option = f"node,nodeid={node.id}" + "".join(f",cpus={part}" for part in node.cpus.split(","))
        args += ["-numa", option + (f",memdev={node.backend}" if node.backend else "")]
    for device in config.devices:
        args += ["-device", device_option(device)]
    if config.pci_hole64_size is not None:
        bridge = BRIDGE[family_of(config.machine)]
        args += ["-global", f"{bridge}.pci-hole64-size={format_size(config.pci_hole64_size)}"]
    args += _viommu(config, row(qemu_version))
    for index, address in enumerate(config.vfio_devices):
        args += ["-device", f"vfio-pci,host={address},id=hostdev{index}"]
    return args


def _machine(config: QemuConfig) -> str:
    parts = [config.machine]
    if config.max_ram_below_4g is not None:
        parts.append(f"max-ram-below-4g={format_size(config.max_ram_below_4g)}")
    if config.boot_backend:
        parts.append(f"memory-backend={config.boot_backend}")
    if config.gic_version:
        parts.append(f"gic-version={config.gic_version}")
    if config.highmem_mmio is False:
        parts.append("highmem-mmio=off")
    if any(device.kind == "nvdimm" for device in config.devices):
        parts.append("nvdimm=on")
    return ",".join(parts)


def _cpu(config: QemuConfig) -> str:
    vendor = f",vendor={config.cpu_vendor}" if config.cpu_vendor else ""
    bits = f",phys-bits={config.phys_bits}" if config.phys_bits else ""
    if bits and config.accel == "kvm" and config.cpu_model in ("host", "max"):
        bits = ",host-phys-bits=off" + bits  # else KVM's host/max ignore phys-bits for the host's
    return config.cpu_model + vendor + bits


def _memory(config: QemuConfig) -> str:
    text = format_size(config.ram_size)
    if config.maxmem:
        text += f",slots={config.slots},maxmem={format_size(config.maxmem)}"
    return text


def backend_option(backend: Backend) -> str:
    parts = [QOM_TYPE[backend.kind], f"id={backend.id}", f"size={format_size(backend.size)}"]
    if backend.kind == "file":
        parts.append(f"mem-path={backend.path}")
        if backend.hugepage_size:
            parts.append(f"align={format_size(backend.hugepage_size)}")
    if backend.kind == "memfd" and backend.hugepage_size:
        parts += ["hugetlb=on", f"hugetlbsize={format_size(backend.hugepage_size)}"]
    if backend.share:
        parts.append("share=on")
    if backend.prealloc:
        parts.append("prealloc=on")
    if backend.reserve is not None:
        parts.append(f"reserve={'on' if backend.reserve else 'off'}")
    return ",".join(parts)


def device_option(device: PlannedDevice) -> str:
    if device.kind == "virtio-mem":
        parts = [
            DRIVER["virtio-mem"],
            f"id={device.id}",
            f"memdev={device.backend}",
            f"memaddr={hex_addr(device.addr)}",
            f"requested-size={format_size(device.size)}",
        ]
        if device.block_size:
            parts.append(f"block-size={format_size(device.block_size)}")
    else:
        driver = DRIVER[device.kind]
        parts = [driver, f"id={device.id}", f"memdev={device.backend}", f"addr={hex_addr(device.addr)}"]
    if device.node is not None:
        parts.append(f"node={device.node}")
    return ",".join(parts)


def _viommu(config: QemuConfig, qemu: QemuRelease) -> list[str]:
    if config.viommu == "intel":
        return ["-device", f"intel-iommu,aw-bits={config.viommu_aw_bits or 39}"]
    if config.viommu != "virtio":
        return []
    aw = f",aw-bits={config.viommu_aw_bits}" if config.viommu_aw_bits and qemu.virtio_iommu_aw_bits else ""
    return ["-device", f"virtio-iommu-pci{aw}"]  # reserved regions: QEMU's machine sets them


def shell_lines(args: Sequence[str], binary: str = "qemu-system-x86_64") -> str:
    """Shell-quoted, one option per line, ready to paste."""
    lines = [shlex.quote(binary)]
    index = 0
    while index < len(args):
        if args[index].startswith("-") and index + 1 < len(args) and not args[index + 1].startswith("-"):
            lines.append(f"{shlex.quote(args[index])} {shlex.quote(args[index + 1])}")
            index += 2
        else:
            lines.append(shlex.quote(args[index]))
            index += 1
    return " \\\n    ".join(lines) + "\n"
