"""One private libvirtd per test session (it starts in a few seconds once the cache is warm)."""

from collections.abc import Iterator

import pytest

from tests.libvirt.daemon import TRIXIE_ROOT, Virsh, start_daemon, stop_daemon


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
