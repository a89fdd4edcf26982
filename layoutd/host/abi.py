"""The kernel's VFIO and iommufd buffers: request packers and pure reply parsers over bytes.

Layouts follow include/uapi/linux/vfio.h and iommufd.h (little-endian hosts, native order);
tests/host checks every size and offset here against the real headers. A hostile or truncated
buffer raises ParseError; no loop runs more often than the buffer has bytes.
"""

import os
import struct

from layoutd.errors import ParseError
from layoutd.record import Record, field
from layoutd.units import hex_addr

# ---- ioctl request numbers: _IO(';', nr) ------------------------------------------------------

VFIO_TYPE = ord(";")
VFIO_BASE = 100


def io(nr: int, machine: str | None = None) -> int:
    """_IO(';', nr): powerpc and mips encode 'no data' as direction 1 in bits 29-31."""
    arch = (machine if machine is not None else os.uname().machine).lower()  # platform.machine()
    direction = 1 << 29 if arch.startswith(("ppc", "powerpc", "mips")) else 0
    return direction | VFIO_TYPE << 8 | nr


VFIO_GET_API_VERSION = VFIO_BASE + 0
VFIO_CHECK_EXTENSION = VFIO_BASE + 1
VFIO_SET_IOMMU = VFIO_BASE + 2
VFIO_GROUP_GET_STATUS = VFIO_BASE + 3
VFIO_GROUP_SET_CONTAINER = VFIO_BASE + 4
VFIO_GROUP_UNSET_CONTAINER = VFIO_BASE + 5
VFIO_GROUP_GET_DEVICE_FD = VFIO_BASE + 6
VFIO_IOMMU_GET_INFO = VFIO_BASE + 12
VFIO_DEVICE_BIND_IOMMUFD = VFIO_BASE + 18
VFIO_DEVICE_ATTACH_IOMMUFD_PT = VFIO_BASE + 19
IOMMU_DESTROY = 0x80
IOMMU_IOAS_ALLOC = 0x81
IOMMU_IOAS_IOVA_RANGES = 0x84

VFIO_API_VERSION = 0
VFIO_TYPE1v2_IOMMU = 3
VFIO_GROUP_FLAGS_VIABLE = 1 << 0
VFIO_GROUP_FLAGS_CONTAINER_SET = 1 << 1
VFIO_IOMMU_INFO_PGSIZES = 1 << 0
VFIO_IOMMU_INFO_CAPS = 1 << 1

CAP_IOVA_RANGE = 1
CAP_MIGRATION = 2
CAP_DMA_AVAIL = 3

# ---- struct layouts (native little-endian, '<' so Python adds no padding) ---------------------

TYPE1_INFO = struct.Struct("<IIQII")  # argsz, flags, iova_pgsizes, cap_offset, pad: 24 bytes
CAP_HEADER = struct.Struct("<HHI")  # id, version, next: 8 bytes
IOVA_RANGE_CAP = struct.Struct("<II")  # nr_iovas, reserved, after the header: ranges at +16
RANGE = struct.Struct("<QQ")  # start, end (type1) / start, last (iommufd): both inclusive
DMA_AVAIL_CAP = struct.Struct("<I")  # avail, after the header
GROUP_STATUS = struct.Struct("<II")  # argsz, flags
IOAS_ALLOC = struct.Struct("<III")  # size, flags, out_ioas_id: 12 bytes
IOAS_IOVA_RANGES = struct.Struct("<IIIIQQ")  # size, ioas_id, num_iovas, reserved, ptr, alignment
BIND_IOMMUFD = struct.Struct("<IIiI")  # argsz, flags, iommufd, out_devid: 16 bytes
ATTACH_IOMMUFD_PT = struct.Struct("<III")  # argsz, flags, pt_id: 12 bytes


# ---- packers ------------------------------------------------------------------------------------


def pack_type1_info(argsz: int) -> bytearray:
    """A GET_INFO request buffer of `argsz` bytes (at least the 24-byte header)."""
    if argsz < TYPE1_INFO.size:
        raise ValueError(f"argsz {argsz} is smaller than the {TYPE1_INFO.size}-byte header")
    buffer = bytearray(argsz)
    TYPE1_INFO.pack_into(buffer, 0, argsz, 0, 0, 0, 0)
    return buffer


def pack_group_status() -> bytearray:
    return bytearray(GROUP_STATUS.pack(GROUP_STATUS.size, 0))


