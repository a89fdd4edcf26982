"""Domain XML -> the memory-relevant part of the QEMU command line libvirt builds from it.

Only what decides the guest-physical map is emitted (machine, CPU, -m, backends, NUMA, memory
devices, 64-bit PCI hole, vIOMMU, VFIO devices, and the domain's own <qemu:commandline>), in
QEMU's key=value syntax. libvirt passes the same values as JSON; the map is the same.

libvirt's own rules, read in its source (src/qemu/qemu_domain.c, qemu_command.c, qemu_alias.c,
qemu_domain_address.c of 9.0 and 11.3) and checked against `virsh domxml-to-native`
(tests/libvirt/test_oracle.py):
- sizes: each NUMA cell and the initial memory round up to 1 MiB, maxMemory too, each memory
  device to 2 MiB (qemuDomainAlignMemorySizes); XML sizes are whole KiB, rounded up.
- memory devices: a dimm/nvdimm keeps its <address slot>, the others take the lowest free slot
  in document order, and are named after it (dimm2, memdimm2); virtio devices are numbered per
  model (virtiomem0) and placed at <target><address base> from libvirt 9.4.
- no <features><acpi/>: ACPI off (9.0 `-no-acpi`, later `-machine acpi=off`: the same map).
- backends: memfd for <source type='memfd'>; a file for hugepages, NVDIMM/virtio-pmem paths,
  any memory access mode or <source type='file'>; else RAM (qemuBuildMemoryBackendProps).
"""

from __future__ import annotations

from layoutd.errors import UnsupportedOption
from layoutd.libvirt.domain import Cell, Domain, MemoryDev, read_domain
from layoutd.libvirt_versions import (
    NEWEST_LIBVIRT,
    NUMA_AUTO_SINCE,
    PASSTHROUGH_LIMIT_SINCE,
    TARGET_ADDRESS_SINCE,
    LibvirtVersion,
)
from layoutd.qemu.machines import BOOT_RAM
from layoutd.qemu.versions import Version, numa_mem_supported
from layoutd.qemu.x86 import BRIDGE
from layoutd.record import Record, replace
from layoutd.units import MiB, align_up

ARCHES = ("x86_64", "aarch64", "i686")  # i686: the x86 command line; the model leaves it to a
X86 = ("x86_64", "i686")  # dry run of qemu-system-i386
MEMORY_ALIGN = 1 * MiB  # NUMA cells, initial memory, maxMemory
MODULE_ALIGN = 2 * MiB  # every memory device on x86 and arm
RAM_DIR = "/var/lib/libvirt/qemu/ram"  # libvirt's memory_backing_dir
SYSTEM_PAGE = 4096
PREFIX = {"dimm": "dimm", "nvdimm": "nvdimm", "virtio-mem": "virtiomem", "virtio-pmem": "virtiopmem"}
DRIVER = {"dimm": "pc-dimm", "nvdimm": "nvdimm", "virtio-mem": "virtio-mem-pci",
          "virtio-pmem": "virtio-pmem-pci"}


class Translation(Record, kw_only=False):
    domain: Domain
    argv: tuple[str, ...]  # the arguments after the binary
    devices: tuple[str, ...]  # PCI addresses of the <hostdev>s


class Sizes(Record, kw_only=False):
    """The sizes libvirt passes to QEMU, after qemuDomainAlignMemorySizes."""

    initial: int
    cells: tuple[int, ...]
    modules: tuple[int, ...]
    max_memory: int | None


def translate_xml(data: bytes | str, source: str = "<stdin>",
                  libvirt: LibvirtVersion | None = None) -> Translation:
    return translate(read_domain(data, source), libvirt)


