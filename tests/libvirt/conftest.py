"""One private libvirtd per test session (it starts in a few seconds once the cache is warm)."""

from collections.abc import Iterator

import pytest

from tests.libvirt.daemon import SID_LIBVIRT_ROOT, TRIXIE_ROOT, Virsh, start_daemon, stop_daemon


@pytest.fixture(scope="session")
def libvirtd() -> Iterator[Virsh]:
    virsh, process = start_daemon()
    try:
        yield virsh
    finally:
        stop_daemon(virsh, process)


@pytest.fixture(scope="session")
def libvirtd_trixie() -> Iterator[Virsh]:
    """Debian 13's libvirtd 11.3, from the root scripts/trixie-root.sh makes."""
    virsh, process = start_daemon(TRIXIE_ROOT)
    try:
        yield virsh
    finally:
        stop_daemon(virsh, process)


@pytest.fixture(scope="session")
def libvirtd_sid() -> Iterator[Virsh]:
    """Debian sid's libvirtd 12.x, from the root scripts/sid-libvirt-root.sh makes."""
    virsh, process = start_daemon(SID_LIBVIRT_ROOT)
    try:
        yield virsh
    finally:
        stop_daemon(virsh, process)


@pytest.fixture(scope="session")
def libvirtd_peer() -> Iterator[Virsh]:
    """A second private libvirtd on this machine, as another host (its own host_uuid): the
    destination of live migrations from `libvirtd` over loopback."""
    virsh, process = start_daemon(conf=f'host_uuid = "{PEER_UUID}"\n')
    try:
        yield virsh
    finally:
        stop_daemon(virsh, process)


PEER_UUID = "6c3f1a52-8d7e-4b1a-9f3e-0000000000ff"
