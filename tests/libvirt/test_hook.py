"""The hook without a daemon: install, fast operations, fail-open/closed."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, need, run_layoutd


def install(root: Path, *options: str) -> Path:
    result = run_layoutd("install-hook", "--root", str(root), *options)
    assert result.returncode == 0, result.stderr
    assert "Restart libvirtd" in result.stdout
    return root / "etc/libvirt/hooks/qemu.d/50-layoutd"


def call(hook: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "LAYOUTD_HOST"}
    return subprocess.run([str(hook), *args], input=stdin, capture_output=True, text=True,
                          timeout=60, env=env)


def test_install_leaves_other_hooks_alone(tmp_path: Path) -> None:
    other = tmp_path / "etc/libvirt/hooks/qemu.d/10-other"
    other.parent.mkdir(parents=True)
    other.write_text("#!/bin/sh\nexit 0\n")
    legacy = tmp_path / "etc/libvirt/hooks/qemu"
    legacy.write_text("#!/bin/sh\n")
    hook = install(tmp_path, "--policy", "warn")
    assert os.access(hook, os.X_OK)
    assert other.read_text() == "#!/bin/sh\nexit 0\n" and legacy.read_text() == "#!/bin/sh\n"
    assert "policy = warn" in (tmp_path / "etc/layoutd/hook.conf").read_text()
    assert sorted(p.name for p in hook.parent.iterdir()) == ["10-other", "50-layoutd"]


def test_other_operations_return_at_once_without_reading(tmp_path: Path) -> None:
    hook = install(tmp_path)
    for operation in (("started", "begin"), ("stopped", "end"), ("release", "end"),
                      ("migrate", "end"), ("restore", "end"), ("reconnect", "begin")):
        result = call(hook, "never-started", *operation, "-", stdin="not xml at all")
        assert result.returncode == 0 and result.stdout == "" and result.stderr == ""


def test_no_planner_imported_for_other_operations() -> None:
    code = ("import sys; from layoutd.cli import main; main(['hook','vm','stopped','end','-']);"
            "print(sorted(m for m in sys.modules if m.startswith(('layoutd.qemu','layoutd.host',"
            "'layoutd.solver','pydantic','yaml'))))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=ROOT, timeout=60)
    assert result.stdout.strip() == "[]", result.stdout + result.stderr


def test_broken_config_fails_open_except_prepare_under_enforce(tmp_path: Path) -> None:
    hook = install(tmp_path)
    config = tmp_path / "etc/layoutd/hook.conf"
    config.write_text(config.read_text() + "timeout = soon\n")
    assert call(hook, "vm", "release", "end", "-").returncode == 0
    refused = call(hook, "vm", "prepare", "begin", "-", stdin="<domain/>")
    assert refused.returncode != 0
    assert "configuration is broken" in refused.stderr and "timeout" in refused.stderr
    log = (tmp_path / "var/log/layoutd/hook.log").read_text()
    assert "release end: ignoring a broken configuration" in log
    config.write_text(config.read_text().replace("policy = enforce", "policy = warn"))
    assert call(hook, "vm", "prepare", "begin", "-", stdin="<domain/>").returncode == 0


def test_prepare_rejects_entity_bombs_under_enforce(tmp_path: Path) -> None:
    hook = install(tmp_path, "--devices", "0000:2a:00.0")
    bomb = '<!DOCTYPE d [<!ENTITY a "aaaa">]><domain><name>&a;</name></domain>'
    result = call(hook, "vm", "prepare", "begin", "-", stdin=bomb)
    assert result.returncode == 2
    assert "DOCTYPE and entity" in result.stderr and "Traceback" not in result.stderr


def test_prepare_without_devices_has_nothing_to_check(tmp_path: Path) -> None:
    hook = install(tmp_path)
    xml = (Path(__file__).parent / "data/colliding.xml").read_text()
    xml = xml.split("<hostdev")[0] + "</devices></domain>"
    assert call(hook, "vm", "prepare", "begin", "-", stdin=xml).returncode == 0
    assert "nothing to map" in (tmp_path / "var/log/layoutd/hook.log").read_text()




@pytest.mark.parametrize(("operation", "verb"), [
    ("prepare", "start"), ("migrate", "accept the incoming migration of"), ("restore", "restore")])
def test_start_incoming_migration_and_restore_are_judged_alike(tmp_path: Path, operation: str,
                                                              verb: str) -> None:
    """`migrate begin` (the destination, the incoming domain on stdin) and `restore begin` refuse
    a proven collision with this host's hole named, as `prepare begin` does; nothing on stdout
    (libvirt would take it as a replacement domain). A domain that fits passes."""
    amd = str(ROOT / "examples/hosts/amd-epyc-two-gpus")
    hook = install(tmp_path, "--host", amd)
    xml = (Path(__file__).parent / "data/colliding.xml").read_text()
    refused = call(hook, "lt-big", operation, "begin", "-", stdin=xml)
    assert refused.returncode == 1 and refused.stdout == "", refused.stderr
    assert f"layoutd hook: refusing to {verb} domain 'lt-big'" in refused.stderr, refused.stderr
    assert "reserved hole 0xfd00000000-0xffffffffff of IOMMU group 27" in refused.stderr
    small = xml.replace(">1100</memory>", ">64</memory>").replace(
        ">1100</currentMemory>", ">64</currentMemory>")
    allowed = call(hook, "lt-big", operation, "begin", "-", stdin=small)
    assert allowed.returncode == 0 and allowed.stdout == "" and allowed.stderr == "", allowed.stderr
    log = (tmp_path / "var/log/layoutd/hook.log").read_text()
    assert f"lt-big {operation} begin: refused" in log and f"lt-big {operation} begin: ok" in log


def test_a_hostdev_missing_from_the_host_is_named_as_such(tmp_path: Path) -> None:
    """Issue 16: not "--devices": the domain's <hostdev> the host lacks."""
    hook = install(tmp_path, "--host", str(ROOT / "examples/hosts/amd-epyc-two-gpus"))
    xml = (Path(__file__).parent / "data/colliding.xml").read_text().replace("bus='0x2a'", "bus='0x77'")
    result = call(hook, "vm", "prepare", "begin", "-", stdin=xml)
    assert result.returncode == 2, result.stderr
    assert "<hostdev> 0000:77:00.0: unknown device" in result.stderr, result.stderr


