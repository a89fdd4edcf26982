"""The flat-view parser on output recorded from the real QEMU 7.2 (virt) and 10.0 (q35)."""

from pathlib import Path

import pytest

from layoutd.errors import ParseError
from layoutd.qemu.mtree import flat_view, ram_entries

DATA = Path(__file__).parent / "data"


def test_q35_ram_entries() -> None:
    entries = ram_entries((DATA / "mtree-q35-10.0.txt").read_text())
    assert [(e.start, e.end, e.name, e.offset) for e in entries] == [
        (0, 0xBFFFF, "pc.ram", 0),
        (0x100000, 0x7FFFFFFF, "pc.ram", 0x100000),
        (0x100000000, 0x1FFFFFFFF, "pc.ram", 0x80000000),
        (0x240000000, 0x27FFFFFFF, "m1", 0),
    ]


def test_q35_other_entries_keep_their_kind() -> None:
    entries = flat_view((DATA / "mtree-q35-10.0.txt").read_text())
    kinds = {e.name: e.kind for e in entries}
    assert kinds["pc.rom"] == "rom"
    assert kinds["apic-msi"] == "i/o"


def test_virt_ram_entries() -> None:
    entries = ram_entries((DATA / "mtree-virt-7.2.txt").read_text())
    assert [(e.start, e.end, e.name) for e in entries] == [
        (0x40000000, 0x13FFFFFFF, "mach-virt.ram"),
        (0x140000000, 0x17FFFFFFF, "m1"),
    ]


def test_missing_address_space() -> None:
    with pytest.raises(ParseError, match="memory"):
        flat_view("FlatView #0\n AS \"I/O\", root: io\n")
