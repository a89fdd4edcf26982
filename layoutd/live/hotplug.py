"""`layoutd hotplug`: plan memory for a running VM outside every hole, and (with --execute) plug it
with explicit addresses, verify it, and undo everything on failure."""

from __future__ import annotations

import contextlib
import re
import time
from typing import Any, Literal

from layoutd.emit.elements import memory_device
from layoutd.emit.qmp import plug_commands
from layoutd.errors import InputError, NoAnswer
from layoutd.live.placement import (
    DMA_LIMIT,
    BlockChoice,
    Placement,
    Refusal,
    Room,
    choose_block_size,
    mappings,
    place,
)
from layoutd.live.session import Monitor, QemuSaid
from layoutd.live.virsh import VirshMonitor
from layoutd.live.vm import LiveVm, memory_devices, qom_children, qom_get
from layoutd.models.common import U64_MAX, Range
from layoutd.models.host import HostView
from layoutd.models.plan import Backend, PlannedDevice
from layoutd.record import Record, field
from layoutd.units import MiB, format_size, hex_addr

RAM_ALIGN = 2 * MiB
"""The alignment of an anonymous RAM backend on Linux x86-64 and arm64 hosts (QEMU_VMALLOC_ALIGN):
QEMU refuses a memory device address that is not a multiple of it ('address must be aligned')."""

SLOT_KINDS = ("dimm", "nvdimm")
PORT_TYPES = ("pcie-root-port", "ioh3420", "xio3130-downstream")
Command = dict[str, Any]


class Request(Record):
    size: int
    kind: str = "dimm"  # dimm | virtio-mem
    node: int | None = None
    id: str | None = None
    block_size: int | None = None  # virtio-mem only


class HotplugPlan(Record, kw_only=False, frozen=False):
    kind: str
    id: str
    memdev: str
    size: int
    node: int | None
    alignment: int
    region: Range
    placement: Placement
    commands: list[Command]
    block: BlockChoice | None = None
    warnings: list[str] = field(default_factory=list)
    libvirt_xml: str | None = None  # a libvirt domain: the <memory> device for attach-device


class HotplugFailed(NoAnswer):
    """QEMU refused or misplaced the device; what was added has been undone (exit 1)."""

    def __init__(self, message: str, sent: list[Command]):
        self.sent = sent
        super().__init__(message)


# ---- planning --------------------------------------------------------------------------------


def plan(vm: LiveVm, host: HostView, request: Request, monitor: Monitor, *,
         libvirt: bool = False) -> HotplugPlan | Refusal:
    """Plan one device from what the VM and the host say. Reads the VM; never changes it.

    `libvirt`: the VM is a libvirt domain and the device goes in through `virsh attach-device`
    (a DIMM with an explicit slot and base), so libvirt's live XML keeps listing every device."""
    region = vm.device_memory
    if region is None:
        return Refusal(
            "the VM has no device-memory region (it was started without maxmem above -m)",
            0, ("start it with -m SIZE,slots=N,maxmem=MAX at next boot",))
    if request.node is not None:
        check_node(monitor, request.node)
    check_size(request.size, RAM_ALIGN, request.kind)
    block = None
    alignment = RAM_ALIGN
    if request.kind == "virtio-mem":
        check_block(request)
        choice = virtio_mem_block(vm, host, request)
        if isinstance(choice, Refusal):
            return choice
        block, alignment = choice, max(RAM_ALIGN, choice.block_size)
    found = place(request.size, alignment, room(vm, host, region), need_slot=request.kind != "virtio-mem")
    if isinstance(found, Refusal):
        return found
    if libvirt:
        device_id, memdev = libvirt_names(monitor, request)
        xml = dimm_xml(request, device_id, free_slot(vm), found.start)
        return HotplugPlan(request.kind, device_id, memdev, request.size, request.node, alignment, region,
                    found, [], block, libvirt_xml=xml)
    device_id, memdev = names(monitor, request)
    bus = free_port(monitor, vm) if request.kind == "virtio-mem" else None
    if isinstance(bus, Refusal):
        return bus
    commands = qmp_commands(request, device_id, memdev, found.start, block, bus)
    return HotplugPlan(request.kind, device_id, memdev, request.size, request.node, alignment, region,
                found, commands, block)


def room(vm: LiveVm, host: HostView, region: Range) -> Room:
    top = (1 << vm.phys_bits) - 1 if vm.phys_bits else U64_MAX
    used_slots = sum(1 for device in vm.devices if device.kind in SLOT_KINDS)
    return Room(
        region=region,
        top=top,
        taken=tuple(device.range for device in vm.devices),
        holes=tuple(host.holes_for(region)),
        budget=max(0, vm.memory.device_budget - vm.device_memory_used),
        free_slots=vm.memory.slots - used_slots,
    )


def check_size(size: int, alignment: int, kind: str) -> None:
    if size <= 0 or size % alignment:
        raise InputError(f"--size {format_size(size)} must be a positive multiple of "
                         f"{format_size(alignment)}, the alignment a {kind} needs here")


