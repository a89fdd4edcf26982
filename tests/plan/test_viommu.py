"""virtio-iommu in a plan: no reserved regions on the command line (every machine sets its own MSI
doorbell and QEMU refuses more: tests/qemu/test_viommu.py), and a warning that says what the guest
is told of the host's holes on each QEMU (versions: virtio_iommu_host_regions, _aw_bits)."""

import pytest

from layoutd.qemu.versions import modelled, row
from tests.plan.support import plan_of

SPEC = "name: t\nmachine: q35\ncpu: {model: EPYC, count: 1}\nmemory: {size: 8G}\nviommu: virtio\n"


@pytest.mark.parametrize("version", [str(v) for v in modelled()])
def test_no_regions_and_a_warning_per_qemu(version: str) -> None:
    _, _, plan = plan_of(SPEC, ["intel-4gpu-39bit"], version)
    device = [w for w in plan.qemu_argv if w.startswith("virtio-iommu-pci")]
    assert device and not any("reserved-regions" in w for w in device)
    said = [w for w in plan.warnings if w.startswith("virtio-iommu:")]
    assert len(said) == 1 and "(the MSI window 0xfee00000-0xfeefffff)" in said[0]
    assert "0xe0000-0xfffff (direct)" in said[0]  # the RMRR; the MSI hole QEMU reserves itself
    if row(version).virtio_iommu_host_regions:
        assert f"QEMU {version} tells the guest" in said[0] and "aw-bits=39" in device[0]
    else:
        assert f"QEMU {version} does not tell the guest" in said[0]
        assert "above the IOMMU top 0x7fffffffff (no aw-bits)" in said[0]


def test_only_the_msi_hole_qemu_reserves_itself_says_nothing() -> None:
    _, _, plan = plan_of(SPEC, ["intel-nic-msi-only"], "10.0")
    assert not any(w.startswith("virtio-iommu:") for w in plan.warnings)
