"""`layoutd check` as a user runs it: the real binary's --version, a host tree, exit codes."""

import json
from pathlib import Path

import pytest

from layoutd.errors import InputError
from tests.conftest import EXAMPLES, assert_clean_failure, need, run_layoutd
from tests.support.qemu_runner import CHROOTED, VERSIONS, qemu_binary

DIRECT = [version for version in VERSIONS if version not in CHROOTED]  # named qemu-system-*

pytestmark = pytest.mark.qemu

AMD_HOST = EXAMPLES / "hosts" / "amd-4gpu-1100g"
INTEL_HOST = EXAMPLES / "hosts" / "intel-dl388g8-rmrr"


def _qemu(version: str = "7.2") -> list[str]:
    binary = qemu_binary(version)
    return [binary.path, *binary.base_args]


def test_high_ram_across_the_amd_ht_hole_collides() -> None:
    need(AMD_HOST.is_dir(), f"{AMD_HOST}")
    result = run_layoutd("check", "--host", str(AMD_HOST), "--", *_qemu(), "-machine", "q35",
                         "-cpu", "Skylake-Server,phys-bits=48", "-m", "1100G",
                         "-device", "vfio-pci,host=41:00.0")
    assert result.returncode == 1, result.stderr
    assert "0xfd00000000-0xffffffffff" in result.stdout
    assert "IOMMU group 35" in result.stdout and "reserved" in result.stdout
    assert "0x100000000-0x1137fffffff" in result.stdout


@pytest.mark.parametrize("version", DIRECT)
def test_amd_guest_cpu_moves_ram_clear_of_the_hole(version: str) -> None:
    need(AMD_HOST.is_dir(), f"{AMD_HOST}")
    result = run_layoutd("check", "--host", str(AMD_HOST), "--format", "json", "--",
                         *_qemu(version), "-machine", "q35", "-cpu", "EPYC,phys-bits=48",
                         "-m", "1100G", "-device", "vfio-pci,host=41:00.0")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["qemu_version"] == version and data["machine"] == f"pc-q35-{version}"
    assert data["collisions"] == []
    assert data["layout"][-1] == {"start": "0x10000000000", "end": "0x2127fffffff", "kind": "ram",
                                  "id": "pc.ram", "node": None}
    assert {"name": "pci-hole64", "start": "0x21280000000", "end": "0x21a7fffffff"} in data["regions"]


def test_rmrr_below_16m_collides_in_json() -> None:
    need(INTEL_HOST.is_dir(), f"{INTEL_HOST}")
    result = run_layoutd("check", "--host", str(INTEL_HOST), "--format", "json",
                         "--devices", "0000:00:1f.0", "--", *_qemu(), "-m", "4G")
    assert result.returncode == 1, result.stderr
    collisions = json.loads(result.stdout)["collisions"]
    assert collisions and collisions[0]["hole"]["type"] == "direct"
    assert collisions[0]["start"] == "0x0" and collisions[0]["kind"] == "ram"


def test_qemu_refusal_exits_2_in_qemus_words() -> None:
    result = run_layoutd("check", "--host", str(AMD_HOST), "--", *_qemu(), "-machine", "q35",
                         "-cpu", "EPYC", "-m", "1100G")
    assert_clean_failure(result, 2, "Address space limit 0xffffffffff < 0x21a7fffffff "
                                    "phys-bits too low (40)")


def test_bad_argv_exits_2_naming_the_option() -> None:
    result = run_layoutd("check", "--host", str(AMD_HOST), "--", *_qemu(), "-m", "1G",
                         "-object", "memory-backend-epc,id=e,size=1G")
    assert_clean_failure(result, 2, "memory-backend-epc")
    result = run_layoutd("check", "--host", str(AMD_HOST), "--", *_qemu(), "-bogus")
    assert_clean_failure(result, 2, "-bogus")


def test_version_comes_from_the_binary_unless_given() -> None:
    args = ["check", "--host", str(AMD_HOST), "--format", "json"]
    result = run_layoutd(*args, "--qemu-version", "10.0", "--", *_qemu("7.2"), "-m", "1G")
    assert json.loads(result.stdout)["machine"] == "pc-i440fx-10.0", result.stderr
    result = run_layoutd(*args, "--", "/bin/true", "-m", "1G")
    assert_clean_failure(result, 2, "/bin/true")


@pytest.mark.parametrize("version", DIRECT)
def test_version_of_binary_asks_once(version: str, tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from layoutd.emulator import version_of_binary

    monkeypatch.setenv("LAYOUTD_CACHE", str(tmp_path))
    path = qemu_binary(version).path
    assert version_of_binary(path) == version
    assert (tmp_path / "qemu-versions.json").is_file()
    assert version_of_binary(path) == version  # from the cache
    with pytest.raises(InputError, match="did not say a QEMU version"):
        version_of_binary("/bin/true")


def test_a_cache_entry_in_another_form_is_asked_again(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """The version cache is shared by every layoutd on the machine: an entry that is not a
    version (another layoutd's format, a hand edit) costs a QEMU start, never a wrong answer."""
    import json

    from layoutd.emulator import version_of_binary

    monkeypatch.setenv("LAYOUTD_CACHE", str(tmp_path))
    path = qemu_binary("7.2").path
    assert version_of_binary(path) == "7.2"
    cache = tmp_path / "qemu-versions.json"
    data = json.loads(cache.read_text())
    cache.write_text(json.dumps({key: "seven-point-two" for key in data}))
    assert version_of_binary(path) == "7.2"


def test_kvm_needs_the_host_cpu_and_names_the_source_without_it(tmp_path: Path) -> None:
    """Under KVM the guest CPU takes the host's vendor: a host tree without proc/cpuinfo cannot
    answer, and says so (exit 2); the same tree with it answers (the AMD host's EPYC moves)."""
    import shutil

    tree = tmp_path / "host"
    shutil.copytree(AMD_HOST, tree, symlinks=True)
    (tree / "proc" / "cpuinfo").unlink()
    argv = ["--qemu-version", "7.2", "--", "qemu-system-x86_64", "-accel", "kvm", "-machine", "q35",
            "-cpu", "Skylake-Server,phys-bits=48", "-m", "1100G"]
    assert_clean_failure(run_layoutd("check", "--host", str(tree), *argv), 2,
                         "host CPU's vendor", str(tree), "/proc/cpuinfo")
    answered = run_layoutd("check", "--host", str(AMD_HOST), "--format", "json", *argv)
    assert answered.returncode == 0, answered.stderr
    layout = json.loads(answered.stdout)["layout"]
    assert int(layout[-1]["start"], 16) == 1 << 40  # Skylake on an AMD host under KVM is AMD
