"""`layoutd probe` as a user runs it: every failure mode of the contract's exit table."""

import json
import shutil
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES, assert_clean_failure, need, run_layoutd

AMD = EXAMPLES / "hosts/amd-epyc-two-gpus"


def copy_host(tmp_path: Path, name: str = "amd-epyc-two-gpus") -> Path:
    tree = tmp_path / name
    shutil.copytree(EXAMPLES / "hosts" / name, tree)
    for path in tree.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    return tree


def test_json_per_contract() -> None:
    result = run_layoutd("probe", "--host", str(AMD), "--devices", "0000:29:00.0", "--format", "json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["source"] == f"sysfs:{AMD}"
    assert data["usable"] == [
        {"start": "0x0", "end": "0xfedfffff"},
        {"start": "0xfef00000", "end": "0xfcffffffff"},
        {"start": "0x10000000000", "end": "0xffffffffffffffff"},
    ]
    assert {"start": "0xfd00000000", "end": "0xffffffffff", "type": "reserved", "group": 28}.items() <= \
        data["reserved"][1].items()
    assert data["aperture_end"] is None
    assert data["cpu"]["vendor"] == "amd" and data["cpu"]["phys_bits"] == 48


def test_json_matches_its_schema() -> None:
    try:
        import jsonschema
    except ImportError:
        need(False, "the Python package jsonschema (pyproject.toml, test extra)")
    schema = json.loads((Path(__file__).parents[2] / "schemas/probe.schema.json").read_text())
    result = run_layoutd("probe", "--host", str(EXAMPLES / "hosts/intel-4gpu-39bit"), "--format", "json")
    jsonschema.validate(json.loads(result.stdout), schema)


def test_text_table() -> None:
    result = run_layoutd("probe", "--host", str(EXAMPLES / "hosts/intel-4gpu-39bit"))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for needle in ("source: sysfs:", "GROUP", "DRIVER", "snd_hda_intel", "direct-relaxable",
                   "0x7c800000", "usable IOVA ranges", "0x7fffffffff", "not viable"):
        assert needle in out, needle


def test_missing_path() -> None:
    result = run_layoutd("probe", "--host", "/nonexistent/host")
    assert_clean_failure(result, 2, "/nonexistent/host", "no such host source")


def test_directory_that_is_not_a_host_tree(tmp_path: Path) -> None:
    assert_clean_failure(run_layoutd("probe", "--host", str(tmp_path)), 2,
                         str(tmp_path), "sys/kernel/iommu_groups is missing")


def test_garbled_reserved_regions_line(tmp_path: Path) -> None:
    tree = copy_host(tmp_path)
    regions = tree / "sys/kernel/iommu_groups/28/reserved_regions"
    regions.write_text("0x00000000fee00000 0x00000000feefffff msi\n0xfd00000000 oops reserved\n")
    result = run_layoutd("probe", "--host", str(tree))
    assert_clean_failure(result, 2, str(regions), "line 2")


def test_region_that_ends_before_it_starts(tmp_path: Path) -> None:
    tree = copy_host(tmp_path)
    regions = tree / "sys/kernel/iommu_groups/27/reserved_regions"
    regions.write_text("0x00000000feefffff 0x00000000fee00000 msi\n")
    assert_clean_failure(run_layoutd("probe", "--host", str(tree)), 2, str(regions), "line 1")


def test_unknown_device() -> None:
    result = run_layoutd("probe", "--host", str(AMD), "--devices", "0000:29:00.0,0000:99:00.0")
    assert_clean_failure(result, 2, "0000:99:00.0", "unknown device")


def test_not_a_pci_address() -> None:
    result = run_layoutd("probe", "--host", str(AMD), "--devices", "gpu0")
    assert_clean_failure(result, 2, "'gpu0'", "--devices")


def test_empty_group(tmp_path: Path) -> None:
    tree = copy_host(tmp_path)
    (tree / "sys/kernel/iommu_groups/27/devices/0000:2a:00.0").unlink()
    result = run_layoutd("probe", "--host", str(tree))
    assert_clean_failure(result, 2, "iommu_groups/27/devices", "group 27 lists no devices")


def test_host_without_any_group(tmp_path: Path) -> None:
    (tmp_path / "sys/kernel/iommu_groups").mkdir(parents=True)
    assert_clean_failure(run_layoutd("probe", "--host", str(tmp_path)), 3, "no IOMMU is enabled")


@pytest.mark.parametrize(("content", "needles"), [
    ("{not json", ("invalid JSON",)),
    ("[1, 2]", ("not a layoutd host dump",)),
    ('{"format": "layoutd-host-dump", "version": 99, "facts": {}}', ("version 99",)),
    ('{"format": "layoutd-host-dump", "version": 1, "facts": {"cpu": {"vendor": "amd", '
     '"phys_bits": 48}, "devices": [], "groups": "nope"}}', ("facts.groups",)),
    ("", ("invalid JSON",)),
])
def test_broken_dump(tmp_path: Path, content: str, needles: tuple[str, ...]) -> None:
    dump = tmp_path / "broken.json"
    dump.write_text(content)
    assert_clean_failure(run_layoutd("probe", "--host", str(dump)), 2, str(dump), *needles)


def test_dump_with_a_garbled_region_names_the_group(tmp_path: Path) -> None:
    dump = tmp_path / "host.json"
    assert run_layoutd("probe", "--host", str(AMD), "--record", str(dump)).returncode == 0
    data = json.loads(dump.read_text())
    data["facts"]["groups"][0]["reserved_regions"] = "garbage\n"
    dump.write_text(json.dumps(data))
    assert_clean_failure(run_layoutd("probe", "--host", str(dump)), 2, str(dump), "line 1")


def test_record_then_replay(tmp_path: Path) -> None:
    dump = tmp_path / "host.json"
    first = run_layoutd("probe", "--host", str(AMD), "--format", "json", "--record", str(dump))
    assert first.returncode == 0, first.stderr
    again = run_layoutd("probe", "--host", str(dump), "--format", "json")
    assert again.returncode == 0, again.stderr
    one, two = json.loads(first.stdout), json.loads(again.stdout)
    assert two["source"] == f"dump:{dump}"
    for key in ("usable", "reserved", "aperture_end", "groups", "devices", "cpu"):
        assert one[key] == two[key], key


def test_record_to_an_unwritable_place(tmp_path: Path) -> None:
    target = tmp_path / "missing-dir" / "host.json"
    result = run_layoutd("probe", "--host", str(AMD), "--record", str(target))
    assert_clean_failure(result, 2, str(target), "cannot write")


def test_layoutd_host_environment() -> None:
    result = run_layoutd("probe", "--format", "json", env={"LAYOUTD_HOST": str(AMD)})
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["source"] == f"sysfs:{AMD}"


def test_live_on_this_machine() -> None:
    """This machine's live answer: exit 3 with the reason when it has no IOMMU groups, else an
    answer that says which reader answered."""
    result = run_layoutd("probe", "--host", "live", "--format", "json")
    groups = Path("/sys/kernel/iommu_groups")
    if not groups.is_dir() or not any(groups.iterdir()):
        assert_clean_failure(result, 3, "iommu_groups")
    else:
        assert result.returncode == 0, result.stderr
        source = json.loads(result.stdout)["source"]
        assert source in ("iommufd", "vfio-type1", "sysfs:/")
