"""plan is made for the QEMU and firmware the host has, as check asks them, and says which:
the version of qemu-system-ARCH on PATH and the bios-256k.bin that binary loads (read by its
sha256 from the folders `-L help` lists, after the command line's -L), unless --qemu-version
says otherwise (then the SeaBIOS Debian ships with that version)."""

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from layoutd.checking import check_command_line
from layoutd.firmware.builds import SEABIOS_BPO, default_for_qemu
from layoutd.planning import make_plan
from layoutd.specfile import parse_spec
from tests.conftest import EXAMPLES, need, need_binary, run_layoutd
from tests.support.qemu_runner import qemu_binary

pytestmark = pytest.mark.qemu  # starts real QEMU or firmware: not in -m "not qemu"

AMD = str(EXAMPLES / "hosts" / "amd-epyc-two-gpus")
SPEC = """\
name: sb
machine: q35
cpu: {model: EPYC, count: 2}
memory: {size: 8G}
firmware: seabios
devices: [0000:29:00.0]
"""


def _loaded_by(binary: str, extra: list[str]) -> str:
    """The sha256 of the bios-256k.bin QEMU loads: the first -L folder, then its own, that has one."""
    listed = subprocess.run([binary, "-L", "help"], capture_output=True, text=True, check=True)
    for folder in [*extra, *listed.stdout.split()]:
        path = Path(folder) / "bios-256k.bin"
        if path.is_file():
            return hashlib.sha256(path.read_bytes()).hexdigest()
    raise AssertionError(f"{binary} loads no bios-256k.bin")


def test_seabios_is_the_build_the_plans_qemu_loads() -> None:
    """`firmware: seabios` names no file: QEMU loads its own SeaBIOS, and the plan is made for
    the build that version ships with (1.16.2 with 7.2, 1.16.3 with 10.0, 1.17.0 with 11.1)."""
    spec = parse_spec(SPEC)
    for version in ("7.2", "10.0", "11.1"):
        plan = make_plan(spec, [AMD], version)
        assert "-bios" not in plan.qemu_argv
        build = default_for_qemu(version)
        assert build is not None and plan.firmware == build.name
        assert plan.planned_for.startswith(f"QEMU {version} (--qemu-version) and {build.name}")


def test_check_reads_the_firmware_the_binary_loads() -> None:
    """QEMU 10.0 as unpacked in the cache loads the SeaBIOS its -L folders hold (1.16.3);
    without them it loads what its own folders hold: check says which, by the file's hash."""
    from layoutd.firmware.builds import by_hash

    qemu = qemu_binary("10.0")
    args = ["-machine", "q35", "-m", "8G", "-device", "vfio-pci,host=0000:29:00.0"]
    with_l = check_command_line([qemu.path, *qemu.base_args, *args], host_source=AMD)
    assert with_l.bars is not None and with_l.bars.firmware == SEABIOS_BPO.name
    without = check_command_line([qemu.path, *args], host_source=AMD)
    expected = by_hash(_loaded_by(qemu.path, []))
    assert without.bars is not None and expected is not None
    assert without.bars.firmware == expected.name
    assert "QEMU's own bios-256k.bin" in (without.bars.loaded or "")


def test_plan_says_which_qemu_and_firmware_in_its_first_line(tmp_path: Path) -> None:
    """No --qemu-version: the QEMU on PATH and the firmware it loads, in the first line and in
    JSON; check on that command line asks the same binary and finds the same build."""
    binary = need_binary("qemu-system-x86_64")
    spec = tmp_path / "vm.yaml"
    spec.write_text(SPEC)
    text = run_layoutd("plan", str(spec), "--host", AMD)
    data = json.loads(run_layoutd("plan", str(spec), "--host", AMD, "--format", "json").stdout)
    assert text.returncode == 0, text.stderr
    version = subprocess.run([binary, "--version"], capture_output=True, text=True).stdout
    release = ".".join(version.split("version ")[1].split(".")[:2])
    from layoutd.firmware.builds import by_hash

    build = by_hash(_loaded_by(binary, []))
    need(build is not None, "a SeaBIOS build layoutd knows in the PATH QEMU's folders")
    assert build is not None
    first = text.stdout.splitlines()[0]
    assert first.startswith(f"plan for sb, made for QEMU {release} ({shutil.which(binary)} --version) "
                            f"and {build.name}, QEMU's own bios-256k.bin"), first
    assert data["planned_for"] == first.removeprefix("plan for sb, made for ")
    assert data["qemu_version"] == release and data["firmware"] == build.name
    checked = check_command_line(["qemu-system-x86_64", *data["qemu_argv"]], host_source=AMD)
    assert checked.bars is not None and checked.bars.firmware == build.name


def test_without_a_qemu_on_path_the_plan_says_so(tmp_path: Path) -> None:
    spec = tmp_path / "vm.yaml"
    spec.write_text(SPEC)
    result = run_layoutd("plan", str(spec), "--host", AMD, env={"PATH": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    first = result.stdout.splitlines()[0]
    assert first.startswith("plan for sb, made for QEMU 10.0 (no qemu-system-x86_64 on PATH; "
                            f"--qemu-version X.Y chooses another) and {SEABIOS_BPO.name}"), first


def test_a_domains_firmware_is_what_its_emulator_loads(tmp_path: Path) -> None:
    """check --libvirt (and the hook) read QEMU's own bios-256k.bin from the domain's <emulator>
    folders, as check does from a command line's binary; --qemu-version takes Debian's pairing."""
    from layoutd.firmware.builds import by_hash
    from layoutd.libvirt.guard import check_domain_file

    qemu = qemu_binary("10.0")
    domain = tmp_path / "vm.xml"
    domain.write_text(
        "<domain type='qemu'><name>fw</name><memory unit='GiB'>8</memory><os><type "
        "arch='x86_64' machine='q35'>hvm</type></os><features><acpi/></features><devices>"
        f"<emulator>{qemu.path}</emulator><hostdev mode='subsystem' type='pci' managed='yes'>"
        "<source><address domain='0x0000' bus='0x29' slot='0x00' function='0x0'/></source>"
        "</hostdev></devices></domain>")
    expected = by_hash(_loaded_by(qemu.path, []))
    assert expected is not None
    checked = check_domain_file(str(domain), host_source=AMD)
    assert checked.bars is not None and checked.bars.firmware == expected.name
    pinned = check_domain_file(str(domain), host_source=AMD, version="10.0")
    assert pinned.bars is not None and pinned.bars.firmware == SEABIOS_BPO.name
