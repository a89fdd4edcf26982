"""libvirt as the oracle for layoutd's translation of domain XML.

For every domain of the corpus (tests/libvirt/domains.py), the private real libvirtd's
`virsh domxml-to-native qemu-argv` and `layoutd.libvirt.argv.translate` must agree on every
memory-relevant option (tests/libvirt/oracle.py: canonical), or both refuse the domain. Then
libvirt's command line, cut to those options, runs on the real QEMU the daemon uses (7.2): the
map layoutd predicts from its own translation must be the one QEMU builds, or QEMU must refuse
as the model says; a domain the model does not cover must be refused as not modelled, never
answered wrongly.
"""

from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from layoutd.errors import InputError, QemuRefusal, UnsupportedOption
from layoutd.firmware import place
from layoutd.firmware.builds import OVMF_12, SEABIOS_12
from layoutd.firmware.guest import board, page_1g, read_argv
from layoutd.libvirt.argv import translate_xml
from layoutd.libvirt.guard import with_buses
from layoutd.models.host import Bar as HostBar
from layoutd.models.host import Device
from layoutd.qemu import predict
from tests.conftest import ROOT, kvm_refusal, need_binary
from tests.libvirt.daemon import HUGETLBFS, Virsh
from tests.libvirt.domains import VIRT_INSTALL, domains, gpu_domains, project_domains, virt_install
from tests.libvirt.oracle import PAGE, canonical, libvirt_argv, runnable
from tests.qemu.compare import device_facts, predicted_devices, qemu_error
from tests.support.qemu_runner import Refused, qemu_binary, real_map, this_machine_cpu

pytestmark = [pytest.mark.libvirt, pytest.mark.qemu]



@dataclass(frozen=True)
class Oracle:
    """A real libvirtd, its version, and the QEMU version it probes and runs."""

    virsh: Virsh
    libvirt: tuple[int, int]
    qemu: str


@pytest.fixture(scope="session", params=["debian12", "debian13"])
def oracle(request: pytest.FixtureRequest) -> Oracle:
    """Debian 12's libvirt 9.0 with QEMU 7.2 (the tests' daemon), and Debian 13's libvirt 11.3
    with its QEMU 10.0 (scripts/trixie-root.sh), whose command lines run on the 10.0 binary."""
    if request.param == "debian12":
        return Oracle(request.getfixturevalue("libvirtd"), (9, 0), "7.2")
    return Oracle(request.getfixturevalue("libvirtd_trixie"), (11, 3), "10.0")


def native(libvirtd: Virsh, xml: str, folder: Path) -> list[str] | str:
    """libvirt's arguments for `xml`, or its error."""
    path = folder / "domain.xml"
    # libvirt picks VFIO for a <hostdev> when it prepares the host; a pretend run needs it named
    path.write_text(xml.replace("<hostdev mode='subsystem' type='pci' managed='yes'>",
                                "<hostdev mode='subsystem' type='pci' managed='yes'>"
                                "<driver name='vfio'/>"))
    result = libvirtd.run("domxml-to-native", "qemu-argv", str(path), check=False)
    if result.returncode != 0:
        return result.stderr.strip()
    return libvirt_argv(result.stdout)


def check_domain(oracle: Oracle, xml: str) -> str:
    """Assert the translation agrees with libvirt and the model with QEMU; return the outcome
    (exact, refused by libvirt, refused by QEMU, not modelled)."""
    with tempfile.TemporaryDirectory(prefix="layoutd-oracle-") as name:
        folder = Path(name)
        theirs = native(oracle.virsh, xml, folder)
        try:
            ours = translate_xml(xml, "domain.xml", oracle.libvirt)
        except UnsupportedOption:
            return "not modelled"
        except InputError as error:
            assert isinstance(theirs, str), f"libvirt accepts what layoutd refuses: {error}"
            return "refused by libvirt"
        if isinstance(theirs, str):
            # libvirt refuses at validation what the translation accepts: the hook's domain is
            # always one libvirt accepted, so this only means the corpus met a libvirt rule
            return "refused by libvirt"
        qemu = oracle.qemu
        assert canonical(list(ours.argv), qemu) == canonical(theirs, qemu, HUGETLBFS), theirs
        return run_on_qemu(qemu, theirs, list(ours.argv), folder, _hugepages(theirs, qemu))


def _hugepages(argv: list[str], qemu: str) -> bool:
    shape = canonical(argv, qemu, HUGETLBFS)
    return any(backend[3] != PAGE for backend in shape["backends"].values())


