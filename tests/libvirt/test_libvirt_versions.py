"""Every libvirt XML layoutd emits or suggests is taken by the libvirt it is written for, and
gives the guest the phys-bits the plan needs: each passes that version's own
`virt-xml-validate` and `virsh domxml-to-native` (libvirt 9.0 here, 11.3 in the trixie root,
12.x in the sid root), and libvirt's -cpu carries the planned bits.

host-passthrough keeps the host's phys-bits whatever <maxphysaddr mode='emulate'> says, and
libvirt 9.0 has no <maxphysaddr mode='passthrough' limit> (its schema refuses it, and its
domxml-to-native drops it): for 9.0 the domain is host-model (the host's own named model) with
mode='emulate'; from 9.3 host-passthrough with the limit.
"""

import re
import subprocess
from pathlib import Path

import pytest

from layoutd.collisions import check
from layoutd.emit.plan import render
from layoutd.errors import LayoutdError
from layoutd.libvirt.fix import fix, verify
from layoutd.libvirt.guard import check_domain_file
from layoutd.planning import make_plan
from layoutd.specfile import load_spec
from tests.conftest import EXAMPLES, ROOT, need
from tests.golden.test_golden import HOSTS, SPECS
from tests.libvirt.daemon import SID_LIBVIRT_ROOT, TRIXIE_ROOT, Virsh

pytestmark = pytest.mark.libvirt

# (version the XML is written for, the fixture of its daemon, the root of its tools)
VERSIONS = {"9.0": ("libvirtd", None), "11.3": ("libvirtd_trixie", TRIXIE_ROOT),
            "12.8": ("libvirtd_sid", SID_LIBVIRT_ROOT)}
RVFIO_HOST = str(EXAMPLES / "hosts" / "intel-46bit-cpu-39bit-iommu")
NO_VFIO_HERE = "VFIO PCI device assignment is not supported by the host"


