"""Whole-process time of `layoutd check --qmp` and of a planned (not executed) `layoutd hotplug`
against a live, paused QEMU (q35), next to the bare start of the same regular install
(timing.regular_python). Target: within 20x of that bare start.
Run: .venv/bin/python benchmarks/live_startup.py [RUNS]
[VERSION]. Exit status 1 when a command is slower than 20x the bare start.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from timing import ROOT, compare, layoutd, regular_python, report

sys.path.insert(0, str(ROOT))
LIMIT = 20.0


def main() -> int:
    from tests.live.conftest import guest_args, write_host
    from tests.support.qemu_runner import Refused, qemu_binary, started

    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    version = sys.argv[2] if len(sys.argv) > 2 else "7.2"
    with tempfile.TemporaryDirectory() as folder, \
            started(qemu_binary(version), guest_args("x86_64"), extra_qmp=True) as qemu:
        if isinstance(qemu, Refused):
            print(qemu.stderr)
            return 2
        host = write_host(Path(folder), [(0x140000000, 0x17FFFFFFF, "reserved")])
        sock = os.path.join(qemu.folder, "qmp2.sock")
        python = regular_python()
        cases = {
            "python -c pass": [python, "-c", "pass"],
            "layoutd check --qmp": layoutd(python, "check", "--qmp", sock, "--host", host),
            "layoutd hotplug --size 1G (planned)":
                layoutd(python, "hotplug", "--qmp", sock, "--size", "1G", "--host", host),
        }
        results = compare(cases, runs, ok=(0, 1))
    print(f"QEMU {version} q35, paused")
    return report(results, "python -c pass", {n: LIMIT for n in cases if "layoutd" in n}, runs)


if __name__ == "__main__":
    sys.exit(main())
