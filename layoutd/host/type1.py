"""The VFIO type1 reader (Linux 5.4+): one container holding every selected viable group.

open /dev/vfio/vfio; API version 0; CHECK_EXTENSION(TYPE1v2); for each group: open /dev/vfio/N,
GET_STATUS viable, SET_CONTAINER; SET_IOMMU(TYPE1v2); GROUP_GET_DEVICE_FD of each device; GET_INFO
with the argsz growth. The reply is the kernel's intersection over all groups. Everything is
detached and closed in `finally`.

The devices are opened because a container that iommufd emulates (CONFIG_IOMMUFD_VFIO_CONTAINER)
attaches a device only when its fd is opened: before that, a real 6.12 kernel answers GET_INFO with
0x0-0xffffffffffffffff and maps DMA anywhere (tests/kernel/test_iommufd.py). The real type1
driver has its answer at SET_IOMMU already; opening the devices does not change it.
"""

import contextlib
import errno
import fcntl
import os
import struct
from collections.abc import Callable, Sequence

from layoutd.errors import HostUnavailable, ParseError
from layoutd.host import abi
from layoutd.models.host import IoctlReply

MAX_INFO = 1 << 20  # no honest GET_INFO reply is near this big
Call = Callable[[bytearray], None]


def get_info(call: Call) -> bytes:
    """The argsz protocol: ask with the header size, grow to the size the kernel names, ask again."""
    size = abi.TYPE1_INFO.size
    for _ in range(4):
        buffer = abi.pack_type1_info(size)
        call(buffer)
        info = abi.parse_type1_info(bytes(buffer))
        if info.complete:
            return bytes(buffer)
        if info.argsz > MAX_INFO:
            raise ParseError(f"the kernel asks for {info.argsz} bytes, more than {MAX_INFO}",
                             file="VFIO_IOMMU_GET_INFO reply", field="argsz")
        size = info.argsz
    raise ParseError("argsz kept growing after four calls", file="VFIO_IOMMU_GET_INFO reply",
                     field="argsz")


def _why(error: OSError, what: str) -> HostUnavailable:
    reasons = {
        errno.EBUSY: "busy: a running VM (or another process) holds it",
        errno.EPERM: "permission denied (run as root)",
        errno.EACCES: "permission denied (run as root)",
        errno.ENOENT: "does not exist",
        errno.ENODEV: "does not exist",
        errno.EINVAL: "refused (kernel too old for this request?)",
        errno.ENOTTY: "not supported by this kernel",
    }
    reason = reasons.get(error.errno or 0, os.strerror(error.errno or 0))
    return HostUnavailable(f"VFIO type1: {what}: {reason}")


def query(groups: Sequence[int], dev: str = "/dev/vfio", devices: Sequence[str] = ()) -> IoctlReply:
    """Ask the kernel for the usable IOVA ranges of `groups` together, with `devices` (their PCI
    addresses, each in one of the groups) opened. HostUnavailable says why not."""
    if not devices:
        raise HostUnavailable("VFIO type1: no selected device is bound to vfio-pci: with none "
                              "opened, a container that iommufd emulates allows every address")
    opened: list[int] = []
    attached: list[int] = []
    device_fds: list[int] = []
    container = -1
    step = f"open {dev}/vfio"
    try:
        container = os.open(f"{dev}/vfio", os.O_RDWR | os.O_CLOEXEC)
        step = "VFIO_GET_API_VERSION"
        if fcntl.ioctl(container, abi.io(abi.VFIO_GET_API_VERSION)) != abi.VFIO_API_VERSION:
            raise HostUnavailable("VFIO type1: unknown VFIO API version")
        step = "VFIO_CHECK_EXTENSION(TYPE1v2)"
        if fcntl.ioctl(container, abi.io(abi.VFIO_CHECK_EXTENSION), abi.VFIO_TYPE1v2_IOMMU) <= 0:
            raise HostUnavailable("VFIO type1: the kernel does not offer the TYPE1v2 IOMMU")
        for number in groups:
            step = f"open {dev}/{number}"
            fd = os.open(f"{dev}/{number}", os.O_RDWR | os.O_CLOEXEC)
            opened.append(fd)
            step = f"VFIO_GROUP_GET_STATUS of group {number}"
            status = abi.pack_group_status()
            fcntl.ioctl(fd, abi.io(abi.VFIO_GROUP_GET_STATUS), status, True)
            if not abi.unpack_group_status(status) & abi.VFIO_GROUP_FLAGS_VIABLE:
                raise HostUnavailable(f"VFIO type1: group {number} is not viable")
            step = f"VFIO_GROUP_SET_CONTAINER of group {number}"
            fcntl.ioctl(fd, abi.io(abi.VFIO_GROUP_SET_CONTAINER), struct.pack("i", container))
            attached.append(fd)
        step = "VFIO_SET_IOMMU(TYPE1v2)"
        fcntl.ioctl(container, abi.io(abi.VFIO_SET_IOMMU), abi.VFIO_TYPE1v2_IOMMU)
        for address in devices:
            step = f"VFIO_GROUP_GET_DEVICE_FD of {address}"
            name = bytearray(address.encode() + b"\0")
            for fd in attached:
                try:
                    device_fds.append(fcntl.ioctl(fd, abi.io(abi.VFIO_GROUP_GET_DEVICE_FD), name, True))
                    break
                except OSError as error:
                    if error.errno != errno.ENODEV:  # ENODEV: the device is in another group
                        raise
            else:
                raise HostUnavailable(
                    f"VFIO type1: {address} is in none of the groups {', '.join(map(str, groups))}")
        step = "VFIO_IOMMU_GET_INFO"
        reply = get_info(lambda buffer: _ioctl(container, abi.VFIO_IOMMU_GET_INFO, buffer))
        return IoctlReply(reader="vfio-type1", groups=tuple(groups), reply=reply.hex())
    except OSError as error:
        raise _why(error, step) from error
    finally:
        for fd in device_fds:
            os.close(fd)
        for fd in attached:
            with contextlib.suppress(OSError):  # closing the group detaches it as well
                fcntl.ioctl(fd, abi.io(abi.VFIO_GROUP_UNSET_CONTAINER))
        for fd in opened:
            os.close(fd)
        if container >= 0:
            os.close(container)


def _ioctl(fd: int, nr: int, buffer: bytearray) -> None:
    fcntl.ioctl(fd, abi.io(nr), buffer, True)
