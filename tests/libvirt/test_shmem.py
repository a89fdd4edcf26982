# ruff: noqa: E501  (domain XML reads best on one line)
"""A libvirt <shmem> (Looking Glass's frame buffer) as the hook and `check --libvirt` read it is
what libvirt itself gives QEMU (`virsh domxml-to-native` of libvirt 9.0 and 11.3): the same
ivshmem-plain device at the same slot on the same bus, with a shared backend of the same size; and
its BAR, placed by the firmware, is judged like RAM."""

import json
import tempfile
from pathlib import Path

import pytest

from layoutd.firmware.guest import read_argv
from layoutd.libvirt.argv import translate_xml
from layoutd.libvirt.guard import with_buses
from layoutd.qemu.config import ram_bars_of
from tests.conftest import ROOT, run_layoutd
from tests.libvirt.test_oracle import GPU, Oracle, _bridge_domain, _pci, native, oracle  # noqa: F401

pytestmark = pytest.mark.libvirt

SHMEM = f"""<shmem name='looking-glass'><model type='ivshmem-plain'/><size unit='M'>256</size>
{_pci(0, 5)}</shmem>"""
DOMAIN = _bridge_domain("lt-shmem", "q35", True, f"""
<controller type='pci' index='1' model='pcie-root-port'><target chassis='1' port='0x8'/>{_pci(0, 1)}
</controller>""", 1, 0).replace("<memballoon model='none'/>", SHMEM + "<memballoon model='none'/>")


def test_shmem_is_read_as_libvirt_writes_it(oracle: Oracle) -> None:  # noqa: F811
    with tempfile.TemporaryDirectory(prefix="layoutd-oracle-") as folder:
        theirs = native(oracle.virsh, DOMAIN, Path(folder))
    assert not isinstance(theirs, str), theirs
    ours = with_buses(translate_xml(DOMAIN, "domain.xml", oracle.libvirt).argv, DOMAIN, "domain.xml")
    assert ram_bars_of(ours) == ram_bars_of(theirs) and ram_bars_of(ours)
    assert ram_bars_of(ours)[0].size == 256 << 20
    host = {GPU.address: GPU}
    shape = [(d.id, d.slot, d.function, d.port, d.bars) for d in read_argv(theirs, "q35", host).devices]
    assert [(d.id, d.slot, d.function, d.port, d.bars) for d in read_argv(ours, "q35", host).devices] == shape


def test_the_shmem_bar_above_a_39_bit_iommu_is_refused(tmp_path: Path) -> None:
    """rvfio.xml (OVMF, a GPU behind root ports, host CPU 46 bits, IOMMU 39 bits) with a 256 MiB
    Looking Glass <shmem>: check and the hook name the ivshmem BAR above the IOMMU top; with
    39 phys-bits (<maxphysaddr mode='emulate' bits='39'/>) it is placed below it and passes."""
    host = str(ROOT / "examples/hosts/intel-46bit-cpu-39bit-iommu")
    text = (ROOT / "tests/firmware/data/rvfio.xml").read_text().replace(
        "</devices>", "<shmem name='looking-glass'><model type='ivshmem-plain'/><size unit='M'>256</size></shmem></devices>")
    domain = tmp_path / "lg.xml"
    domain.write_text(text)
    result = run_layoutd("check", "--libvirt", str(domain), "--host", host, "--format", "json")
    answer = json.loads(result.stdout)
    assert result.returncode == 1
    assert [c["hole"]["type"] for c in answer["collisions"] if c["kind"] == "ivshmem"] == ["aperture"]
    config = tmp_path / "hook.conf"
    config.write_text(f"host = {host}\nlog = {tmp_path / 'hook.log'}\n")
    hook = run_layoutd("hook", "--config", str(config), "lg", "prepare", "begin", "-", stdin=text)
    assert hook.returncode == 1 and "ivshmem 'shmem0'" in hook.stderr
    domain.write_text(text.replace("<cpu mode='host-passthrough' check='none'/>",
                                   "<cpu mode='host-model'><maxphysaddr mode='emulate' bits='39'/></cpu>"))
    fixed = run_layoutd("check", "--libvirt", str(domain), "--host", host, "--format", "json")
    assert fixed.returncode == 0, fixed.stdout
    shmem = [r for r in json.loads(fixed.stdout)["layout"] if r["kind"] == "ivshmem"]
    assert len(shmem) == 1 and int(shmem[0]["end"], 16) < 1 << 39
