"""The byte parsers and request protocols of the VFIO type1 and iommufd readers.

Replies are laid out as the kernel writes them (sizes checked against the uapi headers in
test_abi_headers.py); hostile buffers must give a ParseError, never a hang or another exception.
"""

import contextlib
import ctypes
import errno
import itertools
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from layoutd.errors import ParseError
from layoutd.host import abi, iommufd, type1
from layoutd.host.sysfs import parse_reserved_regions

X86 = [(0, 0xFEDFFFFF), (0xFEF00000, 0xFCFFFFFFFF), (0x10000000000, 0xFFFFFFFFFFFF)]
CAP = abi.CAP_HEADER
HEAD = abi.TYPE1_INFO.size


def chain_reply(caps: list[tuple[int, bytes]], nexts: list[int] | None = None, first: int = HEAD) -> bytes:
    """A reply with raw caps; `nexts` overrides each cap's next pointer (for hostile chains)."""
    body = bytearray()
    offset = HEAD
    for index, (cap_id, payload) in enumerate(caps):
        following = offset + CAP.size + len(payload) if index + 1 < len(caps) else 0
        if nexts is not None:
            following = nexts[index]
        body += CAP.pack(cap_id, 1, following) + payload
        offset += CAP.size + len(payload)
    size = HEAD + len(body)
    flags = abi.VFIO_IOMMU_INFO_PGSIZES | abi.VFIO_IOMMU_INFO_CAPS
    return abi.TYPE1_INFO.pack(size, flags, 0x1000, first, 0) + bytes(body)


def iova_cap(ranges: list[tuple[int, int]], count: int | None = None) -> bytes:
    n = len(ranges) if count is None else count
    return struct.pack("<II", n, 0) + b"".join(struct.pack("<QQ", s, e) for s, e in ranges)


# ---- well-formed replies ------------------------------------------------------------------------


def test_kernel_reply_with_every_cap() -> None:
    reply = abi.build_type1_reply(X86, dma_avail=65535, migration=True)
    info = abi.parse_type1_info(reply)
    assert info.ranges == X86
    assert info.dma_avail == 65535
    assert info.iova_pgsizes == 0x40201000
    assert info.caps == [abi.CAP_MIGRATION, abi.CAP_DMA_AVAIL, abi.CAP_IOVA_RANGE]  # 6.x order
    # byte-exact: the first cap sits right after the 24-byte header, IOVA_RANGE body at +16
    assert struct.unpack_from("<I", reply, 16)[0] == 24
    assert reply[24:26] == struct.pack("<H", abi.CAP_MIGRATION)


@pytest.mark.parametrize("order", list(itertools.permutations(
    (abi.CAP_MIGRATION, abi.CAP_DMA_AVAIL, abi.CAP_IOVA_RANGE))))
def test_caps_in_any_order(order: tuple[int, ...]) -> None:
    reply = abi.build_type1_reply(X86, dma_avail=17, migration=True, order=order)
    info = abi.parse_type1_info(reply)
    assert (info.ranges, info.dma_avail, info.caps) == (X86, 17, list(order))


def test_unknown_caps_are_skipped() -> None:
    reply = abi.build_type1_reply(X86, extra=((99, b"\xff" * 12), (4, b"\x00" * 8)),
                                  order=(abi.CAP_IOVA_RANGE,))
    info = abi.parse_type1_info(reply)
    assert info.ranges == X86 and info.caps == [abi.CAP_IOVA_RANGE, 99, 4]


def test_no_iova_range_cap_means_old_kernel() -> None:
    info = abi.parse_type1_info(abi.build_type1_reply(None))
    assert info.ranges is None and info.complete


def test_empty_range_list() -> None:
    assert abi.parse_type1_info(abi.build_type1_reply([])).ranges == []


# ---- the argsz protocol -------------------------------------------------------------------------


