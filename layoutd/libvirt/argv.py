"""Domain XML -> the memory-relevant part of the QEMU command line libvirt 9 builds from it.

Only what decides the guest-physical map is emitted (machine, CPU, -m, backends, NUMA, memory
devices, 64-bit PCI hole, vIOMMU, VFIO devices, and the domain's own <qemu:commandline>), in
QEMU's key=value syntax. libvirt passes the same values as JSON; the map is the same.
"""

from __future__ import annotations

from dataclasses import dataclass

from layoutd.errors import InputError
from layoutd.libvirt.domain import Domain, MemoryDev, read_domain
from layoutd.qemu.machines import BOOT_RAM
from layoutd.qemu.x86 import BRIDGE

ARCHES = ("x86_64", "aarch64")


@dataclass(frozen=True)
class Translation:
    domain: Domain
    argv: tuple[str, ...]  # the arguments after the binary
    devices: tuple[str, ...]  # PCI addresses of the <hostdev>s


def translate_xml(data: bytes | str, source: str = "<stdin>") -> Translation:
    return translate(read_domain(data, source))


def translate(domain: Domain) -> Translation:
    if domain.arch not in ARCHES:
        raise InputError(f"architecture {domain.arch!r} is not modelled (x86_64, aarch64)",
                         file=domain.source, field="<os><type arch>")
    argv = ["-nodefaults", *_accel(domain), *_machine(domain), *_cpu(domain), *_memory(domain),
            "-smp", str(domain.vcpus)]
    argv += _video(domain)
    argv += _numa(domain)
    for index, dev in enumerate(domain.memory_devices):
        argv += _memory_device(domain, dev, index)
    argv += _pcihole64(domain) + _iommu(domain)
    for index, bdf in enumerate(domain.hostdevs):
        argv += ["-device", f"vfio-pci,host={bdf},id=hostdev{index}"]
    argv += domain.qemu_args
    return Translation(domain, tuple(argv), domain.hostdevs)


# The device libvirt gives QEMU for a domain's primary <video> on x86 (libvirt always passes
# -nodefaults, so without a <video> there is no VGA and no legacy VGA window).
_PRIMARY_VIDEO = {"vga": "VGA", "cirrus": "cirrus-vga", "qxl": "qxl-vga", "vmvga": "vmware-svga",
                  "virtio": "virtio-vga", "bochs": "bochs-display", "ramfb": "ramfb"}


def _video(domain: Domain) -> list[str]:
    if domain.arch != "x86_64" or not domain.videos or domain.videos[0] == "none":
        return []
    model = domain.videos[0]
    if model not in _PRIMARY_VIDEO:
        raise InputError(f"video model {model!r} is not modelled ({', '.join(_PRIMARY_VIDEO)}, none)",
                         file=domain.source, field="<devices><video><model type>")
    return ["-device", _PRIMARY_VIDEO[model]]


def _accel(domain: Domain) -> list[str]:
    """<domain type='kvm'> runs under KVM (the host CPU's vendor and bits for host/max), 'qemu' TCG."""
    return ["-accel", "kvm" if domain.domain_type == "kvm" else "tcg"]


def _kib(size: int) -> str:
    return f"{size // 1024}k" if size % 1024 == 0 else str(size)


def _machine(domain: Domain) -> list[str]:
    options = [domain.machine]
    if not domain.cells:
        options.append(f"memory-backend={_ram_id(domain)}")
    if any(dev.model == "nvdimm" for dev in domain.memory_devices):
        options.append("nvdimm=on")
    if domain.arch == "aarch64" and domain.gic_version:
        options.append(f"gic-version={domain.gic_version}")
    args = ["-machine", ",".join(options)]
    if domain.arch == "aarch64" and domain.loader:
        args += ["-bios", domain.loader]
    return args


def _ram_id(domain: Domain) -> str:
    return BOOT_RAM["virt" if domain.arch == "aarch64" else "q35"]


def _cpu(domain: Domain) -> list[str]:
    if domain.cpu_mode in ("host-passthrough", "host-model"):
        model = "host"
    elif domain.cpu_mode == "maximum":
        model = "max"
    else:
        model = domain.cpu_model or ("cortex-a57" if domain.arch == "aarch64" else "qemu64")
        if domain.cpu_vendor_id:  # libvirt: <model vendor_id='...'> becomes -cpu MODEL,vendor=...
            model += f",vendor={domain.cpu_vendor_id}"
    if domain.phys_bits is not None:
        model += f",phys-bits={domain.phys_bits}"
    elif domain.host_phys_bits and domain.arch == "x86_64":
        model += ",host-phys-bits=on"
    return ["-cpu", model]


