"""What a libvirt domain tells the firmware model: its firmware file, OVMF's window (<sysinfo
type='fwcfg'>), and where its PCI root ports and <hostdev>s sit on the guest's buses, as QEMU
arguments layoutd.firmware.guest reads. Pure.

libvirt names the bus behind the controller of index N `pci.N` and places devices with
<address type='pci' bus=... slot=... function=...>; <os firmware='efi'> on x86 boots what
Debian's firmware descriptors name first (60-edk2-x86_64.json: OVMF_CODE_4M.fd).
"""

from layoutd.firmware.guest import MMIO64_FILE, PORTS
from layoutd.libvirt.xmltext import Node, parse

X86_EFI = "/usr/share/OVMF/OVMF_CODE_4M.fd"


def pci_argv(data: bytes | str, source: str) -> list[str]:
    root = parse(data, source)
    args = _firmware(root)
    for entry in root.findall("sysinfo"):
        if entry.get("type") == "fwcfg":
            for item in entry.findall("entry"):
                if item.get("name") == MMIO64_FILE:
                    args += ["-fw_cfg", f"name={MMIO64_FILE},string={item.text.strip()}"]
    devices = root.find("devices")
    for node in devices.findall("controller") if devices else []:
        model = node.get("model", "") or ""
        if node.get("type") == "pci" and model in PORTS:
            args += ["-device", f"{model},id=pci.{node.get('index', '0')}{_where(node)}"]
    for index, node in enumerate(devices.findall("hostdev") if devices else []):
        address = node.path("source", "address")
        if node.get("type") != "pci" or address is None:
            continue
        parts = [int(address.get(key, "0") or "0", 0) for key in ("domain", "bus", "slot", "function")]
        bdf = f"{parts[0]:04x}:{parts[1]:02x}:{parts[2]:02x}.{parts[3]:x}"
        args += ["-device", f"vfio-pci,host={bdf},id=hostdev{index}{_where(node)}"]
    return args


def _where(node: Node) -> str:
    """`,bus=pci.N,addr=S.F` from the device's own <address type='pci'> (none: QEMU's choice)."""
    address = next((child for child in node.findall("address") if child.get("type") == "pci"), None)
    if address is None:
        return ""
    bus = int(address.get("bus", "0") or "0", 0)
    slot = int(address.get("slot", "0") or "0", 0)
    function = int(address.get("function", "0") or "0", 0)
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
