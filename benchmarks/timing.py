"""Whole-process timing shared by the start-up benchmarks (run them as scripts from anywhere)."""

from __future__ import annotations

import statistics
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_ms(argv: Sequence[str], ok: Sequence[int] = (0,)) -> float:
    """Wall time of one run, from the repository root; an unexpected exit status stops the benchmark."""
    start = time.perf_counter()
    result = subprocess.run(list(argv), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, cwd=ROOT)
    if result.returncode not in ok:
        raise SystemExit(f"{' '.join(argv[:6])}... exited {result.returncode}")
    return (time.perf_counter() - start) * 1000


def median_ms(argv: Sequence[str], runs: int, ok: Sequence[int] = (0,)) -> float:
    return statistics.median(run_ms(argv, ok) for _ in range(runs))
