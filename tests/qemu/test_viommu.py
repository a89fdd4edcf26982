"""layoutd.qemu.viommu against the real binaries: the reserved region each machine sets on
virtio-iommu-pci itself (read back with qom-get at -S), and that QEMU then refuses a user's, in
either syntax (7.2's len-reserved-regions/reserved-regions[i]; the JSON list of 9.0 and later)."""

import json
from typing import Any

import pytest

from layoutd.qemu.viommu import machine_msi_window
from tests.support.qemu_runner import VERSIONS, Refused, RunningQemu, qemu_binary, started

pytestmark = pytest.mark.qemu  # starts real QEMU or firmware: not in -m "not qemu"

MACHINES = [("x86_64", "q35", None), ("x86_64", "pc", None), ("aarch64", "virt", None),
            ("aarch64", "virt", 3)]
REGION = "0xe0000000:0xf7feffff:0"
USER_SYNTAX = {
    "array": f"virtio-iommu-pci,len-reserved-regions=1,reserved-regions[0]={REGION}",
    "json": json.dumps({"driver": "virtio-iommu-pci", "reserved-regions": [REGION]}),
}


def _machine(arch: str, family: str, gic: int | None) -> list[str]:
    text = family + (f",gic-version={gic}" if gic else "")
    return ["-machine", text] + (["-cpu", "max"] if arch == "aarch64" else [])


def _regions(qemu: RunningQemu) -> list[Any]:
    """reserved-regions as the device holds them: a list (9.0+), or len- and [i] (7.2)."""
    path = "/machine/peripheral/vi"
    reply = qemu.raw("qom-get", {"path": path, "property": "reserved-regions"})
    if "return" in reply:
        return list(reply["return"])
    count = qemu.qmp("qom-get", {"path": path, "property": "len-reserved-regions"})
    return [qemu.qmp("qom-get", {"path": path, "property": f"reserved-regions[{index}]"})
            for index in range(count)]


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize(("arch", "family", "gic"), MACHINES)
def test_machine_sets_its_msi_window(version: str, arch: str, family: str, gic: int | None) -> None:
    _, first, last = machine_msi_window(family, gic)
    args = [*_machine(arch, family, gic), "-device", "virtio-iommu-pci,id=vi"]
    with started(qemu_binary(version, arch), args) as qemu:
        assert isinstance(qemu, RunningQemu), qemu
        assert _regions(qemu) == [f"{first:#x}:{last:#x}:1"]


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize(("arch", "family", "gic"), MACHINES)
@pytest.mark.parametrize("syntax", USER_SYNTAX)
def test_machine_refuses_a_users_regions(version: str, arch: str, family: str, gic: int | None,
                                         syntax: str) -> None:
    args = [*_machine(arch, family, gic), "-device", USER_SYNTAX[syntax]]
    with started(qemu_binary(version, arch), args) as qemu:
        assert isinstance(qemu, Refused)  # 10.0 and 11.1 abort on the JSON form (SIGABRT)
        assert "reserved-regions" in qemu.stderr


@pytest.mark.parametrize("version", VERSIONS)
def test_only_virt_without_msi_controller_takes_them(version: str) -> None:
    """gic-version=3,its=off: no doorbell set, and one of the two syntaxes is taken as given."""
    args = ["-machine", "virt,gic-version=3,its=off", "-cpu", "max"]
    taken = []
    for syntax in USER_SYNTAX.values():
        device = syntax.replace("virtio-iommu-pci,", "virtio-iommu-pci,id=vi,").replace(
            '"virtio-iommu-pci",', '"virtio-iommu-pci", "id": "vi",')
        with started(qemu_binary(version, "aarch64"), [*args, "-device", device]) as qemu:
            if isinstance(qemu, RunningQemu):
                taken.append(_regions(qemu))
    assert taken == [[REGION]]
