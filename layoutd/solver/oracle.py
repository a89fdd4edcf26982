"""The QEMU model as oracle: the emitted argv must build exactly the planned map."""

from collections.abc import Sequence

from layoutd.collisions import find_collisions
from layoutd.models.common import GuestRegion, Hole
from layoutd.models.guest import GuestMap
from layoutd.qemu import predict
from layoutd.qemu.cpus import HostCpu
from layoutd.qemu.memdev import HostMemory


def model_map(argv: Sequence[str], version: str, host_cpu: HostCpu | None = None,
              arch: str = "x86_64", host: HostMemory | None = None) -> GuestMap:
    """predict(argv): what QEMU `version` builds for the plan's arguments on `host`."""
    return predict(list(argv), version=version, host_cpu=host_cpu, arch=arch, host=host)


PCI_WINDOWS = ("pci-hole64", "high-pcie-mmio")


def windows_above(guest: GuestMap, top: int) -> list[str]:
    """64-bit PCI windows (not RAM) reaching past what every host's IOMMU maps."""
    return [
        f"the {region.name} window {region.start:#x}-{region.end:#x} reaches above {top:#x}, what "
        "every host's IOMMU maps: device BARs placed there cannot take peer-to-peer DMA (QEMU "
        "warns and goes on; guest RAM is not affected)"
        for region in guest.regions if region.name in PCI_WINDOWS and region.end > top
    ]


def compare(
    planned: Sequence[GuestRegion], predicted: Sequence[GuestRegion], holes: Sequence[Hole]
) -> list[str]:
    """What differs between the plan and the model's map (empty: they agree), and any collision."""
    problems: list[str] = []
    blocks = {(r.id, r.start): r for r in planned}
    for region in predicted:
        home = [b for b in planned if b.id == region.id and b.start <= region.start and region.end <= b.end]
        if not home:
            problems.append(
                f"the model maps {region.kind} {region.id!r} at {region.label()}, not in the plan"
            )
        elif home[0].kind != region.kind or home[0].node != region.node:
            problems.append(
                f"{region.id!r} at {region.label()} is {region.kind} node {region.node} in the model"
            )
    for block in blocks.values():
        covered = sum(
            min(r.end, block.end) - max(r.start, block.start) + 1
            for r in predicted
            if r.id == block.id and r.overlaps(block)
        )
        missing = block.size - covered
        if missing:
            problems.append(f"the model leaves {missing:#x} bytes of {block.id!r} {block.label()} unmapped")
    for collision in find_collisions(predicted, holes):
        problems.append(collision.describe())
    return problems
