"""Whole-process time of `layoutd check --qmp` and of a planned (not executed) `layoutd hotplug`
against a live, paused QEMU (q35), next to `python -c pass` in the same run.

Target: within 20x of the bare interpreter. Run: .venv/bin/python benchmarks/live_startup.py [RUNS]
[VERSION]. Exit status 1 when a command is slower than 20x the bare start.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from timing import ROOT, median_ms

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
        layoutd = [sys.executable, "-m", "layoutd.cli"]
        cases = {
            "python -c pass": [sys.executable, "-c", "pass"],
            "layoutd check --qmp": [*layoutd, "check", "--qmp", sock, "--host", host],
            "layoutd hotplug --size 1G (planned)":
                [*layoutd, "hotplug", "--qmp", sock, "--size", "1G", "--host", host],
        }
        results = {name: median_ms(argv, runs, ok=(0, 1)) for name, argv in cases.items()}
    bare = results["python -c pass"]
    worst = 0.0
    for name, ms in results.items():
        worst = max(worst, ms / bare)
        print(f"{name:<40} {ms:7.1f} ms  {ms / bare:5.1f}x")
    print(f"QEMU {version} q35, paused; median of {runs} runs each; limit {LIMIT:.0f}x")
    return 0 if worst <= LIMIT else 1


if __name__ == "__main__":
    sys.exit(main())
