"""Apply a planned layout to an existing domain XML by editing its text in place.

Only the memory-related elements change (<memory>, <currentMemory>, <maxMemory>, <memoryBacking>'s
page size, source, access and allocation, the CPU's
<numa> and <maxphysaddr>, <devices><memory>, the root controller's <pcihole64>, and the
max-ram-below-4g arguments in <qemu:commandline>); every other byte stays as it was.
"""

from __future__ import annotations

import re

from layoutd.emit import elements as el
from layoutd.errors import InputError
from layoutd.libvirt.domain import QEMU_NS, qemu_prefix
from layoutd.libvirt.xmltext import Node, parse
from layoutd.libvirt_versions import NEWEST_LIBVIRT, LibvirtVersion
from layoutd.models.plan import QemuConfig
from layoutd.record import Record, field


class Edits(Record, kw_only=False, frozen=False):
    data: bytes
    changes: list[tuple[int, int, str]] = field(default_factory=list)

    def replace(self, start: int, end: int, text: str) -> None:
        self.changes.append((start, end, text))

    def insert(self, offset: int, text: str) -> None:
        self.changes.append((offset, offset, text))

    def remove(self, node: Node) -> None:
        """Drop an element with the indentation before it."""
        start = node.start
        while start > 0 and self.data[start - 1 : start] in (b" ", b"\t"):
            start -= 1
        if start > 0 and self.data[start - 1 : start] == b"\n":
            start -= 1
        self.replace(start, node.end, "")

    def apply(self) -> bytes:
        out = self.data
        for start, end, text in sorted(self.changes, key=lambda c: (c[0], c[1]), reverse=True):
            out = out[:start] + text.encode("utf-8") + out[end:]
        return out

    def indent_of(self, node: Node) -> str:
        line_start = self.data.rfind(b"\n", 0, node.start) + 1
        prefix = self.data[line_start : node.start]
        return prefix.decode() if prefix.strip() == b"" else ""

    def child_indent(self, parent: Node, step: str) -> str:
        if parent.children:
            return self.indent_of(parent.children[0])
        return self.indent_of(parent) + step

    def append_child(self, parent: Node, text: str, step: str) -> None:
        """Insert `text` as the last child of `parent` (opening an <empty/> element if needed)."""
        indent = self.child_indent(parent, step)
        closing = self.indent_of(parent)
        if parent.empty:
            tag_end = parent.end - 2  # before "/>"
            self.replace(tag_end, parent.end, f">\n{indent}{text}\n{closing}</{parent.tag}>")
            return
        inner = self.data[parent.inner_start : parent.inner_end]
        if inner.strip() == b"":
            self.replace(parent.inner_start, parent.inner_end, f"\n{indent}{text}\n{closing}")
            return
        tail = len(inner) - len(inner.rstrip())
        self.insert(parent.inner_end - tail, f"\n{indent}{text}")


def apply_config(data: bytes, config: QemuConfig, source: str = "<domain>",
                 libvirt: LibvirtVersion = NEWEST_LIBVIRT) -> bytes:
    """`libvirt`: the version the edited domain is for (what its <cpu> can say)."""
    root = parse(data, source)
    edits = Edits(data)
    step = _step(edits, root)
    _memory(edits, root, config)
    _memory_backing(edits, root, config, step)
    _cpu(edits, root, config, step, libvirt)
    _devices(edits, root, config, step)
    _acpi(edits, root, config, step)
    _commandline(edits, root, config, step)
    return edits.apply()


def _acpi(edits: Edits, root: Node, config: QemuConfig, step: str) -> None:
    """DIMMs need ACPI: without <features><acpi/> libvirt passes acpi=off and QEMU refuses them."""
    if not any(d.kind in ("dimm", "nvdimm") for d in config.devices) or root.path("features", "acpi"):
        return
    features = root.find("features")
    if features is not None:
        edits.append_child(features, "<acpi/>", step)
    else:
        edits.append_child(root, "<features>\n" + step * 2 + "<acpi/>\n" + step + "</features>", step)


def _step(edits: Edits, root: Node) -> str:
    first = root.children[0] if root.children else None
    return edits.indent_of(first) if first is not None and edits.indent_of(first) else "  "


def _memory(edits: Edits, root: Node, config: QemuConfig) -> None:
    memory = root.find("memory")
    if memory is None:  # NUMA cells alone gave the size: write it before the cells' sums
        anchor = root.find("uuid") or root.find("name")
        assert anchor is not None
        edits.insert(anchor.end, f"\n{edits.indent_of(anchor)}{el.memory(config)}")
        memory = anchor
    else:  # in the domain's own unit where the new size is exact in it
        edits.replace(memory.start, memory.end, el.memory(config, memory.get("unit")))
    current = root.find("currentMemory")
    if current is not None:
        edits.replace(current.start, current.end,
                      el.current_memory(config, current.get("unit") or memory.get("unit")))
    old_max = root.find("maxMemory")
    new_max = el.max_memory(config, (old_max.get("unit") if old_max is not None else None)
                            or memory.get("unit"))
    if old_max is not None and new_max:
        edits.replace(old_max.start, old_max.end, new_max)
    elif old_max is not None:
        edits.remove(old_max)
    elif new_max:
        edits.insert(memory.start if memory.tag == "memory" else memory.end,
                     f"{new_max}\n{edits.indent_of(memory)}" if memory.tag == "memory"
                     else f"\n{edits.indent_of(memory)}{new_max}")


