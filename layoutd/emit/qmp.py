"""The plan's memory devices as QMP commands (object-add, then device_add). Pure."""

from typing import Any

from layoutd.models.plan import Backend, QemuConfig

_QOM_TYPE = {"ram": "memory-backend-ram", "memfd": "memory-backend-memfd", "file": "memory-backend-file"}


def qmp_commands(config: QemuConfig) -> list[dict[str, Any]]:
    backends = {backend.id: backend for backend in config.backends}
    commands: list[dict[str, Any]] = []
    for device in config.devices:
        commands.append({"execute": "object-add", "arguments": backend_arguments(backends[device.backend])})
        arguments: dict[str, Any] = {
            "driver": _driver(device.kind),
            "id": device.id,
            "memdev": device.backend,
        }
        if device.kind == "virtio-mem":
            arguments["memaddr"] = device.addr
            arguments["requested-size"] = device.size
        else:
            arguments["addr"] = device.addr
        if device.node is not None:
            arguments["node"] = device.node
        commands.append({"execute": "device_add", "arguments": arguments})
    return commands


def backend_arguments(backend: Backend) -> dict[str, Any]:
    arguments: dict[str, Any] = {"qom-type": _QOM_TYPE[backend.kind], "id": backend.id, "size": backend.size}
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


def _driver(kind: str) -> str:
    return {"dimm": "pc-dimm", "nvdimm": "nvdimm", "virtio-mem": "virtio-mem-pci"}[kind]
