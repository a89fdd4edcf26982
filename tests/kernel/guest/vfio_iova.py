#!/usr/bin/env python3
"""The test's own witness of what the kernel enforces, independent of layoutd's reader.

Runs inside the guest: opens the VFIO container, adds the given groups, sets TYPE1v2, opens every
device of the groups (a container iommufd emulates attaches a device only then), asks
VFIO_IOMMU_GET_INFO for the IOVA-range capability, then proves each answer with real
VFIO_IOMMU_MAP_DMA calls: a page mapped at the first and last page of every usable range must be
accepted, a page just outside (in a hole, or past the aperture) must be refused with EINVAL.
Standard library only; prints JSON.

    vfio_iova.py GROUP...
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import json
import mmap
import os
import struct
import sys

from edges import PAGE, edge_probes

GET_API_VERSION = 0x3B64
CHECK_EXTENSION = 0x3B65
SET_IOMMU = 0x3B66
GROUP_GET_STATUS = 0x3B67
GROUP_SET_CONTAINER = 0x3B68
GROUP_GET_DEVICE_FD = 0x3B6A
IOMMU_GET_INFO = 0x3B70
IOMMU_MAP_DMA = 0x3B71
IOMMU_UNMAP_DMA = 0x3B72
TYPE1V2 = 3
CAP_IOVA_RANGE = 1


def get_info(container: int) -> tuple[int, list[tuple[int, int]]]:
    buf = bytearray(struct.pack("=IIQII", 24, 0, 0, 0, 0))
    fcntl.ioctl(container, IOMMU_GET_INFO, buf)
    argsz = struct.unpack_from("=I", buf, 0)[0]
    if argsz > 24:
        buf = bytearray(argsz)
        struct.pack_into("=I", buf, 0, argsz)
        fcntl.ioctl(container, IOMMU_GET_INFO, buf)
    _, flags, pgsizes, cap_offset, _ = struct.unpack_from("=IIQII", buf, 0)
    ranges: list[tuple[int, int]] = []
    off = cap_offset if flags & 2 else 0
    while off:
        cap_id, _version, nxt = struct.unpack_from("=HHI", buf, off)
        if cap_id == CAP_IOVA_RANGE:
            (count,) = struct.unpack_from("=I", buf, off + 8)
            ranges = [struct.unpack_from("=QQ", buf, off + 16 + 16 * i) for i in range(count)]
        off = nxt
    return pgsizes, ranges


def try_map(container: int, vaddr: int, iova: int) -> int:
    """0 when the kernel maps one page at iova, else the errno. Unmaps on success."""
    flags = 3  # READ | WRITE
    try:
        fcntl.ioctl(container, IOMMU_MAP_DMA, struct.pack("=IIQQQ", 32, flags, vaddr, iova, PAGE))
    except OSError as exc:
        return exc.errno or -1
    unmap = bytearray(struct.pack("=IIQQ", 32, 0, iova, PAGE))
    fcntl.ioctl(container, IOMMU_UNMAP_DMA, unmap)
    return 0


def main() -> int:
    groups = sys.argv[1:]
    container = os.open("/dev/vfio/vfio", os.O_RDWR)
    assert fcntl.ioctl(container, GET_API_VERSION) == 0
    assert fcntl.ioctl(container, CHECK_EXTENSION, TYPE1V2) > 0
    fds = []
    for group in groups:
        fd = os.open(f"/dev/vfio/{group}", os.O_RDWR)
        status = bytearray(struct.pack("=II", 8, 0))
        fcntl.ioctl(fd, GROUP_GET_STATUS, status)
        assert struct.unpack("=II", status)[1] & 1, f"group {group} is not viable"
        fcntl.ioctl(fd, GROUP_SET_CONTAINER, struct.pack("=i", container))
        fds.append(fd)
    fcntl.ioctl(container, SET_IOMMU, TYPE1V2)
    devices = [fcntl.ioctl(fd, GROUP_GET_DEVICE_FD, bytearray(name.encode() + b"\0"), True)
               for group, fd in zip(groups, fds, strict=True)
               for name in os.listdir(f"/sys/kernel/iommu_groups/{group}/devices")]
    assert devices, "no device to open"
    pgsizes, ranges = get_info(container)

    page = mmap.mmap(-1, PAGE)
    page.write(b"layoutd")
    vaddr = ctypes.addressof(ctypes.c_char.from_buffer(page))
    probes = edge_probes(ranges, lambda iova: try_map(container, vaddr, iova))
    json.dump({
        "groups": groups,
        "iova_pgsizes": hex(pgsizes),
        "ranges": [{"start": hex(s), "end": hex(e)} for s, e in ranges],
        "map_probes": probes,
        "einval": errno.EINVAL,
    }, sys.stdout, indent=1)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
