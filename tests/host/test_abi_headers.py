"""layoutd/host/abi.py agrees with the real uapi headers: sizes, offsets, ioctl numbers, cap ids."""

import struct

import pytest

from layoutd.host import abi
from tests.conftest import need
from tests.host.headers import ctypes_struct, define, header, ioctl_nr, offsets


def vfio_h() -> str:
    text = header("vfio.h", "vfio_iommu_type1_info")
    need(text is not None, "linux/vfio.h (Debian package linux-libc-dev)")
    assert text is not None
    return text


def vfio_cdev_h() -> str:
    text = header("vfio.h", "vfio_device_bind_iommufd")
    need(text is not None, "linux/vfio.h of 6.6+ (bookworm-backports linux-libc-dev, unpacked "
                           "into the cache by scripts/install-test-deps.sh)")
    assert text is not None
    return text


def iommufd_h() -> str:
    text = header("iommufd.h", "iommu_ioas_iova_ranges")
    need(text is not None, "linux/iommufd.h (bookworm-backports linux-libc-dev, unpacked into "
                           "the cache by scripts/install-test-deps.sh)")
    assert text is not None
    return text


def fields_of(layout: struct.Struct) -> list[int]:
    """Offsets of a '<'-packed struct.Struct's members, in order."""
    result, offset = [], 0
    for code in layout.format.lstrip("<"):
        result.append(offset)
        offset += struct.calcsize("<" + code)
    return result


def test_type1_info_layout() -> None:
    info = ctypes_struct(vfio_h(), "vfio_iommu_type1_info")
    # the header has no pad member; the compiler pads to 24 (u64 alignment)
    assert struct_size(info) == abi.TYPE1_INFO.size == 24
    got = offsets(info)
    members = [got["argsz"], got["flags"], got["iova_pgsizes"], got["cap_offset"]]
    assert members == fields_of(abi.TYPE1_INFO)[:4]


def struct_size(structure: type) -> int:
    import ctypes

    return ctypes.sizeof(structure)


def test_capability_layouts() -> None:
    text = vfio_h()
    cap = ctypes_struct(text, "vfio_info_cap_header")
    assert struct_size(cap) == abi.CAP_HEADER.size == 8
    assert list(offsets(cap).values()) == fields_of(abi.CAP_HEADER)
    iova = ctypes_struct(text, "vfio_iova_range")
    assert struct_size(iova) == abi.RANGE.size == 16
    ranges = ctypes_struct(text, "vfio_iommu_type1_info_cap_iova_range",
                           {"vfio_info_cap_header": cap, "vfio_iova_range": iova})
    got = offsets(ranges)
    assert got["nr_iovas"] == abi.CAP_HEADER.size
    assert got["iova_ranges"] == abi.CAP_HEADER.size + abi.IOVA_RANGE_CAP.size == 16
    avail = ctypes_struct(text, "vfio_iommu_type1_info_dma_avail", {"vfio_info_cap_header": cap})
    assert offsets(avail)["avail"] == abi.CAP_HEADER.size


def test_cap_ids_and_flags() -> None:
    text = vfio_h()
    assert int(define(text, "VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE"), 0) == abi.CAP_IOVA_RANGE
    assert int(define(text, "VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION"), 0) == abi.CAP_MIGRATION
    assert int(define(text, "VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL"), 0) == abi.CAP_DMA_AVAIL
    assert int(define(text, "VFIO_TYPE1v2_IOMMU"), 0) == abi.VFIO_TYPE1v2_IOMMU
    assert define(text, "VFIO_IOMMU_INFO_CAPS") == "(1 << 1)"
    assert define(text, "VFIO_IOMMU_INFO_PGSIZES") == "(1 << 0)"
    assert define(text, "VFIO_GROUP_FLAGS_VIABLE") == "(1 << 0)"
    assert define(text, "VFIO_TYPE") == "(';')"


@pytest.mark.parametrize(("name", "nr"), [
    ("VFIO_GET_API_VERSION", abi.VFIO_GET_API_VERSION),
    ("VFIO_CHECK_EXTENSION", abi.VFIO_CHECK_EXTENSION),
    ("VFIO_SET_IOMMU", abi.VFIO_SET_IOMMU),
    ("VFIO_GROUP_GET_STATUS", abi.VFIO_GROUP_GET_STATUS),
    ("VFIO_GROUP_SET_CONTAINER", abi.VFIO_GROUP_SET_CONTAINER),
    ("VFIO_GROUP_GET_DEVICE_FD", abi.VFIO_GROUP_GET_DEVICE_FD),
    ("VFIO_GROUP_UNSET_CONTAINER", abi.VFIO_GROUP_UNSET_CONTAINER),
    ("VFIO_IOMMU_GET_INFO", abi.VFIO_IOMMU_GET_INFO),
])
def test_vfio_ioctl_numbers(name: str, nr: int) -> None:
    assert ioctl_nr(vfio_h(), name) == nr
    assert abi.io(nr, "x86_64") == 0x3B00 | nr
    assert abi.io(nr, "ppc64le") == 1 << 29 | 0x3B00 | nr


def test_group_status_layout() -> None:
    status = ctypes_struct(vfio_h(), "vfio_group_status")
    assert struct_size(status) == abi.GROUP_STATUS.size


def test_vfio_cdev_layouts() -> None:
    text = vfio_cdev_h()
    bind = ctypes_struct(text, "vfio_device_bind_iommufd")
    names = [name for name, _ in bind._fields_]
    assert names[:4] == ["argsz", "flags", "iommufd", "out_devid"]
    # 6.6 is 16 bytes; later kernels append members, which argsz = 16 keeps optional
    assert offsets(bind)["out_devid"] + 4 == abi.BIND_IOMMUFD.size == 16
    assert [offsets(bind)[n] for n in names[:4]] == fields_of(abi.BIND_IOMMUFD)
    attach = ctypes_struct(text, "vfio_device_attach_iommufd_pt")
    assert [offsets(attach)[n] for n in ("argsz", "flags", "pt_id")] == fields_of(abi.ATTACH_IOMMUFD_PT)
    assert ioctl_nr(text, "VFIO_DEVICE_BIND_IOMMUFD") == abi.VFIO_DEVICE_BIND_IOMMUFD
    assert ioctl_nr(text, "VFIO_DEVICE_ATTACH_IOMMUFD_PT") == abi.VFIO_DEVICE_ATTACH_IOMMUFD_PT


def test_iommufd_layouts() -> None:
    text = iommufd_h()
    alloc = ctypes_struct(text, "iommu_ioas_alloc")
    assert struct_size(alloc) == abi.IOAS_ALLOC.size == 12
    assert list(offsets(alloc).values()) == fields_of(abi.IOAS_ALLOC)
    ranges = ctypes_struct(text, "iommu_ioas_iova_ranges")
    assert struct_size(ranges) == abi.IOAS_IOVA_RANGES.size == 32
    assert list(offsets(ranges).values()) == fields_of(abi.IOAS_IOVA_RANGES)
    assert struct_size(ctypes_struct(text, "iommu_iova_range")) == abi.RANGE.size
    assert ioctl_nr(text, "IOMMU_IOAS_ALLOC") == abi.IOMMU_IOAS_ALLOC
    assert ioctl_nr(text, "IOMMU_IOAS_IOVA_RANGES") == abi.IOMMU_IOAS_IOVA_RANGES
    assert ioctl_nr(text, "IOMMU_DESTROY") == abi.IOMMU_DESTROY
