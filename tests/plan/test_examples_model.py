"""Every figure a plan prints about QEMU's own regions (the highest address, the 64-bit PCI
windows) is the QEMU model's, for every example spec on every example host it plans on; the
64-bit PCI hole as QEMU widens it to the BARs the firmware placed (proven on a booted guest in
tests/firmware/test_plan_boot.py)."""

import pytest

from layoutd.emit.text import PCI_WINDOWS, picture_rows
from layoutd.errors import LayoutdError
from layoutd.planning import make_plan
from layoutd.qemu import predict
from layoutd.qemu.x86 import hole64_with_bars
from layoutd.specfile import load_spec
from tests.conftest import EXAMPLES

SPECS = sorted(path.name for path in (EXAMPLES / "specs").glob("*.yaml"))
HOSTS = sorted(path.name for path in (EXAMPLES / "hosts").iterdir() if path.is_dir())


@pytest.mark.parametrize("spec", SPECS)
def test_plan_figures_are_the_models(spec: str) -> None:
    planned = 0
    for host in HOSTS:
        try:
            plan = make_plan(load_spec(str(EXAMPLES / "specs" / spec)),
                             [str(EXAMPLES / "hosts" / host)], "10.0")
        except LayoutdError:
            continue  # another host's devices, another arch, or a "no"
        planned += 1
        guest = predict(plan.qemu_argv, version=plan.qemu_version, arch=plan.config.arch,
                        host_cpu=plan.host_cpu, host=plan.host_platform)
        assert plan.highest_address == guest.highest_address, host
        spans = [(b.start, b.end) for b in plan.bars if b.start is not None and b.end is not None]
        regions = hole64_with_bars(guest.regions, spans) if plan.config.arch == "x86_64" else guest.regions
        windows = [(r.start, r.end) for r in regions if r.name in PCI_WINDOWS]
        assert windows or any("highmem-mmio=off" in word for word in plan.qemu_argv), host
        assert [(s, e) for s, e, mark, _ in picture_rows(plan) if mark == "="] == windows, host
    assert planned, f"{spec} plans on no example host"


def test_arm64_reaches_the_high_pcie_window() -> None:
    """virt puts its 512 GiB high PCIe MMIO window at 512 GiB: QEMU's highest address is the
    window's end, not the end of device memory."""
    plan = make_plan(load_spec(str(EXAMPLES / "specs" / "arm64.yaml")),
                     [str(EXAMPLES / "hosts" / "arm-kunpeng-pci-windows")], "10.0")
    assert plan.highest_address == 0xFFFFFFFFFF
