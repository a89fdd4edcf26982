"""`layoutd plan` as a user runs it: formats, exit codes, messages naming the file and field."""

import json
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES, assert_clean_failure, run_layoutd

HOSTS = EXAMPLES / "hosts"
SPECS = EXAMPLES / "specs"
EXAMPLE_RUNS = [
    ("amd-gpu-1100g.yaml", ["amd-4gpu-1100g"]),
    ("intel-rmrr.yaml", ["intel-4gpu-39bit"]),
    ("arm64.yaml", ["arm-kunpeng-pci-windows"]),
    ("migration.yaml", ["amd-epyc-two-gpus", "intel-nic-msi-only"]),
]


def _hosts(names: list[str]) -> list[str]:
    return [arg for name in names for arg in ("--host", str(HOSTS / name))]


@pytest.mark.parametrize(("spec", "hosts"), EXAMPLE_RUNS)
def test_examples_plan_and_json_follows_the_contract(spec: str, hosts: list[str]) -> None:
    result = run_layoutd("plan", str(SPECS / spec), *_hosts(hosts), "--format", "json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    for key in ("layout", "qemu_argv", "qmp", "warnings", "hosts"):
        assert key in data
    assert len(data["hosts"]) == len(hosts)
    for region in data["layout"]:
        assert region["start"].startswith("0x") and set(region) >= {"start", "end", "kind", "id", "node"}
    assert "-m" in data["qemu_argv"]


@pytest.mark.parametrize("kind", ["text", "argv", "qmp", "svg"])
def test_every_format_renders(kind: str, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = run_layoutd(
        "plan",
        str(SPECS / "migration.yaml"),
        *_hosts(["amd-epyc-two-gpus"]),
        "--format",
        kind,
        "-o",
        str(out),
    )
    assert result.returncode == 0, result.stderr
    text = out.read_text()
    if kind == "qmp":
        commands = [json.loads(line) for line in text.splitlines()]
        assert [c["execute"] for c in commands][:2] == ["object-add", "device_add"]
        assert commands[1]["arguments"]["addr"] >= 1 << 40
    elif kind == "svg":
        assert text.startswith("<svg") and "reserved hole" in text
    elif kind == "text":
        assert "! " in text and "0xfd00000000" in text and "dimm0" in text
    else:
        assert "-device pc-dimm,id=dimm0" in text and text.startswith("qemu-system-x86_64 \\")


def test_rmrr_at_zero_is_a_clear_no() -> None:
    spec = SPECS / "intel-rmrr.yaml"
    result = run_layoutd("plan", str(spec), "--host", str(HOSTS / "intel-dl388g8-rmrr"))
    # the spec's devices are not on that host: exit 2 naming the device
    assert_clean_failure(result, 2, "0000:01:00.0")


def test_no_layout_exits_1_and_names_the_hole(tmp_path: Path) -> None:
    spec = tmp_path / "vm.yaml"
    spec.write_text("name: vm\nmemory: {size: 8G}\ndevices: [0000:00:1f.0]\n")
    result = run_layoutd("plan", str(spec), "--host", str(HOSTS / "intel-dl388g8-rmrr"))
    assert_clean_failure(result, 1, "direct hole 0x0-0xffffff", "IOMMU group 19", "nothing close works")


@pytest.mark.parametrize(
    ("text", "needles"),
    [
        ("name: vm\nmemory: {size: 8G, sizee: 1}\n", ["vm.yaml", "memory.sizee", "line 2", "unknown field"]),
        ("name: vm\nmemory: {size: 8Q}\n", ["memory.size", "not a size"]),
        ("name: vm\n", ["memory", "required"]),
        ("name: vm\nmemory: {size: 8G}\nnuma: [{size: 4G, cpus: 0}]\n", ["numa sizes add up to 4G"]),
        ("name: vm\nmemory: {size: 8G}\ndevices: [nonsense]\n", ["not a PCI address"]),
        ("name: vm\nmemory: {size: 8G, hugepages: 1G, block: 3M}\n", ["power of two"]),
        ("name: vm\nmemory: {size: 8G\n", ["invalid YAML", "line"]),
        ("- a list\n", ["mapping"]),
        # issue 16: a bare number is never silently bytes; checks across fields name their line
        ("name: vm\nmemory:\n  size: 512\n", ["memory.size (line 3)", "no unit", "512M", "512B"]),
        ("name: vm\nmemory: {size: 1G}\nnuma:\n  - {size: 0x40000000, cpus: 0}\n",
         ["numa[0].size (line 4)", "no unit"]),
        ("name: vm\ncpu: {count: 2}\nmemory: {size: 8G}\nnuma:\n  - {size: 4G, cpus: 0}\n"
         "  - {size: 4G, cpus: 5}\n", ["numa[1].cpus (line 6)", "beyond cpu.count 2"]),
        ("name: vm\nmemory: {size: 8G}\ndevices:\n  - 0000:01:00.0\n  - bogus\n",
         ["devices[1] (line 5)", "'bogus'"]),
        ("name: vm\nmemory: {size: 8G}\nmachine: pc-foo\n", ["machine (line 3)", "pc-foo"]),
        ("name: vm\nmemory:\n  size: 8G\n  hotplug: {slots: 2, max: 4G}\n", ["memory.hotplug.max (line 4)"]),
        ("name: vm\nmemory: {size: 8G}\nname: other\n",
         ["vm.yaml", "line 3", "duplicate key 'name'", "line 1"]),
        ("name: vm\nmemory:\n  size: 8G\n  size: 4G\n", ["line 4", "duplicate key 'size'"]),
    ],
)
def test_bad_specs_exit_2_naming_the_field(text: str, needles: list[str], tmp_path: Path) -> None:
    spec = tmp_path / "vm.yaml"
    spec.write_text(text)
    result = run_layoutd("plan", str(spec), "--host", str(HOSTS / "intel-nic-msi-only"))
    assert_clean_failure(result, 2, *needles)


def test_missing_spec_and_bad_version() -> None:
    assert_clean_failure(
        run_layoutd("plan", "/nonexistent.yaml", "--host", str(HOSTS / "intel-nic-msi-only")),
        2,
        "/nonexistent.yaml",
        "no such file",
    )
    assert_clean_failure(
        run_layoutd("plan", str(SPECS / "migration.yaml"), "--qemu-version", "6.0"), 2, "6.0"
    )


def test_unknown_device_in_the_spec_names_the_file_and_field(tmp_path: Path) -> None:
    spec = tmp_path / "vm.yaml"
    spec.write_text("name: x\nmemory: {size: 4G}\ndevices: [0000:99:00.0]\n")
    result = run_layoutd("plan", str(spec), "--host", str(EXAMPLES / "hosts/amd-epyc-two-gpus"))
    assert_clean_failure(result, 2, f"{spec}: devices[0] (line 3): unknown device 0000:99:00.0")


def test_a_guest_of_another_architecture_is_said(tmp_path: Path) -> None:
    """An aarch64 spec on an x86 host's tree plans under TCG and says so; an x86 spec under KVM
    on an arm host is refused naming `accel` (KVM runs only the host's architecture)."""
    result = run_layoutd("plan", str(SPECS / "arm-nic.yaml"), "--host", str(HOSTS / "intel-4gpu-39bit"),
                         "--qemu-version", "10.0", "--format", "json")
    assert result.returncode == 0, result.stderr
    said = [w for w in json.loads(result.stdout)["warnings"] if "the host is x86_64" in w]
    assert said and "guest aarch64" in said[0] and "TCG" in said[0]
    same = run_layoutd("plan", str(SPECS / "arm-nic.yaml"), "--host", str(HOSTS / "arm-kunpeng-pci-windows"),
                       "--qemu-version", "10.0", "--format", "json")
    assert same.returncode == 0 and "the host is" not in same.stdout
    spec = tmp_path / "x86.yaml"
    spec.write_text("name: x86\nmemory: {size: 4G}\n")
    refused = run_layoutd("plan", str(spec), "--host", str(HOSTS / "arm-kunpeng-pci-windows"))
    assert_clean_failure(refused, 2, "accel: KVM runs only guests of the host's architecture",
                         "the host is aarch64", "accel: tcg")


def test_arm_on_qemu_72_never_gets_highmem_mmio_and_is_told_which_qemu_plans() -> None:
    """QEMU 7.2 refuses `-machine virt,highmem-mmio=off` (Property ... not found): planned for
    7.2 on a host whose IOMMU maps 39 bits the arm NIC gets a "no" whose suggestion names the
    QEMU that plans it, planned there; planned for 10.0 it takes highmem-mmio=off."""
    old = run_layoutd("plan", str(SPECS / "arm-nic.yaml"), "--host", str(HOSTS / "intel-4gpu-39bit"),
                      "--qemu-version", "7.2", "--format", "json")
    assert old.returncode == 1, old.stdout + old.stderr
    document = json.loads(old.stdout)
    assert "qemu_argv" not in document  # nothing emitted for 7.2
    ideas = document["would_work"]
    assert [idea["change"] for idea in ideas] == [{"highmem_mmio": False}]
    assert "plan --qemu-version 10.0" in ideas[0]["text"]
    new = run_layoutd("plan", str(SPECS / "arm-nic.yaml"), "--host", str(HOSTS / "intel-4gpu-39bit"),
                      "--qemu-version", "10.0", "--format", "json")
    assert new.returncode == 0 and "virt,highmem-mmio=off" in json.loads(new.stdout)["qemu_argv"]
