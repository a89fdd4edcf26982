"""`layoutd kubevirt on-define-domain --vmi JSON --domain XML`, run as KubeVirt's sidecar-shim
runs its onDefineDomain: the domain to define on stdout, a non-zero exit stops the VM."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, assert_clean_failure, need, run_layoutd
from tests.kubevirt.domains import (
    AMD,
    MIGRATED,
    MIGRATING,
    NARROW,
    OVMF,
    domain,
    schema_ready,
    stuck_host,
    vmi,
)


def shim(vmi_json: str, xml: str, host: str) -> subprocess.CompletedProcess[str]:
    return run_layoutd("kubevirt", "on-define-domain", "--vmi", vmi_json, "--domain", xml,
                       env={"LAYOUTD_HOST": host})


def validate(xml: str, folder: Path) -> None:
    need(shutil.which("virt-xml-validate") is not None, "virt-xml-validate (libvirt-clients)")
    path = folder / "domain.xml"
    path.write_text(schema_ready(xml))
    result = subprocess.run(["virt-xml-validate", str(path), "domain"], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr + result.stdout


@pytest.mark.parametrize("firmware", ["seabios", "ovmf"])
def test_a_gpu_vm_that_fits_gets_the_fixed_domain(firmware: str, tmp_path: Path) -> None:
    """1100 GiB on pc-q35-6.2 with the node's GPU on the AMD host: QEMU's own layout runs across
    the HyperTransport hole; the hook moves 90 GiB into a DIMM at 1 TiB, keeps every other byte,
    and the result is a valid libvirt domain that `layoutd check --libvirt` finds clear."""
    if firmware == "ovmf":
        need(Path(OVMF).exists(), "OVMF (Debian package ovmf)")
    given = domain(AMD, firmware)
    validate(given, tmp_path)
    result = shim(vmi(), given, AMD)
    assert result.returncode == 0, result.stderr
    fixed = result.stdout
    assert fixed != given
    assert "<address type='dimm' slot='0' base='0x10000000000'/>" in fixed
    assert "<maxMemory slots='1'" in fixed and "<numa>" in fixed
    for kept in ('<kubevirt xmlns="http://kubevirt.io">', '<alias name="ua-gpu-gpu1"></alias>',
                 '<qemu:env name="LAYOUTD_TEST_MARK" value="kept"></qemu:env>',
                 '<type arch="x86_64" machine="pc-q35-6.2">hvm</type>'):
        assert kept in fixed
    assert "gpu-team/llm-trainer: domain fixed for this node" in result.stderr, result.stderr
    validate(fixed, tmp_path)
    (tmp_path / "fixed.xml").write_text(fixed)
    check = run_layoutd("check", "--libvirt", str(tmp_path / "fixed.xml"), "--host", AMD)
    assert check.returncode == 0, check.stdout + check.stderr
    before = tmp_path / "given.xml"
    before.write_text(given)
    unfixed = run_layoutd("check", "--libvirt", str(before), "--host", AMD)
    assert unfixed.returncode == 1 and "0xfd00000000-0xffffffffff" in unfixed.stdout


def test_a_proven_collision_stops_the_vm_naming_the_hole() -> None:
    """On a node whose IOMMU maps 512 GiB, no layout of 1100 GiB fits and the domain as given
    puts RAM in the aperture: exit 1, the hole named, nothing on stdout."""
    result = shim(vmi(), domain(NARROW), NARROW)
    assert_clean_failure(result, 1, "refusing VMI 'gpu-team/llm-trainer' on this node",
                         "lies in the space above the IOMMU's top 0x8000000000-0xffffffffffffffff",
                         "layoutd could not plan a layout that avoids them",
                         "would work: spec.domain.memory.guest: ")
    # the suggested size is the largest that plans: the VM with it starts fixed, 1 GiB more does not
    suggested = int(re.search(r"spec\.domain\.memory\.guest: (\d+)Gi", result.stderr)[1])
    for gib, code in ((suggested, 0), (suggested + 1, 1)):
        sized = domain(NARROW).replace(">1181116006400<", f">{gib << 30}<")
        assert shim(vmi(), sized, NARROW).returncode == code, gib
    assert result.stdout == ""


def test_a_migration_target_only_vetoes() -> None:
    """On a migration target the domain is returned unchanged where a layout fits, refused where
    none does and the domain as given collides. A completed migration is an ordinary start."""
    given = domain(AMD)
    passed = shim(vmi(**MIGRATING), given, AMD)
    assert passed.returncode == 0, passed.stderr
    assert passed.stdout == given
    assert "migration target: a layout of this VM fits this node" in passed.stderr
    vetoed = shim(vmi(**MIGRATING), domain(NARROW), NARROW)
    assert_clean_failure(vetoed, 1, "as a migration target on this node",
                         "above the IOMMU's top 0x8000000000")
    started = shim(vmi(**MIGRATED), given, AMD)
    assert started.returncode == 0 and started.stdout != given


def test_a_domain_without_a_host_device_passes_unchanged() -> None:
    given = domain(AMD)
    start = given.index("\t\t<hostdev")
    without = given[:start] + given[given.index("</hostdev>\n") + len("</hostdev>\n"):]
    result = shim(vmi(), without, AMD)
    assert result.returncode == 0 and result.stdout == without
    assert "nothing VFIO maps, passed unchanged" in result.stderr


@pytest.mark.parametrize(("vmi_json", "xml", "words"), [
    ("{", None, "--vmi: not a JSON document"),
    ("[]", None, "--vmi: a VirtualMachineInstance is a JSON object, not list"),
    ('{"kind": "Pod"}', None, "--vmi: kind: kind is 'Pod'"),
    ('{"status": {"migrationState": 3}}', None, "--vmi: status.migrationState: must be a JSON object"),
    (None, "<domain", "--domain: line 1: invalid XML"),
    (None, "<pod/>", "--domain: the root element is <pod>, not <domain>"),
])
def test_bad_input_is_exit_2_with_one_clear_message(vmi_json: str | None, xml: str | None,
                                                    words: str) -> None:
    result = shim(vmi_json or vmi(), xml or domain(AMD), AMD)
    assert_clean_failure(result, 2, words)
    assert result.stdout == ""


def test_the_shim_command_needs_no_grpc() -> None:
    """grpc is an optional dependency: the sidecar-shim path never imports it."""
    code = ("import sys; sys.modules['grpc'] = None; sys.modules['grpc_tools'] = None\n"
            "from layoutd.cli import main\n"
            f"code = main(['kubevirt', 'on-define-domain', '--vmi', sys.argv[1], '--domain', "
            f"sys.argv[2], '--host', {AMD!r}])\n"
            "print('exit', code, file=sys.stderr)")
    result = subprocess.run([sys.executable, "-c", code, vmi(), domain(AMD)], capture_output=True,
                            text=True, cwd=ROOT, timeout=120)
    assert "exit 0" in result.stderr, result.stderr
    assert "base='0x10000000000'" in result.stdout


def test_serve_without_grpc_says_which_extra_is_missing(tmp_path: Path) -> None:
    code = ("import sys; sys.modules['grpc'] = None\n"
            "from layoutd.cli import main\n"
            "sys.exit(main(['kubevirt', 'serve', '--socket', sys.argv[1]]))")
    result = subprocess.run([sys.executable, "-c", code, str(tmp_path / "s.sock")],
                            capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert_clean_failure(result, 2, "pip install 'layoutd[kubevirt]'")
    assert not (tmp_path / "s.sock").exists()


def test_a_judgement_that_cannot_finish_is_exit_3_at_the_time_limit(tmp_path: Path) -> None:
    """virt-launcher allows one minute; a host read that never returns ends at --timeout."""
    result = run_layoutd("kubevirt", "on-define-domain", "--vmi", vmi(), "--domain", domain(AMD),
                         "--host", stuck_host(tmp_path), "--timeout", "1")
    assert_clean_failure(result, 3, "the judgement did not finish within 1 s (--timeout)")
    assert result.stdout == ""
