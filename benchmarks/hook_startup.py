"""How long the libvirt hook takes for an operation it does not check, against a bare start.

libvirt runs the hook five times per VM lifecycle; for everything but `prepare begin` it must stay
within 1.5x of the bare start of the same regular install (timing.regular_python). The hook is
installed with `layoutd install-hook` (its script runs `python -I`, so `python -I -c pass` is
shown too). Run: .venv/bin/python benchmarks/hook_startup.py [RUNS]
Exit status 1 when a hook form is slower than 1.5x the bare start.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

from timing import compare, layoutd, regular_python, report

LIMIT = 1.5


def main() -> int:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 30
    python = regular_python()
    with tempfile.TemporaryDirectory() as root:
        subprocess.run(layoutd(python, "install-hook", "--root", root), check=True,
                       stdout=subprocess.DEVNULL)
        hook = str(Path(root) / "etc/libvirt/hooks/qemu.d/50-layoutd")
        commands = {
            "python -c pass": [python, "-c", "pass"],
            "python -I -c pass": [python, "-I", "-c", "pass"],
            "installed hook, release end": [hook, "vm", "release", "end", "-"],
            "layoutd hook, stopped end": layoutd(python, "hook", "vm", "stopped", "end", "-"),
        }
        results = compare(commands, runs)
    limits = {name: LIMIT for name in commands if "hook" in name}
    return report(results, "python -c pass", limits, runs)


if __name__ == "__main__":
    sys.exit(main())
