# ruff: noqa: E501  (command lines read best one per line)
"""The QEMU builds users run: distribution machine types (RHEL, Proxmox, Ubuntu) are answered by
a dry run of the binary (QEMU's own refusal when it lacks the type), a machine type the binary has
and the model does not is answered the same way, and --qemu-version naming another version than
the binary's is bad input naming both. Real 7.2, 10.0 and 11.1 binaries."""

import json
from collections.abc import Sequence
from pathlib import Path

import pytest

from layoutd.collisions import check
from layoutd.fixes import distro_machine_fix
from layoutd.host import probe_host
from layoutd.models.guest import GuestMap
from layoutd.qemu import predict
from layoutd.qemu.versions import distro_machine
from tests.conftest import ROOT, assert_clean_failure, run_layoutd
from tests.support.qemu_runner import VERSIONS, qemu_binary, wrapper

pytestmark = pytest.mark.qemu

HOST = str(ROOT / "examples/hosts/amd-4gpu-1100g")
GPU = "0000:41:00.0"
DISTRO_TYPES = ("pc-q35-rhel9.6.0", "pc-q35-noble")  # answered by the binary's dry run


@pytest.mark.parametrize(("name", "distro", "rule"), [
    ("pc-q35-rhel9.0.0", "RHEL", False),  # pc_q35_machine_rhel900_options: enforce_amd_1tb_hole = false
    ("pc-q35-rhel8.6.0", "RHEL", False),  # older types inherit rhel900's options
    ("pc-q35-rhel9.2.0", "RHEL", True),
    ("pc-q35-rhel9.6.0", "RHEL", True),
    ("pc-q35-rhel10.0.0", "RHEL", True),
    ("pc-i440fx-rhel7.6.0", "RHEL", False),  # pc_machine_rhel760_options: false
    ("pc-q35-7.0+pve0", "Proxmox", False),  # upstream 7.0's rule: +pveN changes no memory
    ("pc-q35-9.2+pve1", "Proxmox", True),
    ("q35+pve0", "Proxmox", None),  # the binary's newest type: the binary says
    ("pc-q35-noble", "Ubuntu", None),
    ("ubuntu-q35", "Ubuntu", None),
])
def test_distro_machine_types_and_their_amd_rule(name: str, distro: str, rule: bool | None) -> None:
    found = distro_machine(name)
    assert found is not None and (found.distro, found.amd_1tib_rule) == (distro, rule)


def test_upstream_types_are_not_distro_types() -> None:
    assert distro_machine("pc-q35-7.2") is None and distro_machine("q35") is None


def _as_upstream(args: Sequence[str]) -> list[str]:
    """RHEL 9.0's qemu-kvm is QEMU 6.2 (its q35 type without the rule, as upstream 7.0's), 9.2's
    is 7.2 (with it): the model of the upstream type stands in for the RHEL binary's dry run."""
    return [{"pc-q35-rhel9.0.0": "pc-q35-7.0", "pc-q35-rhel9.2.0": "pc-q35-7.2"}.get(a, a) for a in args]


def test_a_rhel_type_without_the_rule_is_told_rhels_first_type_with_it() -> None:
    host = probe_host(HOST, [GPU])
    args = ["-machine", "pc-q35-rhel9.0.0", "-cpu", "EPYC,phys-bits=48", "-m", "1100G"]

    def dry(changed: Sequence[str]) -> GuestMap:
        return predict(_as_upstream(changed), version="7.2")

    assert check(dry(args).layout, host)  # RAM across the HT hole
    fix = distro_machine_fix(args, dry, lambda guest: not check(guest.layout, host))
    assert fix is not None and fix.value == "pc-q35-rhel9.2.0", fix
    assert distro_machine_fix(["-machine", "pc-q35-rhel9.2.0", *args[2:]], dry,
                              lambda guest: True) is None  # has the rule already


@pytest.fixture(params=VERSIONS)
def binary(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, Path]:
    return request.param, wrapper(qemu_binary(request.param), tmp_path / "bin")


@pytest.mark.parametrize("machine", DISTRO_TYPES)
def test_a_distro_type_the_binary_lacks_is_refused_in_qemus_words(binary: tuple[str, Path], machine: str) -> None:
    version, path = binary
    result = run_layoutd("check", "--host", HOST, "--", str(path), "-machine", machine, "-m", "2G",
                         "-device", f"vfio-pci,host={GPU}")
    said = f'unsupported machine type: "{machine}"' if version != "7.2" else "unsupported machine type"
    assert_clean_failure(result, 2, "refused the dry run", said)


def test_a_proxmox_type_is_the_upstream_type(binary: tuple[str, Path]) -> None:
    """pc-q35-9.2+pve0: upstream 9.2's memory (+pveN changes none); 7.2 has no 9.2 type."""
    version, path = binary
    args = ["check", "--host", HOST, "--format", "json", "--", str(path), "-machine", "type=pc-q35-9.2+pve0",
            "-cpu", "EPYC,phys-bits=48", "-m", "1100G", "-accel", "tcg"]
    result = run_layoutd(*args)
    if version == "7.2":
        assert_clean_failure(result, 2, "unsupported machine type")
        return
    assert result.returncode == 0, result.stderr
    upstream = run_layoutd(*[a.replace("+pve0", "") for a in args])
    assert json.loads(result.stdout)["layout"] == json.loads(upstream.stdout)["layout"]


def test_a_type_the_binary_has_and_the_model_does_not_is_answered_by_it(binary: tuple[str, Path]) -> None:
    """pc-q35-2.4: older than the model's 2.5; 7.2 and 10.0 have it, 11.1 no longer does."""
    version, path = binary
    result = run_layoutd("check", "--host", HOST, "--format", "json", "--", str(path), "-machine",
                         "pc-q35-2.4", "-cpu", "Skylake-Server,phys-bits=48", "-m", "1100G",
                         "-device", f"vfio-pci,host={GPU}")
    if version == "11.1":
        assert_clean_failure(result, 2, 'unsupported machine type: "pc-q35-2.4"')
        return
    assert result.returncode == 1, result.stderr  # the binary's own map crosses the HT hole
    answer = json.loads(result.stdout)
    assert answer["machine"] == "pc-q35-2.4"
    assert any("machine types older than 2.5 are not modelled): this map comes from a dry run" in w
               for w in answer["warnings"])
    assert {c["hole"]["start"] for c in answer["collisions"]} == {"0xfd00000000"}


def test_qemu_version_naming_another_binary_is_refused_naming_both(binary: tuple[str, Path]) -> None:
    version, path = binary
    result = run_layoutd("check", "--host", HOST, "--qemu-version", "9.2", "--", str(path), "-m", "1G")
    assert_clean_failure(result, 2, "--qemu-version 9.2 is not modelled", f"{path} is QEMU {version}.")
    result = run_layoutd("check", "--host", HOST, "--qemu-version", "9.2", "--format", "json", "--",
                         str(path), "-m", "1G")
    assert result.returncode == 2
    error = json.loads(result.stdout)["error"]
    assert (error["kind"], error["field"]) == ("input", "--qemu-version")


def test_qemu_version_of_the_binary_itself_is_answered(tmp_path: Path) -> None:
    """--qemu-version 8.2 with a binary that says 8.2.2: the dry run answers as before."""
    path = wrapper(qemu_binary("7.2"), tmp_path / "bin82", "QEMU emulator version 8.2.2")
    result = run_layoutd("check", "--host", HOST, "--qemu-version", "8.2", "--", str(path), "-m", "1G")
    assert result.returncode == 0, result.stderr
    assert "QEMU 8.2 is not modelled: this map comes from a dry run" in result.stdout
