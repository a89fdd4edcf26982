"""Never a silent yes: a plan whose firmware cannot be booted says which BARs it did not judge
and exits 3 (as check does), and a check answered by a dry run says so in `how_known`."""

import json
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES, need_binary, run_layoutd
from tests.support.qemu_runner import qemu_binary, wrapper

pytestmark = pytest.mark.qemu  # starts real QEMU: not in -m "not qemu"

HOST = str(EXAMPLES / "hosts/intel-46bit-cpu-39bit-iommu")
BARS = ["0000:01:00.0 BAR1", "0000:01:00.0 BAR3"]  # the GPU's 64-bit BARs in the host dump
SPEC = """name: zeros
machine: q35
accel: tcg
cpu: {{model: EPYC, count: 1}}
memory: {{size: 8G}}
devices: [0000:01:00.0]
firmware: {firmware}
"""
DOMAIN = """<domain type='qemu'><name>zeros</name><memory unit='GiB'>8</memory><vcpu>1</vcpu>
<os><type arch='x86_64' machine='q35'>hvm</type></os><devices>
<hostdev mode='subsystem' type='pci' managed='yes'><source><address domain='0x0000' bus='0x01'
 slot='0x00' function='0x0'/></source></hostdev></devices></domain>
"""


def test_plan_with_a_firmware_that_cannot_boot_is_not_judged(tmp_path: Path) -> None:
    """A file of zeros QEMU will not load as a BIOS (not a multiple of 64 KiB): the real QEMU
    refuses it, so the plan (and `libvirt apply` of it) names the BARs it did not judge, first, and
exits 3, never 0."""
    need_binary("qemu-system-x86_64")
    zeros = tmp_path / "zeros.bin"
    zeros.write_bytes(bytes(1000))
    spec = tmp_path / "vm.yaml"
    spec.write_text(SPEC.format(firmware=zeros))
    args = ("plan", str(spec), "--host", HOST, "--qemu-version", "7.2")
    result = run_layoutd(*args, "--format", "json")
    assert result.returncode == 3, result.stdout + result.stderr
    plan = json.loads(result.stdout)
    assert plan["bars"] == []
    assert [item["what"] for item in plan["not_judged"]] == BARS
    assert all(item["kind"] == "bar" and item["why"].startswith("BARs not judged: ")
               for item in plan["not_judged"]), plan["not_judged"]
    text = run_layoutd(*args)
    assert text.returncode == 3
    assert text.stdout.splitlines()[2] == (
        f"NOT JUDGED: {', '.join(BARS)}: where the firmware puts them is not known (see the "
        "warnings), so this plan is not proven clear of the host's holes")
    argv = run_layoutd(*args, "--format", "argv")
    assert argv.returncode == 3 and f"NOT JUDGED: {', '.join(BARS)}" in argv.stderr
    domain = tmp_path / "zeros.xml"
    domain.write_text(DOMAIN)
    applied = run_layoutd("libvirt", "apply", str(domain), str(spec), "--host", HOST,
                          "--qemu-version", "7.2")
    assert applied.returncode == 3, applied.stderr
    assert applied.stderr.startswith(f"layoutd libvirt: NOT JUDGED: {', '.join(BARS)}: ")
    # the same plan with Debian's SeaBIOS, which layoutd models: judged, exit 0
    spec.write_text(SPEC.format(firmware="seabios"))
    judged = run_layoutd(*args, "--format", "json")
    assert judged.returncode == 0, judged.stdout + judged.stderr
    assert json.loads(judged.stdout)["not_judged"] == []
    applied = run_layoutd("libvirt", "apply", str(domain), str(spec), "--host", HOST,
                          "--qemu-version", "7.2")
    assert applied.returncode == 0 and "NOT JUDGED" not in applied.stderr, applied.stderr


def test_check_answered_by_a_dry_run_says_so(tmp_path: Path) -> None:
    """The real QEMU 7.2 answering --version with a release layoutd does not model: its dry run
    answers, and how_known says so; the same binary saying 7.2 is answered by the model."""
    unmodelled = wrapper(qemu_binary("7.2"), tmp_path / "bin82", "QEMU emulator version 8.2.2")
    modelled = wrapper(qemu_binary("7.2"), tmp_path / "bin72")
    for path, how in ((unmodelled, "dry-run"), (modelled, "model")):
        result = run_layoutd("check", "--host", HOST, "--format", "json", "--", str(path),
                             "-machine", "q35", "-m", "1G")
        assert result.returncode == 0, result.stdout + result.stderr
        assert json.loads(result.stdout)["how_known"]["layout"] == how
