"""How long the libvirt hook takes for an operation it does not check, against a bare interpreter.

libvirt runs the hook five times per VM lifecycle; for everything but `prepare begin` it must stay
within 3x of a bare interpreter start. Run: .venv/bin/python benchmarks/hook_startup.py [RUNS]
Exit status 1 when a hook form is slower than 3x the bare start.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

from timing import ROOT, median_ms

LIMIT = 3.0


def main() -> int:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 30
    with tempfile.TemporaryDirectory() as root:
        subprocess.run([sys.executable, "-m", "layoutd.cli", "install-hook", "--root", root],
                       check=True, stdout=subprocess.DEVNULL, cwd=ROOT)
        hook = str(Path(root) / "etc/libvirt/hooks/qemu.d/50-layoutd")
        cases = {
            "bare interpreter (python -c pass)": [sys.executable, "-c", "pass"],
            "installed hook, release end": [hook, "vm", "release", "end", "-"],
            "layoutd hook (python -m layoutd.cli), stopped end":
                [sys.executable, "-m", "layoutd.cli", "hook", "vm", "stopped", "end", "-"],
        }
        results = {name: median_ms(argv, runs) for name, argv in cases.items()}
    bare = results["bare interpreter (python -c pass)"]
    worst = 0.0
    for name, ms in results.items():
        ratio = ms / bare
        worst = max(worst, ratio)
        print(f"{name:<55} {ms:7.1f} ms  {ratio:4.2f}x")
    print(f"median of {runs} runs each; limit {LIMIT:.0f}x the bare start")
    return 0 if worst <= LIMIT else 1


if __name__ == "__main__":
    sys.exit(main())
