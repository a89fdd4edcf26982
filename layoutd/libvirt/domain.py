"""The memory-relevant facts of a libvirt domain XML, read from the safe tree."""

from __future__ import annotations

import re

from layoutd.emit.elements import UNITS
from layoutd.errors import InputError
from layoutd.libvirt.xmltext import Node, parse
from layoutd.record import Record, field

QEMU_NS = "http://libvirt.org/schemas/domain/qemu/1.0"

# libvirt's scaledInteger units (docs: formatdomain.html#memory-allocation); default KiB.


class Cell(Record, kw_only=False):
    id: int
    cpus: str
    size: int
    access: str | None = None  # memAccess: shared | private


class MemoryDev(Record):
    model: str  # dimm | nvdimm | virtio-mem | virtio-pmem
    size: int
    node: int | None
    base: int | None
    slot: int | None
    block: int | None = None
    requested: int | None = None
    path: str | None = None
    pagesize: int | None = None
    label: int | None = None  # nvdimm <target><label><size>
    align: int | None = None  # nvdimm <source><alignsize>
    pmem: bool = False  # nvdimm <source><pmem/>
    target_base: int | None = None  # virtio-mem/-pmem <target><address base> (libvirt 9.4+)
    access: str | None = None  # <memory access=...>
    alias: str | None = None  # a user alias (<alias name='ua-...'>), which libvirt keeps


class Domain(Record):
    """What decides the guest-physical map; sizes in bytes."""

    source: str
    name: str
    domain_type: str  # kvm | qemu
    arch: str
    machine: str
    emulator: str | None
    vcpus: int
    cpu_mode: str  # custom | host-model | host-passthrough | maximum | none
    cpu_model: str | None
    phys_bits: int | None
    host_phys_bits: bool
    memory: int  # total incl. memory devices: <memory>, else the NUMA cells plus the devices
    max_memory: int | None
    slots: int
    cells: tuple[Cell, ...]
    memory_devices: tuple[MemoryDev, ...]
    hugepage_size: int | None
    backing: str  # anonymous | memfd | file
    hostdevs: tuple[str, ...]
    iommu: str | None  # intel | virtio | smmuv3
    iommu_aw_bits: int | None
    pcihole64: int | None
    pci_root: str | None  # pcie-root | pci-root
    loader: str | None
    gic_version: str | None
    qemu_args: tuple[str, ...] = field(default=())
    videos: tuple[str, ...] = field(default=())  # <video><model type=...>, primary first
    cpu_vendor_id: str | None = None  # <cpu><model vendor_id=...>: QEMU's -cpu vendor=
    acpi: bool = True  # <features><acpi/>
    smm: str | None = None  # <features><smm state=...>
    access: str | None = None  # <memoryBacking><access mode=...>
    cell_pages: tuple[tuple[str | None, int], ...] = ()  # <hugepages><page nodeset=... size=...>
    overrides: tuple[tuple[str, str, str], ...] = ()  # <qemu:override>: (alias, property, value)
    memnodes: tuple[int, ...] = ()  # <numatune><memnode cellid=...>: cells bound to host nodes
    phys_bits_limit: int | None = None  # <maxphysaddr mode='passthrough' limit=...>
    windows: bool = False  # <metadata>: libosinfo's os id is Microsoft's (virt-install writes it)

    @property
    def initial_memory(self) -> int:
        """Boot RAM as written (before libvirt's rounding, see argv.aligned_sizes)."""
        if self.cells:
            return sum(cell.size for cell in self.cells)
        return self.memory - sum(dev.size for dev in self.memory_devices)


def read_domain(data: bytes | str, source: str = "<stdin>") -> Domain:
    return domain_from_tree(parse(data, source), source)


def scaled(node: Node | None, source: str, what: str, default_unit: str = "KiB") -> int | None:
    """A libvirt scaledInteger element (text plus `unit`), in bytes, rounded up to whole KiB as
    libvirt stores it (virDomainParseMemory)."""
    if node is None:
        return None
    return kib_ceil(to_bytes(node.text.strip(), node.get("unit", default_unit) or default_unit,
                             source, what))


