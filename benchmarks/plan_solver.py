"""The solver alone on synthetic hosts: 10k reserved regions over 1k groups, 64 NUMA nodes,
256 slots; then the same with the input doubled, to show the growth (target: under 0.5 s,
no worse than n log n). Run: .venv/bin/python benchmarks/plan_solver.py
"""

from __future__ import annotations

import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from layoutd.models.common import Hole, Range
from layoutd.models.host import Cpu, HostView
from layoutd.models.ranges import subtract
from layoutd.solver import combine, solve_spec
from layoutd.specfile import parse_spec
from layoutd.units import GiB, MiB

LIMIT = 0.5


def host(regions: int, groups: int) -> HostView:
    """2 MiB holes over `groups` IOMMU groups: one every 20 GiB through the RAM, the rest above 2 TiB."""
    rng = random.Random(regions)
    holes = [Hole(start=0xFEE00000, end=0xFEEFFFFF, type="msi", group=g) for g in range(groups)]
    for index in range(regions - groups):
        if index < 60:
            start = (8 + 20 * index) * GiB + rng.randrange(0, 64) * MiB
        else:
            start = 2048 * GiB + rng.randrange(0, regions * 4) * 64 * MiB
        holes.append(Hole(start=start, end=start + 2 * MiB - 1, type="reserved", group=index % groups))
    top = (1 << 50) - 1
    return HostView(source="synthetic", cpu=Cpu(vendor="intel", phys_bits=52), devices=(),
                    groups=(), usable=tuple(subtract([Range(start=0, end=top)], holes)),
                    reserved=tuple(holes), aperture_end=top, warnings=())


def spec(nodes: int, slots: int) -> str:
    cells = "".join(f"  - {{size: 16G, cpus: {n}}}\n" for n in range(nodes))
    return (
        f"name: bench\ncpu: {{model: Skylake-Server, count: {nodes}, phys_bits: 50}}\n"
        f"memory: {{size: {16 * nodes}G, hotplug: {{slots: {slots}, max: {16 * nodes + 64}G}}}}\n"
        f"numa:\n{cells}"
    )


def timed(regions: int, groups: int, nodes: int, slots: int) -> tuple[float, int]:
    view = host(regions, groups)
    vm = parse_spec(spec(nodes, slots))
    best = float("inf")
    devices = 0
    for _ in range(3):
        start = time.perf_counter()
        target = combine([view], ["synthetic"])
        solved = solve_spec(vm, target, "10.0")
        best = min(best, time.perf_counter() - start)
        devices = len(solved.config.devices)
    return best, devices


def main() -> int:
    base, devices = timed(10_000, 1_000, 64, 256)
    double, _ = timed(20_000, 2_000, 64, 256)
    print(f"10k regions / 1k groups / 64 nodes / 256 slots: {base * 1000:7.1f} ms ({devices} memory devices)")
    print(
        f"20k regions / 2k groups / 64 nodes / 256 slots: {double * 1000:7.1f} ms "
        f"({double / base:.2f}x for 2x input)"
    )
    print(f"best of 3 runs, combining hosts included; limit {LIMIT * 1000:.0f} ms")
    return 0 if base <= LIMIT and double / base < 2.6 else 1


if __name__ == "__main__":
    sys.exit(main())
