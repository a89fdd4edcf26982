"""One monitor session with a running QEMU: QMP over a unix socket (qemu.qmp); live/virsh.py has libvirt's.

Every failure to talk to QEMU becomes HostUnavailable (exit 3) with a sentence saying what
happened; an error reply to a command becomes QemuSaid, which callers handle.
"""

from __future__ import annotations

import contextlib
import os
import socket
import struct
from typing import Any, Protocol

from layoutd.errors import HostUnavailable, LayoutdError, NoAnswer

TIMEOUT = float(os.environ.get("LAYOUTD_QMP_TIMEOUT", "30"))
"""Seconds to wait for QEMU's greeting or for one reply."""


class QemuSaid(NoAnswer):
    """QEMU answered a command with an error; `desc` is QEMU's own text, `error_class` its QMP
    error class (GenericError, DeviceNotFound, ...), as qemu.qmp's ExecuteError keeps them."""

    def __init__(self, command: str, desc: str, error_class: str | None = None):
        self.command = command
        self.desc = desc
        self.error_class = error_class
        super().__init__(f"QEMU refused {command}: {desc}")


class Monitor(Protocol):
    """What the live code needs from a monitor: run one QMP command, learn the VM's identity."""

    name: str  # how messages name the VM: the socket path or libvirt:DOMAIN
    lock_key: str  # one key per VM, shared by every monitor of that VM

    def execute(self, command: str, arguments: dict[str, Any] | None = None) -> Any: ...

    def close(self) -> None: ...


def gone(name: str, doing: str, error: BaseException) -> HostUnavailable:
    reason = str(error) or type(error).__name__
    return HostUnavailable(
        f"QEMU went away while {doing} ({reason}): the VM behind {name} has exited or closed "
        "its monitor"
    )


class QmpMonitor:
    """A QMP session over a unix socket, with qemu.qmp's client driven synchronously."""

    def __init__(self, path: str, timeout: float = TIMEOUT):
        self.name = path
        self.timeout = timeout
        sock = _connect_unix(path)
        pid = _peer_pid(sock)
        self.lock_key = process_key(pid) or f"socket:{os.path.realpath(path)}"
        self._start(sock)

    @classmethod
    def on_socket(cls, sock: socket.socket, name: str, timeout: float = TIMEOUT) -> QmpMonitor:
        """A session on a socket already connected to QEMU's monitor (a socketpair)."""
        monitor = cls.__new__(cls)
        monitor.name = name
        monitor.timeout = timeout
        monitor.lock_key = f"dry-run:{name}"
        monitor._start(sock)
        return monitor

    def _start(self, sock: socket.socket) -> None:
        # asyncio and qemu.qmp cost a start some 40 ms (inspect among them), and `check` and
        # `plan` load this module for the dry run they seldom make: a session loads them
        import asyncio

        from qemu.qmp import QMPClient

        self._loop = asyncio.new_event_loop()
        self._client = QMPClient("layoutd")
        try:
            self._run(self._client.connect(sock), "connecting")
        except TimeoutError:
            self._abandon(sock)
            raise HostUnavailable(
                f"QEMU did not greet on {self.name} within {self.timeout:g} s: another client "
                "probably holds this monitor (one -qmp socket serves one client at a time); "
                "give QEMU a second -qmp socket or close the other client"
            ) from None
        except Exception as error:  # EOFError, ConnectError, OSError: QEMU hung up
            self._abandon(sock)
            raise gone(self.name, "connecting", error) from error

    def _abandon(self, sock: socket.socket) -> None:
        self.close()
        sock.close()

    def _run(self, coroutine: Any, doing: str) -> Any:
        import asyncio  # loaded by _start already (see there)

        return self._loop.run_until_complete(asyncio.wait_for(coroutine, self.timeout))

    def execute(self, command: str, arguments: dict[str, Any] | None = None) -> Any:
        from qemu.qmp import ExecuteError  # loaded by _start already (see there)

        try:
            return self._run(self._client.execute(command, arguments), command)
        except ExecuteError as error:
            said = error.error.error  # qemu.qmp: ExecuteError -> ErrorResponse -> ErrorInfo
            raise QemuSaid(command, said.desc, said.class_) from error
        except TimeoutError:
            raise HostUnavailable(
                f"QEMU did not answer {command} on {self.name} within {self.timeout:g} s"
            ) from None
        except LayoutdError:
            raise
        except Exception as error:  # EOFError, ExecInterruptedError, OSError, StateError ...
            raise gone(self.name, f"running {command}", error) from error

    def close(self) -> None:
        if self._loop.is_closed():
            return
        with contextlib.suppress(Exception):  # the session is over either way
            self._run(self._client.disconnect(), "disconnecting")
        self._loop.close()


def _connect_unix(path: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(path)
    except OSError as error:
        sock.close()
        hint = "no such socket" if isinstance(error, FileNotFoundError) else error.strerror
        raise HostUnavailable(
            f"cannot connect to the QMP socket {path}: {hint or error} "
            "(start QEMU with -qmp unix:PATH,server=on,wait=off)"
        ) from error
    return sock


def _peer_pid(sock: socket.socket) -> int:
    """The QEMU process behind the socket (0 when the kernel does not say)."""
    try:
        raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        pid: int = struct.unpack("3i", raw)[0]
        return pid
    except (OSError, AttributeError):
        return 0


def process_key(pid: int) -> str | None:
    """pid plus its start time, so a reused pid is another VM."""
    if pid <= 0:
        return None
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return f"qemu-pid:{pid}:{fields[19]}"
    except (OSError, IndexError):
        return None