def kib_ceil(size: int) -> int:
    return -(-size // 1024) * 1024


def to_bytes(value: str, unit: str, source: str, what: str) -> int:
    factor = UNITS.get(unit.strip().lower())
    if factor is None:
        raise InputError(f"unknown unit {unit!r}", file=source, field=what)
    if not value.isdigit():
        raise InputError(f"{value!r} is not a whole number", file=source, field=what)
    return int(value) * factor


def read_number(text: str | None, source: str, what: str) -> int | None:
    """A libvirt number (decimal or 0x hex); None when absent; InputError naming `what`."""
    if text is None or text.strip() == "":
        return None
    try:
        return int(text.strip(), 0)
    except ValueError:
        raise InputError(f"{text!r} is not a number", file=source, field=what) from None


def domain_from_tree(root: Node, source: str) -> Domain:
    if root.tag != "domain":
        raise InputError(f"the root element is <{root.tag}>, not <domain>", file=source)
    os_type = root.path("os", "type")
    max_mem = root.find("maxMemory")
    cpu = root.find("cpu")
    cells = _cells(cpu, source)
    devices = tuple(_memory_dev(node, source) for node in _devices(root, "memory"))
    memory = _total_memory(root, cells, devices, source)
    return Domain(
        source=source,
        name=_text(root.find("name")) or "(unnamed)",
        domain_type=root.get("type", "kvm") or "kvm",
        arch=(os_type.get("arch") if os_type else None) or "x86_64",
        machine=(os_type.get("machine") if os_type else None) or "pc",
        emulator=_text(root.path("devices", "emulator")),
        vcpus=read_number(_text(root.find("vcpu")), source, "<vcpu>") or 1,
        cpu_mode=(cpu.get("mode", "custom") if cpu else "none") or "custom",
        cpu_model=_text(cpu.find("model")) if cpu else None,
        phys_bits=_phys_bits(cpu, source),
        host_phys_bits=_host_phys_bits(cpu),
        phys_bits_limit=_phys_bits_limit(cpu, source),
        memory=memory,
        max_memory=scaled(max_mem, source, "<maxMemory>"),
        slots=read_number(max_mem.get("slots") if max_mem else None, source, "<maxMemory slots>") or 0,
        cells=cells,
        memory_devices=devices,
        hugepage_size=_hugepage_size(root, source),
        backing=_backing(root),
        hostdevs=tuple(hostdev_address(node, source) for node in _devices(root, "hostdev")
                       if node.get("type") == "pci" and node.get("mode", "subsystem") == "subsystem"),
        iommu=_iommu(root)[0],
        iommu_aw_bits=read_number(_iommu(root)[1], source, "<iommu><driver aw_bits>"),
        pcihole64=_pcihole64(root, source)[1],
        pci_root=_pcihole64(root, source)[0],
        loader=_loader(root),
        gic_version=_gic(root),
        qemu_args=qemu_commandline(root),
        videos=_videos(root),
        cpu_vendor_id=_vendor_id(cpu),
        acpi=root.path("features", "acpi") is not None,
        smm=_smm(root),
        access=_access(root),
        cell_pages=_pages(root, source),
        overrides=qemu_overrides(root),
        memnodes=_memnodes(root, source),
        windows=_windows(root),
    )


def _windows(root: Node) -> bool:
    """<metadata><libosinfo:libosinfo><libosinfo:os id='http://microsoft.com/win/11'/>."""
    metadata = root.find("metadata")
    return any(os.tag.endswith(":os") and (os.get("id") or "").startswith("http://microsoft.com/win")
               for info in (metadata.children if metadata else []) for os in info.children)


def _total_memory(root: Node, cells: tuple[Cell, ...], devices: tuple[MemoryDev, ...],
                  source: str) -> int:
    """libvirt's total: <memory>; when it is missing (or 0), the NUMA cells plus the devices."""
    modules = sum(dev.size for dev in devices)
    if cells and all(cell.size for cell in cells):
        # libvirt recomputes the total from the cells when it defines a domain (ABI update)
        return sum(cell.size for cell in cells) + modules
    memory = scaled(root.find("memory"), source, "<memory>") or 0
    if memory - modules <= 0:
        raise InputError("memory size must be given by <memory> or the NUMA cells "
                         "(<cpu><numa><cell memory=...>), and exceed the memory devices",
                         file=source, field="<memory>")
    return memory


def _memnodes(root: Node, source: str) -> tuple[int, ...]:
    numatune = root.find("numatune")
    nodes = numatune.findall("memnode") if numatune is not None else []
    return tuple(read_number(node.get("cellid"), source, "<numatune><memnode cellid>") or 0
                 for node in nodes)


def _smm(root: Node) -> str | None:
    """<features><smm state>; else on for q35 with secure-boot firmware, which needs SMM:
    <loader secure='yes'>, or <os firmware='efi'> not excluding secure boot (libvirt's firmware
    autoselection prefers the secure-boot descriptors Debian and Fedora install first)."""
    node = root.path("features", "smm")
    if node is not None:
        return node.get("state", "on") or "on"
    os_node = root.find("os")
    os_type = root.path("os", "type")
    machine = (os_type.get("machine") if os_type else None) or ""
    if os_node is None or "q35" not in machine:
        return None
    loader = os_node.find("loader")
    if loader is not None and loader.get("secure") == "yes":
        return "on"
    firmware = os_node.find("firmware")
    no_secure_boot = firmware is not None and any(
        feature.get("name") == "secure-boot" and feature.get("enabled") == "no"
        for feature in firmware.findall("feature"))
    return "on" if os_node.get("firmware") == "efi" and not no_secure_boot else None


def _access(root: Node) -> str | None:
    node = root.path("memoryBacking", "access")
    return node.get("mode") if node is not None else None


def _pages(root: Node, source: str) -> tuple[tuple[str | None, int], ...]:
    """<hugepages><page size nodeset/>: (nodeset or None for all, page size)."""
    hugepages = root.path("memoryBacking", "hugepages")
    if hugepages is None:
        return ()
    return tuple((page.get("nodeset"), kib_ceil(to_bytes(page.get("size") or "", page.get(
        "unit", "KiB") or "KiB", source, "<memoryBacking><hugepages><page size>")))
        for page in hugepages.findall("page") if page.get("size"))


def _vendor_id(cpu: Node | None) -> str | None:
    model = cpu.find("model") if cpu else None
    return (model.get("vendor_id") or None) if model is not None else None


def _loader(root: Node) -> str | None:
    """<os><loader>, or for <os firmware='efi'> the firmware libvirt picks (any: it is there)."""
    loader = _text(root.path("os", "loader"))
    os_node = root.find("os")
    if not loader and os_node is not None and os_node.get("firmware") == "efi":
        return "/usr/share/AAVMF/AAVMF_CODE.fd"
    return loader


def _videos(root: Node) -> tuple[str, ...]:
    """Video models, primary first (libvirt moves primary='yes' to the front); a <graphics>
    without any <video> gets libvirt's implicit default one (virDomainDefAddImplicitVideo)."""
    nodes = _devices(root, "video")
    models = [_video_model(node) for node in nodes]
    primary = [i for i, node in enumerate(nodes)
               if (node.find("model") or node).get("primary") == "yes"]
    if primary:
        models.insert(0, models.pop(primary[-1]))
    if not models and _devices(root, "graphics"):
        models = ["default"]
    return tuple(models)


def _video_model(node: Node) -> str:
    model = node.find("model")
    return (model.get("type") if model else None) or "default"


def _text(node: Node | None) -> str | None:
    return node.text.strip() if node is not None else None


def _devices(root: Node, tag: str) -> list[Node]:
    devices = root.find("devices")
    return devices.findall(tag) if devices else []


def _phys_bits(cpu: Node | None, source: str) -> int | None:
    node = cpu.find("maxphysaddr") if cpu else None
    if node is None or node.get("mode") != "emulate":
        return None
    return read_number(node.get("bits"), source, "<cpu><maxphysaddr bits>")


def _phys_bits_limit(cpu: Node | None, source: str) -> int | None:
    node = cpu.find("maxphysaddr") if cpu else None
    if node is None or node.get("mode") != "passthrough":
        return None
    return read_number(node.get("limit"), source, "<cpu><maxphysaddr limit>")


def _host_phys_bits(cpu: Node | None) -> bool:
    node = cpu.find("maxphysaddr") if cpu else None
    if node is not None:
        return node.get("mode") == "passthrough"
    return cpu is not None and cpu.get("mode") == "host-passthrough"


def _cells(cpu: Node | None, source: str) -> tuple[Cell, ...]:
    numa = cpu.find("numa") if cpu else None
    if numa is None:
        return ()
    cells = []
    for index, node in enumerate(numa.findall("cell")):
        what = f"<cpu><numa><cell> {index}"
        size = kib_ceil(to_bytes(node.get("memory", "") or "", node.get("unit", "KiB") or "KiB",
                                 source, what))
        cell_id = read_number(node.get("id"), source, what)
        cells.append(Cell(index if cell_id is None else cell_id, node.get("cpus", "") or "", size,
                          node.get("memAccess")))
    return tuple(cells)


def _memory_dev(node: Node, source: str) -> MemoryDev:
    model = node.get("model", "") or ""
    what = f"<memory model='{model}'>"
    target = node.find("target")
    size = scaled(target.find("size") if target else None, source, what + "<target><size>")
    if size is None:
        raise InputError("a memory device needs <target><size>", file=source, field=what)
    address = node.find("address")
    if address is not None and address.get("type") != "dimm":
        address = None  # a PCI address of a virtio device says nothing about memory
    target_address = target.find("address") if target else None
    src = node.find("source")
    label = target.path("label", "size") if target else None
    return MemoryDev(
        model=model,
        size=size,
        node=read_number(_text(target.find("node")) if target else None, source, what + "<node>"),
        base=_hex(address.get("base") if address else None, source, what + "<address base>"),
        slot=read_number(address.get("slot") if address else None, source, what + "<address slot>"),
        block=scaled(target.find("block") if target else None, source, what + "<block>"),
        requested=scaled(target.find("requested") if target else None, source, what + "<requested>"),
        path=_text(src.find("path")) if src else None,
        pagesize=scaled(src.find("pagesize") if src else None, source, what + "<pagesize>"),
        label=scaled(label, source, what + "<target><label><size>"),
        align=scaled(src.find("alignsize") if src else None, source, what + "<alignsize>"),
        pmem=bool(src and src.find("pmem") is not None),
        target_base=_hex(target_address.get("base") if target_address else None, source,
                         what + "<target><address base>"),
        access=node.get("access"),
        alias=_user_alias(node),
    )


def _user_alias(node: Node) -> str | None:
    alias = node.find("alias")
    name = (alias.get("name") or "") if alias is not None else ""
    return name if name.startswith("ua-") else None


def _hex(text: str | None, source: str, what: str) -> int | None:
    """libvirt reads addresses as hexadecimal, with or without 0x."""
    if text is None or text.strip() == "":
        return None
    try:
        return int(text.strip(), 16)
    except ValueError:
        raise InputError(f"{text!r} is not a hexadecimal address", file=source, field=what) from None


def _hugepage_size(root: Node, source: str) -> int | None:
    hugepages = root.path("memoryBacking", "hugepages")
    if hugepages is None:
        return None
    page = hugepages.find("page")
    if page is None or page.get("size") is None:
        return 2 * 1024 * 1024  # the default huge page size on x86 and arm64 (4 KiB granule)
    return to_bytes(page.get("size") or "", page.get("unit", "KiB") or "KiB", source,
                    "<memoryBacking><hugepages><page size>")


def _backing(root: Node) -> str:
    node = root.path("memoryBacking", "source")
    return (node.get("type") if node else None) or "anonymous"


_BDF = re.compile(r"^0x[0-9a-fA-F]+$")


def hostdev_address(node: Node, source: str) -> str:
    """The host PCI address a <hostdev> names (0000:41:00.0); InputError naming the element."""
    address = node.path("source", "address")
    if address is None:
        raise InputError("a PCI <hostdev> needs <source><address>", file=source, field="<hostdev>")
    parts = [address.get(key, "0x0") or "0x0" for key in ("domain", "bus", "slot", "function")]
    if not all(_BDF.match(part) or part.isdigit() for part in parts):
        raise InputError(f"bad PCI address {parts}", file=source, field="<hostdev><source><address>")
    domain, bus, slot, function = (int(part, 0) for part in parts)
    return f"{domain:04x}:{bus:02x}:{slot:02x}.{function:x}"


def _iommu(root: Node) -> tuple[str | None, str | None]:
    devices = root.find("devices")
    node = devices.find("iommu") if devices else None
    if node is None:
        return None, None
    driver = node.find("driver")
    return node.get("model"), driver.get("aw_bits") if driver else None


def _pcihole64(root: Node, source: str) -> tuple[str | None, int | None]:
    for node in _devices(root, "controller"):
        if node.get("type") == "pci" and node.get("model") in ("pcie-root", "pci-root"):
            return node.get("model"), scaled(node.find("pcihole64"), source, "<pcihole64>")
    return None, None


def _gic(root: Node) -> str | None:
    node = root.path("features", "gic")
    return node.get("version") if node else None


def qemu_prefix(root: Node) -> str | None:
    """The namespace prefix the document binds to libvirt's QEMU namespace, if any."""
    for name, value in root.attrs.items():
        if name.startswith("xmlns:") and value == QEMU_NS:
            return name.split(":", 1)[1]
    return None


def qemu_commandline(root: Node) -> tuple[str, ...]:
    prefix = qemu_prefix(root)
    if prefix is None:
        return ()
    args: list[str] = []
    for block in root.findall(f"{prefix}:commandline"):
        args += [arg.get("value", "") or "" for arg in block.findall(f"{prefix}:arg")]
    return tuple(args)


def qemu_overrides(root: Node) -> tuple[tuple[str, str, str], ...]:
    """<qemu:override><qemu:device alias=...><qemu:frontend><qemu:property name value/>."""
    prefix = qemu_prefix(root)
    if prefix is None:
        return ()
    found = []
    for block in root.findall(f"{prefix}:override"):
        for device in block.findall(f"{prefix}:device"):
            for frontend in device.findall(f"{prefix}:frontend"):
                for prop in frontend.findall(f"{prefix}:property"):
                    found.append((device.get("alias", "") or "", prop.get("name", "") or "",
                                  prop.get("value", "") or ""))
    return tuple(found)
