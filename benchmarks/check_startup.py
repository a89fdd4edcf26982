"""Whole-process `layoutd check` on a realistic command line next to `python3 -c pass`.

The VM: q35, EPYC with phys-bits=48, 1100G in two NUMA nodes, a 4-slot hotplug area with a DIMM
and two GPUs, checked against the synthetic 4-GPU AMD host tree. Runs are interleaved (bare,
check, check --qemu-version) so machine load hits all alike. Limit: 8x the bare start of the
interpreter of a regular install (timing.regular_python). Run:
.venv/bin/python benchmarks/check_startup.py [RUNS]; exit 1 when slower.
"""

from __future__ import annotations

import shutil
import sys

from timing import EXAMPLES, compare, layoutd, regular_python, report

LIMIT = 8.0
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
    python = regular_python()
    qemu = shutil.which("qemu-system-x86_64") or "/usr/bin/qemu-system-x86_64"
    check = ["check", "--host", str(EXAMPLES / "hosts" / "amd-4gpu-1100g"), "--format", "json"]
    commands = {
        "python -c pass": [python, "-c", "pass"],
        "layoutd check (asks QEMU --version, cached)": layoutd(python, *check, "--", qemu, *VM),
        "layoutd check --qemu-version 7.2": layoutd(python, *check, "--qemu-version", "7.2", "--",
                                                   qemu, *VM),
    }
    limits = {name: LIMIT for name in commands if name.startswith("layoutd")}
    return report(compare(commands, runs, ok=(0, 1)), "python -c pass", limits, runs)


if __name__ == "__main__":
    sys.exit(main())
