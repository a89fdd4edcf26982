"""Whole-process timing shared by the start-up benchmarks (run them as scripts from anywhere).

Start-up is measured as users get it: in a REGULAR (non-editable) install, against the bare start
of that same interpreter. An editable install's .pth files (the editable finder, setuptools'
distutils-precedence) double a bare start and would flatter every ratio. `regular_python()` makes
such an install once per source state, in $LAYOUTD_CACHE/bench/ (pip, like a user; no setuptools
left in it), and the commands run outside the checkout so nothing imports the source tree.
"""

from __future__ import annotations

import hashlib
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
CACHE = Path(os.environ.get("LAYOUTD_CACHE", Path.home() / ".cache" / "layoutd")) / "bench"
ELSEWHERE = Path("/")  # where commands run: not the checkout


def _source_digest() -> str:
    digest = hashlib.sha256()
    for path in sorted([*ROOT.glob("layoutd/**/*.py"), ROOT / "pyproject.toml"]):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def regular_python() -> str:
    """The interpreter of a regular install of this checkout (made once per source state)."""
    venv = CACHE / f"venv-{_source_digest()}"
    python = venv / "bin" / "python"
    if not (venv / "ok").exists():
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", str(ROOT)], check=True)
        subprocess.run([str(python), "-m", "pip", "uninstall", "-q", "-y", "setuptools"],
                       check=False)
        (venv / "ok").write_text("")
    return str(python)


def layoutd(python: str, *args: str) -> list[str]:
    """`layoutd ARGS` as the installed console script runs it (without its wrapper's `re`)."""
    return [python, "-c", "import sys; from layoutd.cli import main; sys.exit(main())", *args]


def run_ms(argv: Sequence[str], ok: Sequence[int] = (0,)) -> float:
    """Wall time of one run, from outside the checkout; an unexpected exit status stops it."""
    start = time.perf_counter()
    result = subprocess.run(list(argv), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            cwd=ELSEWHERE)
    if result.returncode not in ok:
        raise SystemExit(f"{' '.join(argv[:6])}... exited {result.returncode}")
    return (time.perf_counter() - start) * 1000


def compare(commands: dict[str, list[str]], runs: int, ok: Sequence[int] = (0,)) -> dict[str, float]:
    """Interleaved runs (load hits every command alike); the median of each, in ms."""
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(runs):
        for name, argv in commands.items():
            times[name].append(run_ms(argv, ok))
    return {name: statistics.median(values) for name, values in times.items()}


def median_ms(argv: Sequence[str], runs: int, ok: Sequence[int] = (0,)) -> float:
    return statistics.median(run_ms(argv, ok) for _ in range(runs))


def report(results: dict[str, float], bare: str, limits: dict[str, float], runs: int) -> int:
    """Print every figure against the bare start; exit status 1 when one passes its limit."""
    worst = 0
    for name, ms in results.items():
        ratio = ms / results[bare]
        limit = limits.get(name)
        over = limit is not None and ratio > limit
        worst |= over
        said = f"  (limit {limit:g}x{', OVER' if over else ''})" if limit else ""
        print(f"{name:<52} {ms:7.1f} ms  {ratio:5.2f}x{said}")
    print(f"median of {runs} interleaved runs each, regular install, against `python -c pass`")
    return 1 if worst else 0