def kernel_get_info(full: bytes, calls: list[int]):  # type: ignore[no-untyped-def]
    """The kernel's vfio_iommu_type1_get_info: too small a buffer gets the header with CAPS set,
    cap_offset 0 and the size needed in argsz; a big enough one gets everything."""

    def call(buffer: bytearray) -> None:
        argsz = struct.unpack_from("<I", buffer, 0)[0]
        calls.append(argsz)
        assert argsz == len(buffer) >= HEAD
        _, flags, pages, _, _ = abi.TYPE1_INFO.unpack_from(full, 0)
        if argsz < len(full):
            abi.TYPE1_INFO.pack_into(buffer, 0, len(full), flags, pages, 0, 0)
        else:
            buffer[: len(full)] = full

    return call


def test_argsz_growth() -> None:
    full = abi.build_type1_reply(X86, dma_avail=3, migration=True)
    calls: list[int] = []
    reply = type1.get_info(kernel_get_info(full, calls))
    assert calls == [24, len(full)]
    assert abi.parse_type1_info(reply).ranges == X86


def test_argsz_without_caps_takes_one_call() -> None:
    full = abi.build_type1_reply(None)
    calls: list[int] = []
    type1.get_info(kernel_get_info(full, calls))
    assert calls == [24]


def test_argsz_that_keeps_growing_stops() -> None:
    def greedy(buffer: bytearray) -> None:
        size = len(buffer)
        abi.TYPE1_INFO.pack_into(buffer, 0, size * 2, abi.VFIO_IOMMU_INFO_CAPS, 0, 0, 0)

    with pytest.raises(ParseError, match="argsz"):
        type1.get_info(greedy)


# ---- the iommufd EMSGSIZE protocol --------------------------------------------------------------


def kernel_iova_ranges(ranges: list[tuple[int, int]], calls: list[int]):  # type: ignore[no-untyped-def]
    """iommufd's ioas_iova_ranges: writes num_iovas back; EMSGSIZE when the array is too short."""

    def call(request: bytearray, pointer: int) -> None:
        size, _, room, _, address, _ = abi.IOAS_IOVA_RANGES.unpack_from(request, 0)
        assert size == 32 and address == pointer
        calls.append(room)
        struct.pack_into("<I", request, 8, len(ranges))
        if room < len(ranges):
            raise OSError(errno.EMSGSIZE, "Message too long")
        data = b"".join(struct.pack("<QQ", s, e) for s, e in ranges)
        ctypes.memmove(address, data, len(data))
        struct.pack_into("<Q", request, 24, 4096)

    return call


def test_emsgsize_retry() -> None:
    wanted = [(i << 32, (i << 32) + 0xFFFF) for i in range(11)]
    calls: list[int] = []
    data, count, alignment = iommufd.iova_ranges(kernel_iova_ranges(wanted, calls))
    assert calls == [8, 11] and count == 11 and alignment == 4096
    assert abi.parse_iommufd_ranges(data, count) == wanted


def test_iommufd_small_list_in_one_call() -> None:
    calls: list[int] = []
    data, count, _ = iommufd.iova_ranges(kernel_iova_ranges(X86, calls))
    assert calls == [8] and abi.parse_iommufd_ranges(data, count) == X86


# ---- hostile input ------------------------------------------------------------------------------


def test_truncated_header() -> None:
    with pytest.raises(ParseError, match="less than the 24-byte header"):
        abi.parse_type1_info(b"\x18\x00\x00\x00\x03\x00")


def test_next_that_loops_to_itself() -> None:
    with pytest.raises(ParseError, match="backwards"):
        abi.parse_type1_info(chain_reply([(99, b"")], nexts=[HEAD]))


def test_next_that_points_backwards() -> None:
    payload = iova_cap(X86)
    with pytest.raises(ParseError, match="backwards"):
        abi.parse_type1_info(chain_reply([(99, b""), (abi.CAP_IOVA_RANGE, payload)],
                                         nexts=[HEAD + CAP.size, HEAD]))


def test_next_into_the_header() -> None:
    with pytest.raises(ParseError, match="backwards"):
        abi.parse_type1_info(chain_reply([(99, b"")], first=8))


def test_next_past_the_end() -> None:
    with pytest.raises(ParseError, match="past the end"):
        abi.parse_type1_info(chain_reply([(99, b"")], nexts=[4096]))


