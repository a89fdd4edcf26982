"""Monitor-level behaviour without a guest: vfio-pci discovery, refusals, the virsh transport."""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path
from typing import Any

import pytest

from layoutd.errors import HostUnavailable
from layoutd.live.session import QemuSaid, QmpMonitor
from layoutd.live.virsh import VirshMonitor
from layoutd.live.vm import vfio_hosts
from tests.conftest import run_layoutd
from tests.live.conftest import answer, guest, guest_args, overlaps, span, write_host
from tests.support.qemu_runner import Refused, qemu_binary, started


class FakeMonitor:
    """Answers QOM questions from a dict {(command, path, property): reply}."""

    name = "fake"
    lock_key = "fake"

    def __init__(self, replies: dict[tuple[str, ...], Any]):
        self.replies = replies

    def execute(self, command: str, arguments: dict[str, Any] | None = None) -> Any:
        args = arguments or {}
        key = tuple(str(v) for v in (command, args.get("path", ""), args.get("property", "")) if v)
        if key not in self.replies:
            raise QemuSaid(command, f"no {key}")
        return self.replies[key]

    def close(self) -> None:
        pass


def test_vfio_devices_come_from_host_or_sysfsdev() -> None:
    monitor = FakeMonitor({
        ("qom-list", "/machine/peripheral"): [
            {"name": "gpu", "type": "child<vfio-pci>"}, {"name": "rp1", "type": "child<pcie-root-port>"}],
        ("qom-list", "/machine/peripheral-anon"): [
            {"name": "device[3]", "type": "child<vfio-pci>"}],
        ("qom-get", "/machine/peripheral/gpu", "host"): "41:00.0",
        ("qom-get", "/machine/peripheral-anon/device[3]", "host"): "",
        ("qom-get", "/machine/peripheral-anon/device[3]", "sysfsdev"): "/sys/bus/pci/devices/0000:42:00.1",
    })
    assert vfio_hosts(monitor) == ["0000:41:00.0", "0000:42:00.1"]


def fake_virsh(folder: Path, socket: str) -> dict[str, str]:
    """A `virsh` on PATH for domain vm1, forwarding to a QMP socket: `qemu-monitor-command DOMAIN
    JSON`, and `attach-device DOMAIN FILE --live` for a DIMM, sent as libvirt sends it (backend
    `mem` + alias, explicit slot and addr). Each call's arguments go to virsh.log."""
    script = folder / "virsh"
    script.write_text(f"""#!{sys.executable}
import json, sys
import xml.etree.ElementTree as ET
from qemu.qmp.legacy import QEMUMonitorProtocol
with open({str(folder / "virsh.log")!r}, "a") as log:
    log.write(json.dumps(sys.argv[1:]) + "\\n")
args = sys.argv[1:]
if args[0] == "-c":
    args = args[2:]
if args[1] != "vm1":
    sys.exit("error: failed to get domain '" + args[1] + "'")
monitor = QEMUMonitorProtocol({socket!r})
monitor.connect()
if args[0] == "qemu-monitor-command":
    message = json.loads(args[2])
    print(json.dumps(monitor.cmd_raw(message["execute"], message.get("arguments"))))
elif args[0] == "attach-device" and args[3:] == ["--live"]:
    memory = ET.parse(args[2]).getroot()
    alias = memory.find("alias").get("name")
    address = memory.find("address")
    size = int(memory.findtext("target/size")) * 1024
    for command, arguments in (
            ("object-add", {{"qom-type": "memory-backend-ram", "id": "mem" + alias, "size": size}}),
            ("device_add", {{"driver": "pc-dimm", "id": alias, "memdev": "mem" + alias,
                            "node": int(memory.findtext("target/node")),
                            "slot": int(address.get("slot")), "addr": int(address.get("base"), 16)}})):
        reply = monitor.cmd_raw(command, arguments)
        if "error" in reply:
            sys.exit("error: internal error: unable to execute QEMU command '" + command + "': "
                     + reply["error"]["desc"])
    print("Device attached successfully")
else:
    sys.exit("error: fake virsh: unexpected " + " ".join(args))
monitor.close()
""")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return {"PATH": f"{folder}{os.pathsep}{os.environ['PATH']}"}


@pytest.mark.qemu
def test_libvirt_domain_goes_through_virsh(tmp_path: Path) -> None:
    with guest("10.0", "x86_64", tmp_path) as g:
        env = fake_virsh(tmp_path, g.socket)
        result = run_layoutd("hotplug", "--libvirt-domain", "vm1", "--size", "1G", "--execute",
                             "--host", g.host, "--format", "json", "--connect", "test:///fake",
                             env=env)
        assert result.returncode == 0, result.stderr
        document = answer(result)
        placed = span(document["placement"])
        assert not overlaps(placed, g.hole)
        assert [(d["data"]["addr"], d["data"]["size"]) for d in g.devices()] \
            == [(placed[0], placed[1] - placed[0] + 1)]
        assert document["id"] == "ua-layoutd-dimm0" and document["qmp"] == []
        calls = [json.loads(line) for line in (tmp_path / "virsh.log").read_text().splitlines()]
        assert all(call[:2] == ["-c", "test:///fake"] for call in calls)
        assert [call[2] for call in calls].count("attach-device") == 1
        missing = run_layoutd("hotplug", "--libvirt-domain", "nope", "--size", "1G",
                              "--host", g.host, env=env)
        assert missing.returncode == 3 and "failed to get domain" in missing.stderr


def test_virsh_missing_is_exit_3(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(HostUnavailable, match="virsh is not installed"):
        VirshMonitor("vm1")


@pytest.mark.qemu
def test_a_vm_without_maxmem_is_refused_cleanly(tmp_path: Path) -> None:
    host = write_host(tmp_path, [(0xFEE00000, 0xFEEFFFFF, "msi")])
    with started(qemu_binary("7.2"), guest_args("x86_64", memory="2G"), extra_qmp=True) as qemu:
        assert not isinstance(qemu, Refused), qemu.stderr
        socket = os.path.join(qemu.folder, "qmp2.sock")
        refused = run_layoutd("hotplug", "--qmp", socket, "--size", "1G", "--execute",
                              "--host", host)
        assert refused.returncode == 1 and "without maxmem" in refused.stderr, refused.stderr
        assert "Traceback" not in refused.stderr
        objects = {entry["name"] for entry in qemu.qmp("qom-list", {"path": "/objects"})}
        assert objects == {"type", "pc.ram"}


@pytest.mark.qemu
def test_an_error_reply_keeps_qmps_error_class(tmp_path: Path) -> None:
    """QemuSaid keeps QEMU's desc and its QMP error class, as qemu.qmp's ExecuteError does."""
    with started(qemu_binary("7.2"), guest_args("x86_64", memory="2G"), extra_qmp=True) as qemu:
        assert not isinstance(qemu, Refused), qemu.stderr
        monitor = QmpMonitor(os.path.join(qemu.folder, "qmp2.sock"))
        try:
            with pytest.raises(QemuSaid) as said:
                monitor.execute("qom-get", {"path": "/machine/peripheral/nope", "property": "x"})
            with pytest.raises(QemuSaid) as generic:
                monitor.execute("qom-get", {"path": "/machine", "property": "nope"})
        finally:
            monitor.close()
    assert said.value.error_class == "DeviceNotFound" and "nope" in said.value.desc
    assert generic.value.error_class == "GenericError"
    assert isinstance(said.value.__cause__, Exception)  # qemu.qmp's ExecuteError, kept
