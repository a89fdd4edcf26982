"""Against a real libvirtd: the hook refuses a colliding domain at start, a planned domain starts
with exactly the planned map, and a warn-policy hook lets a colliding one start and logs.

No real VFIO device exists here, so the hook is pointed at a host tree from examples/hosts via its
configuration, and started domains carry no <hostdev>: the hook's `devices` setting names the
device instead (the documented fallback for domains without one). The refused domain keeps its
<hostdev>: the hook refuses before libvirt would touch the device.
"""

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from layoutd.libvirt.argv import translate_xml
from layoutd.libvirt.fix import fix
from layoutd.models.plan import Plan
from layoutd.qemu import predict
from layoutd.qemu.mtree import ram_entries
from tests.conftest import EXAMPLES, need_kvm, run_layoutd
from tests.libvirt.daemon import Virsh
from tests.support.qemu_runner import this_machine_cpu

pytestmark = pytest.mark.libvirt

DATA = Path(__file__).parent / "data"
AMD = str(EXAMPLES / "hosts" / "amd-epyc-two-gpus")
DEVICE = "0000:2a:00.0"
HOSTDEV = re.compile(r"\s*<hostdev .*?</hostdev>", re.S)


def without_hostdevs(xml: str) -> str:
    return HOSTDEV.sub("", xml)


Define = Callable[[str, str], None]


@pytest.fixture
def define(libvirtd: Virsh, tmp_path: Path) -> Iterator[Define]:
    """define(NAME, XML); everything defined is destroyed and undefined afterwards."""
    names: list[str] = []

    def define_domain(name: str, xml: str) -> None:
        path = tmp_path / f"{name}.xml"
        path.write_text(xml)
        libvirtd.run("define", str(path))
        names.append(name)

    yield define_domain
    for name in names:
        libvirtd.run("destroy", name, check=False)
        libvirtd.run("undefine", name, check=False)


def planned() -> tuple[str, Plan]:
    data, plan = fix((DATA / "colliding.xml").read_bytes(), "colliding.xml", [AMD], "7.2")
    xml = data.decode().replace("<name>lt-big</name>", "<name>lt-planned</name>").replace(
        "000000000002</uuid>", "000000000003</uuid>")
    return without_hostdevs(xml), plan


def test_colliding_domain_is_refused_with_the_hooks_message(libvirtd: Virsh, define: Define) -> None:
    libvirtd.install_hook("--policy", "enforce", "--host", AMD)
    define("lt-big", (DATA / "colliding.xml").read_text())
    result = libvirtd.run("start", "lt-big", "--paused", check=False)
    assert result.returncode != 0
    message = result.stderr
    assert "layoutd hook: refusing to start domain 'lt-big'" in message, message
    assert "reserved hole 0xfd00000000-0xffffffffff of IOMMU group 27" in message, message
    assert re.search(r"ram '[\w.-]+' 0x[0-9a-f]+-0xffffffffff lies in the", message), message
    assert "not modelled" not in message
    assert DEVICE in message and "layoutd libvirt fix" in message and "check --libvirt" in message
    state = libvirtd.run("domstate", "lt-big").stdout.strip()
    assert state == "shut off"
    log = libvirtd.hook_log.read_text()
    assert "lt-big prepare begin: refused" in log


def test_planned_domain_starts_with_exactly_the_planned_map(libvirtd: Virsh, define: Define) -> None:
    libvirtd.install_hook("--policy", "enforce", "--host", AMD, "--devices", DEVICE)
    xml, plan = planned()
    define("lt-planned", xml)
    result = libvirtd.run("start", "lt-planned", "--paused", check=False)
    assert result.returncode == 0, result.stderr + libvirtd.qemu_log("lt-planned")[-2000:]
    mtree = libvirtd.run("qemu-monitor-command", "lt-planned", "--hmp", "info mtree -f").stdout
    real = sorted((entry.start, entry.end) for entry in ram_entries(mtree))
    assert real == sorted((region.start, region.end) for region in plan.layout)
    reply = libvirtd.run("qemu-monitor-command", "lt-planned",
                         '{"execute": "query-memory-devices"}').stdout
    dimms = sorted((d["data"]["addr"], d["data"]["size"]) for d in json.loads(reply)["return"])
    assert dimms == sorted((d.addr, d.size) for d in plan.config.devices)
    assert "lt-planned prepare begin: ok" in libvirtd.hook_log.read_text()


