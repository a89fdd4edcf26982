"""Whole-process `layoutd check` on a realistic command line next to `python3 -c pass`.

The VM: q35, EPYC with phys-bits=48, 1100G in two NUMA nodes, a 4-slot hotplug area with a DIMM
and two GPUs, checked against the synthetic 4-GPU AMD host tree. Runs are interleaved (bare,
check, check --qemu-version) so machine load hits all alike. Target: within 16x of the bare
interpreter. Run: .venv/bin/python benchmarks/check_startup.py [RUNS]; exit 1 when slower.
"""

from __future__ import annotations

import shutil
import statistics
import sys

from timing import run_ms

LIMIT = 16.0
VM = [
    "-name", "db01", "-machine", "q35,accel=tcg", "-cpu", "EPYC,phys-bits=48", "-smp", "16",
    "-m", "1100G,slots=4,maxmem=1200G",
    "-object", "memory-backend-ram,id=n0,size=550G,reserve=off",
    "-object", "memory-backend-ram,id=n1,size=550G,reserve=off",
    "-numa", "node,nodeid=0,cpus=0-7,memdev=n0", "-numa", "node,nodeid=1,cpus=8-15,memdev=n1",
    "-object", "memory-backend-ram,id=hp0,size=16G",
    "-device", "pc-dimm,id=dimm0,memdev=hp0,node=1",
    "-device", "vfio-pci,host=0000:41:00.0", "-device", "vfio-pci,host=0000:81:00.0",
    "-nodefaults", "-display", "none", "-serial", "mon:stdio",
]


def main() -> int:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    qemu = shutil.which("qemu-system-x86_64") or "/usr/bin/qemu-system-x86_64"
    check = [sys.executable, "-m", "layoutd.cli", "check", "--host", "examples/hosts/amd-4gpu-1100g",
             "--format", "json"]
    commands = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "layoutd check (asks QEMU --version)": [*check, "--", qemu, *VM],
        "layoutd check --qemu-version 7.2": [*check, "--qemu-version", "7.2", "--", qemu, *VM],
    }
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(runs):
        for name, argv in commands.items():
            times[name].append(run_ms(argv, ok=(0, 1)))
    medians = {name: statistics.median(values) for name, values in times.items()}
    bare = medians["python -c pass"]
    for name, value in medians.items():
        print(f"{name:<40} {value:7.1f} ms  {value / bare:5.1f}x")
    print(f"median of {runs} interleaved runs each; limit {LIMIT:.0f}x")
    return 0 if medians["layoutd check (asks QEMU --version)"] / bare <= LIMIT else 1


if __name__ == "__main__":
    sys.exit(main())
