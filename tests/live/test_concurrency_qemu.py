"""Two hotplugs at once on one VM, and a QEMU that dies mid-way."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from layoutd.live.lock import lock_path, vm_lock
from layoutd.live.session import process_key
from tests.conftest import ROOT, assert_clean_failure
from tests.live.conftest import guest, overlaps, span

pytestmark = pytest.mark.qemu


def spawn(*args: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if k != "LAYOUTD_HOST"}
    return subprocess.Popen([sys.executable, "-m", "layoutd.cli", *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_two_hotplugs_through_two_sockets_take_different_ranges(tmp_path: Path) -> None:
    third = str(tmp_path / "qmp3.sock")
    with guest("10.0", "x86_64", tmp_path, extra=("-qmp", f"unix:{third},server=on,wait=off")) as g:
        runs = [spawn("hotplug", "--qmp", sock, "--size", "1G", "--execute", "--host", g.host,
                      "--format", "json") for sock in (g.socket, third)]
        outputs = [run.communicate(timeout=120) for run in runs]
        for run, (_, err) in zip(runs, outputs, strict=True):
            assert run.returncode == 0, err
        placed = [span(json.loads(out)["placement"]) for out, _ in outputs]
        assert not overlaps(placed[0], placed[1])
        assert not any(overlaps(p, g.hole) for p in placed)
        real = sorted((d["data"]["addr"], d["data"]["addr"] + d["data"]["size"] - 1)
                      for d in g.devices())
        assert real == sorted(placed)


def test_qemu_gone_mid_way_gives_exit_3(tmp_path: Path) -> None:
    with guest("7.2", "x86_64", tmp_path) as g:
        key = process_key(g.qemu.process.pid)
        assert key is not None
        with vm_lock(key):
            run = spawn("hotplug", "--qmp", g.socket, "--size", "1G", "--execute", "--host", g.host)
            wait_until_waiting_for(run, str(lock_path(key)))
            g.qemu.process.kill()
            g.qemu.process.wait()
        out, err = run.communicate(timeout=60)
    result = subprocess.CompletedProcess(run.args, run.returncode, out, err)
    assert_clean_failure(result, 3, "QEMU went away")


def test_check_on_a_missing_socket_gives_exit_3(tmp_path: Path) -> None:
    run = spawn("check", "--qmp", str(tmp_path / "none.sock"))
    out, err = run.communicate(timeout=60)
    assert_clean_failure(subprocess.CompletedProcess(run.args, run.returncode, out, err), 3,
                         "cannot connect to the QMP socket")


def wait_until_waiting_for(run: subprocess.Popen[str], lock_file: str) -> None:
    """Until the layoutd process, already connected to QEMU, has the VM's lock file open."""
    deadline = time.monotonic() + 60
    fds = f"/proc/{run.pid}/fd"
    while time.monotonic() < deadline:
        assert run.poll() is None, run.communicate()
        try:
            if any(os.readlink(os.path.join(fds, fd)) == lock_file for fd in os.listdir(fds)):
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise AssertionError("layoutd never reached the lock")
