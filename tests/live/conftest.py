"""Real QEMU guests whose device-memory region spans a host hole, and a host tree made to match."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.conftest import run_layoutd
from tests.support.qemu_runner import (
    QemuBinary,
    Refused,
    RunningQemu,
    aarch64_firmware,
    qemu_binary,
    started,
)

GiB = 1 << 30
DEVICE = "0000:41:00.0"
GROUP = 7
CONFIGS = [("7.2", "x86_64"), ("10.0", "x86_64"), ("7.2", "aarch64"), ("10.0", "aarch64")]


def guest_args(arch: str, memory: str = "2G,slots=4,maxmem=10G") -> list[str]:
    port = ["-device", "pcie-root-port,id=rp1,bus=pcie.0,chassis=1"]
    if arch == "x86_64":
        # An Intel model: QEMU does not relocate anything for the AMD HyperTransport range.
        return ["-machine", "q35", "-cpu", "Skylake-Server,phys-bits=42", "-m", memory,
                "-accel", "tcg", *port]
    return ["-machine", "virt,gic-version=3", "-cpu", "max", "-m", memory, *aarch64_firmware(),
            "-accel", "tcg", *port]


@dataclass
class Guest:
    qemu: RunningQemu
    socket: str  # a second QMP socket, free for layoutd (the harness holds the first)
    host: str  # a host tree with one group whose reserved hole lies inside device memory
    region: tuple[int, int]  # device memory, inclusive
    hole: tuple[int, int]

    def objects(self) -> set[str]:
        return {entry["name"] for entry in self.qemu.qmp("qom-list", {"path": "/objects"})}

    def devices(self) -> list[dict[str, Any]]:
        return list(self.qemu.qmp("query-memory-devices"))

    def layoutd(self, *args: str) -> subprocess.CompletedProcess[str]:
        return run_layoutd(*args, "--host", self.host, "--format", "json", timeout=120)

    def hotplug(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.layoutd("hotplug", "--qmp", self.socket, *args)

    def check(self) -> subprocess.CompletedProcess[str]:
        return self.layoutd("check", "--qmp", self.socket)


def device_memory(qemu: RunningQemu) -> tuple[int, int]:
    path = "/machine/device-memory[0]"
    start = int(qemu.qmp("qom-get", {"path": path, "property": "addr"}))
    size = int(qemu.qmp("qom-get", {"path": path, "property": "size"}))
    return start, start + size - 1


def write_host(root: Path, holes: list[tuple[int, int, str]], vendor: str = "GenuineIntel") -> str:
    """A host tree read as `/`: one IOMMU group holding DEVICE, with the given reserved regions."""
    group = root / "sys/kernel/iommu_groups" / str(GROUP)
    (group / "devices").mkdir(parents=True)
    (group / "devices" / DEVICE).write_text(f"../../../../bus/pci/devices/{DEVICE}")
    (group / "type").write_text("DMA\n")
    (group / "reserved_regions").write_text(
        "".join(f"0x{start:016x} 0x{end:016x} {kind}\n" for start, end, kind in sorted(holes)))
    device = root / "sys/bus/pci/devices" / DEVICE
    device.mkdir(parents=True)
    (device / "iommu_group").write_text(f"../../../../kernel/iommu_groups/{GROUP}")
    (device / "driver").write_text("../../../../bus/pci/drivers/vfio-pci")
    (root / "proc").mkdir()
    (root / "proc/cpuinfo").write_text(
        f"processor\t: 0\nvendor_id\t: {vendor}\nmodel name\t: test CPU\n"
        "address sizes\t: 46 bits physical, 48 bits virtual\n\n")
    return str(root)


@contextmanager
def guest(version: str, arch: str, folder: Path, *, memory: str = "2G,slots=4,maxmem=10G",
          extra: tuple[str, ...] = ()) -> Iterator[Guest]:
    """A paused guest and a host tree whose 1 GiB reserved hole sits 1 GiB into device memory."""
    binary: QemuBinary = qemu_binary(version, arch)
    with started(binary, [*guest_args(arch, memory), *extra], extra_qmp=True) as qemu:
        assert not isinstance(qemu, Refused), qemu.stderr
        region = device_memory(qemu)
        hole = (region[0] + GiB, region[0] + 2 * GiB - 1)
        host = write_host(folder / "host", [(0xFEE00000, 0xFEEFFFFF, "msi"), (*hole, "reserved")])
        yield Guest(qemu, os.path.join(qemu.folder, "qmp2.sock"), host, region, hole)


def answer(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert "Traceback" not in result.stderr, result.stderr
    document: dict[str, Any] = json.loads(result.stdout)
    return document


def span(document: dict[str, Any]) -> tuple[int, int]:
    return int(document["start"], 16), int(document["end"], 16)


def overlaps(a: tuple[int, int], b: tuple[int, int]) -> bool:
    return a[0] <= b[1] and b[0] <= a[1]