def unpack_group_status(buffer: bytes | bytearray) -> int:
    return int(GROUP_STATUS.unpack_from(buffer, 0)[1])


def pack_ioas_alloc() -> bytearray:
    return bytearray(IOAS_ALLOC.pack(IOAS_ALLOC.size, 0, 0))


def unpack_ioas_alloc(buffer: bytes | bytearray) -> int:
    return int(IOAS_ALLOC.unpack_from(buffer, 0)[2])


def pack_iova_ranges(ioas_id: int, num_iovas: int, pointer: int) -> bytearray:
    return bytearray(IOAS_IOVA_RANGES.pack(IOAS_IOVA_RANGES.size, ioas_id, num_iovas, 0, pointer, 0))


def unpack_iova_ranges(buffer: bytes | bytearray) -> tuple[int, int]:
    """(num_iovas, out_iova_alignment) as the kernel wrote them back."""
    _, _, num, _, _, alignment = IOAS_IOVA_RANGES.unpack_from(buffer, 0)
    return int(num), int(alignment)


def pack_bind_iommufd(iommufd: int) -> bytearray:
    return bytearray(BIND_IOMMUFD.pack(BIND_IOMMUFD.size, 0, iommufd, 0))


def pack_attach_pt(pt_id: int) -> bytearray:
    return bytearray(ATTACH_IOMMUFD_PT.pack(ATTACH_IOMMUFD_PT.size, 0, pt_id))


# ---- reply parsers ----------------------------------------------------------------------------


class Type1Info(Record, kw_only=False):
    """A parsed VFIO_IOMMU_GET_INFO reply."""

    argsz: int  # the size the kernel asks for (> len(reply) means: call again, bigger)
    flags: int
    iova_pgsizes: int | None
    ranges: list[tuple[int, int]] | None  # None: no IOVA_RANGE cap (kernel < 5.4, or mdev only)
    dma_avail: int | None = None
    caps: list[int] = field(default_factory=list)  # ids seen, in chain order

    @property
    def complete(self) -> bool:
        return not self.flags & VFIO_IOMMU_INFO_CAPS or self.argsz <= self.length

    length: int = 0


def _fail(what: str, message: str) -> ParseError:
    return ParseError(message, file=what)


def check_ranges(pairs: list[tuple[int, int]], what: str) -> list[tuple[int, int]]:
    """Ranges must be ordered, sorted and disjoint, as the kernel builds them."""
    previous_end = -1
    for start, end in pairs:
        if start > end:
            raise _fail(what, f"range {hex_addr(start)}-{hex_addr(end)} ends before it starts")
        if start <= previous_end:
            raise _fail(
                what,
                f"range {hex_addr(start)}-{hex_addr(end)} overlaps or precedes the one before "
                f"(which ends at {hex_addr(previous_end)}): the kernel lists them sorted and disjoint",
            )
        previous_end = end
    return pairs


def parse_range_array(data: bytes, offset: int, count: int, what: str) -> list[tuple[int, int]]:
    """`count` {u64 start, u64 end} pairs at `offset`, bounds-checked before reading."""
    need = offset + count * RANGE.size
    if count < 0 or need > len(data):
        raise _fail(
            what,
            f"{count} ranges need {count * RANGE.size} bytes at offset {offset}, "
            f"but the buffer holds only {max(len(data) - offset, 0)}",
        )
    pairs = [RANGE.unpack_from(data, offset + index * RANGE.size) for index in range(count)]
    return check_ranges([(int(s), int(e)) for s, e in pairs], what)


def walk_caps(data: bytes, first: int, header_size: int, what: str) -> list[tuple[int, int, int]]:
    """The capability chain as (id, version, offset). Offsets count from the start of `data`;
    each `next` must point forward, past the header it follows, and inside the buffer."""
    chain: list[tuple[int, int, int]] = []
    offset = first
    floor = header_size
    while offset:
        if offset < floor:
            raise _fail(
                what,
                f"capability offset {offset} points backwards (into the header or an earlier "
                f"capability, below {floor}): the chain would loop",
            )
        if offset + CAP_HEADER.size > len(data):
            raise _fail(
                what,
                f"capability offset {offset} points past the end of the {len(data)}-byte reply",
            )
        cap_id, version, following = CAP_HEADER.unpack_from(data, offset)
        chain.append((int(cap_id), int(version), offset))
        floor = offset + CAP_HEADER.size
        offset = int(following)
    return chain


