"""Shared test helpers. A test that needs a missing component skips locally and FAILS in CI."""

import contextlib
import functools
import os
import shutil
import stat
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
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


def need_kvm(qemu: Sequence[str] = ("qemu-system-x86_64",)) -> None:
    """Skip (in CI too: no script can install a working KVM) where KVM cannot run these cases.

    The QEMU binary itself is installable, so its absence fails in CI like any other component."""
    need_binary(qemu[0])
    reason = kvm_refusal(tuple(qemu))
    if reason is not None:
        pytest.skip(f"KVM here cannot run -cpu host: {reason}")


@functools.cache
def kvm_refusal(qemu: tuple[str, ...]) -> str | None:
    """Why a tiny real `-accel kvm -cpu host` guest cannot run here (QEMU's words), or None.

    Asked once per binary: some nested or cloud KVMs open /dev/kvm and then refuse the host CPU
    (`failed to set MSR 0x10a`). The guest runs unpaused for a moment so its vCPU really enters
    KVM, then quits over QMP."""
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return "no read-write /dev/kvm"
    argv = [*qemu, "-accel", "kvm", "-cpu", "host", "-machine", "q35", "-m", "64", "-nodefaults",
            "-display", "none", "-qmp", "stdio"]
    process = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    assert process.stdin is not None
    try:
        process.stdin.write('{"execute": "qmp_capabilities"}\n')
        process.stdin.flush()
        time.sleep(0.5)
        process.stdin.write('{"execute": "query-status"}\n{"execute": "quit"}\n')
        process.stdin.flush()
        out, err = process.communicate(timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        process.kill()
        out, err = process.communicate()
    if process.returncode == 0 and '"running": true' in out:
        return None
    words = [line.strip() for line in err.splitlines() if line.strip()]
    return " / ".join(words[:2]) or f"QEMU exited with status {process.returncode}"


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


def _null_device_ok() -> bool:
    try:
        info = os.stat("/dev/null")
    except OSError:
        return False
    return stat.S_ISCHR(info.st_mode) and info.st_rdev == os.makedev(1, 3)


@pytest.fixture(autouse=True)
def _keeps_dev_null() -> Iterator[None]:
    """Fail the test after which /dev/null is no longer the null device, and put it back: once
    it is a plain file every later libvirt domain start fails ("Unable to move ... mount to
    /dev/null") and output meant for it lands on disk (seen once on the build machine)."""
    yield
    if _null_device_ok():
        return
    if os.geteuid() == 0:
        with contextlib.suppress(OSError):
            os.remove("/dev/null")
        os.mknod("/dev/null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
        os.chmod("/dev/null", 0o666)
    pytest.fail("/dev/null is no longer the null device after this test (restored)")
