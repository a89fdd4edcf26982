"""The live path on a machine without VFIO: every reader fails for a reason it states, and the
chain falls back to sysfs, or to exit 3 when there is nothing at all."""

from pathlib import Path

import pytest

from layoutd.errors import HostUnavailable
from layoutd.host import _live, iommufd, type1
from tests.conftest import EXAMPLES

HOST = EXAMPLES / "hosts/intel-4gpu-39bit"


def test_type1_without_dev_vfio(tmp_path: Path) -> None:
    with pytest.raises(HostUnavailable, match=r"open .*/vfio/vfio: does not exist"):
        type1.query([1], str(tmp_path / "vfio"), ["0000:01:00.0"])


def test_iommufd_without_device_cdev() -> None:
    with pytest.raises(HostUnavailable, match=r"0000:01:00\.0 has no VFIO device cdev"):
        iommufd.query(["0000:01:00.0"], [1], str(HOST))


def test_iommufd_without_dev_iommu(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "sys/bus/pci/devices/0000:01:00.0/vfio-dev/vfio0").mkdir(parents=True)
    with pytest.raises(HostUnavailable, match=r"iommufd: open .*/iommu: does not exist"):
        iommufd.query(["0000:01:00.0"], [1], str(root), str(tmp_path / "dev"))


def test_iommufd_with_no_device_to_attach_is_not_asked(tmp_path: Path) -> None:
    # a fresh IOAS allows every address (tests/kernel/test_iommufd.py shows it on a real kernel)
    with pytest.raises(HostUnavailable, match=r"IOAS with no device attached") as caught:
        iommufd.query([], [1], str(HOST), str(tmp_path / "dev"))
    assert caught.value.exit_code == 3


def test_type1_with_no_device_to_open_is_not_asked(tmp_path: Path) -> None:
    with pytest.raises(HostUnavailable, match=r"no selected device is bound to vfio-pci"):
        type1.query([1], str(tmp_path / "vfio"))


def test_live_chain_falls_back_to_sysfs_and_says_why(tmp_path: Path) -> None:
    probe = _live(["0000:01:00.0", "0000:02:00.0"], str(HOST), str(tmp_path / "dev"))
    view = probe.view
    assert view.source == f"sysfs:{HOST}" and probe.reply is None
    text = " | ".join(view.warnings + view.notes)
    assert "iommufd: 0000:01:00.0 has no VFIO device cdev" in text and "trying VFIO type1" in text
    assert "VFIO type1: open" in text and "falling back to sysfs" in text
    assert "group 2 is not viable" in text
    assert view.aperture_end == 2**39 - 1


def test_live_with_no_viable_group_skips_the_ioctls(tmp_path: Path) -> None:
    view = _live(["0000:02:00.0"], str(HOST), str(tmp_path / "dev")).view
    assert any("cannot be asked" in w for w in view.warnings)


def test_live_without_iommu_groups_is_exit_3(tmp_path: Path) -> None:
    with pytest.raises(HostUnavailable) as caught:
        _live(None, str(tmp_path))
    assert caught.value.exit_code == 3 and "no IOMMU support" in caught.value.message
