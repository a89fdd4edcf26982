import pytest

from layoutd.errors import InputError
from layoutd.units import GiB, align_down, align_up, format_size, human_size, parse_size


@pytest.mark.parametrize(
    ("text", "value"),
    [("1100G", 1100 * GiB), ("512M", 512 << 20), ("4k", 4096), ("1T", 1 << 40), ("0x1000", 4096),
     ("4096", 4096), ("1.5G", 3 << 29), ("2GiB", 2 * GiB), (8, 8)],
)
def test_parse_size(text: str, value: int) -> None:
    assert parse_size(text) == value


@pytest.mark.parametrize("text", ["", "G", "12X", "-1G", "0xZZ", "1.3B", "lots"])
def test_parse_size_rejects(text: str) -> None:
    with pytest.raises(InputError):
        parse_size(text)


def test_format_round_trips() -> None:
    for value in (GiB, 1100 * GiB, 3 << 29, 4096, 12345):
        assert parse_size(format_size(value)) == value

@pytest.mark.parametrize(("size", "shown"), [
    (3 << 29, "1536M"), (2047 << 20, "2047M"), (1 << 64, "16E"), (1032209 << 20, "1008G+17M"),
    ((1 << 40) - 1, "1T-1B"), (128, "128B"), (0x60000, "384K"),
])
def test_sizes_in_tables_are_exact(size: int, shown: str) -> None:
    """Issue 16: never rounded (2047M is not 2G), and 2^64 shown sanely."""
    assert human_size(size) == shown


@pytest.mark.parametrize(("size", "shown"), [
    ((1 << 64) - (1 << 40), "~16E"), ((1 << 64) - (1 << 48), "~16E"),
    ((1 << 64) - 0xC6020000, "~16E"), (3 << 50, "3P"), ((3 << 50) + 5, "~3P"),
])
def test_the_rest_of_the_64_bit_space_reads_as_its_order(size: int, shown: str) -> None:
    """Issue 22: past a pebibyte (the space above an IOMMU's top) `16E-256T` or
    `16E-3G+96M+128K` says nothing a reader wants; the range beside it is exact."""
    assert human_size(size) == shown


def test_alignment() -> None:
    assert align_up(GiB + 1, GiB) == 2 * GiB
    assert align_up(2 * GiB, GiB) == 2 * GiB
    assert align_down(2 * GiB - 1, GiB) == GiB