def validate(xml: str, root: Path | None) -> None:
    """That version's own virt-xml-validate (a shell script over its schemas), on stdin."""
    command = ["virt-xml-validate", "-", "domain"]
    if root is not None:
        need((root / "usr/bin/virt-xml-validate").exists(), f"virt-xml-validate in {root}")
        command = ["chroot", str(root), *command]
    result = subprocess.run(command, input=xml, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr + result.stdout + xml


def native_cpu(virsh: Virsh, xml: str, folder: Path) -> str:
    """The -cpu value of that daemon's `domxml-to-native qemu-argv`. libvirt names VFIO for a
    <hostdev> when it prepares the host (a pretend run needs it written); 12.x also asks the host
    for an IOMMU and /dev/vfio, which this build machine has not: there the <hostdev>s (which
    change no -cpu, -m or memory option) are left out, and said so by the error it gave."""
    xml = xml.replace("<hostdev mode='subsystem' type='pci' managed='yes'>",
                      "<hostdev mode='subsystem' type='pci' managed='yes'><driver name='vfio'/>")
    path = folder / "domain.xml"
    path.write_text(xml)
    result = virsh.run("domxml-to-native", "qemu-argv", str(path), check=False)
    if result.returncode != 0 and NO_VFIO_HERE in result.stderr:
        path.write_text(re.sub(r"<hostdev .*?</hostdev>", "", xml, flags=re.S))
        result = virsh.run("domxml-to-native", "qemu-argv", str(path), check=False)
    assert result.returncode == 0, result.stderr
    found = re.findall(r"-cpu (\S+)", result.stdout)
    return found[-1] if found else ""


def guest_bits(cpu: str, host_bits: int) -> int | None:
    """The phys-bits QEMU gives the guest from libvirt's -cpu (KVM; the host has host_bits)."""
    model, *parts = cpu.split(",")
    props = dict(part.split("=", 1) for part in parts if "=" in part)
    if model == "host" and props.get("host-phys-bits", "on") != "off":
        return min(host_bits, int(props.get("host-phys-bits-limit", host_bits)))
    return int(props["phys-bits"]) if "phys-bits" in props else None


@pytest.fixture(params=list(VERSIONS), scope="module")
def target(request: pytest.FixtureRequest) -> tuple[tuple[int, int], Virsh, Path | None]:
    fixture, root = VERSIONS[request.param]
    major, minor = request.param.split(".")
    return (int(major), int(minor)), request.getfixturevalue(fixture), root


def _plans() -> list[tuple[str, str]]:
    return [(spec, host) for spec in SPECS for host in HOSTS]


def test_every_emitted_domain_is_taken_by_its_libvirt(target, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Every example spec planned on every example host (the golden plans), written for the
    version: validated, translated by that daemon, and with the planned phys-bits in its -cpu."""
    version, virsh, root = target
    monkeypatch.chdir(ROOT)
    emitted = 0
    for spec, host in _plans():
        try:
            plan = make_plan(load_spec(f"examples/specs/{spec}.yaml"), [f"examples/hosts/{host}"],
                             "10.0")
        except LayoutdError:
            continue
        xml = render(plan, "libvirt", (version, "test"))
        validate(xml, root)
        verify(xml.encode(), plan, f"{spec}.xml", version)  # read back for this version: the plan's map
        cpu = native_cpu(virsh, xml, tmp_path)
        if plan.config.phys_bits is not None and plan.config.accel == "kvm":
            assert plan.host_cpu is not None and plan.host_cpu.phys_bits is not None
            assert guest_bits(cpu, plan.host_cpu.phys_bits) == plan.config.phys_bits, (spec, host, cpu)
        emitted += 1
    assert emitted >= 10


def test_the_46_bit_cpu_39_bit_iommu_domain(target, tmp_path: Path) -> None:
    """The issue's case: -cpu host under KVM, 39 phys-bits for OVMF's window. For 9.0 host-model
    with mode='emulate', from 9.3 host-passthrough with the limit; never mode='emulate' on
    host-passthrough; layoutd's check of the domain, for that version, is clean."""
    version, virsh, root = target
    plan = make_plan(load_spec(str(EXAMPLES / "specs/rvfio-ovmf.yaml")), [RVFIO_HOST], "10.0")
    assert plan.config.phys_bits == 39
    xml = render(plan, "libvirt", (version, "test"))
    assert not re.search(r"host-passthrough.*mode='emulate'", xml, flags=re.S)
    assert ("<cpu mode='host-model'" in xml) == (version < (9, 3))
    validate(xml, root)
    assert guest_bits(native_cpu(virsh, xml, tmp_path), 46) == 39
    if version < (9, 3):  # why: the 9.3 form is refused by this schema, its limit dropped
        newer = render(plan, "libvirt", ((9, 3), "test"))
        with pytest.raises(AssertionError, match="fails to validate"):
            validate(newer, root)
        assert guest_bits(native_cpu(virsh, newer, tmp_path), 46) == 46
    path = tmp_path / "planned.xml"
    path.write_text(xml)
    said = f"{version[0]}.{version[1]}"
    checked = check_domain_file(str(path), host_source=RVFIO_HOST, version="10.0", libvirt=said)
    assert checked.bars is not None and not checked.bars.collisions


def test_suggested_and_fixed_domains_are_taken_by_their_libvirt(target, tmp_path: Path) -> None:
    """check --libvirt on the domain without the limit suggests a <cpu>/<maxphysaddr> for the
    version; the domain with it spliced in, and `libvirt fix`'s output, pass that libvirt's
    tools, give the guest 39 bits, and check clean."""
    version, virsh, root = target
    said = f"{version[0]}.{version[1]}"
    plan = make_plan(load_spec(str(EXAMPLES / "specs/rvfio-ovmf.yaml")), [RVFIO_HOST], "10.0")
    planned = render(plan, "libvirt", ((9, 3), "test"))
    bare = re.sub(r"\s*<maxphysaddr [^>]*/>", "", planned)  # host-passthrough, the host's 46 bits
    path = tmp_path / "bare.xml"
    path.write_text(bare)
    checked = check_domain_file(str(path), host_source=RVFIO_HOST, version="10.0", libvirt=said)
    assert checked.bars is not None and checked.bars.collisions and checked.bars.fixes
    xmls = [fix.xml for fix in checked.bars.fixes() if "maxphysaddr" in fix.xml]
    assert xmls, "a phys-bits suggestion"
    for element in xmls:
        if element.startswith("<cpu"):
            suggested = re.sub(r"<cpu .*?</cpu>", element, bare, flags=re.S)
        else:
            suggested = bare.replace("<cpu mode='host-passthrough' check='none'>",
                                     "<cpu mode='host-passthrough' check='none'>" + element)
        fixed, _ = fix(bare.encode(), "bare.xml", [RVFIO_HOST], "10.0", libvirt=version)
        for xml in (suggested, fixed.decode()):
            validate(xml, root)
            assert guest_bits(native_cpu(virsh, xml, tmp_path), 46) == 39, xml
            path.write_text(xml)
            again = check_domain_file(str(path), host_source=RVFIO_HOST, version="10.0",
                                      libvirt=said)
            assert again.bars is not None and not again.bars.collisions, xml


def test_ram_suggestions_are_taken_by_their_libvirt(target, tmp_path: Path) -> None:
    """check --libvirt on an 1100 GiB AMD guest on pc-q35-6.2 (RAM across the HyperTransport
    hole) suggests a newer machine type (and whatever else clears it): each spliced into the domain
    passes that libvirt's tools and checks clean."""
    from layoutd.libvirt.edit import with_machine

    version, virsh, root = target
    said = f"{version[0]}.{version[1]}"
    host = str(EXAMPLES / "hosts" / "amd-epyc-two-gpus")
    xml = (Path(__file__).parent / "data/colliding.xml").read_text().replace(
        "machine='q35'", "machine='pc-q35-6.2'").replace(
        "<domain type='qemu'>", "<domain type='kvm'>").replace(
        "<model fallback='forbid'>Skylake-Server</model>", "<model fallback='forbid'>EPYC</model>")
    path = tmp_path / "old.xml"
    path.write_text(xml)
    checked = check_domain_file(str(path), host_source=host, version="7.2", libvirt=said)
    assert checked.fixes_for is not None
    fixes = list(checked.fixes_for())
    assert "machine" in {f.option for f in fixes}, fixes
    for suggestion in fixes:
        if suggestion.option == "machine":
            changed = with_machine(xml.encode(), suggestion.value).decode()
        else:
            element = suggestion.xml_text().split(" (")[0]
            changed = re.sub(r"<memory unit=[^>]*>\d+</memory>", element, xml, count=1)
            changed = re.sub(r"<currentMemory[^>]*>\d+</currentMemory>",
                             element.replace("memory", "currentMemory"), changed)
        validate(changed, root)
        native_cpu(virsh, changed, tmp_path)
        path.write_text(changed)
        again = check_domain_file(str(path), host_source=host, version="7.2", libvirt=said)
        assert not check(again.guest.layout, again.host), suggestion
