"""Whole-process `layoutd plan` on a realistic host (4 GPUs, AMD, 1100G) next to `python3 -c pass`.

Target: within 16x of the bare interpreter. Run: .venv/bin/python benchmarks/plan_startup.py [RUNS]
Exit status 1 when slower than the target.
"""

from __future__ import annotations

import sys

from timing import median_ms

LIMIT = 16.0


def main() -> int:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    plan = [
        sys.executable,
        "-m",
        "layoutd.cli",
        "plan",
        "examples/specs/amd-gpu-1100g.yaml",
        "--host",
        "examples/hosts/amd-4gpu-1100g",
        "--format",
        "json",
    ]
    bare = median_ms([sys.executable, "-c", "pass"], runs)
    whole = median_ms(plan, runs)
    print(f"python -c pass                                  {bare:7.1f} ms")
    print(f"layoutd plan amd-gpu-1100g (4 GPUs, AMD, json)  {whole:7.1f} ms  {whole / bare:4.1f}x")
    print(f"median of {runs} runs each; limit {LIMIT:.0f}x")
    return 0 if whole / bare <= LIMIT else 1


if __name__ == "__main__":
    sys.exit(main())