def test_nr_iovas_larger_than_buffer() -> None:
    reply = chain_reply([(abi.CAP_IOVA_RANGE, iova_cap(X86, count=1000))])
    with pytest.raises(ParseError, match="1000 ranges need 16000 bytes"):
        abi.parse_type1_info(reply)


def test_nr_iovas_near_u32_max() -> None:
    reply = chain_reply([(abi.CAP_IOVA_RANGE, iova_cap(X86, count=0xFFFFFFFF))])
    with pytest.raises(ParseError, match="4294967295 ranges"):
        abi.parse_type1_info(reply)


@pytest.mark.parametrize("ranges", [
    [(0x1000, 0x1FFF), (0x1800, 0x2FFF)],  # overlapping
    [(0x5000, 0x5FFF), (0x1000, 0x1FFF)],  # unsorted
    [(0x5000, 0x4FFF)],  # ends before it starts
])
def test_bad_range_lists(ranges: list[tuple[int, int]]) -> None:
    with pytest.raises(ParseError):
        abi.parse_type1_info(chain_reply([(abi.CAP_IOVA_RANGE, iova_cap(ranges))]))
    data = b"".join(struct.pack("<QQ", s, e) for s, e in ranges)
    with pytest.raises(ParseError):
        abi.parse_iommufd_ranges(data, len(ranges))


def test_iommufd_count_larger_than_buffer() -> None:
    with pytest.raises(ParseError, match="num_iovas is 5 but the buffer holds only 3"):
        abi.parse_iommufd_ranges(b"\x00" * 48, 5)


def test_cap_cut_off_by_end() -> None:
    reply = chain_reply([(abi.CAP_IOVA_RANGE, b"")])
    with pytest.raises(ParseError, match="cut off"):
        abi.parse_type1_info(reply)


# ---- fuzzing: ParseError or an answer, never a hang or another exception ------------------------

FUZZ = settings(max_examples=300, deadline=1000, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(st.binary(max_size=512))
def test_fuzz_raw_reply(data: bytes) -> None:
    with contextlib.suppress(ParseError):
        abi.parse_type1_info(data)


@FUZZ
@given(st.lists(st.tuples(st.integers(0, 6), st.binary(max_size=48),
                          st.one_of(st.none(), st.integers(0, 600))), max_size=6),
       st.integers(0, 64))
def test_fuzz_chain(caps: list[tuple[int, bytes, int | None]], first: int) -> None:
    """Plausible chains with random ids, bodies and (sometimes) corrupted next pointers."""
    body = bytearray()
    offset = HEAD
    for index, (cap_id, payload, forced) in enumerate(caps):
        natural = offset + CAP.size + len(payload) if index + 1 < len(caps) else 0
        body += CAP.pack(cap_id, 1, natural if forced is None else forced) + payload
        offset += CAP.size + len(payload)
    head = abi.TYPE1_INFO.pack(HEAD + len(body), 3, 0x1000, first if first else HEAD, 0)
    try:
        info = abi.parse_type1_info(head + bytes(body))
    except ParseError:
        return
    if info.ranges:
        assert all(s <= e for s, e in info.ranges)


@FUZZ
@given(st.text(max_size=300))
def test_fuzz_reserved_regions_text(text: str) -> None:
    try:
        regions = parse_reserved_regions(text, "fuzz")
    except ParseError:
        return
    assert all(start <= end for start, end, _ in regions)


@FUZZ
@given(st.lists(st.tuples(st.integers(0, 2**64 - 1), st.integers(0, 2**64 - 1),
                          st.sampled_from(["msi", "direct", "direct-relaxable", "reserved", "x y"])),
                max_size=8))
def test_fuzz_reserved_regions_lines(lines: list[tuple[int, int, str]]) -> None:
    text = "".join(f"0x{s:016x} 0x{e:016x} {t}\n" for s, e, t in lines)
    try:
        regions = parse_reserved_regions(text, "fuzz")
    except ParseError as error:
        assert "line" in str(error)
        return
    assert regions == [(s, e, t) for s, e, t in lines]
