"""The iommufd reader (Linux 6.6+ with VFIO device cdevs).

open /dev/iommu; IOAS_ALLOC; for every selected device: open /dev/vfio/devices/vfioN (N from
/sys/bus/pci/devices/BDF/vfio-dev/), BIND_IOMMUFD, ATTACH_IOMMUFD_PT to the IOAS; then
IOAS_IOVA_RANGES, growing the array on EMSGSIZE. A fresh IOAS reports everything, so the query
comes only after every device is attached. Closing the device fds and the iommufd detaches all.
"""

import ctypes
import errno
import fcntl
import os
from collections.abc import Callable, Sequence

from layoutd.errors import HostUnavailable, ParseError
from layoutd.host import abi
from layoutd.host.type1 import _why
from layoutd.models.host import IoctlReply

MAX_RANGES = 1 << 16
RangesCall = Callable[[bytearray, int], None]  # (request struct, address of the range array)


def cdev_of(address: str, root: str = "/", dev: str = "/dev") -> str:
    """/dev/vfio/devices/vfioN for a PCI device bound to vfio-pci, from its vfio-dev directory."""
    where = os.path.join(root, "sys/bus/pci/devices", address, "vfio-dev")
    try:
        names = sorted(name for name in os.listdir(where) if name.startswith("vfio"))
    except OSError:
        names = []
    if not names:
        raise HostUnavailable(
            f"iommufd: {address} has no VFIO device cdev ({where} is missing: kernel older than "
            "6.6, CONFIG_VFIO_DEVICE_CDEV off, or not bound to vfio-pci)"
        )
    return f"{dev}/vfio/devices/{names[0]}"


def iova_ranges(call: RangesCall) -> tuple[bytes, int, int]:
    """The EMSGSIZE protocol: ask with room for a few ranges; when the kernel answers EMSGSIZE it
    has written the needed count into num_iovas: grow and ask again. -> (array bytes, count, align)."""
    room = 8
    for _ in range(4):
        array = (ctypes.c_uint8 * (room * abi.RANGE.size))()
        request = abi.pack_iova_ranges(0, room, ctypes.addressof(array))
        try:
            call(request, ctypes.addressof(array))
        except OSError as error:
            if error.errno != errno.EMSGSIZE:
                raise
            wanted, _ = abi.unpack_iova_ranges(request)
            if wanted <= room or wanted > MAX_RANGES:
                raise ParseError(f"the kernel asks for room for {wanted} ranges after {room}",
                                 file="IOMMU_IOAS_IOVA_RANGES reply", field="num_iovas") from error
            room = wanted
            continue
        count, alignment = abi.unpack_iova_ranges(request)
        data = bytes(array)[: count * abi.RANGE.size] if count <= room else bytes(array)
        return data, count, alignment
    raise ParseError("num_iovas kept growing", file="IOMMU_IOAS_IOVA_RANGES reply", field="num_iovas")


def query(devices: Sequence[str], groups: Sequence[int], root: str = "/", dev: str = "/dev"
          ) -> IoctlReply:
    """Ask the kernel for the usable IOVA ranges of `devices` in one IOAS."""
    if not devices:
        # a fresh IOAS allows every address until a device is attached: that is no answer
        raise HostUnavailable(
            "iommufd: no selected device is bound to vfio-pci, and an IOAS with no device "
            "attached allows every address (no ranges yet), which says nothing about the IOMMU"
        )
    opened: list[int] = []
    iommufd = -1
    step = f"open {dev}/iommu"
    try:
        cdevs = [cdev_of(address, root, dev) for address in devices]
        iommufd = os.open(f"{dev}/iommu", os.O_RDWR | os.O_CLOEXEC)
        step = "IOMMU_IOAS_ALLOC"
        request = abi.pack_ioas_alloc()
        fcntl.ioctl(iommufd, abi.io(abi.IOMMU_IOAS_ALLOC), request, True)
        ioas = abi.unpack_ioas_alloc(request)
        for address, cdev in zip(devices, cdevs, strict=True):
            step = f"open {cdev} ({address})"
            fd = os.open(cdev, os.O_RDWR | os.O_CLOEXEC)
            opened.append(fd)
            step = f"VFIO_DEVICE_BIND_IOMMUFD of {address}"
            fcntl.ioctl(fd, abi.io(abi.VFIO_DEVICE_BIND_IOMMUFD), abi.pack_bind_iommufd(iommufd), True)
            step = f"VFIO_DEVICE_ATTACH_IOMMUFD_PT of {address}"
            fcntl.ioctl(fd, abi.io(abi.VFIO_DEVICE_ATTACH_IOMMUFD_PT), abi.pack_attach_pt(ioas), True)
        step = "IOMMU_IOAS_IOVA_RANGES"

        def call(request: bytearray, pointer: int) -> None:
            abi.IOAS_IOVA_RANGES.pack_into(request, 0, abi.IOAS_IOVA_RANGES.size, ioas,
                                           abi.unpack_iova_ranges(request)[0], 0, pointer, 0)
            fcntl.ioctl(iommufd, abi.io(abi.IOMMU_IOAS_IOVA_RANGES), request, True)

        data, count, alignment = iova_ranges(call)
        return IoctlReply(reader="iommufd", groups=tuple(groups), devices=tuple(devices),
                          reply=data.hex(), num_iovas=count, iova_alignment=alignment)
    except OSError as error:
        raise HostUnavailable(_why(error, step).message.replace("VFIO type1", "iommufd")) from error
    finally:
        for fd in opened:
            os.close(fd)  # unbinds the device from the iommufd
        if iommufd >= 0:
            os.close(iommufd)  # destroys the IOAS