def check_block(request: Request) -> None:
    block = request.block_size
    if block is None:
        return
    if block < RAM_ALIGN or block & (block - 1) or request.size % block:
        raise InputError(f"--block-size {format_size(block)} must be a power of two of at least "
                         f"{format_size(RAM_ALIGN)} that divides --size {format_size(request.size)}")


def check_node(monitor: Monitor, node: int) -> None:
    text = str(monitor.execute("human-monitor-command", {"command-line": "info numa"}))
    match = re.match(r"\s*(\d+) nodes", text)
    nodes = int(match.group(1)) if match else 0
    if node >= max(nodes, 1):
        raise InputError(f"--node {node}: the VM has {max(nodes, 1)} NUMA node(s), numbered from 0")


def virtio_mem_block(vm: LiveVm, host: HostView, request: Request) -> BlockChoice | Refusal:
    limit = host.dma_avail if host.dma_avail else DMA_LIMIT
    return choose_block_size(request.size, RAM_ALIGN, dma_mappings_used(vm), limit,
                             request.block_size)


def dma_mappings_used(vm: LiveVm) -> int:
    """One mapping per RAM range, but one per block of every virtio-mem device."""
    blocks = {device.memdev: device for device in vm.devices if device.kind == "virtio-mem"}
    plain = sum(1 for entry in vm.ram if entry.name not in blocks)
    return plain + sum(mappings(d.size, d.block_size or RAM_ALIGN) for d in blocks.values())


def names(monitor: Monitor, request: Request) -> tuple[str, str]:
    """The device id and backend id: --id, else the lowest free layoutd-dimmN / layoutd-vmemN."""
    if request.id:
        return request.id, f"{request.id}-mem"
    taken = {name for name, _ in qom_children(monitor, "/machine/peripheral")}
    taken |= {name for name, _ in qom_children(monitor, "/objects")}
    stem = "layoutd-vmem" if request.kind == "virtio-mem" else "layoutd-dimm"
    number = 0
    while f"{stem}{number}" in taken or f"{stem}{number}-mem" in taken:
        number += 1
    return f"{stem}{number}", f"{stem}{number}-mem"


def libvirt_names(monitor: Monitor, request: Request) -> tuple[str, str]:
    """libvirt's names for an attached DIMM: the alias (a user alias must start with `ua-`) is
    QEMU's device id, and libvirt names the backend `mem` + alias."""
    if request.id:
        alias = request.id if request.id.startswith("ua-") else f"ua-{request.id}"
        return alias, f"mem{alias}"
    taken = {name for name, _ in qom_children(monitor, "/machine/peripheral")}
    taken |= {name for name, _ in qom_children(monitor, "/objects")}
    number = 0
    while f"ua-layoutd-dimm{number}" in taken or f"memua-layoutd-dimm{number}" in taken:
        number += 1
    return f"ua-layoutd-dimm{number}", f"memua-layoutd-dimm{number}"


def free_slot(vm: LiveVm) -> int:
    """The lowest DIMM slot no memory device holds (place() has checked that one is free)."""
    used = {device.slot for device in vm.devices if device.slot is not None}
    return min(slot for slot in range(vm.memory.slots + 1) if slot not in used)


def dimm_xml(request: Request, alias: str, slot: int, start: int) -> str:
    """The <memory model='dimm'> element libvirt attaches at exactly `start` (the encoder of
    `plan --format libvirt`, emit/elements.py).

    libvirt needs the slot whenever the base is given, and a NUMA node (it allows memory
    hotplug only for a domain with NUMA cells; QEMU's pc-dimm default is node 0)."""
    device = _device(request, alias, f"mem{alias}", start, None)
    return memory_device(device, slot, indent="", alias=alias, node=request.node or 0) + "\n"


def _device(request: Request, device_id: str, memdev: str, start: int,
            block: BlockChoice | None) -> PlannedDevice:
    kind: Literal["virtio-mem", "dimm"] = "virtio-mem" if block is not None else "dimm"
    return PlannedDevice(id=device_id, kind=kind, backend=memdev, addr=start, size=request.size,
                         node=request.node, block_size=block.block_size if block else None)


def free_port(monitor: Monitor, vm: LiveVm) -> str | Refusal | None:
    """A hotpluggable PCI(e) port with nothing behind it; None on pc, whose root bus hotplugs.

    QOM, not query-pci: before the firmware numbers the buses (a VM started with -S),
    query-pci does not show what sits behind a bridge."""
    if "q35" not in vm.machine and "virt" not in vm.machine:
        return None
    for name, kind in sorted(qom_children(monitor, "/machine/peripheral")):
        if kind in PORT_TYPES and port_is_free(monitor, f"/machine/peripheral/{name}", name):
            return name
    return Refusal("a virtio-mem-pci device needs an empty hotpluggable PCIe port and the VM has "
                   "none", 0, ("add -device pcie-root-port,id=rpN,chassis=N at next boot",
                               "or use --kind dimm"))


