"""What a host publishes for schedulers (`layoutd fleet publish`): its facts and its layout pools'
memberships, the records layoutd.fleet fills and emit/fleet.py writes. Pure."""

from __future__ import annotations

import re

from layoutd.models.common import Range
from layoutd.record import Record

IOMMU_CLASSES = (39, 46, 48, 52, 57)
"""Coarse IOMMU width classes published as traits/labels: the host maps at least 2^N."""


class Membership(Record):
    pool: str
    member: bool
    reasons: tuple[str, ...]  # why not (each collision, or why it could not be judged); empty for members
    warnings: tuple[str, ...] = ()  # what the check said about a member (e.g. an unknown IOMMU width)


class HoleFact(Record):
    start: int
    end: int
    type: str  # the kernel's reserved_regions type
    kind: str  # amd-ht | rmrr | rmr | msi-window | msi-doorbell | reserved
    groups: tuple[int, ...]


class Published(Record):
    """One host's facts for schedulers."""

    source: str
    arch: str | None
    cpu_vendor: str
    cpu_phys_bits: int | None
    iommu_bits: int | None  # None: no source said the IOMMU's width
    aperture_end: int | None
    usable: tuple[Range, ...]
    holes: tuple[HoleFact, ...]
    pools: tuple[Membership, ...]
    warnings: tuple[str, ...]

    def kinds(self) -> set[str]:
        return {hole.kind for hole in self.holes}

    def members(self) -> list[str]:
        return [m.pool for m in self.pools if m.member]


def trait_name(pool: str) -> str:
    """The contract's Nova trait for a pool: CUSTOM_LAYOUTD_POOL_<NAME>."""
    return "CUSTOM_LAYOUTD_POOL_" + re.sub(r"[^A-Z0-9]", "_", pool.upper())


def label_name(pool: str) -> str:
    """The contract's NFD label for a pool (value `true`, on members only)."""
    return f"layoutd.io/pool-{pool}"
