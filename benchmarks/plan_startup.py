"""Whole-process `layoutd plan` and `layoutd probe` on a realistic host (4 GPUs, AMD, 1100G)
next to a bare start of the same regular install (timing.regular_python).

Limits: plan 8x, probe 6x. Run: .venv/bin/python benchmarks/plan_startup.py [RUNS]
Exit status 1 when slower than a limit.
"""

from __future__ import annotations

import sys

from timing import EXAMPLES, compare, layoutd, regular_python, report

LIMITS = {"layoutd plan amd-gpu-1100g (json)": 8.0, "layoutd probe (json)": 6.0}


def main() -> int:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    python = regular_python()
    host = str(EXAMPLES / "hosts" / "amd-4gpu-1100g")
    commands = {
        "python -c pass": [python, "-c", "pass"],
        "layoutd plan amd-gpu-1100g (json)": layoutd(
            python, "plan", str(EXAMPLES / "specs" / "amd-gpu-1100g.yaml"), "--host", host,
            "--format", "json"),
        "layoutd probe (json)": layoutd(python, "probe", "--host", host, "--format", "json"),
    }
    return report(compare(commands, runs), "python -c pass", LIMITS, runs)


if __name__ == "__main__":
    sys.exit(main())
