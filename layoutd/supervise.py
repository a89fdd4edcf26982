"""Starting, watching and killing QEMU for a dry run or a firmware boot (layoutd.dryrun,
layoutd.boot): its monitor on a socketpair (no socket file), its stderr on a memfd; the child dies
with layoutd (PR_SET_PDEATHSIG), and a watchdog kills it at the time limit. Edge module.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import signal
import socket
import subprocess
import threading
from collections.abc import Iterator

from layoutd.errors import HostUnavailable, QemuRefusal
from layoutd.record import Record, field

PR_SET_PDEATHSIG = 1


class SafeCommand(Record, kw_only=False, frozen=False):
    """The dry run's command line (after the binary) and the memfds it names by /proc/self/fd."""

    argv: list[str]
    fds: list[int] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)  # options left out, for messages

    def close(self) -> None:
        for fd in self.fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        self.fds.clear()


@contextlib.contextmanager
def started(binary: str, safe: SafeCommand,
             timeout: float) -> Iterator[tuple[subprocess.Popen[bytes], socket.socket]]:
    """QEMU with its monitor on one end of a socketpair; killed and reaped on the way out."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    argv = [binary, *safe.argv, "-chardev", f"socket,id=layoutd-qmp,fd={theirs.fileno()}",
            "-mon", "chardev=layoutd-qmp,mode=control"]
    parent = os.getpid()
    errors = os.memfd_create("layoutd-qemu-stderr", os.MFD_CLOEXEC)  # never fills, as a pipe can
    try:
        process = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=errors,
            pass_fds=[theirs.fileno(), *safe.fds], preexec_fn=lambda: die_with(parent),
            start_new_session=False)
    except OSError as error:
        ours.close()
        theirs.close()
        os.close(errors)
        raise HostUnavailable(f"cannot run {binary}: {error.strerror}") from error
    theirs.close()
    safe.close()  # QEMU holds its own copies of the memfds
    watchdog = threading.Timer(timeout, kill, [process])
    watchdog.daemon = True
    watchdog.start()
    process.timed_out = False  # type: ignore[attr-defined]
    process.errors = errors  # type: ignore[attr-defined]
    finished = False
    try:
        yield process, ours
        finished = True
    finally:
        watchdog.cancel()
        ours.close()
        try:  # after `quit` QEMU exits by itself; on any other way out it is killed at once
            process.wait(timeout=2.0 if finished else 0)
        except subprocess.TimeoutExpired:
            kill(process)
            process.wait()
        os.close(errors)


def die_with(parent: int) -> None:
    """In the child before exec: SIGKILL when layoutd dies, even by kill -9."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # layoutd died before the line above took effect
        os._exit(1)


def kill(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.timed_out = True  # type: ignore[attr-defined]
        with contextlib.suppress(OSError):
            process.kill()


def refusal(binary: str, process: subprocess.Popen[bytes], timeout: float) -> Exception:
    """Why the monitor went away: QEMU's own error line, or the time limit."""
    try:
        process.wait(timeout=max(1.0, timeout / 4))
    except subprocess.TimeoutExpired:
        kill(process)
        process.wait()
    if getattr(process, "timed_out", False):
        return HostUnavailable(f"the dry run of {binary} did not finish within {timeout:g} s "
                               "(QEMU was killed); set LAYOUTD_DRYRUN_TIMEOUT to allow longer")
    stderr = os.pread(process.errors, 1 << 16, 0).decode(errors="replace")  # type: ignore[attr-defined]
    said = first_error(stderr)
    return QemuRefusal(f"{binary} refused the dry run (exit status {process.returncode}): "
                       f"{said or 'no message'}")


def first_error(stderr: str) -> str:
    """QEMU's first error line, without the program prefix and without warnings."""
    for line in stderr.splitlines():
        text = re.sub(r"^\S*qemu-system-\w+: ", "", line).strip()
        if text and not re.match(r"(-\S+ \S+: )?warning:", text):
            return text
    return ""
