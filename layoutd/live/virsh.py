"""libvirt's own monitor of a running domain (`virsh qemu-monitor-command`), and the choice
between it and a QMP socket (`open_monitor`)."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from typing import Any

from layoutd.errors import HostUnavailable, InputError
from layoutd.live.session import TIMEOUT, Monitor, QemuSaid, QmpMonitor


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
            said = reply["error"]
            raise QemuSaid(command, str(said.get("desc", said)), said.get("class"))
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
