"""Sizes and addresses as people and QEMU write them."""

import re

from layoutd.errors import InputError

KiB = 1 << 10
MiB = 1 << 20
GiB = 1 << 30
TiB = 1 << 40

_SUFFIX = {"": 1, "B": 1, "K": KiB, "M": MiB, "G": GiB, "T": TiB, "P": 1 << 50, "E": 1 << 60}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGTPE]?)(?:i?B)?\s*$", re.IGNORECASE)


def parse_size(text: str | int, *, default_suffix: str = "", what: str = "size") -> int:
    """Parse '1100G', '512M', '0x1000' or a plain number; K/M/G/T are powers of 1024, as in QEMU."""
    if isinstance(text, bool):
        raise InputError(f"{what} must be a size such as 4G, not {text!r}")
    if isinstance(text, int):
        if text < 0:
            raise InputError(f"{what} must not be negative: {text}")
        return text
    raw = str(text).strip()
    if raw.lower().startswith("0x"):
        try:
            return int(raw, 16)
        except ValueError:
            raise InputError(f"{what} {text!r} is not a valid hex number") from None
    match = _SIZE.match(raw)
    if not match:
        raise InputError(f"{what} {text!r} is not a size (use a number with K, M, G or T)")
    number, suffix = match.group(1), match.group(2).upper() or default_suffix.upper()
    value = float(number) * _SUFFIX[suffix] if "." in number else int(number) * _SUFFIX[suffix]
    if value != int(value):
        raise InputError(f"{what} {text!r} is not a whole number of bytes")
    return int(value)


def hex_addr(value: int) -> str:
    """Lowercase hex, as in the JSON contract: 0xfee00000."""
    return f"{value:#x}"


def format_size(size: int) -> str:
    """The shortest exact K/M/G/T/P/E form: 1100G, 512M, 16E (2^64), 4096 (bytes)."""
    for suffix, unit in (("E", 1 << 60), ("P", 1 << 50), ("T", TiB), ("G", GiB), ("M", MiB), ("K", KiB)):
        if size >= unit and size % unit == 0:
            return f"{size // unit}{suffix}"
    return str(size)


_UNITS = (("E", 1 << 60), ("P", 1 << 50), ("T", TiB), ("G", GiB), ("M", MiB), ("K", KiB), ("B", 1))


def human_size(size: int) -> str:
    """Exact and short, for tables: 2047M (never rounded to 2G), 640K, 100B; a long number of a
    small unit becomes two terms, still exact: 1008G+17M. Past a pebibyte (no guest has that
    much; it is the rest of the 64-bit space, above an IOMMU's top) only the order is worth
    reading: ~16E for 2^64 - 2^40 (the range beside it is exact)."""
    text = format_size(size)
    text = text if text[-1].isalpha() else f"{text}B"
    if len(text) <= 5 or size < KiB:
        return text
    name, unit = next((n, u) for n, u in _UNITS if size >= u)
    if unit >= 1 << 50:
        return f"~{round(size / unit)}{name}"
    above = next(((n, u) for n, u in reversed(_UNITS) if u > size), None)
    if above and (above[1] - size) * 64 < size:
        return f"1{above[0]}-{human_size(above[1] - size)}"
    count, rest = divmod(size, unit)
    short = f"{count}{name}+{human_size(rest)}"
    if unit > 1 and (count + 1) * unit - size < rest:
        short = f"{count + 1}{name}-{human_size((count + 1) * unit - size)}"
    return short


def align_up(value: int, alignment: int) -> int:
    return -(-value // alignment) * alignment


def align_down(value: int, alignment: int) -> int:
    return value // alignment * alignment
