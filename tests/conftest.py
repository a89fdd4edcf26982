"""Shared test helpers. A test that needs a missing component skips locally and FAILS in CI."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
EXAMPLES = ROOT / "examples"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def need(condition: bool, what: str) -> None:
    """Stop the test when a component is missing: skip on a developer machine, fail in CI."""
    if condition:
        return
    message = f"missing: {what} (run scripts/install-test-deps.sh)"
    if IN_CI:
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def need_kvm() -> None:
    need(os.access("/dev/kvm", os.R_OK | os.W_OK), "/dev/kvm (read-write), for QEMU under KVM")


def need_binary(name: str) -> str:
    path = shutil.which(name)
    need(path is not None, f"the program {name}")
    assert path is not None
    return path


def run_layoutd(*args: str, stdin: str | None = None, env: dict[str, str] | None = None,
                timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run the real CLI as a separate process, as a user would."""
    full_env = dict(os.environ)
    full_env.pop("LAYOUTD_HOST", None)
    if env:
        full_env.update(env)
    return subprocess.run(
        [sys.executable, "-m", "layoutd.cli", *args],
        input=stdin, capture_output=True, text=True, env=full_env, timeout=timeout, cwd=ROOT,
    )


def assert_clean_failure(result: subprocess.CompletedProcess[str], code: int, *needles: str) -> None:
    """A failure with the contract's exit code, a message, and never a traceback."""
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout, result.stderr
    for needle in needles:
        assert needle in result.stderr, (needle, result.stderr)