def translate(domain: Domain, libvirt: LibvirtVersion | None = None) -> Translation:
    """The command line libvirt `libvirt` (default: the newest covered) builds for `domain`."""
    if domain.arch not in ARCHES:
        raise UnsupportedOption(f"architecture {domain.arch!r} is not modelled (x86_64, aarch64, "
                                "i686)",
                                file=domain.source, field="<os><type arch>")
    version = libvirt or NEWEST_LIBVIRT
    domain = _auto_numa(domain, version)
    sizes = aligned_sizes(domain)
    argv = ["-nodefaults", *_accel(domain), *_machine(domain), *_cpu(domain, version),
            *_memory(domain, sizes), "-smp", str(domain.vcpus)]
    argv += _video(domain)
    argv += _numa(domain, sizes)
    for dev, size, (alias, slot) in zip(domain.memory_devices, sizes.modules,
                                        aliases(domain), strict=True):
        argv += _memory_device(domain, dev, size, alias, slot, version)
    argv += _pcihole64(domain) + _iommu(domain)
    for index, bdf in enumerate(domain.hostdevs):
        argv += ["-device", f"vfio-pci,host={bdf},id=hostdev{index}"]
    argv += domain.qemu_args
    return Translation(domain, tuple(argv), domain.hostdevs)


def _auto_numa(domain: Domain, libvirt: LibvirtVersion) -> Domain:
    """From 9.6 libvirt gives a domain with memory hotplug and no NUMA cell one cell holding all
    vCPUs and the initial memory; its DIMMs, NVDIMMs and virtio-mem devices go to node 0
    (qemuDomainDefNumaAutoAdd). 9.0 refuses such a domain for lack of a cell."""
    hotplug = domain.max_memory is not None or domain.slots > 0
    if libvirt < NUMA_AUTO_SINCE or not hotplug or domain.cells:
        return domain
    cpus = "0" if domain.vcpus == 1 else f"0-{domain.vcpus - 1}"
    devices = tuple(replace(dev, node=0) if dev.node is None and dev.model != "virtio-pmem"
                    else dev for dev in domain.memory_devices)
    return replace(domain, cells=(Cell(0, cpus, domain.initial_memory),), memory_devices=devices)


def aligned_sizes(domain: Domain) -> Sizes:
    """libvirt's qemuDomainAlignMemorySizes: cells and initial memory up to 1 MiB (the initial
    memory without NUMA from the devices' sizes as written), devices up to 2 MiB."""
    cells = tuple(align_up(cell.size, MEMORY_ALIGN) for cell in domain.cells)
    initial = sum(cells) if cells else align_up(domain.initial_memory, MEMORY_ALIGN)
    modules = tuple(align_up(dev.size, MODULE_ALIGN) for dev in domain.memory_devices)
    maximum = align_up(domain.max_memory, MEMORY_ALIGN) if domain.max_memory else None
    return Sizes(initial, cells, modules, maximum)


def aliases(domain: Domain) -> list[tuple[str, int | None]]:
    """(alias, slot) per memory device as libvirt assigns them (qemuDomainAssignMemorySlots,
    qemuAssignDeviceMemoryAlias): slots only with <maxMemory>."""
    hotplug = domain.max_memory is not None or domain.slots > 0
    taken = {dev.slot for dev in domain.memory_devices
             if dev.model in ("dimm", "nvdimm") and dev.slot is not None}
    counters: dict[str, int] = {}
    result: list[tuple[str, int | None]] = []
    for dev in domain.memory_devices:
        prefix = PREFIX.get(dev.model)
        if prefix is None:
            raise UnsupportedOption(f"memory device model {dev.model!r} is not modelled "
                                    f"({', '.join(PREFIX)})", file=domain.source,
                                    field="<devices><memory model>")
        slot = None
        if dev.model in ("dimm", "nvdimm"):
            slot = dev.slot
            if slot is None and hotplug:
                slot = next(s for s in range(len(taken) + 1) if s not in taken)
                taken.add(slot)
        if dev.alias:
            alias = dev.alias
        elif dev.model in ("virtio-mem", "virtio-pmem"):
            counters[prefix] = counters.get(prefix, -1) + 1
            alias = f"{prefix}{counters[prefix]}"
        else:
            alias = f"{prefix}{slot or 0}"
        result.append((alias, slot))
    return result


