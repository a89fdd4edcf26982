"""libvirt XML snippets for a planned QemuConfig, shared by emit_domain and the in-place editor."""

from __future__ import annotations

from layoutd.emit.markup import quoteattr
from layoutd.libvirt_versions import NEWEST_LIBVIRT, LibvirtVersion, mode_for, physaddr_for
from layoutd.models.plan import NumaNode, PlannedDevice, QemuConfig

QEMU_NS = "http://libvirt.org/schemas/domain/qemu/1.0"
UNITS = {
    "b": 1, "bytes": 1,
    "kb": 1000, "k": 1024, "kib": 1024,
    "mb": 1000**2, "m": 1024**2, "mib": 1024**2,
    "gb": 1000**3, "g": 1024**3, "gib": 1024**3,
    "tb": 1000**4, "t": 1024**4, "tib": 1024**4,
    "pb": 1000**5, "p": 1024**5, "pib": 1024**5,
    "eb": 1000**6, "e": 1024**6, "eib": 1024**6,
}
"""libvirt's size units (<memory unit=...>), read by libvirt/domain.py and written here."""
def in_unit(size: int, unit: str | None) -> tuple[str, int]:
    """`size` bytes said in the domain's own `unit` when it is exact there, else in KiB."""
    factor = UNITS.get((unit or "").strip().lower())
    if factor and size % factor == 0:
        return str(unit).strip(), size // factor
    return "KiB", size // 1024



def kib(size: int) -> int:
    return size // 1024


def total_memory(config: QemuConfig) -> int:
    """libvirt's <memory>: boot RAM plus every memory device."""
    return config.ram_size + sum(device.size for device in config.devices)


def numa_nodes(config: QemuConfig) -> tuple[NumaNode, ...]:
    """The plan's nodes; libvirt needs at least one NUMA cell for memory hotplug on x86."""
    if config.numa or config.maxmem is None:
        return config.numa
    cpus = "0" if config.cpus == 1 else f"0-{config.cpus - 1}"
    return (NumaNode(id=0, cpus=cpus, size=config.ram_size, backend=None),)


def memory(config: QemuConfig, unit: str | None = None) -> str:
    """`unit`: the domain's own, kept when the size is exact in it (else KiB)."""
    said, value = in_unit(total_memory(config), unit)
    return f"<memory unit='{said}'>{value}</memory>"


def current_memory(config: QemuConfig, unit: str | None = None) -> str:
    said, value = in_unit(total_memory(config), unit)
    return f"<currentMemory unit='{said}'>{value}</currentMemory>"


def max_memory(config: QemuConfig, unit: str | None = None) -> str | None:
    if config.maxmem is None:
        return None
    said, value = in_unit(config.maxmem, unit)
    return f"<maxMemory slots='{config.slots}' unit='{said}'>{value}</maxMemory>"


def memory_backing(config: QemuConfig) -> dict[str, str]:
    """<memoryBacking>'s children for the boot RAM's backend, by tag: the page size (libvirt
    backs boot RAM with it; DIMMs say theirs in <source><pagesize>), memfd/file, shared, prealloc."""
    boot = [b for b in config.backends if b.id in {n.backend for n in config.numa}
            or b.id == config.boot_backend] or list(config.backends[:1])
    if not boot:
        return {}
    backend = boot[0]
    inner: dict[str, str] = {}
    if backend.hugepage_size:
        inner["hugepages"] = (f"<hugepages><page size='{kib(backend.hugepage_size)}' unit='KiB'/>"
                              "</hugepages>")
    if backend.kind in ("memfd", "file"):
        inner["source"] = f"<source type='{backend.kind}'/>"
    if backend.share:
        inner["access"] = "<access mode='shared'/>"
    if backend.prealloc:
        inner["allocation"] = "<allocation mode='immediate'/>"
    return inner


def cpu_mode(config: QemuConfig, libvirt: LibvirtVersion = NEWEST_LIBVIRT) -> str:
    return mode_for(config.cpu_model, config.phys_bits, libvirt)


def maxphysaddr(config: QemuConfig, libvirt: LibvirtVersion = NEWEST_LIBVIRT,
                mode: str | None = None) -> str | None:
    """`mode`: the domain's own <cpu mode>, when it has one."""
    if config.phys_bits is None:
        return None
    return physaddr_for(config.phys_bits, mode or cpu_mode(config, libvirt))


def numa(config: QemuConfig, indent: str, step: str = "  ") -> str | None:
    nodes = numa_nodes(config)
    if not nodes:
        return None
    cells = "".join(f"\n{indent}{step}<cell id='{node.id}' cpus='{node.cpus}' "
                    f"memory='{kib(node.size)}' unit='KiB'/>" for node in nodes)
    return f"<numa>{cells}\n{indent}</numa>"