def _memory_backing(edits: Edits, root: Node, config: QemuConfig, step: str) -> None:
    """<memoryBacking> as the plan backs boot RAM (page size, memfd/file, shared, prealloc)."""
    wanted = el.memory_backing(config)
    backing = root.find("memoryBacking")
    if backing is None:
        if wanted:
            anchor = root.find("currentMemory")
            anchor = anchor if anchor is not None else root.find("memory")
            anchor = anchor if anchor is not None else root.find("name")
            assert anchor is not None
            indent = edits.indent_of(anchor)
            body = "".join(f"\n{indent}{step}{item}" for item in wanted.values())
            edits.insert(anchor.end, f"\n{indent}<memoryBacking>{body}\n{indent}</memoryBacking>")
        return
    for tag in ("hugepages", "source", "access", "allocation"):
        _swap(edits, backing, tag, wanted.get(tag), step)


def _cpu(edits: Edits, root: Node, config: QemuConfig, step: str,
         libvirt: LibvirtVersion) -> None:
    """The CPU's <maxphysaddr> and <numa>; a host-passthrough CPU whose phys-bits the plan
    limits becomes host-model where libvirt cannot limit host-passthrough (before 9.3)."""
    cpu = root.find("cpu")
    mode = cpu.get("mode") if cpu is not None else None
    if cpu is not None and mode == "host-passthrough" and el.cpu_mode(config, libvirt) == "host-model":
        _set_attribute(edits, cpu, "mode", "host-model")
        mode = "host-model"
    physaddr = el.maxphysaddr(config, libvirt, mode)
    if cpu is None:
        indent = step * 2
        numa = el.numa(config, indent, step)
        inner = [item for item in (physaddr, numa) if item]
        if inner:
            body = "".join(f"\n{indent}{item}" for item in inner)
            edits.append_child(root, f"<cpu>{body}\n{step}</cpu>", step)
        return
    indent = edits.child_indent(cpu, step)
    _swap(edits, cpu, "maxphysaddr", physaddr, step)
    _swap(edits, cpu, "numa", el.numa(config, indent, step), step)


def _swap(edits: Edits, parent: Node, tag: str, text: str | None, step: str) -> None:
    """Replace the child `tag` with `text`, add it, or drop it when `text` is None."""
    old = parent.find(tag)
    if old is not None and text:
        edits.replace(old.start, old.end, text)
    elif old is not None:
        edits.remove(old)
    elif text:
        edits.append_child(parent, text, step)


def _devices(edits: Edits, root: Node, config: QemuConfig, step: str) -> None:
    devices = root.find("devices")
    if devices is None:
        return
    for node in devices.findall("memory"):
        edits.remove(node)
    indent = edits.child_indent(devices, step)
    hole = el.pcihole64(config)
    controller = next((c for c in devices.findall("controller") if c.get("type") == "pci"
                       and c.get("model") in ("pci-root", "pcie-root")), None)
    if controller is not None:
        _swap(edits, controller, "pcihole64", hole, step)
    elif hole and config.arch == "x86_64":
        model = el.root_controller_model(config)
        edits.append_child(devices, f"<controller type='pci' index='0' model='{model}'>{hole}"
                           "</controller>", step)
    for text in el.memory_devices(config, indent, step):
        edits.append_child(devices, text, step)


def _commandline(edits: Edits, root: Node, config: QemuConfig, step: str) -> None:
    prefix = qemu_prefix(root)
    if prefix is not None:
        for block in root.findall(f"{prefix}:commandline"):
            _drop_ram_below_4g(edits, block, prefix)
    args = el.machine_args(config)
    if not args:
        return
    if prefix is None:
        prefix = "qemu"
        name_end = root.start + 1 + len(root.tag)
        edits.insert(name_end, f" xmlns:qemu='{QEMU_NS}'")
    text = el.commandline(args, step, step) or ""
    edits.append_child(root, text.replace("qemu:", f"{prefix}:"), step)


def _drop_ram_below_4g(edits: Edits, block: Node, prefix: str) -> None:
    args = block.findall(f"{prefix}:arg")
    for index, arg in enumerate(args):
        value = arg.get("value", "") or ""
        ours = value.startswith("max-ram-below-4g=") and "," not in value
        if ours and index > 0 and args[index - 1].get("value") in ("-machine", "-M"):
            edits.remove(args[index - 1])
            edits.remove(arg)


def with_machine(data: bytes | str, machine: str, source: str = "<domain>") -> bytes:
    """The domain with <os><type machine=...> set to `machine`, every other byte kept."""
    raw = data.encode() if isinstance(data, str) else data
    root = parse(raw, source)
    node = root.path("os", "type")
    if node is None:
        raise InputError("no <os><type> to set the machine type in", file=source, field="<os>")
    edits = Edits(raw)
    _set_attribute(edits, node, "machine", machine)
    return edits.apply()


def _set_attribute(edits: Edits, node: Node, name: str, value: str) -> None:
    """Set one attribute in the element's start tag, every other byte kept."""
    end = node.inner_start if not node.empty else node.end - 2  # before "/>": other edits use it
    tag = edits.data[node.start:end].decode()
    new, count = re.subn(rf"""(\s{name}\s*=\s*)(['"])[^'"]*\2""",
                         lambda m: f"{m.group(1)}{m.group(2)}{value}{m.group(2)}", tag)
    if not count:
        new = tag.replace(f"<{node.tag}", f"<{node.tag} {name}='{value}'", 1)
    edits.replace(node.start, end, new)