# The device libvirt gives QEMU for a domain's primary <video> on x86 (libvirt always passes
# -nodefaults, so without a <video> there is no VGA and no legacy VGA window). "default" (no
# model type, or the implicit video of a <graphics>) is cirrus (qemuDomainDefaultVideoDevice).
_PRIMARY_VIDEO = {"default": "cirrus-vga", "vga": "VGA", "cirrus": "cirrus-vga", "qxl": "qxl-vga",
                  "vmvga": "vmware-svga", "virtio": "virtio-vga", "bochs": "bochs-display",
                  "ramfb": "ramfb"}


def _video(domain: Domain) -> list[str]:
    if domain.arch not in X86 or not domain.videos or domain.videos[0] == "none":
        return []
    model = domain.videos[0]
    if model not in _PRIMARY_VIDEO:
        raise UnsupportedOption(f"video model {model!r} is not modelled "
                                f"({', '.join(_PRIMARY_VIDEO)}, none)",
                                file=domain.source, field="<devices><video><model type>")
    return ["-device", _PRIMARY_VIDEO[model]]


def _accel(domain: Domain) -> list[str]:
    """<domain type='kvm'> runs under KVM (the host CPU's vendor and bits for host/max), 'qemu' TCG."""
    return ["-accel", "kvm" if domain.domain_type == "kvm" else "tcg"]


def _kib(size: int) -> str:
    return f"{size // 1024}k" if size % 1024 == 0 else str(size)


def _machine(domain: Domain) -> list[str]:
    options = [domain.machine]
    if domain.smm is not None:
        options.append(f"smm={domain.smm}")
    if not domain.acpi:
        options.append("acpi=off")
    if not domain.cells:
        options.append(f"memory-backend={_ram_id(domain)}")
    if any(dev.model == "nvdimm" for dev in domain.memory_devices):
        options.append("nvdimm=on")
    if domain.arch == "aarch64":  # libvirt always names it: under TCG 2 unless the XML says
        gic = domain.gic_version or ("2" if domain.domain_type != "kvm" else None)
        options += [f"gic-version={gic}"] if gic else []
    args = ["-machine", ",".join(options)]
    if domain.arch == "aarch64" and domain.loader:
        args += ["-bios", domain.loader]
    return args


def _ram_id(domain: Domain) -> str:
    return BOOT_RAM["virt" if domain.arch == "aarch64" else "q35"]


def _cpu(domain: Domain, libvirt: LibvirtVersion = NEWEST_LIBVIRT) -> list[str]:
    """-cpu as libvirt passes it. Under KVM host-model is the host CPU, which libvirt expands
    into the host's named model: such a model takes <maxphysaddr mode='emulate' bits> (QEMU
    honours phys-bits on named models), so it reads as host with host-phys-bits=off. libvirt
    before 9.3 drops <maxphysaddr mode='passthrough' limit> (checked on 9.0's domxml-to-native)."""
    if domain.cpu_mode == "host-model" and domain.domain_type == "kvm" and domain.phys_bits:
        return ["-cpu", f"host,host-phys-bits=off,phys-bits={domain.phys_bits}"]
    if domain.cpu_mode == "host-model" and domain.domain_type != "kvm":
        # under TCG libvirt expands host-model from QEMU's TCG CPU: EPYC with extra features for
        # QEMU 7.2 and 10.0 (libvirt 9.0 and 11.3, tests/libvirt/test_oracle.py)
        model = "EPYC"
    elif domain.cpu_mode in ("host-passthrough", "host-model"):
        model = "host"
    elif domain.cpu_mode == "maximum":
        model = "max"
    else:
        # without a model libvirt passes QEMU's default CPU type: qemu64, and on arm virt the
        # 32-bit cortex-a15 (no high memory, no DIMMs)
        model = domain.cpu_model or {"aarch64": "cortex-a15", "i686": "qemu32"}.get(domain.arch,
                                                                                   "qemu64")
        if domain.cpu_vendor_id:  # libvirt: <model vendor_id='...'> becomes -cpu MODEL,vendor=...
            model += f",vendor={domain.cpu_vendor_id}"
    if domain.phys_bits is not None:
        model += f",phys-bits={domain.phys_bits}"
    elif domain.host_phys_bits and domain.arch in X86:
        model += ",host-phys-bits=on"
        if domain.phys_bits_limit and libvirt >= PASSTHROUGH_LIMIT_SINCE:
            model += f",host-phys-bits-limit={domain.phys_bits_limit}"
    return ["-cpu", model]