def run_on_qemu(qemu: str, theirs: list[str], ours: list[str], folder: Path,
                hugepages: bool) -> str:
    """libvirt's command line on the real QEMU against layoutd's prediction from its own."""
    kvm = "-accel" in theirs and theirs[theirs.index("-accel") + 1] == "kvm"
    host = this_machine_cpu() if kvm else None
    arch = "aarch64" if "-bios" in ours or "virt" in ours[ours.index("-machine") + 1] else "x86_64"
    try:
        guest = predict(ours, version=qemu, host_cpu=host, arch=arch)
    except UnsupportedOption:
        return "not modelled"
    except QemuRefusal as refusal:
        guest, refused = None, refusal
    if hugepages:  # no huge pages are reserved here
        return "exact (options; huge pages not started)"
    if kvm and kvm_refusal(("qemu-system-x86_64",)) is not None:
        return "exact (options; KVM here cannot run -cpu host)"
    real = real_map(qemu_binary(qemu, arch), runnable(theirs, folder))
    if isinstance(real, Refused):
        assert guest is None, f"QEMU refused what layoutd predicts: {real.stderr}"
        # the option QEMU names is libvirt's JSON there, layoutd's key=value here
        assert _words(refused.message.splitlines()[0]) == _words(qemu_error(real.stderr)), real.stderr
        if kvm and "System Management Mode not supported" in real.stderr:
            # predicted alike, but the map this case is about cannot be read on this KVM
            pytest.skip(f"KVM here cannot run this case: {qemu_error(real.stderr)} (layoutd predicted it)")
        return "refused by QEMU"
    assert guest is not None, f"layoutd predicts a refusal QEMU does not make: {refused}"
    assert [(r.start, r.end) for r in guest.layout] == [(e.start, e.end) for e in real.ram]
    assert predicted_devices(guest) == device_facts(real.memory_devices)
    return "exact"


def _words(error: str) -> str:
    return re.sub(r"^-\w+ \S+: ", "", error)