def test_warn_policy_lets_a_colliding_domain_start_and_logs(libvirtd: Virsh, define: Define) -> None:
    libvirtd.install_hook("--policy", "warn", "--host", AMD, "--devices", DEVICE)
    xml = without_hostdevs((DATA / "colliding.xml").read_text())
    define("lt-warn", xml.replace("<name>lt-big</name>", "<name>lt-warn</name>").replace(
        "000000000002</uuid>", "000000000004</uuid>"))
    result = libvirtd.run("start", "lt-warn", "--paused", check=False)
    assert result.returncode == 0, result.stderr
    assert libvirtd.run("domstate", "lt-warn").stdout.strip() == "paused"
    log = libvirtd.hook_log.read_text()
    assert "lt-warn prepare begin: allowed (policy warn)" in log
    assert "reserved hole 0xfd00000000-0xffffffffff" in log


KVM_DOMAIN = """<domain type='kvm'>
  <name>lt-kvm</name>
  <uuid>6c3f1a52-8d7e-4b1a-9f3e-000000000020</uuid>
  <maxMemory slots='2' unit='GiB'>1000</maxMemory>
  <memory unit='GiB'>3</memory>
  <vcpu placement='static'>1</vcpu>
  <os><type arch='x86_64' machine='q35'>hvm</type></os>
  <features><acpi/></features>
  <cpu mode='{mode}' check='none'>{model}
    <numa><cell id='0' cpus='0' memory='2' unit='GiB'/></numa>
  </cpu>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <memory model='dimm'><target><size unit='GiB'>1</size><node>0</node></target></memory>
  </devices>
</domain>
"""


@pytest.mark.parametrize(("mode", "model"), [
    ("host-passthrough", ""),
    ("custom", "<model fallback='allow'>EPYC</model><maxphysaddr mode='passthrough'/>"),
])
def test_kvm_domain_map_is_what_the_hook_predicts(libvirtd: Virsh, define: Define, mode: str,
                                                  model: str) -> None:
    """<domain type='kvm'>: libvirt runs QEMU under KVM, where the guest CPU takes this machine's
    vendor (even for EPYC) and host-passthrough its address bits. With 1000 GiB of maxMemory the
    AMD rule would move RAM to 1 TiB: the hook's translation must predict what libvirt started."""
    need_kvm()
    libvirtd.install_hook("--policy", "enforce", "--host", AMD)
    xml = KVM_DOMAIN.format(mode=mode, model=model)
    define("lt-kvm", xml)
    result = libvirtd.run("start", "lt-kvm", "--paused", check=False)
    assert result.returncode == 0, result.stderr + libvirtd.qemu_log("lt-kvm")[-2000:]
    assert "-accel kvm" in libvirtd.qemu_log("lt-kvm") or "accel=kvm" in libvirtd.qemu_log("lt-kvm")
    mtree = libvirtd.run("qemu-monitor-command", "lt-kvm", "--hmp", "info mtree -f").stdout
    real = sorted((entry.start, entry.end) for entry in ram_entries(mtree))
    here = this_machine_cpu()
    guest = predict(translate_xml(xml).argv, version="7.2", host_cpu=here)
    assert real == sorted((region.start, region.end) for region in guest.layout)
    assert guest.cpu_vendor == here.vendor
    relocated = any(start >= 1 << 40 for start, _ in real)
    assert relocated == (here.vendor == "amd")
    assert "lt-kvm prepare begin: ok" in libvirtd.hook_log.read_text()


OLD_TYPE_DOMAIN = """<domain type='kvm'>
  <name>lt-old</name>
  <uuid>6c3f1a52-8d7e-4b1a-9f3e-000000000030</uuid>
  <memory unit='GiB'>1100</memory>
  <vcpu placement='static'>2</vcpu>
  <os><type arch='x86_64' machine='pc-q35-6.2'>hvm</type></os>
  <features><acpi/></features>
  <cpu mode='host-passthrough' check='none'/>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
  </devices>
</domain>
"""


def test_old_machine_type_is_refused_then_fixed_and_starts(libvirtd: Virsh, define: Define,
                                                             tmp_path: Path) -> None:
    """The field case: a KVM domain kept on pc-q35-6.2 (before QEMU's AMD 1 TiB rule) with
    1100 GiB. The hook refuses it on the AMD host; `layoutd libvirt fix` rewrites its memory;
    the fixed domain starts under KVM with RAM clear of the HyperTransport hole, exactly where
    the hook's translation says."""
    need_kvm()
    libvirtd.install_hook("--policy", "enforce", "--host", AMD, "--devices", DEVICE)
    define("lt-old", OLD_TYPE_DOMAIN)
    refused = libvirtd.run("start", "lt-old", "--paused", check=False)
    assert refused.returncode != 0
    assert "reserved hole 0xfd00000000-0xffffffffff" in refused.stderr, refused.stderr
    original = tmp_path / "old.xml"
    original.write_text(OLD_TYPE_DOMAIN)
    fixed = run_layoutd("libvirt", "fix", str(original), "--host", AMD, "--devices", DEVICE)
    assert fixed.returncode == 0, fixed.stderr
    assert "<address type='dimm'" in fixed.stdout and "pc-q35-6.2" in fixed.stdout
    libvirtd.run("undefine", "lt-old")
    define("lt-old", fixed.stdout)
    started = libvirtd.run("start", "lt-old", "--paused", check=False)
    assert started.returncode == 0, started.stderr + libvirtd.qemu_log("lt-old")[-2000:]
    mtree = libvirtd.run("qemu-monitor-command", "lt-old", "--hmp", "info mtree -f").stdout
    real = sorted((entry.start, entry.end) for entry in ram_entries(mtree))
    assert all(end < 0xFD00000000 or start > 0xFFFFFFFFFF for start, end in real), real
    guest = predict(translate_xml(fixed.stdout).argv, version="7.2", host_cpu=this_machine_cpu())
    assert real == sorted((region.start, region.end) for region in guest.layout)
    assert "lt-old prepare begin: ok" in libvirtd.hook_log.read_text()