def bar_domain(memory: str, os_extra: str = "") -> str:
    """colliding.xml with no RAM collision: RAM ends below AMD's HyperTransport hole; an Intel
    CPU model, so QEMU does not move RAM to 1 TiB."""
    xml = (Path(__file__).parent / "data/colliding.xml").read_text()
    xml = xml.replace("<memory unit='GiB'>1100</memory>", f"<memory unit='GiB'>{memory}</memory>")
    xml = xml.replace("<currentMemory unit='GiB'>1100</currentMemory>",
                      f"<currentMemory unit='GiB'>{memory}</currentMemory>")
    xml = xml.replace("    <maxphysaddr mode='emulate' bits='44'/>\n", "")
    return xml.replace("hvm</type>\n", f"hvm</type>\n{os_extra}")


def bar_hook(tmp_path: Path) -> Path:
    hook = install(tmp_path, "--host", str(ROOT / "examples/hosts/amd-epyc-two-gpus"))
    config = tmp_path / "etc/layoutd/hook.conf"
    config.write_text(config.read_text() + "qemu_version = 7.2\n")
    return hook


def test_prepare_refuses_a_bar_in_the_ht_hole(tmp_path: Path) -> None:
    """960 GiB: RAM ends at 962G, clear of every hole; QEMU 7.2's SeaBIOS 1.16.2 puts the GPU's
    32 GiB BAR1 at 0xf800000000, across the HyperTransport hole. Refused, naming BAR and hole."""
    need(Path("/usr/share/seabios/bios-256k.bin").exists(), "seabios (Debian package)")
    result = call(bar_hook(tmp_path), "lt-big", "prepare", "begin", "-", stdin=bar_domain("960"))
    assert result.returncode == 1, result.stderr
    assert "bar '0000:2a:00.0 BAR1' 0xfd00000000-0xffffffffff lies in the reserved hole" \
        in result.stderr, result.stderr
    assert "its guest RAM" not in result.stderr


def test_prepare_allows_clear_bars_and_says_so(tmp_path: Path) -> None:
    need(Path("/usr/share/seabios/bios-256k.bin").exists(), "seabios (Debian package)")
    result = call(bar_hook(tmp_path), "lt-big", "prepare", "begin", "-", stdin=bar_domain("64"))
    assert result.returncode == 0, result.stderr
    log = (tmp_path / "var/log/layoutd/hook.log").read_text()
    assert "RAM region(s) and every assigned 64-bit BAR clear" in log, log


def test_prepare_allows_a_firmware_it_does_not_know_with_a_warning(tmp_path: Path) -> None:
    """The same BAR-colliding domain booting a firmware file layoutd does not know: the BARs
    are not predicted, so the domain starts and the log says why."""
    unknown = tmp_path / "bios.bin"
    unknown.write_bytes(b"not a firmware layoutd knows")
    xml = bar_domain("960", f"    <loader type='rom'>{unknown}</loader>\n")
    result = call(bar_hook(tmp_path), "lt-big", "prepare", "begin", "-", stdin=xml)
    assert result.returncode == 0, result.stderr
    log = (tmp_path / "var/log/layoutd/hook.log").read_text()
    assert "warning: BARs not checked: firmware" in log and "ok: " in log, log
    assert "every assigned 64-bit BAR" not in log


