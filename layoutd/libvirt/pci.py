"""What a libvirt domain tells the firmware model: its firmware file, OVMF's window (<sysinfo
type='fwcfg'>), and where its PCI root ports and <hostdev>s sit on the guest's buses, as QEMU
arguments layoutd.firmware.guest reads. Pure.

libvirt names the bus behind the controller of index N `pci.N` and places devices (controllers
too) with <address type='pci' bus=... slot=... function=...>; a controller's QEMU device is its
<model name=...>, else the model's default (LIBVIRT_BRIDGES); <os firmware='efi'> on x86 boots what
Debian's firmware descriptors name first (60-edk2-x86_64.json: OVMF_CODE_4M.fd).
"""

from layoutd.firmware.guest import MMIO64_FILE, PORTS
from layoutd.libvirt.domain import hostdev_address, read_number
from layoutd.libvirt.xmltext import Node, parse
from layoutd.units import parse_size

X86_EFI = "/usr/share/OVMF/OVMF_CODE_4M.fd"
# libvirt's PCI controller models -> the QEMU device each is by default (qemuBuildControllerDevStr)
LIBVIRT_BRIDGES = {
    "pcie-root-port": "pcie-root-port", "pcie-switch-upstream-port": "x3130-upstream",
    "pcie-switch-downstream-port": "xio3130-downstream", "pci-bridge": "pci-bridge",
    "pcie-to-pci-bridge": "pcie-pci-bridge",
}


def pci_argv(data: bytes | str, source: str) -> list[str]:
    root = parse(data, source)
    args = _firmware(root)
    for entry in root.findall("sysinfo"):
        if entry.get("type") == "fwcfg":
            for item in entry.findall("entry"):
                if item.get("name") == MMIO64_FILE:
                    args += ["-fw_cfg", f"name={MMIO64_FILE},string={item.text.strip()}"]
    devices = root.find("devices")
    controllers = [node for node in (devices.findall("controller") if devices else [])
                   if node.get("type") == "pci"]

    def bus_of(node: Node) -> int:
        return _number(node.get("index"), source, "<controller type='pci'> index")

    # a controller sits on a bus of lower index: in index order each bus exists before its use
    for node in sorted(controllers, key=bus_of):
        driver = _driver(node)
        if driver in PORTS:
            args += ["-device", f"{driver},id=pci.{bus_of(node)}{_where(node, source)}"]
    for index, node in enumerate(devices.findall("hostdev") if devices else []):
        address = node.path("source", "address")
        if node.get("type") != "pci" or address is None:
            continue
        bdf = hostdev_address(node, source)
        args += ["-device", f"vfio-pci,host={bdf},id=hostdev{index}{_where(node, source)}"]
    for index, node in enumerate(devices.findall("shmem") if devices else []):
        args += _shmem(node, index, source)
    return args


SHMEM_DEFAULT = 4 << 20  # libvirt's size for a <shmem> without <size>


def _shmem(node: Node, index: int, source: str) -> list[str]:
    """A <shmem> (Looking Glass's frame buffer) as libvirt gives it to QEMU: ivshmem-plain
    `shmemN` on a shared file backend `shmmem-shmemN` of /dev/shm/NAME; ivshmem-doorbell takes
    its memory from the ivshmem server (<server>), so only the device is said."""
    model = node.find("model")
    kind = (model.get("type") if model is not None else None) or "ivshmem-plain"
    alias = f"shmem{index}"
    if kind == "ivshmem-doorbell":
        return ["-device", f"ivshmem-doorbell,id={alias},chardev=char{alias}{_where(node, source)}"]
    if kind != "ivshmem-plain":
        return []
    size_node = node.find("size")
    size = SHMEM_DEFAULT
    if size_node is not None and size_node.text.strip():
        unit = (size_node.get("unit") or "B").upper()[:1]
        size = parse_size(size_node.text.strip() + ("" if unit == "B" else unit),
                          what=f"{source}: <shmem name='{node.get('name')}'><size>")
    backend = f"shmmem-{alias}"
    return ["-object", f"memory-backend-file,id={backend},mem-path=/dev/shm/"
            f"{node.get('name') or alias},size={size},share=on",
            "-device", f"ivshmem-plain,id={alias},memdev={backend}{_where(node, source)}"]


def _driver(node: Node) -> str | None:
    """The QEMU device of a PCI controller: its <model name=...>, else its model's default."""
    model = node.find("model")
    name = model.get("name") if model is not None else None
    return name or LIBVIRT_BRIDGES.get(node.get("model", "") or "")


def _number(text: str | None, source: str, field: str) -> int:
    return read_number(text, source, field) or 0


def _where(node: Node, source: str) -> str:
    """`,bus=pci.N,addr=S.F` from the device's own <address type='pci'> (none: QEMU's choice)."""
    address = next((child for child in node.findall("address") if child.get("type") == "pci"), None)
    if address is None:
        return ""
    bus, slot, function = (_number(address.get(key), source, f"<{node.tag}><address> {key}")
                           for key in ("bus", "slot", "function"))
    return f",bus=pci.{bus},addr={slot:x}.{function:x}" if bus else f",addr={slot:x}.{function:x}"


def _firmware(root: Node) -> list[str]:
    os_node = root.find("os")
    if os_node is None:
        return []
    loader = os_node.find("loader")
    kind = os_node.find("type")
    arch = (kind.get("arch") if kind is not None else None) or "x86_64"
    if arch != "x86_64":
        return []
    if loader is not None and loader.text.strip():
        if loader.get("type") == "pflash":
            return ["-drive", f"if=pflash,format=raw,readonly=on,file={loader.text.strip()}"]
        return ["-bios", loader.text.strip()]
    if os_node.get("firmware") == "efi":
        return ["-drive", f"if=pflash,format=raw,readonly=on,file={X86_EFI}"]
    return []