UNMODELLED_DOMAIN = """<domain type='qemu'>
  <name>lt-unmodelled</name>
  <uuid>6c3f1a52-8d7e-4b1a-9f3e-000000000040</uuid>
  <memory unit='MiB'>512</memory>
  <vcpu placement='static'>1</vcpu>
  <os><type arch='x86_64' machine='pc-q35-2.4'>hvm</type></os>
  <features><acpi/></features>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
  </devices>
</domain>
"""


def test_unmodelled_domain_starts_with_a_warning_under_enforce(libvirtd: Virsh,
                                                               define: Define) -> None:
    """The hook blocks only a proven collision: a machine type the model does not cover
    (pc-q35-2.4, which QEMU still starts) is answered by a dry run of the domain's own
    <emulator> under `enforce`, and starts; never refused as "not modelled"."""
    libvirtd.install_hook("--policy", "enforce", "--host", AMD, "--devices", DEVICE)
    define("lt-unmodelled", UNMODELLED_DOMAIN)
    result = libvirtd.run("start", "lt-unmodelled", "--paused", check=False)
    assert result.returncode == 0, result.stderr + libvirtd.qemu_log("lt-unmodelled")[-2000:]
    assert libvirtd.run("domstate", "lt-unmodelled").stdout.strip() == "paused"
    log = libvirtd.hook_log.read_text()
    assert "lt-unmodelled prepare begin: ok" in log, log
    assert "not modelled" in log and "dry run of /usr/bin/qemu-system-x86_64" in log, log


def test_applied_hugepages_survive_a_real_define(libvirtd: Virsh, define: Define, tmp_path: Path) -> None:
    """Issue 16: `libvirt apply` of a spec with hugepages: 1G gives a domain that the real
    libvirtd accepts and keeps with <memoryBacking><hugepages> for boot RAM."""
    from tests.libvirt.test_xml import HUGE_DOMAIN, HUGE_SPEC

    domain, spec = tmp_path / "hp.xml", tmp_path / "hp.yaml"
    domain.write_text(HUGE_DOMAIN.format(backing="").replace("<name>hp</name>", "<name>lt-huge</name>"))
    spec.write_text(HUGE_SPEC)
    applied = run_layoutd("libvirt", "apply", str(domain), str(spec), "--host", AMD)
    assert applied.returncode == 0, applied.stderr
    define("lt-huge", applied.stdout)
    kept = libvirtd.run("dumpxml", "lt-huge").stdout
    assert re.search(r"<memoryBacking>\s*<hugepages>\s*<page size='1048576' unit='KiB'/>", kept), kept


def test_a_bar_in_the_ht_hole_is_refused_by_the_real_daemons_hook(libvirtd: Virsh,
                                                                  define: Define) -> None:
    """960 GiB: RAM clear of every hole, but SeaBIOS 1.16.2 (QEMU 7.2's) would put the GPU's
    32 GiB BAR1 across the HyperTransport hole: refused before libvirt touches the device."""
    libvirtd.install_hook("--policy", "enforce", "--host", AMD)
    xml = (DATA / "colliding.xml").read_text().replace("1100</", "960</").replace(
        "    <maxphysaddr mode='emulate' bits='44'/>\n", "").replace("lt-big", "lt-bar").replace(
        "000000000002</uuid>", "000000000004</uuid>")
    define("lt-bar", xml)
    result = libvirtd.run("start", "lt-bar", "--paused", check=False)
    assert result.returncode != 0
    assert "the firmware's placement of assigned BARs would overlap" in result.stderr, result.stderr
    assert "bar '0000:2a:00.0 BAR1' 0xfd00000000-0xffffffffff lies in the reserved hole" \
        in result.stderr and "its guest RAM" not in result.stderr
    assert libvirtd.run("domstate", "lt-bar").stdout.strip() == "shut off"