ORACLE = settings(max_examples=60, deadline=None, derandomize=True,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@ORACLE
@given(data=st.data())
def test_generated_domains_agree_with_libvirt_and_qemu(oracle: Oracle, data: st.DataObject) -> None:
    xml = data.draw(domains(), label="domain")
    check_domain(oracle, xml)


@pytest.mark.parametrize("name", sorted(gpu_domains()))
def test_gpu_domains_agree_with_libvirt_and_qemu(oracle: Oracle, name: str) -> None:
    outcome = check_domain(oracle, gpu_domains()[name])
    assert outcome.startswith("exact"), outcome


@pytest.mark.parametrize("name", sorted(VIRT_INSTALL))
def test_virt_install_domains_agree_with_libvirt_and_qemu(oracle: Oracle, name: str) -> None:
    """Domains exactly as virt-install (Debian 12's virtinst 4.1) writes them."""
    need_binary("virt-install")
    outcome = check_domain(oracle, virt_install(oracle.virsh.uri, name))
    assert outcome.startswith("exact"), outcome


@pytest.mark.parametrize("name", sorted(project_domains(ROOT)))
def test_project_domains_agree_with_libvirt_and_qemu(oracle: Oracle, name: str) -> None:
    outcome = check_domain(oracle, project_domains(ROOT)[name])
    assert outcome.startswith("exact"), outcome


# A GPU (sysfs `resource` shape: 16 MiB registers, 256 MiB and 32 MiB 64-bit prefetchable, I/O,
# a 512 KiB ROM) for the bridge domains below
GPU = Device(address="0000:2a:00.0", group=1, driver="vfio-pci", bars=(
    HostBar(index=0, start=0xF0000000, end=0xF0FFFFFF, flags=0x200),
    HostBar(index=1, start=0x38000000000, end=0x3800FFFFFFF, flags=0x102200),
    HostBar(index=3, start=0x38010000000, end=0x38011FFFFFF, flags=0x102200),
    HostBar(index=5, start=0xE000, end=0xE07F, flags=0x100),
    HostBar(index=6, start=0xF1000000, end=0xF107FFFF, flags=0x200)))


def _pci(bus: int, slot: int) -> str:
    return f"<address type='pci' domain='0x0000' bus='{bus:#04x}' slot='{slot:#04x}' function='0x0'/>"


def _bridge_domain(name: str, machine: str, efi: bool, controllers: str, bus: int, slot: int) -> str:
    root = "pcie-root" if "q35" in machine else "pci-root"
    loader = ("<loader readonly='yes' type='pflash'>/usr/share/OVMF/OVMF_CODE_4M.fd</loader>"
              if efi else "")
    return f"""<domain type='qemu'><name>{name}</name><memory unit='GiB'>2</memory><vcpu>1</vcpu>
<os><type arch='x86_64' machine='{machine}'>hvm</type>{loader}</os><features><acpi/></features>
<cpu mode='custom'><model>EPYC</model><maxphysaddr mode='emulate' bits='46'/></cpu>
<devices><controller type='usb' model='none'/><controller type='pci' index='0' model='{root}'/>
{controllers}
<hostdev mode='subsystem' type='pci' managed='yes'>
<source><address domain='0x0000' bus='0x2a' slot='0x00' function='0x0'/></source>{_pci(bus, slot)}
</hostdev><memballoon model='none'/></devices></domain>"""


BRIDGE_DOMAINS = {
    # GPU behind a switch's downstream port under a root port (q35, OVMF)
    "switch": _bridge_domain("lt-switch", "q35", True, f"""
<controller type='pci' index='3' model='pcie-switch-downstream-port'><model name='xio3130-downstream'/>
<target chassis='3' port='0x0'/>{_pci(2, 0)}</controller>
<controller type='pci' index='1' model='pcie-root-port'><model name='pcie-root-port'/>
<target chassis='1' port='0x10'/>{_pci(0, 2)}</controller>
<controller type='pci' index='2' model='pcie-switch-upstream-port'>{_pci(1, 0)}</controller>""", 3, 0),
    # behind a pcie-to-pci-bridge under a root port (q35, SeaBIOS)
    "pcie-to-pci": _bridge_domain("lt-p2p", "q35", False, f"""
<controller type='pci' index='1' model='pcie-root-port'><target chassis='1' port='0x8'/>{_pci(0, 1)}
</controller><controller type='pci' index='2' model='pcie-to-pci-bridge'>{_pci(1, 0)}</controller>""",
                                  2, 1),
    # nested pci-bridges (pc, SeaBIOS)
    "nested-pci-bridges": _bridge_domain("lt-nested", "pc", False, f"""
<controller type='pci' index='1' model='pci-bridge'><target chassisNr='1'/>{_pci(0, 3)}</controller>
<controller type='pci' index='2' model='pci-bridge'><target chassisNr='2'/>{_pci(1, 1)}</controller>""",
                                         2, 2),
}


@pytest.mark.parametrize("name", sorted(BRIDGE_DOMAINS))
def test_bridges_read_from_the_domain_as_from_libvirts_argv(oracle: Oracle, name: str) -> None:
    """The hook's reading of a domain's bridges and <hostdev> (layoutd.libvirt.pci) is the
    bridge tree, slots and buses of the command line libvirt itself generates for it, and the
    known firmware places the GPU's BARs the same from both."""
    xml = BRIDGE_DOMAINS[name]
    with tempfile.TemporaryDirectory(prefix="layoutd-oracle-") as folder:
        theirs = native(oracle.virsh, xml, Path(folder))
    assert not isinstance(theirs, str), theirs
    ours = with_buses(translate_xml(xml, "domain.xml", oracle.libvirt).argv, xml, "domain.xml")
    family = "q35" if "q35" in xml else "pc"
    host = {GPU.address: GPU}
    from_xml, from_argv = read_argv(ours, family, host), read_argv(theirs, family, host)
    assert from_xml.ports == from_argv.ports and len(from_xml.ports) >= 2
    shape = [(d.slot, d.function, d.port, d.bars, d.rom) for d in from_argv.devices]
    assert [(d.slot, d.function, d.port, d.bars, d.rom) for d in from_xml.devices] == shape
    gpu = next(d for d in from_xml.devices if d.id == GPU.address)
    assert gpu.port == "pci.3" if name == "switch" else gpu.port == "pci.2"
    assert (from_xml.firmware, from_xml.notes) == (from_argv.firmware, from_argv.notes)
    guest = predict(ours, version=oracle.qemu)
    build = OVMF_12 if from_xml.firmware else SEABIOS_12
    placed = [place(build, board(guest, pci, page_1g("EPYC", {})))
              for pci in (from_xml, from_argv)]
    assert placed[0] == placed[1]
    assert any(bar.device == GPU.address and bar.start for bar in placed[0].bars)
