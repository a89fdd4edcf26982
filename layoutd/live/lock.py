"""One lock per VM, so two hotplugs cannot plan the same free range.

The key comes from the monitor: the QEMU process (pid and start time, so every -qmp socket of one
VM shares it), else the socket's real path; for a libvirt domain, its UUID. The lock file lives in
$XDG_RUNTIME_DIR/layoutd, else /run/layoutd, else /tmp/layoutd-UID, the first that is a real
folder of this user writable by no one else; lock files are opened without following symlinks.
fcntl locks vanish with the process that held them, so a killed layoutd never leaves a stale lock.
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
from layoutd.trust import untrusted

WAIT = float(os.environ.get("LAYOUTD_LOCK_WAIT", "120"))


def candidates() -> list[Path]:
    found = []
    if os.environ.get("XDG_RUNTIME_DIR"):
        found.append(Path(os.environ["XDG_RUNTIME_DIR"]) / "layoutd")
    return [*found, Path("/run/layoutd"), Path(f"/tmp/layoutd-{os.getuid()}")]


def lock_folder(choices: list[Path] | None = None) -> Path:
    """The first candidate folder that is ours: a real folder (not a symlink), owned by this
    user, writable by no one else. Another user can create /tmp/layoutd-UID first."""
    choices = candidates() if choices is None else choices
    refused = []
    for folder in choices:
        try:
            folder.mkdir(mode=0o700, parents=False, exist_ok=True)
        except OSError as error:
            refused.append(f"{folder} ({error.strerror})")
            continue
        problem = untrusted(folder)
        if problem is None:
            return folder
        refused.append(f"{folder} ({problem})")
    raise HostUnavailable("no safe folder for the hotplug lock: " + "; ".join(refused))


def lock_path(key: str, folder: Path | None = None) -> Path:
    digest = hashlib.sha256(key.encode()).hexdigest()[:24]
    return (folder or lock_folder()) / f"vm-{digest}.lock"


@contextmanager
def vm_lock(key: str, wait: float = WAIT, folder: Path | None = None) -> Iterator[Path]:
    """Hold the VM's lock; wait up to `wait` seconds for another holder."""
    path = lock_path(key, folder)
    try:  # never through a symlink someone planted
        handle = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as error:
        raise HostUnavailable(f"cannot open the hotplug lock {path}: {error.strerror} (a "
                              "symlink there is refused)") from error
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
