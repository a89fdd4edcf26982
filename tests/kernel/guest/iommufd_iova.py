#!/usr/bin/env python3
"""The test's own witness of what the kernel enforces through iommufd, independent of layoutd.

Runs inside the guest: opens /dev/iommu, allocates an IOAS and asks IOMMU_IOAS_IOVA_RANGES while
no device is attached (the kernel then allows everything), opens each device's VFIO cdev, binds it
to the iommufd and attaches it to the IOAS, asks again, and proves each answer with real
IOMMU_IOAS_MAP calls at a fixed IOVA: a page mapped at the first and last page of every usable
range must be accepted, a page just outside (in a hole, or past the aperture) must be refused.
Standard library only; prints JSON.

    iommufd_iova.py BDF...
"""

from __future__ import annotations

import ctypes
import fcntl
import json
import mmap
import os
import struct
import sys

from edges import PAGE, edge_probes

IOAS_ALLOC = 0x3B81
IOAS_IOVA_RANGES = 0x3B84
IOAS_MAP = 0x3B85
IOAS_UNMAP = 0x3B86
DEVICE_BIND_IOMMUFD = 0x3B76
DEVICE_ATTACH_IOMMUFD_PT = 0x3B77
MAP_FIXED_IOVA, MAP_WRITEABLE, MAP_READABLE = 1, 2, 4


def iova_ranges(iommufd: int, ioas: int) -> list[tuple[int, int]]:
    room = 64
    array = (ctypes.c_uint64 * (2 * room))()
    request = bytearray(struct.pack("=IIIIQQ", 32, ioas, room, 0, ctypes.addressof(array), 0))
    fcntl.ioctl(iommufd, IOAS_IOVA_RANGES, request)
    count = struct.unpack_from("=I", request, 8)[0]
    return [(array[2 * i], array[2 * i + 1]) for i in range(count)]


def try_map(iommufd: int, ioas: int, vaddr: int, iova: int) -> int:
    """0 when the kernel maps one page at iova, else the errno. Unmaps on success."""
    flags = MAP_FIXED_IOVA | MAP_WRITEABLE | MAP_READABLE
    try:
        fcntl.ioctl(iommufd, IOAS_MAP, bytearray(struct.pack("=IIIIQQQ", 40, flags, ioas, 0,
                                                             vaddr, PAGE, iova)))
    except OSError as exc:
        return exc.errno or -1
    fcntl.ioctl(iommufd, IOAS_UNMAP, bytearray(struct.pack("=IIQQ", 24, ioas, iova, PAGE)))
    return 0


def main() -> int:
    devices = sys.argv[1:]
    iommufd = os.open("/dev/iommu", os.O_RDWR)
    alloc = bytearray(struct.pack("=III", 12, 0, 0))
    fcntl.ioctl(iommufd, IOAS_ALLOC, alloc)
    ioas = struct.unpack_from("=I", alloc, 8)[0]
    empty = iova_ranges(iommufd, ioas)
    fds = []
    for bdf in devices:
        (name,) = os.listdir(f"/sys/bus/pci/devices/{bdf}/vfio-dev")
        fd = os.open(f"/dev/vfio/devices/{name}", os.O_RDWR)
        fcntl.ioctl(fd, DEVICE_BIND_IOMMUFD, bytearray(struct.pack("=IIiI", 16, 0, iommufd, 0)))
        fcntl.ioctl(fd, DEVICE_ATTACH_IOMMUFD_PT, bytearray(struct.pack("=III", 12, 0, ioas)))
        fds.append(fd)
    ranges = iova_ranges(iommufd, ioas)

    page = mmap.mmap(-1, PAGE)
    page.write(b"layoutd")
    vaddr = ctypes.addressof(ctypes.c_char.from_buffer(page))
    probes = edge_probes(ranges, lambda iova: try_map(iommufd, ioas, vaddr, iova))
    json.dump({
        "devices": devices,
        "ioas": ioas,
        "empty_ranges": [{"start": hex(s), "end": hex(e)} for s, e in empty],
        "ranges": [{"start": hex(s), "end": hex(e)} for s, e in ranges],
        "map_probes": probes,
    }, sys.stdout, indent=1)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
