"""Run several layoutd commands in one Python process (the arm64 guest runs under TCG, where
importing layoutd and pydantic costs ~10 s; this pays it once). Each job goes through
layoutd.cli.main(argv), the console script's own entry point, with stdout, stderr and the exit
status captured into DIR/NAME.out, .err, .rc, like lib.sh's `step`.

    python -m ... multi.py DIR JOBS.json      (JOBS.json: [[NAME, [ARG, ...]], ...])
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
import time
import traceback
from pathlib import Path


def main() -> int:
    outdir = Path(sys.argv[1])
    jobs = json.loads(Path(sys.argv[2]).read_text())
    t0 = time.monotonic()
    from layoutd.cli import main as layoutd_main

    (outdir / "import.seconds").write_text(f"{time.monotonic() - t0:.2f}\n")
    for name, argv in jobs:
        out, err = io.StringIO(), io.StringIO()
        start = time.monotonic()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = layoutd_main(argv)
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
            except BaseException:
                traceback.print_exc()
                code = 99
        (outdir / f"{name}.out").write_text(out.getvalue())
        (outdir / f"{name}.err").write_text(err.getvalue())
        (outdir / f"{name}.rc").write_text(f"{code}\n")
        (outdir / f"{name}.seconds").write_text(f"{time.monotonic() - start:.2f}\n")
        print(f"LAYOUTD-STEP {name} rc={code}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