def port_is_free(monitor: Monitor, path: str, name: str) -> bool:
    if qom_get(monitor, path, "hotplug") is False:
        return False
    try:
        entries = monitor.execute("qom-list", {"path": f"{path}/{name}"})
    except QemuSaid:
        return False  # no bus of that name: not a port we understand
    return not any(str(entry["name"]).startswith("child[") for entry in entries)


def qmp_commands(request: Request, device_id: str, memdev: str, start: int,
                 block: BlockChoice | None, bus: str | None) -> list[Command]:
    """object-add and device_add, by the plan's QMP encoder (emit/qmp.py)."""
    backend = Backend(id=memdev, size=request.size, kind="ram")
    return plug_commands(backend, _device(request, device_id, memdev, start, block), bus)


# ---- executing -------------------------------------------------------------------------------


def execute(monitor: Monitor, chosen: HotplugPlan) -> list[Command]:
    """Send the plan; verify; undo on any refusal. Returns every command sent."""
    sent: list[Command] = []
    backend, device = chosen.commands
    try:
        send(monitor, backend, sent)
    except QemuSaid as said:
        raise HotplugFailed(f"{said.message}; nothing was added", sent) from said
    try:
        send(monitor, device, sent)
    except QemuSaid as said:
        undone = undo_backend(monitor, chosen.memdev, sent)
        raise HotplugFailed(f"{said.message}; {undone}", sent) from said
    problem = misplaced(monitor, chosen)
    if problem:
        undone = undo_device(monitor, chosen, sent)
        raise HotplugFailed(f"{problem}; {undone}", sent)
    return sent


def send(monitor: Monitor, command: Command, sent: list[Command]) -> Any:
    sent.append(command)
    return monitor.execute(command["execute"], command.get("arguments"))


def undo_backend(monitor: Monitor, memdev: str, sent: list[Command]) -> str:
    try:
        send(monitor, {"execute": "object-del", "arguments": {"id": memdev}}, sent)
    except QemuSaid as said:
        return f"undoing it failed too: {said.desc}; remove the backend {memdev!r} by hand"
    return f"undone: backend {memdev!r} deleted, the VM is as before"


def misplaced(monitor: Monitor, chosen: HotplugPlan) -> str | None:
    """None when query-memory-devices shows the device exactly where planned."""
    for device in memory_devices(monitor.execute("query-memory-devices")):
        if device.id == chosen.id:
            if (device.start, device.size) == (chosen.placement.start, chosen.size):
                return None
            return (f"QEMU put {chosen.id!r} at {hex_addr(device.start)}-{hex_addr(device.end)}, "
                    f"not at the planned {chosen.placement.range.label()}")
    return f"QEMU accepted {chosen.id!r} but query-memory-devices does not list it"


def undo_device(monitor: Monitor, chosen: HotplugPlan, sent: list[Command]) -> str:
    with contextlib.suppress(QemuSaid):  # not there: only the backend is left
        send(monitor, {"execute": "device_del", "arguments": {"id": chosen.id}}, sent)
    if not still_present(monitor, chosen.id, wait=5.0):
        return undo_backend(monitor, chosen.memdev, sent)
    return (f"device_del {chosen.id!r} was sent but the guest has not released it yet; its "
            f"backend {chosen.memdev!r} stays until it does")


def still_present(monitor: Monitor, device_id: str, wait: float) -> bool:
    deadline = time.monotonic() + wait
    while True:
        ids = {d.id for d in memory_devices(monitor.execute("query-memory-devices"))}
        if device_id not in ids or time.monotonic() > deadline:
            return device_id in ids
        time.sleep(0.1)


# ---- executing through libvirt ---------------------------------------------------------------


def execute_libvirt(monitor: VirshMonitor, chosen: HotplugPlan) -> list[Command]:
    """`virsh attach-device --live` with the planned slot and base; verify; detach if misplaced.

    libvirt sends object-add and device_add itself and, when QEMU refuses the device, deletes
    the backend again; layoutd checks that nothing of it is left either way."""
    assert chosen.libvirt_xml is not None
    before = present(monitor)
    refused = monitor.device("attach-device", chosen.libvirt_xml)
    if refused is not None:
        left = sorted(present(monitor) - before)
        note = f"libvirt left {' and '.join(left)} behind" if left else "nothing was added"
        raise HotplugFailed(f"libvirt refused to attach {chosen.id!r}: {refused}; {note}", [])
    problem = misplaced(monitor, chosen)
    if problem is None:
        return []
    if monitor.device("detach-device", chosen.libvirt_xml) is None \
            and not still_present(monitor, chosen.id, wait=5.0):
        undone = "undone: libvirt detached it, the VM is as before"
    else:
        undone = (f"detach-device {chosen.id!r} was sent but the guest has not released it yet; "
                  f"libvirt removes it (and its backend {chosen.memdev!r}) once the guest does")
    raise HotplugFailed(f"{problem}; {undone}", [])


def present(monitor: Monitor) -> set[str]:
    """Every memory device and user-creatable object QEMU has, named for a message."""
    devices = {f"the device {d.id!r}" for d in memory_devices(monitor.execute("query-memory-devices"))}
    return devices | {f"the object {name!r}" for name, _ in qom_children(monitor, "/objects")}