def test_prepare_lets_a_domain_qemu_refuses_start_with_a_warning(tmp_path: Path) -> None:
    """Only a proven collision refuses: a domain QEMU itself will refuse (a DIMM without ACPI)
    is left to QEMU's own error, with a warning in the log."""
    amd = str(Path(__file__).parents[2] / "examples/hosts/amd-epyc-two-gpus")
    hook = install(tmp_path, "--policy", "enforce", "--host", amd, "--devices", "0000:2a:00.0")
    config = tmp_path / "etc/layoutd/hook.conf"
    config.write_text(config.read_text() + "qemu_version = 7.2\n")
    xml = ("<domain type='qemu'><name>vm</name><maxMemory slots='2' unit='GiB'>8</maxMemory>"
           "<vcpu>1</vcpu><os><type arch='x86_64' machine='q35'>hvm</type></os><cpu><numa>"
           "<cell id='0' cpus='0' memory='1' unit='GiB'/></numa></cpu><devices><memory "
           "model='dimm'><target><size unit='GiB'>1</size><node>0</node></target></memory>"
           "</devices></domain>")
    result = call(hook, "vm", "prepare", "begin", "-", stdin=xml)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    log = (tmp_path / "var/log/layoutd/hook.log").read_text()
    assert "QEMU is expected to refuse this domain itself" in log and "acpi" in log, log


def test_prepare_refuses_an_arm_domain_whose_bar_is_above_the_iommu(tmp_path: Path) -> None:
    """An aarch64 TCG domain booting AAVMF: edk2 puts the NIC's BAR0 (behind a pcie-root-port)
    at 512 GiB, above the host's 39-bit IOMMU top. Refused, naming the BAR."""
    need(Path("/usr/share/AAVMF/AAVMF_CODE.fd").exists(), "AAVMF (Debian package qemu-efi-aarch64)")
    hook = install(tmp_path, "--host", str(ROOT / "examples/hosts/intel-4gpu-39bit"))
    xml = (ROOT / "tests/firmware/data/arm-nic.xml").read_text()
    result = call(hook, "arm-nic", "prepare", "begin", "-", stdin=xml)
    assert result.returncode == 1, result.stderr
    assert "bar '0000:05:00.0 BAR0' 0x8000000000-0x80007fffff lies in the space above the IOMMU's top" \
        in result.stderr, result.stderr


def test_prepare_refuses_a_domain_whose_nvme_bar_below_4g_is_in_an_rmrr(tmp_path: Path) -> None:
    """An NVMe drive behind libvirt's pcie-root-port: Debian 12's OVMF puts its 64-bit
    non-prefetchable BAR0 in the 32-bit window at 0xc0000000, in the host's RMRR
    (examples/hosts/intel-nvme-rmrr). Refused, naming the BAR."""
    need(Path("/usr/share/OVMF/OVMF_CODE_4M.fd").exists(), "OVMF (Debian package ovmf)")
    hook = install(tmp_path, "--host", str(ROOT / "examples/hosts/intel-nvme-rmrr"))
    xml = (ROOT / "tests/firmware/data/nvme-rmrr.xml").read_text()
    result = call(hook, "nvme-rmrr", "prepare", "begin", "-", stdin=xml)
    assert result.returncode == 1, result.stderr
    assert "bar '0000:3b:00.0 BAR0' 0xc0000000-0xc0003fff lies in the direct hole" \
        in result.stderr, result.stderr


def test_prepare_boots_a_firmware_without_a_row_refuses_and_caches(tmp_path: Path) -> None:
    """Debian 12's SeaBIOS with a byte of its padding changed: no row, so the hook boots it (as a
    stand-in for the GPU) and refuses the 960G domain whose 32G BAR it puts across the
    HyperTransport hole; the 64G one starts, and its second start is answered from the cache."""
    from tests.support.firmware_runner import changed_copy

    bios = changed_copy(Path("/usr/share/seabios/bios-256k.bin"), 0x100, "bios-256k.bin")
    loader = f"    <loader type='rom'>{bios}</loader>\n"
    cache = tmp_path / "boots"
    cache.mkdir(mode=0o700)
    os.environ["LAYOUTD_BOOT_CACHE"] = str(cache)
    try:
        hook = bar_hook(tmp_path)
        refused = call(hook, "lt-big", "prepare", "begin", "-", stdin=bar_domain("960", loader))
        assert refused.returncode == 1, refused.stderr
        assert "bar '0000:2a:00.0 BAR1' 0xfd00000000-0xffffffffff lies in the reserved hole" \
            in refused.stderr, refused.stderr
        for _ in range(2):
            allowed = call(hook, "lt-big", "prepare", "begin", "-", stdin=bar_domain("64", loader))
            assert allowed.returncode == 0, allowed.stderr
    finally:
        del os.environ["LAYOUTD_BOOT_CACHE"]
    log = (tmp_path / "var/log/layoutd/hook.log").read_text()
    assert f"BARs where firmware {bios} (booted under TCG" in log, log
    assert log.count("answer from the cache") == 1, log
    assert "RAM region(s) and every assigned 64-bit BAR clear" in log