def _memory(domain: Domain, sizes: Sizes) -> list[str]:
    option = f"size={_kib(sizes.initial)}"
    if sizes.max_memory is not None:
        option += f",slots={domain.slots},maxmem={_kib(sizes.max_memory)}"
    args = ["-m", option]
    if not domain.cells:
        page = _page_for(domain, None, None)
        args += ["-object", _backend(domain, _ram_id(domain), sizes.initial, page, domain.access)]
    return args


def _page_for(domain: Domain, node: int | None, own: int | None) -> int | None:
    """The huge page size backing memory of NUMA node `node` (None: no NUMA), as libvirt's
    qemuBuildMemoryGetPagesize: the device's own <pagesize>, a <page> whose nodeset holds the
    node, else the <page> without nodeset (or the default size for a bare <hugepages/>)."""
    page = own
    if page is None and domain.hugepage_size is not None:
        general = [size for nodeset, size in domain.cell_pages if nodeset is None]
        page = general[0] if general else None
        if node is not None:
            page = next((size for nodeset, size in domain.cell_pages
                         if nodeset is not None and node in _nodeset(nodeset)), page)
        if page is None and not domain.cell_pages:
            page = domain.hugepage_size  # <hugepages/>: the host's default huge page size
    return None if page in (None, SYSTEM_PAGE) else page


def _nodeset(text: str) -> set[int]:
    found: set[int] = set()
    for part in text.split(","):
        part = part.strip()
        if not part or part.startswith("^"):
            continue
        low, _, high = part.partition("-")
        if low.isdigit() and (high.isdigit() or not high):
            found.update(range(int(low), int(high or low) + 1))
    return found


def _backend(domain: Domain, backend_id: str, size: int, page: int | None, access: str | None,
             path: str | None = None, extra: str = "") -> str:
    if path is None and domain.backing == "memfd":
        base = f"memory-backend-memfd,id={backend_id}"
        if page is not None:
            base += f",hugetlb=on,hugetlbsize={_kib(page)}"
    elif page is not None and path is None:
        # libvirt: a file on its hugetlbfs mount of that page size; the same alignment
        base = f"memory-backend-memfd,id={backend_id},hugetlb=on,hugetlbsize={_kib(page)}"
    elif path is not None or access or domain.backing == "file":
        base = f"memory-backend-file,id={backend_id},mem-path={path or RAM_DIR + '/' + backend_id}"
    else:
        base = f"memory-backend-ram,id={backend_id}"
    return f"{base},size={_kib(size)}{extra}"


def _numa(domain: Domain, sizes: Sizes) -> list[str]:
    """Cells with memory backends; on machine types up to 5.0, whose QEMU still takes
    `-numa node,mem=`, libvirt passes that instead when no cell needs a backend
    (qemuBuildNumaCommandLine)."""
    legacy = legacy_numa_mem(domain.arch, domain.machine) and not any(
        _cell_needs_backend(domain, cell) for cell in domain.cells)
    args: list[str] = []
    for index, (cell, size) in enumerate(zip(domain.cells, sizes.cells, strict=True)):
        cpus = f",cpus={cell.cpus}" if cell.cpus else ""
        if legacy:
            args += ["-numa", f"node,nodeid={index}{cpus},mem={size // MiB}"]
            continue
        backend = f"ram-node{index}"
        page = _page_for(domain, cell.id, None)
        args += ["-object", _backend(domain, backend, size, page, _cell_access(domain, cell))]
        args += ["-numa", f"node,nodeid={index}{cpus},memdev={backend}"]
    return args