def memory_devices(config: QemuConfig, indent: str, step: str = "  ") -> list[str]:
    has_numa = bool(numa_nodes(config))
    return [memory_device(device, slot, indent, step, source=_device_source(config, device),
                          node=(device.node or 0) if has_numa else None)
            for slot, device in enumerate(config.devices)]


def memory_device(device: PlannedDevice, slot: int, indent: str, step: str = "  ", *,
                  source: str | None = None, node: int | None = None,
                  alias: str | None = None) -> str:
    """The one libvirt encoder of a memory device: <memory model=...> with its target, and a
    DIMM's <address type='dimm' slot base> (the plan's domain, and hotplug's attach-device)."""
    inner, deeper = indent + step, indent + step + step
    lines = [f"<size unit='KiB'>{kib(device.size)}</size>"]
    if node is not None:
        lines.append(f"<node>{node}</node>")
    if device.kind == "virtio-mem":
        lines.append(f"<block unit='KiB'>{kib(device.block_size or 2 * 1024 * 1024)}</block>")
        lines.append(f"<requested unit='KiB'>{kib(device.size)}</requested>")
    target = "".join(f"\n{deeper}{line}" for line in lines)
    parts = [f"<memory model='{device.kind}'>"]
    if source:
        parts.append(f"\n{inner}{source}")
    parts.append(f"\n{inner}<target>{target}\n{inner}</target>")
    if alias is not None:
        parts.append(f"\n{inner}<alias name={quoteattr(alias)}/>")
    if device.kind in ("dimm", "nvdimm"):
        parts.append(f"\n{inner}<address type='dimm' slot='{slot}' base='{device.addr:#x}'/>")
    else:  # virtio-mem: placed by virtio_mem_overrides through this alias
        parts.append(f"\n{inner}<alias name='ua-{device.id}'/>")
    parts.append(f"\n{indent}</memory>")
    return "".join(parts)


def _device_source(config: QemuConfig, device: PlannedDevice) -> str | None:
    backend = next((b for b in config.backends if b.id == device.backend), None)
    if backend is None:
        return None
    if device.kind == "nvdimm":
        return f"<source><path>{_text(backend.path or '/var/lib/libvirt/qemu/nvdimm')}</path></source>"
    if backend.hugepage_size:
        return f"<source><pagesize unit='KiB'>{kib(backend.hugepage_size)}</pagesize></source>"
    return None


def virtio_mem_overrides(config: QemuConfig, indent: str, step: str = "  ") -> str | None:
    """libvirt 9.0 cannot place virtio-mem (no <address base>); set memaddr through qemu:override."""
    placed = [(index, d) for index, d in enumerate(config.devices) if d.kind == "virtio-mem"]
    if not placed:
        return None
    inner = indent + step
    blocks = "".join(
        f"\n{inner}<qemu:device alias='ua-{device.id}'><qemu:frontend>"
        f"<qemu:property name='memaddr' type='unsigned' value='{device.addr}'/>"
        f"</qemu:frontend></qemu:device>" for _, device in placed)
    return f"<qemu:override>{blocks}\n{indent}</qemu:override>"


def machine_args(config: QemuConfig) -> list[str]:
    """QEMU arguments libvirt has no element for: a second -machine with max-ram-below-4g or
    (arm virt) highmem-mmio=off."""
    props = [] if config.max_ram_below_4g is None else [f"max-ram-below-4g={config.max_ram_below_4g}"]
    props += ["highmem-mmio=off"] if config.highmem_mmio is False else []
    return ["-machine", ",".join(props)] if props else []


def commandline(args: list[str], indent: str, step: str = "  ") -> str | None:
    if not args:
        return None
    lines = "".join(f"\n{indent}{step}<qemu:arg value={quoteattr(arg)}/>" for arg in args)
    return f"<qemu:commandline>{lines}\n{indent}</qemu:commandline>"


def pcihole64(config: QemuConfig) -> str | None:
    if config.pci_hole64_size is None:
        return None
    return f"<pcihole64 unit='KiB'>{kib(config.pci_hole64_size)}</pcihole64>"


def root_controller_model(config: QemuConfig) -> str:
    return "pci-root" if config.machine == "pc" or config.machine.startswith("pc-i440fx") else "pcie-root"


def hostdev(bdf: str, indent: str, step: str = "  ") -> str:
    domain, bus, rest = bdf.split(":")
    slot, function = rest.split(".")
    inner = indent + step
    return (f"<hostdev mode='subsystem' type='pci' managed='yes'>\n{inner}<source>\n{inner}{step}"
            f"<address domain='0x{domain}' bus='0x{bus}' slot='0x{slot}' function='0x{function}'/>"
            f"\n{inner}</source>\n{indent}</hostdev>")


def _text(value: str) -> str:
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