def _memory(domain: Domain) -> list[str]:
    size = domain.initial_memory
    if size <= 0:
        raise InputError("the memory devices use all of <memory>; no boot RAM is left",
                         file=domain.source, field="<memory>")
    option = f"size={_kib(size)}"
    if domain.max_memory is not None:
        option += f",slots={domain.slots},maxmem={_kib(domain.max_memory)}"
    args = ["-m", option]
    if not domain.cells:
        args += ["-object", _backend(domain, _ram_id(domain), size)]
    return args


def _backend(domain: Domain, backend_id: str, size: int, pagesize: int | None = None,
             extra: str = "") -> str:
    page = pagesize or domain.hugepage_size
    if page is not None:
        base = f"memory-backend-memfd,id={backend_id},hugetlb=on,hugetlbsize={_kib(page)}"
    elif domain.backing == "memfd":
        base = f"memory-backend-memfd,id={backend_id}"
    else:
        base = f"memory-backend-ram,id={backend_id}"
    return f"{base},size={_kib(size)}{extra}"


def _numa(domain: Domain) -> list[str]:
    args: list[str] = []
    for cell in domain.cells:
        backend = f"ram-node{cell.id}"
        args += ["-object", _backend(domain, backend, cell.size)]
        cpus = f",cpus={cell.cpus}" if cell.cpus else ""
        args += ["-numa", f"node,nodeid={cell.id}{cpus},memdev={backend}"]
    return args


def _memory_device(domain: Domain, dev: MemoryDev, index: int) -> list[str]:
    node = f"node={dev.node}," if dev.node is not None else ""
    if dev.model == "dimm":
        backend = _backend(domain, f"memdimm{index}", dev.size, dev.pagesize)
        slot = f",slot={dev.slot}" if dev.slot is not None else ""
        addr = f",addr={dev.base:#x}" if dev.base is not None else ""
        device = f"pc-dimm,{node}memdev=memdimm{index},id=dimm{index}{slot}{addr}"
        return ["-object", backend, "-device", device]
    if dev.model == "nvdimm":
        path = dev.path or f"/var/lib/libvirt/qemu/nvdimm{index}"
        backend = f"memory-backend-file,id=memnvdimm{index},mem-path={path},size={_kib(dev.size)}"
        slot = f",slot={dev.slot}" if dev.slot is not None else ""
        addr = f",addr={dev.base:#x}" if dev.base is not None else ""
        device = f"nvdimm,{node}memdev=memnvdimm{index},id=nvdimm{index}{slot}{addr}"
        return ["-object", backend, "-device", device]
    if dev.model == "virtio-mem":
        backend = _backend(domain, f"memvirtiomem{index}", dev.size, dev.pagesize, ",reserve=off")
        block = f",block-size={_kib(dev.block)}" if dev.block else ""
        requested = f",requested-size={_kib(dev.requested or 0)}"
        addr = f",memaddr={dev.base:#x}" if dev.base is not None else ""
        device = f"virtio-mem-pci,{node}memdev=memvirtiomem{index},id=virtiomem{index}"
        return ["-object", backend, "-device", device + block + requested + addr]
    raise InputError(f"memory device model {dev.model!r} is not modelled (dimm, nvdimm, virtio-mem)",
                     file=domain.source, field="<devices><memory model>")


def _pcihole64(domain: Domain) -> list[str]:
    if domain.pcihole64 is None or domain.arch != "x86_64":
        return []
    host = BRIDGE["q35" if domain.pci_root == "pcie-root" else "pc"]
    return ["-global", f"{host}.pci-hole64-size={_kib(domain.pcihole64)}"]


def _iommu(domain: Domain) -> list[str]:
    if domain.iommu is None:
        return []
    aw = f",aw-bits={domain.iommu_aw_bits}" if domain.iommu_aw_bits else ""
    if domain.iommu == "intel":
        return ["-device", f"intel-iommu{aw}"]
    if domain.iommu == "virtio":
        return ["-device", f"virtio-iommu-pci{aw}"]
    raise InputError(f"vIOMMU model {domain.iommu!r} is not modelled (intel, virtio)",
                     file=domain.source, field="<devices><iommu model>")
