"""The domain KubeVirt's hook returns, given to real libvirt: `virsh domxml-to-native` on the
private daemons (Debian 12's libvirt 9.0, Debian 13's 11.3) takes it, and the memory part of the
command line libvirt builds is exactly the one the hook judged (tests/libvirt/oracle.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from layoutd.kubevirt.define import on_define_domain
from layoutd.libvirt.argv import translate_xml
from tests.conftest import need
from tests.kubevirt.domains import AMD, OVMF, domain, vmi
from tests.libvirt.daemon import HUGETLBFS, Virsh
from tests.libvirt.oracle import canonical, libvirt_argv

pytestmark = pytest.mark.libvirt

DAEMONS = {"debian12": ("libvirtd", (9, 0), "7.2"), "debian13": ("libvirtd_trixie", (11, 3), "10.0")}


@pytest.mark.parametrize("firmware", ["seabios", "ovmf"])
@pytest.mark.parametrize("daemon", sorted(DAEMONS))
def test_the_fixed_kubevirt_domain_is_what_libvirt_builds(request: pytest.FixtureRequest,
                                                         daemon: str, firmware: str,
                                                         tmp_path: Path) -> None:
    if firmware == "ovmf":
        need(Path(OVMF).exists(), "OVMF (Debian package ovmf)")
    fixture, libvirt, qemu = DAEMONS[daemon]
    virsh: Virsh = request.getfixturevalue(fixture)
    fixed = on_define_domain(vmi(), domain(AMD, firmware), AMD, "7.2").xml.decode()
    assert "base='0x10000000000'" in fixed
    path = tmp_path / "fixed.xml"
    # libvirt picks VFIO for a <hostdev> when it prepares the host; a pretend run needs it named
    path.write_text(fixed.replace('<hostdev type="pci" managed="no" mode="subsystem">',
                                  '<hostdev type="pci" managed="no" mode="subsystem">'
                                  '<driver name="vfio"/>'))
    result = virsh.run("domxml-to-native", "qemu-argv", str(path), check=False)
    assert result.returncode == 0, result.stderr
    theirs = canonical(libvirt_argv(result.stdout), qemu, HUGETLBFS)
    ours = canonical(list(translate_xml(fixed, "fixed.xml", libvirt).argv), qemu)
    assert ours == theirs
    assert any(device[0] == "pc-dimm" for device in theirs["devices"]), theirs["devices"]