def legacy_numa_mem(arch: str, machine: str) -> bool:
    """Whether QEMU accepts `-numa node,mem=` for this machine type (versioned types up to 5.0)."""
    prefixes = ("pc-q35-", "pc-i440fx-") if arch == "x86_64" else ("virt-",)
    for prefix in prefixes:
        release = machine.removeprefix(prefix)
        if release != machine and all(part.isdigit() for part in release.split(".")):
            return numa_mem_supported(Version.parse(release))
    return False


def _cell_needs_backend(domain: Domain, cell: Cell) -> bool:
    """Only a huge page size given for this cell's nodeset counts: the general one is passed as
    -mem-path (which changes no address)."""
    own_page = any(nodeset is not None and cell.id in _nodeset(nodeset)
                   for nodeset, _ in domain.cell_pages)
    return (own_page or _cell_access(domain, cell) is not None
            or domain.backing in ("memfd", "file") or cell.id in domain.memnodes)


def _cell_access(domain: Domain, cell: Cell) -> str | None:
    return cell.access or domain.access


def _memory_device(domain: Domain, dev: MemoryDev, size: int, alias: str, slot: int | None,
                   libvirt: LibvirtVersion) -> list[str]:
    memdev = f"mem{alias}"
    access = dev.access
    if access is None and dev.node is not None:
        cell = next((c for c in domain.cells if c.id == dev.node), None)
        access = cell.access if cell else None
    access = access or domain.access
    node = f"node={dev.node}," if dev.node is not None else ""
    device = f"{DRIVER[dev.model]},{node}memdev={memdev},id={alias}"
    if dev.model in ("dimm", "virtio-mem"):
        page = _page_for(domain, dev.node, dev.pagesize)
        extra = ",reserve=off" if dev.model == "virtio-mem" else ""
        backend = _backend(domain, memdev, size, page, access, extra=extra)
    else:  # nvdimm, virtio-pmem: a file at <source><path>
        path = dev.path or f"{RAM_DIR}/{memdev}"
        extra = (f",align={_kib(dev.align)}" if dev.align else "") + (",pmem=on" if dev.pmem else "")
        backend = _backend(domain, memdev, size, None, access, path, extra)
    if dev.model == "nvdimm" and dev.label:
        device += f",label-size={_kib(dev.label)}"
    if dev.model == "virtio-mem":
        device += f",block-size={_kib(dev.block)}" if dev.block else ""
        device += f",requested-size={_kib(dev.requested)}" if dev.requested else ""
    if dev.model in ("dimm", "nvdimm"):
        device += f",slot={slot}" if slot is not None else ""
        device += f",addr={dev.base:#x}" if dev.base is not None else ""
    elif dev.target_base is not None and libvirt >= TARGET_ADDRESS_SINCE:
        device += f",memaddr={dev.target_base:#x}"
    for name, value in _overrides(domain, alias):
        device += f",{name}={value}"
    return ["-object", backend, "-device", device]


def _overrides(domain: Domain, alias: str) -> list[tuple[str, str]]:
    """<qemu:override> properties for this device (libvirt sets them over its own)."""
    return [(name, value) for target, name, value in domain.overrides if target == alias]


def _pcihole64(domain: Domain) -> list[str]:
    if domain.pcihole64 is None or domain.arch not in X86:
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
    raise UnsupportedOption(f"vIOMMU model {domain.iommu!r} is not modelled (intel, virtio)",
                            file=domain.source, field="<devices><iommu model>")