def parse_type1_info(data: bytes, what: str = "VFIO_IOMMU_GET_INFO reply") -> Type1Info:
    """Parse a GET_INFO reply. Caps are matched by id, in any order; unknown ids are skipped."""
    if len(data) < TYPE1_INFO.size:
        raise _fail(what, f"the reply has {len(data)} bytes, less than the {TYPE1_INFO.size}-byte header")
    argsz, flags, pgsizes, cap_offset, _ = TYPE1_INFO.unpack_from(data, 0)
    pages = int(pgsizes) if flags & VFIO_IOMMU_INFO_PGSIZES else None
    if not flags & VFIO_IOMMU_INFO_CAPS or argsz > len(data) or cap_offset == 0:
        # no caps, or the kernel asks for a bigger buffer (argsz) before it writes them
        return Type1Info(int(argsz), int(flags), pages, None, length=len(data))
    ranges: list[tuple[int, int]] | None = None
    avail: int | None = None
    chain = walk_caps(data, int(cap_offset), TYPE1_INFO.size, what)
    for cap_id, version, offset in chain:
        body = offset + CAP_HEADER.size
        if cap_id == CAP_IOVA_RANGE:
            if version != 1:
                raise _fail(what, f"IOVA_RANGE capability version {version} is not the known 1")
            if body + IOVA_RANGE_CAP.size > len(data):
                raise _fail(what, f"IOVA_RANGE capability at {offset} is cut off by the buffer end")
            count = int(IOVA_RANGE_CAP.unpack_from(data, body)[0])
            ranges = parse_range_array(data, body + IOVA_RANGE_CAP.size, count, what)
        elif cap_id == CAP_DMA_AVAIL:
            if body + DMA_AVAIL_CAP.size > len(data):
                raise _fail(what, f"DMA_AVAIL capability at {offset} is cut off by the buffer end")
            avail = int(DMA_AVAIL_CAP.unpack_from(data, body)[0])
    return Type1Info(
        int(argsz), int(flags), pages, ranges, avail, [c[0] for c in chain], length=len(data)
    )


def parse_iommufd_ranges(
    data: bytes, num_iovas: int, what: str = "IOMMU_IOAS_IOVA_RANGES reply"
) -> list[tuple[int, int]]:
    """The allowed_iovas array the kernel filled: `num_iovas` {start, last} pairs."""
    if num_iovas > len(data) // RANGE.size:
        raise _fail(
            what,
            f"num_iovas is {num_iovas} but the buffer holds only {len(data) // RANGE.size} ranges "
            f"({len(data)} bytes)",
        )
    return parse_range_array(data, 0, num_iovas, what)


# ---- builders, the kernel's side (used by tests and by nothing at run time) -------------------


def build_type1_reply(
    ranges: list[tuple[int, int]] | None,
    *,
    pgsizes: int = 0x40201000,
    dma_avail: int | None = None,
    migration: bool = False,
    order: tuple[int, ...] = (CAP_MIGRATION, CAP_DMA_AVAIL, CAP_IOVA_RANGE),
    extra: tuple[tuple[int, bytes], ...] = (),
) -> bytes:
    """A complete GET_INFO reply laid out as the kernel writes it, caps in `order`."""
    bodies: dict[int, bytes] = {}
    if ranges is not None:
        bodies[CAP_IOVA_RANGE] = IOVA_RANGE_CAP.pack(len(ranges), 0) + b"".join(
            RANGE.pack(s, e) for s, e in ranges
        )
    if migration:
        bodies[CAP_MIGRATION] = struct.pack("<IIQQ", 1, 0, 0x1000, 256 << 20)
    if dma_avail is not None:
        bodies[CAP_DMA_AVAIL] = struct.pack("<II", dma_avail, 0)
    items = [(cap, bodies[cap]) for cap in order if cap in bodies] + list(extra)
    caps = bytearray()
    offset = TYPE1_INFO.size
    for index, (cap_id, body) in enumerate(items):
        following = offset + CAP_HEADER.size + len(body) if index + 1 < len(items) else 0
        caps += CAP_HEADER.pack(cap_id, 1, following) + body
        offset += CAP_HEADER.size + len(body)
    flags = VFIO_IOMMU_INFO_PGSIZES | (VFIO_IOMMU_INFO_CAPS if items else 0)
    size = TYPE1_INFO.size + len(caps)
    head = TYPE1_INFO.pack(size, flags, pgsizes, TYPE1_INFO.size if items else 0, 0)
    return head + bytes(caps)
