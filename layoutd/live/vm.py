"""What a running QEMU really built, read over its monitor. Read-only: nothing here changes the VM."""

from __future__ import annotations

from typing import Any

from layoutd.host.sysfs import normalize_bdf
from layoutd.live.session import Monitor, QemuSaid
from layoutd.models.common import GuestRegion, Range
from layoutd.qemu.memdev import device_memory_base, device_memory_size
from layoutd.qemu.mtree import FlatEntry, ram_entries
from layoutd.qemu.x86 import FOUR_GIB
from layoutd.record import Record, field

VFIO_TYPES = ("vfio-pci", "vfio-pci-nohotplug")
CONTAINERS = ("/machine/peripheral", "/machine/peripheral-anon")


class LiveDevice(Record):
    """One entry of query-memory-devices; `size` is the region it occupies (virtio-mem: max-size)."""

    kind: str  # dimm | nvdimm | virtio-mem | virtio-pmem | sgx-epc ...
    id: str
    start: int
    size: int
    node: int | None = None
    memdev: str = ""  # backend id, without /objects/
    slot: int | None = None
    block_size: int | None = None

    @property
    def end(self) -> int:
        return self.start + self.size - 1

    @property
    def range(self) -> Range:
        return Range(start=self.start, end=self.end)


class MemoryConfig(Record, kw_only=False):
    """-m SIZE,slots=S,maxmem=M as the machine's `memory` property reports it."""

    size: int
    max_size: int
    slots: int

    @property
    def device_budget(self) -> int:
        return max(0, self.max_size - self.size)


class LiveVm(Record, frozen=False):
    name: str
    version: tuple[int, int, int]
    arch: str  # x86_64 | aarch64 | ...
    machine: str  # QOM type: pc-q35-7.2-machine, virt-10.0-machine ...
    ram: list[FlatEntry]
    devices: list[LiveDevice]
    memory: MemoryConfig
    device_memory: Range | None
    phys_bits: int | None
    vfio: list[str]
    warnings: list[str] = field(default_factory=list)

    @property
    def device_memory_used(self) -> int:
        return sum(device.size for device in self.devices)

    def layout(self) -> list[GuestRegion]:
        """Every RAM range of the flat view, named by the memory device that owns it."""
        owners = {device.memdev: device for device in self.devices if device.memdev}
        regions = []
        for entry in self.ram:
            owner = owners.get(entry.name)
            regions.append(GuestRegion(
                start=entry.start, end=entry.end,
                kind=owner.kind if owner else "ram",
                id=(owner.id or owner.memdev) if owner else entry.name,
                node=owner.node if owner else None,
            ))
        return regions


def read_vm(monitor: Monitor) -> LiveVm:
    version = monitor.execute("query-version")["qemu"]
    ram = ram_entries(str(monitor.execute("human-monitor-command",
                                          {"command-line": "info mtree -f"})))
    devices = memory_devices(monitor.execute("query-memory-devices"))
    memory = memory_config(monitor)
    arch = str(monitor.execute("query-target").get("arch", ""))
    vm = LiveVm(
        name=monitor.name,
        version=(int(version["major"]), int(version["minor"]), int(version["micro"])),
        arch=arch,
        machine=str(qom_get(monitor, "/machine", "type") or ""),
        ram=ram, devices=devices, memory=memory, device_memory=None,
        phys_bits=phys_bits(monitor) if arch in ("x86_64", "i386") else None,
        vfio=vfio_hosts(monitor),
    )
    vm.device_memory = device_memory(monitor, vm)
    return vm


def qom_get(monitor: Monitor, path: str, prop: str) -> Any:
    """A QOM property, or None when the object or property does not exist."""
    try:
        return monitor.execute("qom-get", {"path": path, "property": prop})
    except QemuSaid:
        return None


def qom_children(monitor: Monitor, path: str) -> list[tuple[str, str]]:
    """(name, type) of the children of `path`: ("d1", "pc-dimm")."""
    try:
        entries = monitor.execute("qom-list", {"path": path})
    except QemuSaid:
        return []
    return [(e["name"], e["type"][6:-1]) for e in entries if str(e["type"]).startswith("child<")]


def memory_devices(reply: list[dict[str, Any]]) -> list[LiveDevice]:
    found = []
    for item in reply:
        data = item.get("data", {})
        start = data.get("addr", data.get("memaddr"))
        size = data.get("max-size", data.get("size"))
        if start is None or not size:
            continue  # a device without a region (hv-balloon before it maps memory)
        found.append(LiveDevice(
            kind=str(item.get("type", "")), id=str(data.get("id") or ""),
            start=int(start), size=int(size), node=data.get("node"),
            memdev=str(data.get("memdev") or "").removeprefix("/objects/"),
            slot=data.get("slot"), block_size=data.get("block-size"),
        ))
    return sorted(found, key=lambda device: device.start)


def memory_config(monitor: Monitor) -> MemoryConfig:
    memory = qom_get(monitor, "/machine", "memory")
    if isinstance(memory, dict):
        size = int(memory["size"])  # max-size and slots are absent without maxmem
        return MemoryConfig(size, int(memory.get("max-size", size)), int(memory.get("slots", 0)))
    base = int(monitor.execute("query-memory-size-summary")["base-memory"])
    return MemoryConfig(base, base, 0)  # QEMU before 7.1 cannot say; assume no hotplug room


def phys_bits(monitor: Monitor) -> int | None:
    cpus = monitor.execute("query-cpus-fast")
    if not cpus:
        return None
    value = qom_get(monitor, cpus[0]["qom-path"], "phys-bits")
    return int(value) if isinstance(value, int) and value > 0 else None


def vfio_hosts(monitor: Monitor) -> list[str]:
    """Host PCI addresses of the VM's vfio-pci devices (`host=`, else `sysfsdev=`)."""
    found = []
    for container in CONTAINERS:
        for name, kind in qom_children(monitor, container):
            if kind not in VFIO_TYPES:
                continue
            path = f"{container}/{name}"
            text = str(qom_get(monitor, path, "host") or "")
            if not text.strip():
                text = str(qom_get(monitor, path, "sysfsdev") or "").rstrip("/").rsplit("/", 1)[-1]
            address = normalize_bdf(text) if text else None
            if address and address not in found:
                found.append(address)
    return found


def device_memory(monitor: Monitor, vm: LiveVm) -> Range | None:
    """The device-memory region, as QEMU reports it over QOM; QEMU's rule where it cannot say."""
    start = qom_get(monitor, "/machine/device-memory[0]", "addr")
    size = qom_get(monitor, "/machine/device-memory[0]", "size")
    if isinstance(start, int) and isinstance(size, int) and size > 0:
        return Range(start=start, end=start + size - 1)
    return derived_device_memory(vm)


def derived_device_memory(vm: LiveVm) -> Range | None:
    """QEMU's rule: base = end of boot RAM rounded up to 1 GiB (x86: at least 4 GiB),
    size = (maxmem - RAM) + slots x 1 GiB; none without maxmem > RAM."""
    memory = vm.memory
    size = device_memory_size(memory.size, memory.max_size, memory.slots)
    if not size:
        return None
    backends = {device.memdev for device in vm.devices}
    boot = [entry.end + 1 for entry in vm.ram if entry.name not in backends]
    end = max(boot, default=0)
    if vm.arch in ("x86_64", "i386"):
        end = max(end, FOUR_GIB)
    base = device_memory_base(end)
    return Range(start=base, end=base + size - 1)
