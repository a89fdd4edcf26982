"""The hook at `restore begin` and `migrate begin` on real libvirtds: a saved domain comes back,
and a running one migrates, only to a host whose IOMMU maps it; refused with this host's hole
named, as libvirt calls the hook.

A paused TCG domain (2 GiB of boot RAM, all below 4 GiB) is started and saved with the hook
reading a test-made host tree whose only hole is the MSI window. Then a reserved hole is written
into that tree inside the domain's boot RAM (as if the image were restored on a host with an RMRR
there): `virsh restore` is refused with the hole named, and the domain stays shut off. With the
hole gone, the same image restores and the domain runs paused again.

Migration: a second private libvirtd on this machine (its own host_uuid) is the destination of a
live migration over loopback (`virsh migrate --live` with a tcp://127.0.0.1 migration URI); its
hook reads its own host tree, first with the hole in the domain's RAM (refused at `migrate
begin`, the domain keeps running at the source), then without (the domain arrives).
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.libvirt.daemon import Virsh
from tests.live.conftest import DEVICE, GROUP, write_host

pytestmark = [pytest.mark.libvirt, pytest.mark.qemu]

DATA = Path(__file__).parent / "data"
NAME = "lt-saved"
MSI = (0xFEE00000, 0xFEEFFFFF, "msi")
RMRR = (0x40000000, 0x4FFFFFFF, "reserved")  # inside the domain's boot RAM (0-0x7fffffff)


def set_holes(host: str, holes: list[tuple[int, int, str]]) -> None:
    (Path(host) / "sys/kernel/iommu_groups" / str(GROUP) / "reserved_regions").write_text(
        "".join(f"0x{start:016x} 0x{end:016x} {kind}\n" for start, end, kind in sorted(holes)))


def define_started(virsh: Virsh, folder: Path, name: str, uuid_tail: str) -> None:
    xml = (DATA / "hotplug.xml").read_text().replace("<name>lt-hot</name>", f"<name>{name}</name>")
    path = folder / f"{name}.xml"
    path.write_text(xml.replace("000000000010</uuid>", f"{uuid_tail}</uuid>"))
    virsh.run("define", str(path))
    started = virsh.run("start", name, "--paused", check=False)
    assert started.returncode == 0, started.stderr + virsh.qemu_log(name)[-2000:]


@pytest.fixture
def saved(libvirtd: Virsh, tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """(the saved image, the host tree); the domain is defined, started, then saved."""
    host = write_host(tmp_path / "host", [MSI])
    libvirtd.install_hook("--policy", "enforce", "--host", host, "--devices", DEVICE)
    image = tmp_path / f"{NAME}.save"
    try:
        define_started(libvirtd, tmp_path, NAME, "000000000030")
        libvirtd.run("save", NAME, str(image))
        assert libvirtd.run("domstate", NAME).stdout.strip() == "shut off"
        yield image, host
    finally:
        libvirtd.run("destroy", NAME, check=False)
        libvirtd.run("undefine", NAME, check=False)


def test_restore_is_refused_where_this_host_cannot_map_the_domain(
        libvirtd: Virsh, saved: tuple[Path, str]) -> None:
    image, host = saved
    set_holes(host, [MSI, RMRR])
    refused = libvirtd.run("restore", str(image), check=False)
    assert refused.returncode != 0
    message = refused.stderr
    assert f"layoutd hook: refusing to restore domain '{NAME}'" in message, message
    assert "reserved hole 0x40000000-0x4fffffff of IOMMU group 7" in message, message
    assert libvirtd.run("domstate", NAME).stdout.strip() == "shut off"
    log = libvirtd.hook_log.read_text()
    assert f"{NAME} restore begin: refused" in log, log

    set_holes(host, [MSI])
    restored = libvirtd.run("restore", str(image), check=False)
    assert restored.returncode == 0, restored.stderr + libvirtd.qemu_log(NAME)[-2000:]
    assert libvirtd.run("domstate", NAME).stdout.strip() == "paused"
    log = libvirtd.hook_log.read_text()
    assert f"{NAME} restore begin: ok" in log, log


MIGRATING = "lt-migrating"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_live_migration_is_refused_where_the_destination_cannot_map_the_domain(
        libvirtd: Virsh, libvirtd_peer: Virsh, tmp_path: Path) -> None:
    source_host = write_host(tmp_path / "source", [MSI])
    destination_host = write_host(tmp_path / "destination", [MSI, RMRR])
    libvirtd.install_hook("--policy", "enforce", "--host", source_host, "--devices", DEVICE)
    libvirtd_peer.install_hook("--policy", "enforce", "--host", destination_host, "--devices", DEVICE)

    def migrate() -> str:
        result = libvirtd.run("migrate", "--live", MIGRATING, libvirtd_peer.uri,
                              "--migrateuri", f"tcp://127.0.0.1:{free_port()}", check=False,
                              timeout=300)
        return result.stderr if result.returncode else ""

    try:
        define_started(libvirtd, tmp_path, MIGRATING, "000000000031")
        message = migrate()
        assert f"layoutd hook: refusing to accept the incoming migration of domain '{MIGRATING}'" \
            in message, message
        assert "reserved hole 0x40000000-0x4fffffff of IOMMU group 7" in message, message
        assert libvirtd.run("domstate", MIGRATING).stdout.strip() == "paused"
        assert MIGRATING not in libvirtd_peer.run("list", "--all", "--name").stdout.split()
        assert f"{MIGRATING} migrate begin: refused" in libvirtd_peer.hook_log.read_text()

        set_holes(destination_host, [MSI])
        message = migrate()
        assert message == "", message + libvirtd_peer.qemu_log(MIGRATING)[-2000:]
        assert libvirtd_peer.run("domstate", MIGRATING).stdout.strip() == "paused"
        assert f"{MIGRATING} migrate begin: ok" in libvirtd_peer.hook_log.read_text()
    finally:
        for virsh in (libvirtd, libvirtd_peer):
            virsh.run("destroy", MIGRATING, check=False)
            virsh.run("undefine", MIGRATING, check=False)
