"""Answers an operator can act on (issue 16): every suggestion re-solved, the binding limit named,
the user's own language, and one JSON document for every outcome."""

import json
import shutil
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES, assert_clean_failure, run_layoutd
from tests.plan.support import apply_change

HOSTS = EXAMPLES / "hosts"
INTEL39 = str(HOSTS / "intel-4gpu-39bit")
DATA = Path(__file__).parent / "data"
HOTPLUG_768G = "name: vm\ncpu: {model: host}\nmemory: {size: 8G, hotplug: {slots: 4, max: 768G}}\n" \
               "devices: [0000:01:00.1]\n"  # the GPU's audio function: no 64-bit BAR


def _spec(tmp_path: Path, text: str, name: str = "vm.yaml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_hotplug_no_names_hotplug_max_and_it_plans(tmp_path: Path) -> None:
    result = run_layoutd("plan", _spec(tmp_path, HOTPLUG_768G), "--host", INTEL39, "--format", "json")
    assert result.returncode == 1, result.stderr
    data = json.loads(result.stdout)
    assert data["exit_code"] == 1 and data["error"]["kind"] == "no"
    assert "256 slots" not in result.stderr and "memory.size" not in data["would_work"][0]["change"]
    first = data["would_work"][0]
    assert list(first["change"]) == ["memory.hotplug.max"], first
    assert "39 physical address bits" in first["text"] and "online hotplugged memory" in first["text"]
    assert any(item["type"] == "limit" for item in data["blocked_by"])
    for idea in data["would_work"]:
        again = run_layoutd("plan", _spec(tmp_path, apply_change(HOTPLUG_768G, idea["change"]), "again.yaml"),
                            "--host", INTEL39)
        assert again.returncode == 0, (idea, again.stderr)


def test_libvirt_fix_speaks_xml() -> None:
    result = run_layoutd("libvirt", "fix", str(DATA / "hotplug-768g.xml"), "--host", INTEL39)
    assert_clean_failure(result, 1, "would work: <maxMemory unit=")
    assert "memory.hotplug.max:" not in result.stderr


def test_check_speaks_options_and_suggests_a_newer_machine_type() -> None:
    result = run_layoutd("check", "--host", str(HOSTS / "amd-epyc-two-gpus"), "--qemu-version", "7.2",
                         "--format", "json", "--", "qemu-system-x86_64", "-accel", "kvm", "-machine",
                         "pc-q35-6.2", "-cpu", "host", "-m", "1100G", "-device",
                         "vfio-pci,host=0000:29:00.0")
    assert result.returncode == 1, result.stderr
    ideas = json.loads(result.stdout)["would_work"]
    assert ideas[0]["change"] == {"-machine": "pc-q35-7.1"} and ideas[0]["text"].startswith("-machine")
    assert ideas[1]["change"] == {"-m": "1010G"}


def _cpu_limited_host(tmp_path: Path) -> str:
    """intel-4gpu-39bit with a 48-bit IOMMU (MGAW 48): the CPU's 39 bits are what binds."""
    root = tmp_path / "host"
    shutil.copytree(INTEL39, root)
    for cap in root.glob("sys/class/iommu/*/intel-iommu/cap"):
        cap.write_text("1c0000c406f0462\n")
    return str(root)


def test_the_limit_is_blamed_on_the_host_cpu(tmp_path: Path) -> None:
    spec = _spec(tmp_path, "name: vm\ncpu: {model: host}\nmemory: {size: 600G}\ndevices: [0000:01:00.0]\n")
    result = run_layoutd("plan", spec, "--host", _cpu_limited_host(tmp_path))
    assert_clean_failure(result, 1, "the host CPU's 39 physical address bits")
    assert "IOMMU can map" not in result.stderr
    assert "above 0x8000000000, but" not in result.stderr and "below 0x7fffffffff" not in result.stderr


@pytest.mark.parametrize(("args", "code", "kind"), [
    (["plan", "no-such.yaml", "--format", "json"], 2, "input"),
    (["plan", "x.yaml", "--format", "json", "--bogus"], 2, "usage"),
    (["check", "--format", "json", "--host", INTEL39, "--qemu-version", "7.2", "--",
      "qemu-system-x86_64", "-m", "1536GiB"], 2, "qemu-refusal"),
    (["probe", "--host", "/no/such/host", "--format", "json"], 2, "input"),
])
def test_every_outcome_is_one_json_document(args: list[str], code: int, kind: str) -> None:
    result = run_layoutd(*args)
    assert result.returncode == code, result.stderr
    data = json.loads(result.stdout)
    assert data["exit_code"] == code and data["error"]["kind"] == kind, data
    assert data["error"]["message"]


def test_a_device_the_host_lacks_is_named_where_it_was_given(tmp_path: Path) -> None:
    """Issue 16: a command line's host=, a domain's <hostdev>, --devices: each named as such."""
    argv = ["--qemu-version", "7.2", "--", "qemu-system-x86_64", "-m", "1G"]
    bad_host = run_layoutd("check", "--host", INTEL39, *argv, "-device", "vfio-pci,host=09:00.0")
    assert_clean_failure(bad_host, 2, "-device vfio-pci,host=0000:09:00.0: unknown device 0000:09:00.0")
    not_a_bdf = run_layoutd("check", "--host", INTEL39, *argv, "-device", "vfio-pci,host=nonsense")
    assert_clean_failure(not_a_bdf, 2, "-device vfio-pci,host=", "is not a PCI address")
    option = run_layoutd("check", "--host", INTEL39, "--devices", "09:00.0", *argv)
    assert_clean_failure(option, 2, "--devices: unknown device 0000:09:00.0")
    domain = tmp_path / "dom.xml"
    domain.write_text((DATA / "hotplug-768g.xml").read_text().replace("bus='0x01'", "bus='0x09'"))
    for command in (["check", "--libvirt", str(domain)], ["libvirt", "fix", str(domain)]):
        result = run_layoutd(*command, "--host", INTEL39)
        assert_clean_failure(result, 2, f"{domain}: <hostdev> 0000:09:00.0: unknown device")


def test_check_of_a_domain_suggests_xml() -> None:
    result = run_layoutd("check", "--libvirt", str(DATA / "old-type.xml"), "--host",
                         str(HOSTS / "amd-epyc-two-gpus"), "--qemu-version", "7.2", "--format", "json")
    assert result.returncode == 1, result.stderr
    ideas = json.loads(result.stdout)["would_work"]
    assert ideas[0]["change"] == {"os.type.machine": "pc-q35-7.1"}
    assert ideas[0]["text"].startswith("<os><type machine='pc-q35-7.1'>")


NO_SPECS = [
    ("name: a\ncpu: {model: host, count: 4}\nmemory: {size: 600G}\nnuma:\n  - {size: 300G, cpus: 0-1}\n"
     "  - {size: 300G, cpus: 2-3}\ndevices: [0000:03:00.0]\n", ["intel-4gpu-39bit"]),
    ("name: b\ncpu: {model: EPYC, phys_bits: 40}\nmemory: {size: 1100G}\ndevices: [0000:41:00.0]\n",
     ["amd-4gpu-1100g"]),
    ("name: c\nmachine: pc-q35-6.2\ncpu: {model: host}\n"
     "memory: {size: 1100G, hotplug: {slots: 2, max: 300T}}\ndevices: [0000:29:00.0]\n",
     ["amd-epyc-two-gpus"]),
    ("name: d\ncpu: {model: Skylake-Server, vendor: intel, phys_bits: 39}\nmemory: {size: 700G}\n",
     ["amd-epyc-two-gpus", "intel-nic-msi-only"]),
]


@pytest.mark.parametrize(("text", "hosts"), NO_SPECS, ids=[t.split()[1] for t, _ in NO_SPECS])
def test_every_suggestion_of_the_cli_plans(text: str, hosts: list[str], tmp_path: Path) -> None:
    """plan --format json on infeasible specs: apply each would_work change; plan exits 0."""
    where = [arg for name in hosts for arg in ("--host", str(HOSTS / name))]
    result = run_layoutd("plan", _spec(tmp_path, text), *where, "--format", "json")
    assert result.returncode == 1, result.stderr
    ideas = json.loads(result.stdout)["would_work"]
    assert ideas, result.stderr
    for index, idea in enumerate(ideas):
        again = run_layoutd("plan", _spec(tmp_path, apply_change(text, idea["change"]), f"{index}.yaml"),
                            *where, "--format", "json")
        assert again.returncode == 0, (idea, again.stderr)
        assert json.loads(again.stdout)["layout"]
