"""Addresses and ranges shared by every model. Ranges have inclusive ends, as the kernel's."""

from __future__ import annotations

from typing import Annotated, Any

from layoutd.models.fields import Before, Dump, Schema
from layoutd.record import Record
from layoutd.units import hex_addr

U64_MAX = (1 << 64) - 1


def _to_int(value: Any) -> Any:
    if isinstance(value, str):
        text = value.strip().lower()
        try:
            return int(text, 16) if text.startswith("0x") else int(text)
        except ValueError:
            raise ValueError(f"{value!r} is not a hex address such as 0xfee00000") from None
    return value


Address = Annotated[
    int, Before(_to_int), Dump(hex_addr), Schema({"type": "string", "pattern": "^0x[0-9a-f]+$"})
]
"""An unsigned 64-bit number; JSON carries it as a lowercase hex string."""

class Range(Record):
    """A byte range [start, end], end inclusive."""

    start: Address
    end: Address

    def verify(self) -> None:
        if not 0 <= self.start <= self.end <= U64_MAX:
            raise ValueError(f"range {hex_addr(self.start)}-{hex_addr(self.end)} is not ordered")

    @property
    def size(self) -> int:
        return self.end - self.start + 1

    def overlaps(self, other: Range) -> bool:
        return self.start <= other.end and other.start <= self.end

    def contains(self, other: Range) -> bool:
        return self.start <= other.start and other.end <= self.end

    def label(self) -> str:
        return f"{hex_addr(self.start)}-{hex_addr(self.end)}"


class Hole(Range):
    """A host reserved region: RAM must not be mapped here for DMA."""

    type: str
    group: int | None = None
    devices: tuple[str, ...] = ()

    def describe(self) -> str:
        where = f" of IOMMU group {self.group}" if self.group is not None else ""
        who = f" ({', '.join(self.devices)})" if self.devices else ""
        top = self.start - 1
        bits = f"{self.start.bit_length() - 1} bits" if self.start & top == 0 and top > 0 else ""
        if self.type == "aperture":  # everything above the IOMMU's top
            maps = f"maps {bits}, up to {hex_addr(top)}" if bits else f"maps up to {hex_addr(top)}"
            return f"space above the IOMMU's top {self.label()}{where}{who} (the IOMMU {maps})"
        if self.type == "guest-phys-bits" and bits:
            return f"space beyond the guest's {bits} of phys-bits {self.label()} (up to {hex_addr(top)})"
        return f"{self.type} hole {self.label()}{where}{who}"


class GuestRegion(Range):
    """A guest-physical RAM range that QEMU maps for DMA."""

    kind: str  # ram | dimm | nvdimm | virtio-mem | virtio-pmem | ivshmem | virtio-gpu-hostmem
    id: str
    node: int | None = None
