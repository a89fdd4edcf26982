"""One lock per VM, so two hotplugs cannot plan the same free range.

The key comes from the monitor: the QEMU process (pid and start time, so every -qmp socket of one
VM shares it), else the socket's real path; for a libvirt domain, its UUID. The lock file lives in
$XDG_RUNTIME_DIR/layoutd, else /run/layoutd, else /tmp/layoutd-UID; fcntl locks vanish with
the process that held them, so a killed layoutd never leaves a stale lock.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from layoutd.errors import HostUnavailable

WAIT = float(os.environ.get("LAYOUTD_LOCK_WAIT", "120"))


def lock_folder() -> Path:
    candidates = []
    if os.environ.get("XDG_RUNTIME_DIR"):
        candidates.append(Path(os.environ["XDG_RUNTIME_DIR"]) / "layoutd")
    candidates += [Path("/run/layoutd"), Path(f"/tmp/layoutd-{os.getuid()}")]
    for folder in candidates:
        try:
            folder.mkdir(mode=0o700, parents=False, exist_ok=True)
        except OSError:
            continue
        if os.access(folder, os.W_OK):
            return folder
    raise HostUnavailable("no writable folder for the hotplug lock (tried "
                          + ", ".join(str(c) for c in candidates) + ")")


def lock_path(key: str) -> Path:
    digest = hashlib.sha256(key.encode()).hexdigest()[:24]
    return lock_folder() / f"vm-{digest}.lock"


@contextmanager
def vm_lock(key: str, wait: float = WAIT) -> Iterator[Path]:
    """Hold the VM's lock; wait up to `wait` seconds for another holder."""
    path = lock_path(key)
    handle = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        _acquire(handle, path, wait)
        yield path
    finally:
        os.close(handle)  # closing releases the lock


def _acquire(handle: int, path: Path, wait: float) -> None:
    deadline = time.monotonic() + wait
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() > deadline:
                raise HostUnavailable(
                    f"another hotplug of this VM has held {path} for over {wait:g} s"
                ) from None
            time.sleep(0.05)
