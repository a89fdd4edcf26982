"""One monitor session with a running QEMU: QMP over a unix socket (qemu.qmp), or libvirt's monitor.

Every failure to talk to QEMU becomes HostUnavailable (exit 3) with a sentence saying what
happened; an error reply to a command becomes QemuSaid, which callers handle.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import struct
import subprocess
from typing import Any, Protocol

from layoutd.errors import HostUnavailable, InputError, LayoutdError, NoAnswer

TIMEOUT = float(os.environ.get("LAYOUTD_QMP_TIMEOUT", "30"))
"""Seconds to wait for QEMU's greeting or for one reply."""


class QemuSaid(NoAnswer):
    """QEMU answered a command with an error; `desc` is QEMU's own text."""

    def __init__(self, command: str, desc: str):
        self.command = command
        self.desc = desc
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
            raise gone(self.name, "connecting", error) from None

    def _abandon(self, sock: socket.socket) -> None:
        self.close()
        sock.close()

    def _run(self, coroutine: Any, doing: str) -> Any:
        import asyncio

        return self._loop.run_until_complete(asyncio.wait_for(coroutine, self.timeout))

    def execute(self, command: str, arguments: dict[str, Any] | None = None) -> Any:

        from qemu.qmp import ExecuteError

        try:
            return self._run(self._client.execute(command, arguments), command)
        except ExecuteError as error:
            raise QemuSaid(command, str(error)) from None
        except TimeoutError:
            raise HostUnavailable(
                f"QEMU did not answer {command} on {self.name} within {self.timeout:g} s"
            ) from None
        except LayoutdError:
            raise
        except Exception as error:  # EOFError, ExecInterruptedError, OSError, StateError ...
            raise gone(self.name, f"running {command}", error) from None

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
        ) from None
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


class VirshMonitor:
    """libvirt's own monitor, through `virsh [-c URI] qemu-monitor-command DOMAIN JSON`.

    `uri` None: virsh's default (LIBVIRT_DEFAULT_URI, else its built-in choice). The lock key is
    the domain's UUID as QEMU reports it, so every URI spelling of one daemon shares the lock.
    """

    def __init__(self, domain: str, uri: str | None = None, timeout: float = TIMEOUT):
        self.name = f"libvirt domain {domain}"
        self.domain = domain
        self.uri = uri
        self.timeout = timeout
        uuid = str((self.execute("query-uuid") or {}).get("UUID", ""))
        where = uri if uri is not None else os.environ.get("LIBVIRT_DEFAULT_URI", "")
        self.lock_key = (f"libvirt-uuid:{uuid}" if uuid.strip("0-")
                         else f"libvirt:{where}:{domain}")

    def execute(self, command: str, arguments: dict[str, Any] | None = None) -> Any:
        message: dict[str, Any] = {"execute": command}
        if arguments:
            message["arguments"] = arguments
        result = self.virsh(["qemu-monitor-command", self.domain, json.dumps(message)], command)
        if result.returncode != 0:
            raise self._failed(command, result)
        try:
            reply = json.loads(result.stdout)
        except ValueError:
            raise HostUnavailable(
                f"virsh gave no JSON for {command} on {self.name}: {result.stdout[:200]!r}"
            ) from None
        if "error" in reply:
            raise QemuSaid(command, str(reply["error"].get("desc", reply["error"])))
        return reply.get("return")

    def virsh(self, arguments: list[str], doing: str) -> subprocess.CompletedProcess[str]:
        """Run one virsh command on this connection; the caller judges its exit status."""
        argv = ["virsh", *(["-c", self.uri] if self.uri is not None else []), *arguments]
        try:
            return subprocess.run(argv, capture_output=True, text=True, timeout=self.timeout,
                                  check=False)
        except FileNotFoundError:
            raise HostUnavailable("virsh is not installed: cannot reach a libvirt domain") from None
        except subprocess.TimeoutExpired:
            raise HostUnavailable(f"virsh did not answer {doing} within {self.timeout:g} s") \
                from None

    def device(self, action: str, xml: str) -> str | None:
        """`virsh attach-device|detach-device DOMAIN FILE --live`: None when libvirt did it,
        else libvirt's message."""
        import tempfile

        with tempfile.NamedTemporaryFile("w", prefix="layoutd-", suffix=".xml") as handle:
            handle.write(xml)
            handle.flush()
            result = self.virsh([action, self.domain, handle.name, "--live"], action)
        if result.returncode == 0:
            return None
        return said(result)

    def _failed(self, command: str, result: subprocess.CompletedProcess[str]) -> HostUnavailable:
        return HostUnavailable(f"virsh could not run {command} on {self.name}: {said(result)}")

    def close(self) -> None:
        pass


def said(result: subprocess.CompletedProcess[str]) -> str:
    """virsh's last error line, without its `error: ` prefix."""
    lines = [line.strip() for line in result.stderr.splitlines() if line.strip()]
    if not lines:
        return f"exit {result.returncode}"
    return lines[-1].removeprefix("error: ")


def open_monitor(qmp: str | None, domain: str | None, uri: str | None = None) -> Monitor:
    if uri is not None and not domain:
        raise InputError("--connect URI only applies with --libvirt-domain NAME")
    if domain:
        return VirshMonitor(domain, uri)
    if not qmp:
        raise InputError("give --qmp SOCKET or --libvirt-domain NAME")
    return QmpMonitor(qmp)
