"""Memory backends and devices as QMP commands (object-add, then device_add): the one QMP
encoder, for a plan's devices and for `hotplug`. Pure."""

from typing import Any

from layoutd.models.plan import Backend, PlannedDevice, QemuConfig

QOM_TYPE = {"ram": "memory-backend-ram", "memfd": "memory-backend-memfd", "file": "memory-backend-file"}
"""Backend kind -> QEMU's object type: the one table (argv and QMP use it)."""

DRIVER = {"dimm": "pc-dimm", "nvdimm": "nvdimm", "virtio-mem": "virtio-mem-pci"}
"""Memory device kind -> QEMU's device driver."""


def qmp_commands(config: QemuConfig) -> list[dict[str, Any]]:
    backends = {backend.id: backend for backend in config.backends}
    commands: list[dict[str, Any]] = []
    for device in config.devices:
        commands += plug_commands(backends[device.backend], device)
    return commands


def plug_commands(backend: Backend, device: PlannedDevice,
                  bus: str | None = None) -> list[dict[str, Any]]:
    """object-add of the backend, then device_add of the device (on `bus`, a PCIe port)."""
    return [{"execute": "object-add", "arguments": backend_arguments(backend)},
            {"execute": "device_add", "arguments": device_arguments(device, bus)}]


def device_arguments(device: PlannedDevice, bus: str | None = None) -> dict[str, Any]:
    arguments: dict[str, Any] = {"driver": DRIVER[device.kind], "id": device.id,
                                 "memdev": device.backend}
    if device.kind == "virtio-mem":
        arguments["memaddr"] = device.addr
        if device.block_size:
            arguments["block-size"] = device.block_size
        arguments["requested-size"] = device.size
        if bus:
            arguments["bus"] = bus
    else:
        arguments["addr"] = device.addr
    if device.node is not None:
        arguments["node"] = device.node
    return arguments


def backend_arguments(backend: Backend) -> dict[str, Any]:
    arguments: dict[str, Any] = {"qom-type": QOM_TYPE[backend.kind], "id": backend.id, "size": backend.size}
    if backend.kind == "file":
        arguments["mem-path"] = backend.path
        if backend.hugepage_size:
            arguments["align"] = backend.hugepage_size
    if backend.kind == "memfd" and backend.hugepage_size:
        arguments["hugetlb"] = True
        arguments["hugetlbsize"] = backend.hugepage_size
    if backend.share:
        arguments["share"] = True
    if backend.prealloc:
        arguments["prealloc"] = True
    if backend.reserve is not None:
        arguments["reserve"] = backend.reserve
    return arguments
