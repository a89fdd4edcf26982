"""Compare layoutd's prediction with what the real QEMU builds for the same command line."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import pytest

from layoutd.errors import QemuRefusal
from layoutd.models.guest import GuestMap
from layoutd.qemu import predict
from layoutd.qemu.cpus import HostCpu
from tests.support.qemu_runner import Refused, qemu_binary, real_map

HARNESS = ["-S", "-nodefaults", "-display", "none"]  # what tests.support.qemu_runner adds


def qemu_error(stderr: str) -> str:
    """QEMU's first error line, without the program prefix and without warnings (which may
    carry the option they concern first: `-device virtio-mem-pci,...: warning: ...`)."""
    for line in stderr.splitlines():
        text = re.sub(r"^qemu-system-\w+: ", "", line).strip()
        if text and not re.match(r"(-\S+ \S+: )?[Ww]arning:", text):
            return text
    return ""


def device_facts(devices: Sequence[dict[str, Any]]) -> list[tuple[Any, ...]]:
    facts = []
    for device in devices:
        data = device["data"]
        addr = data.get("addr", data.get("memaddr"))
        memdev = str(data.get("memdev", "")).removeprefix("/objects/")
        facts.append((device["type"], data.get("id", ""), addr, data["size"], data.get("node"),
                      memdev, data.get("slot")))
    return facts


def predicted_devices(guest: GuestMap) -> list[tuple[Any, ...]]:
    return [(d.type, d.id, d.addr, d.size, d.node, d.memdev, d.slot) for d in guest.memory_devices]


def compare(version: str, arch: str, args: Sequence[str], host_cpu: HostCpu | None = None) -> GuestMap | None:
    """Assert predict == real QEMU (RAM entries byte for byte, memory devices, or the refusal).

    host_cpu: this machine's CPU, for command lines that run under KVM.
    """
    real = real_map(qemu_binary(version, arch), args)
    if isinstance(real, Refused):
        expected = qemu_error(real.stderr)
        with pytest.raises(QemuRefusal) as refusal:
            predict([*args, *HARNESS], version=version, arch=arch, host_cpu=host_cpu)
        assert refusal.value.message.splitlines()[0] == expected, real.stderr
        return None
    guest = predict([*args, *HARNESS], version=version, arch=arch, host_cpu=host_cpu)
    real_ram = [(e.start, e.end, e.name, e.offset) for e in real.ram]
    predicted = [(p.start, p.end, p.name, p.offset) for p in guest.ram_view]
    assert predicted == real_ram, _table(predicted, real_ram)
    assert [(r.start, r.end) for r in guest.layout] == [(e.start, e.end) for e in real.ram]
    assert predicted_devices(guest) == device_facts(real.memory_devices), real.memory_devices
    return guest


def _table(predicted: list[tuple[int, int, str, int]], real: list[tuple[int, int, str, int]]) -> str:
    def show(rows: list[tuple[int, int, str, int]]) -> str:
        return "\n".join(f"  {s:#x}-{e:#x} {n} @{o:#x}" for s, e, n, o in rows)

    return f"predicted:\n{show(predicted)}\nreal QEMU:\n{show(real)}"
