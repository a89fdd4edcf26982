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
    """The shortest exact K/M/G/T form: 1100G, 512M, 4096 (bytes)."""
    for suffix, unit in (("T", TiB), ("G", GiB), ("M", MiB), ("K", KiB)):
        if size >= unit and size % unit == 0:
            return f"{size // unit}{suffix}"
    return str(size)


def human_size(size: int) -> str:
    """Approximate, for tables: 1.5G, 12G, 64K."""
    for suffix, unit in (("T", TiB), ("G", GiB), ("M", MiB), ("K", KiB)):
        if size >= unit:
            amount = size / unit
            text = f"{amount:.2f}".rstrip("0").rstrip(".")
            return f"{text}{suffix}"
    return f"{size}B"


def align_up(value: int, alignment: int) -> int:
    return -(-value // alignment) * alignment


def align_down(value: int, alignment: int) -> int:
    return value // alignment * alignment
