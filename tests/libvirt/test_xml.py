"""Domain XML reading, translation to argv, emitting and in-place editing (no daemon needed)."""

import shutil
import subprocess
from pathlib import Path

import pytest

from layoutd.emit.libvirt import emit_domain
from layoutd.errors import InputError
from layoutd.libvirt.argv import translate_xml
from layoutd.libvirt.domain import read_domain
from layoutd.libvirt.edit import apply_config
from layoutd.libvirt.xmltext import parse
from layoutd.record import replace
from layoutd.specfile import parse_spec
from tests.conftest import EXAMPLES, need, run_layoutd

DATA = Path(__file__).parent / "data"
AMD = str(EXAMPLES / "hosts" / "amd-epyc-two-gpus")
SPEC = """\
name: lt-planned
cpu: {model: Skylake-Server, vendor: intel, count: 2, phys_bits: 48}  # Intel on the AMD host too
memory: {size: 1100G}
devices: [0000:2a:00.0]
"""


def validate(path: Path) -> None:
    need(shutil.which("virt-xml-validate") is not None, "virt-xml-validate (libvirt-clients)")
    result = subprocess.run(["virt-xml-validate", str(path), "domain"], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr + result.stdout


def test_entities_and_doctype_are_refused() -> None:
    bomb = '<!DOCTYPE d [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]><domain>&b;</domain>'
    with pytest.raises(InputError, match="DOCTYPE and entity"):
        parse(bomb)
    external = '<!DOCTYPE d SYSTEM "file:///etc/shadow"><domain/>'
    with pytest.raises(InputError):
        parse(external)


def test_broken_xml_names_the_line() -> None:
    with pytest.raises(InputError, match="line 2"):
        parse("<domain>\n<memory></domain>", "x.xml")


def test_translation_of_numa_dimm_and_cpu() -> None:
    xml = (DATA / "colliding.xml").read_text().replace(
        "<memory unit='GiB'>1100</memory>",
        "<maxMemory slots='2' unit='GiB'>1200</maxMemory><memory unit='GiB'>1101</memory>",
    ).replace("</devices>", "<memory model='dimm'><target><size unit='GiB'>1</size><node>0</node>"
              "</target><address type='dimm' slot='0' base='0x20000000000'/></memory></devices>"
    ).replace("</cpu>", "<numa><cell id='0' cpus='0-1' memory='1100' unit='GiB'/></numa></cpu>")
    translation = translate_xml(xml)
    argv = " ".join(translation.argv)
    assert "-cpu Skylake-Server,phys-bits=44" in argv and "-accel tcg" in argv  # <domain type='qemu'>
    assert f"-m size={1100 * 1024 * 1024}k,slots=2,maxmem={1200 * 1024 * 1024}k" in argv
    assert "-numa node,nodeid=0,cpus=0-1,memdev=ram-node0" in argv
    assert "pc-dimm,node=0,memdev=memdimm0,id=dimm0,slot=0,addr=0x20000000000" in argv
    assert translation.devices == ("0000:2a:00.0",)


def test_emitted_domain_validates_and_translates_back(tmp_path: Path) -> None:
    from layoutd.planning import make_plan

    plan = make_plan(parse_spec(SPEC), [AMD], "7.2")
    assert plan.config.devices, "the AMD hole should need a memory device"
    path = tmp_path / "planned.xml"
    path.write_text(emit_domain(plan))
    validate(path)
    argv = " ".join(translate_xml(path.read_bytes()).argv)
    for device in plan.config.devices:
        assert f"addr={device.addr:#x}" in argv


def test_fix_changes_only_memory_and_validates(tmp_path: Path) -> None:
    original = (DATA / "colliding.xml").read_bytes()
    result = run_layoutd("libvirt", "fix", str(DATA / "colliding.xml"), "--host", AMD)
    assert result.returncode == 0, result.stderr
    fixed = result.stdout.encode()
    path = tmp_path / "fixed.xml"
    path.write_bytes(fixed)
    validate(path)
    kept = [b"<!-- a comment that must survive -->", b"<on_poweroff>destroy</on_poweroff>",
            b"<address domain='0x0000' bus='0x2a' slot='0x00' function='0x0'/>"]
    for piece in kept:
        assert piece in fixed
    # Outside the memory elements, every line of the original survives in order.
    unchanged = [line for line in original.splitlines() if b"emory" not in line]
    remaining = iter(fixed.splitlines())
    assert all(any(line == other for other in remaining) for line in unchanged)
    assert b"<address type='dimm'" in fixed
    # the user's units stay where the size is exact in them (1100 GiB in all: 1010 boot + 90 DIMM)
    assert b"<memory unit='GiB'>1100</memory>" in fixed
    assert b"<currentMemory unit='GiB'>1100</currentMemory>" in fixed
    assert b"<maxMemory slots='1' unit='GiB'>" in fixed


def test_units_are_kept_only_where_exact() -> None:
    from layoutd.emit.elements import in_unit

    assert in_unit(1100 << 30, "GiB") == ("GiB", 1100)
    assert in_unit((1100 << 30) + (64 << 20), "GiB") == ("KiB", ((1100 << 30) + (64 << 20)) // 1024)
    assert in_unit(2 * 10**9, "GB") == ("GB", 2)
    assert in_unit(1 << 30, None) == ("KiB", 1 << 20)


def test_apply_config_round_trip_is_idempotent() -> None:
    from layoutd.planning import make_plan

    plan = make_plan(parse_spec(SPEC), [AMD], "7.2")
    once = apply_config((DATA / "colliding.xml").read_bytes(), plan.config)
    assert apply_config(once, plan.config) == once


def test_max_ram_below_4g_goes_to_qemu_commandline() -> None:
    from layoutd.planning import make_plan

    plan = make_plan(parse_spec(SPEC), [AMD], "7.2")
    config = replace(plan.config, max_ram_below_4g=0x80000000)
    edited = apply_config((DATA / "colliding.xml").read_bytes(), config)
    assert b"xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'" in edited
    argv = translate_xml(edited).argv
    assert argv[-2:] == ("-machine", f"max-ram-below-4g={0x80000000}")
    assert apply_config(edited, config).count(b"max-ram-below-4g") == 1


@pytest.mark.parametrize(("machine", "expected"), [("pc-q35-6.2", "7.2"), ("pc-q35-7.2", "7.2"),
                                                   ("pc-i440fx-9.1", "10.0"), ("pc-q35-11.0", "11.1"),
                                                   ("pc-q35-12.0", None),
                                                   ("pc-q35-99.0", None),
                                                   ("q35", None)])
def test_qemu_version_from_the_machine_type_when_no_emulator_answers(machine: str,
                                                                      expected: str | None) -> None:
    """<emulator> that does not answer: the oldest modelled QEMU that accepts the machine type."""
    from layoutd.libvirt.domain import read_domain
    from layoutd.libvirt.guard import domain_qemu_version

    xml = (f"<domain type='kvm'><name>v</name><memory unit='GiB'>1</memory><os><type arch='x86_64' "
           f"machine='{machine}'>hvm</type></os><devices><emulator>/nonexistent/qemu</emulator>"
           "</devices></domain>")
    domain = read_domain(xml, "v.xml")
    if expected is None:
        with pytest.raises(InputError) as caught:
            domain_qemu_version(domain, None)
        assert caught.value.field == "<os><type machine>" and caught.value.file == "v.xml"
    else:
        assert domain_qemu_version(domain, None) == expected
    assert domain_qemu_version(domain, "10.0") == "10.0"


HUGE_DOMAIN = """<domain type='kvm'>
  <name>hp</name>
  <memory unit='GiB'>8</memory>
  <currentMemory unit='GiB'>8</currentMemory>{backing}
  <vcpu placement='static'>4</vcpu>
  <os>
    <type arch='x86_64' machine='pc-q35-6.2'>hvm</type>
  </os>
  <cpu mode='host-passthrough' check='none'/>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
  </devices>
</domain>
"""
HUGE_SPEC = """\
name: hp
machine: pc-q35-6.2
cpu: {model: host, count: 4}
memory: {size: 1100G, hugepages: 1G}
devices: [0000:29:00.0]
"""


@pytest.mark.parametrize("backing", [
    "",
    "\n  <memoryBacking>\n    <hugepages><page size='2048' unit='KiB'/></hugepages>\n    <nosharepages/>\n"
    "  </memoryBacking>",
])
def test_apply_keeps_the_spec_page_size_for_boot_ram(backing: str, tmp_path: Path) -> None:
    """Issue 16: boot RAM with hugepages in the spec is backed by them in the applied domain, as
    the DIMMs are, and as `plan --format libvirt` emits; other <memoryBacking> children stay."""
    domain, spec = tmp_path / "hp.xml", tmp_path / "hp.yaml"
    domain.write_text(HUGE_DOMAIN.format(backing=backing))
    spec.write_text(HUGE_SPEC)
    result = run_layoutd("libvirt", "apply", str(domain), str(spec), "--host", AMD)
    assert result.returncode == 0, result.stderr
    applied = tmp_path / "applied.xml"
    applied.write_text(result.stdout)
    validate(applied)
    read = read_domain(applied.read_bytes(), str(applied))
    assert read.hugepage_size == 1 << 30, result.stdout
    assert "<pagesize unit='KiB'>1048576</pagesize>" in result.stdout  # the DIMM's
    assert result.stdout.count("<page size=") == 1 and ("<nosharepages/>" in result.stdout) == bool(backing)
    emitted = run_layoutd("plan", str(spec), "--host", AMD, "--format", "libvirt")
    assert read_domain(emitted.stdout.encode(), "emitted").hugepage_size == 1 << 30


def test_fix_a_domain_sized_by_its_one_numa_cell() -> None:
    """No <memory>: libvirt takes the size from the NUMA cell. `libvirt fix` plans it (one cell
    is NUMA node 0 for QEMU too), writes <memory> in, and reads the result back as planned."""
    from layoutd.libvirt.fix import fix

    xml = (b"<domain type='kvm'><name>nomem</name><vcpu>2</vcpu><os><type arch='x86_64' "
           b"machine='pc-q35-6.2'>hvm</type></os><cpu mode='host-passthrough'><numa><cell id='0' "
           b"cpus='0-1' memory='1100' unit='GiB'/></numa></cpu><devices><hostdev mode='subsystem' "
           b"type='pci' managed='yes'><source><address domain='0x0000' bus='0x2a' slot='0x00' "
           b"function='0x0'/></source></hostdev></devices></domain>")
    data, plan = fix(xml, "nomem.xml", [str(EXAMPLES / "hosts" / "amd-epyc-two-gpus")], "7.2")
    text = data.decode()
    assert "<memory unit='KiB'>" in text and "<address type='dimm' slot='0'" in text
    assert all(region.node == 0 for region in plan.layout)
    assert translate_xml(data).domain.memory == 1100 << 30


def test_cpu_phys_bits_as_each_libvirt_passes_them() -> None:
    """Under KVM host-model is the host's named model, which takes mode='emulate' bits; libvirt
    9.0 drops <maxphysaddr mode='passthrough' limit> (its domxml-to-native: host-phys-bits=on
    alone), 9.3 and later pass it (tests/libvirt/test_libvirt_versions.py asks the daemons)."""
    def cpu(inner: str, libvirt: tuple[int, int]) -> str:
        xml = (f"<domain type='kvm'><name>c</name><memory unit='GiB'>4</memory><os><type "
               f"arch='x86_64' machine='q35'>hvm</type></os>{inner}</domain>")
        argv = translate_xml(xml, libvirt=libvirt).argv
        return argv[argv.index("-cpu") + 1]

    model = "<cpu mode='host-model'><maxphysaddr mode='emulate' bits='39'/></cpu>"
    assert cpu(model, (9, 0)) == "host,host-phys-bits=off,phys-bits=39"
    limit = "<cpu mode='host-passthrough'><maxphysaddr mode='passthrough' limit='39'/></cpu>"
    assert cpu(limit, (9, 0)) == "host,host-phys-bits=on"
    assert cpu(limit, (9, 3)) == "host,host-phys-bits=on,host-phys-bits-limit=39"


def test_a_cpu_fix_is_said_in_xml_libvirt_takes() -> None:
    """QEMU's `phys-bits too low` fix in libvirt's words: mode='emulate' in the domain's CPU; on a
    host CPU, host-model (host-passthrough ignores emulate)."""
    from layoutd.fixes import Fix

    named = Fix("cpu", "EPYC,phys-bits=42", "why").xml_text()
    assert named == "<cpu><maxphysaddr mode='emulate' bits='42'/></cpu> (why)"
    host = Fix("cpu", "host,host-phys-bits=off,phys-bits=42", "why")
    assert host.xml_text().startswith("<cpu mode='host-model'><maxphysaddr mode='emulate' bits='42'/>")
    assert host.as_json("libvirt")["change"] == {"cpu.maxphysaddr": "host,host-phys-bits=off,phys-bits=42"}
