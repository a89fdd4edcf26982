"""Windows guests (issue 22, 5): on an AMD guest QEMU's machine types 7.1+ move RAM above 4 GiB
past 1 TiB once the layout reaches the HyperTransport hole, and Windows drivers fail on that
(NVIDIA: Code 43, RHEL-98247). A Windows plan never gets that move: RAM stays contiguous below
the hole and the rest goes to DIMMs at 1 TiB, and the real QEMU builds exactly that at -S."""

import json
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES, run_layoutd
from tests.support.qemu_runner import qemu_binary, wrapper

pytestmark = pytest.mark.qemu  # starts real QEMU or firmware: not in -m "not qemu"

AMD = str(EXAMPLES / "hosts/amd-epyc-two-gpus")
HT_START, TIB = 0xFD00000000, 1 << 40
SPEC = """name: win
accel: tcg
{guest}cpu: {{model: EPYC, count: 2}}
memory: {{size: 1100G, reserve: false}}
devices: [0000:29:00.0]
"""


def plan(tmp_path: Path, guest: str, *extra: str) -> dict:  # type: ignore[type-arg]
    spec = tmp_path / f"{guest or 'linux'}.yaml"
    spec.write_text(SPEC.format(guest=f"guest: {guest}\n" if guest else ""))
    result = run_layoutd("plan", str(spec), "--host", AMD, "--format", "json", *extra)
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout)  # type: ignore[no-any-return]


@pytest.mark.parametrize("version", ["7.2", "10.0"])
def test_a_windows_plan_keeps_ram_below_the_hole_on_the_real_qemu(tmp_path: Path, version: str) -> None:
    binary = wrapper(qemu_binary(version), tmp_path / "bin")
    windows = plan(tmp_path, "windows", "--qemu-version", version, "--verify", str(binary))
    assert any(note.startswith("verified: a dry run of") for note in windows["notes"])
    boot = [r for r in windows["layout"] if r["kind"] == "ram"]
    dimms = [r for r in windows["layout"] if r["kind"] == "dimm"]
    assert boot[-1]["start"] == "0x100000000" and int(boot[-1]["end"], 16) < HT_START
    assert dimms and all(int(r["start"], 16) >= TIB for r in dimms)
    assert any(word.startswith("pc-q35-7.0") for word in windows["qemu_argv"])
    # the same VM, not Windows: QEMU's own rule moves RAM to 1 TiB (the plan follows it)
    other = plan(tmp_path, "", "--qemu-version", version, "--verify", str(binary))
    assert any(r["kind"] == "ram" and int(r["start"], 16) == TIB for r in other["layout"])


def test_the_cli_option_and_the_suggestions_for_windows(tmp_path: Path) -> None:
    by_option = plan(tmp_path, "", "--qemu-version", "10.0", "--guest", "windows")
    assert not any(r["kind"] == "ram" and int(r["start"], 16) >= TIB for r in by_option["layout"])
    spec = tmp_path / "pinned.yaml"
    spec.write_text(SPEC.format(guest="guest: windows\nmachine: pc-q35-8.2\n"))
    no = run_layoutd("plan", str(spec), "--host", AMD, "--qemu-version", "10.0", "--format", "json")
    assert no.returncode == 1, no.stdout + no.stderr
    changes = [idea["change"] for idea in json.loads(no.stdout)["would_work"]]
    assert {"machine": "pc-q35-7.0"} in changes
    assert not any(str(c.get("machine", "")).endswith("7.1") for c in changes)


def test_check_never_suggests_the_relocation_for_windows() -> None:
    argv = ["--host", AMD, "--qemu-version", "10.0", "--", "qemu-system-x86_64", "-machine",
            "pc-q35-6.2", "-cpu", "EPYC,phys-bits=48", "-m", "1100G",
            "-device", "vfio-pci,host=0000:29:00.0"]
    linux = run_layoutd("check", *argv)
    assert linux.returncode == 1 and "would work: -machine pc-q35-7.1" in linux.stdout
    first = next(line for line in linux.stdout.splitlines() if line.startswith("would work:"))
    assert "-machine pc-q35-7.1" in first  # ranked first for a guest that is not Windows
    windows = run_layoutd("check", "--guest", "windows", *argv)
    assert windows.returncode == 1 and "would work: -m " in windows.stdout
    assert "pc-q35-7.1" not in windows.stdout
    moved = run_layoutd("check", "--guest", "windows", *[a.replace("pc-q35-6.2", "q35") for a in argv])
    assert "Code 43" in moved.stdout and "--guest windows" in moved.stdout


DOMAIN = """<domain type='kvm'>
  <name>win11</name>
  {metadata}
  <memory unit='GiB'>1100</memory>
  <vcpu>4</vcpu>
  <os><type arch='x86_64' machine='pc-q35-6.2'>hvm</type></os>
  <features><acpi/></features>
  <cpu mode='host-passthrough'/>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <hostdev mode='subsystem' type='pci' managed='yes'>
      <source><address domain='0x0000' bus='0x29' slot='0x00' function='0x0'/></source>
    </hostdev>
  </devices>
</domain>
"""
WINDOWS_11 = """<metadata>
    <libosinfo:libosinfo xmlns:libosinfo="http://libosinfo.org/xmlns/libvirt/domain/1.0">
      <libosinfo:os id="http://microsoft.com/win/11"/>
    </libosinfo:libosinfo>
  </metadata>"""


def test_a_libvirt_domain_is_windows_by_its_libosinfo_metadata(tmp_path: Path) -> None:
    """virt-install writes the guest OS into <metadata>: a Windows 11 domain never gets the
    7.1 machine type suggested; the same domain without it does."""
    said = {}
    for name, metadata in (("windows", WINDOWS_11), ("other", "")):
        domain = tmp_path / f"{name}.xml"
        domain.write_text(DOMAIN.format(metadata=metadata))
        result = run_layoutd("check", "--libvirt", str(domain), "--host", AMD, "--qemu-version", "10.0")
        assert result.returncode == 1, result.stderr  # RAM across the HT hole on pc-q35-6.2
        said[name] = result.stdout
    assert "machine='pc-q35-7.1'" in said["other"]
    assert "pc-q35-7.1" not in said["windows"]


def test_libvirt_fix_of_a_windows_domain_keeps_ram_below_the_hole(tmp_path: Path) -> None:
    """`libvirt fix` of a Windows 11 domain on q35: the domain gets pc-q35-7.0 and a DIMM at
    1 TiB, and `check --libvirt` of the result finds every RAM range clear, none moved."""
    domain = tmp_path / "win.xml"
    domain.write_text(DOMAIN.format(metadata=WINDOWS_11).replace("pc-q35-6.2", "q35"))
    fixed = run_layoutd("libvirt", "fix", str(domain), "--host", AMD, "--qemu-version", "10.0")
    assert fixed.returncode == 0, fixed.stderr
    assert "machine='pc-q35-7.0'" in fixed.stdout.replace('"', "'")
    assert "base='0x10000000000'" in fixed.stdout
    result = tmp_path / "fixed.xml"
    result.write_text(fixed.stdout)
    check = run_layoutd("check", "--libvirt", str(result), "--host", AMD, "--qemu-version", "10.0",
                        "--format", "json")
    assert check.returncode == 0, check.stdout + check.stderr
    layout = json.loads(check.stdout)["layout"]
    assert not any(r["kind"] == "ram" and int(r["start"], 16) >= TIB for r in layout)
    assert any(r["kind"] == "dimm" and int(r["start"], 16) == TIB for r in layout)