def test_refusal_names_the_machine_type_first_and_it_passes(tmp_path: Path) -> None:
    """An AMD guest of 1100 GiB on pc-q35-6.2 (before QEMU's AMD 1 TiB rule): the refusal names
    the newer machine type first (the simplest fix), then `layoutd libvirt fix`; the domain with
    that machine type passes the same hook."""
    from layoutd.libvirt.edit import with_machine

    hook = install(tmp_path, "--host", str(ROOT / "examples/hosts/amd-epyc-two-gpus"))
    xml = (Path(__file__).parent / "data/colliding.xml").read_text().replace(
        "machine='q35'", "machine='pc-q35-6.2'").replace(
        "<domain type='qemu'>", "<domain type='kvm'>").replace(
        "<model fallback='forbid'>Skylake-Server</model>", "<model fallback='forbid'>EPYC</model>")
    refused = call(hook, "lt-big", "prepare", "begin", "-", stdin=xml)
    assert refused.returncode == 1, refused.stderr
    fix = next(line for line in refused.stderr.splitlines() if line.startswith("Fix:"))
    machine = fix.split("machine='")[1].split("'")[0]
    assert fix.startswith("Fix: `virsh edit lt-big` and set <os><type machine='pc-q35-")
    assert refused.stderr.index(machine) < refused.stderr.index("layoutd libvirt fix")
    edited = with_machine(xml.encode(), machine).decode()
    assert edited == xml.replace("machine='pc-q35-6.2'", f"machine='{machine}'")
    assert call(hook, "lt-big", "prepare", "begin", "-", stdin=edited).returncode == 0
    intel = xml.replace("<model fallback='forbid'>EPYC</model>",
                        "<model fallback='forbid' vendor_id='GenuineIntel'>EPYC</model>")
    no_rule = call(hook, "lt-big", "prepare", "begin", "-", stdin=intel)
    assert no_rule.returncode == 1 and "virsh edit" not in no_rule.stderr  # no machine type helps
    assert "Fix: `layoutd libvirt fix DOMAIN.xml`" in no_rule.stderr
    # a Windows guest (libosinfo's metadata, as virt-install writes it) is never offered the
    # machine type whose RAM move past 1 TiB its drivers fail on (Code 43, RHEL-98247)
    windows = xml.replace("<name>lt-big</name>", "<name>lt-big</name><metadata><libosinfo:libosinfo "
                          "xmlns:libosinfo='http://libosinfo.org/xmlns/libvirt/domain/1.0'>"
                          "<libosinfo:os id='http://microsoft.com/win/11'/></libosinfo:libosinfo>"
                          "</metadata>")
    refused_windows = call(hook, "lt-big", "prepare", "begin", "-", stdin=windows)
    assert refused_windows.returncode == 1 and "virsh edit" not in refused_windows.stderr
    assert "Fix: `layoutd libvirt fix DOMAIN.xml`" in refused_windows.stderr


def test_prepare_refuses_a_bar_the_firmware_leaves_unassigned(tmp_path: Path) -> None:
    """An EPYC guest with 39 phys-bits under Debian 12's OVMF: AMD's 39 bits are not trusted, the
    classic 32 GiB window cannot hold the GPU's 32G and 32M BARs, and OVMF assigns neither: the
    guest driver would see no BAR. Refused, naming the BAR (was a warning before issue 20)."""
    need(Path("/usr/share/OVMF/OVMF_CODE_4M.fd").exists(), "ovmf (Debian package)")
    xml = bar_domain("8", "    <loader readonly='yes' type='pflash'>"
                          "/usr/share/OVMF/OVMF_CODE_4M.fd</loader>\n")
    xml = xml.replace("<model fallback='forbid'>Skylake-Server</model>",
                      "<model fallback='forbid'>EPYC</model>\n    "
                      "<maxphysaddr mode='emulate' bits='39'/>")
    result = call(bar_hook(tmp_path), "lt-big", "prepare", "begin", "-", stdin=xml)
    assert result.returncode == 1, result.stderr
    assert "bar '0000:2a:00.0 BAR1' is left unassigned" in result.stderr, result.stderr
    assert "the guest driver will see no BAR" in result.stderr
