"""Firmware builds layoutd has no row for are booted (layoutd.boot), and the answer is used as a
model's would be: `check --format json` `bars` equals what the firmware does when booted for
real (an independent boot: tests/support/firmware_runner.py, its own stand-ins, one slot each),
and, since these builds are Debian's with one byte changed outside their code, equals the model of
the build they came from too.

The builds: Debian 12's SeaBIOS 1.16.2 (bios-256k.bin, a byte of its zero padding changed) and
OVMF 2022.11 (OVMF_CODE_4M.fd, a byte of the free space of its compressed volume changed, with
Debian's VARS template beside it); made here once, kept in the test cache.
"""

import json
import os
import shutil
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import EXAMPLES, run_layoutd
from tests.support.firmware_runner import FIRMWARE, booted_bars, changed_copy, stand_in_argv
from tests.support.qemu_runner import qemu_binary

SEABIOS, OVMF_CODE, OVMF_VARS = (Path("/usr/share/seabios/bios-256k.bin"),
                                 Path("/usr/share/OVMF/OVMF_CODE_4M.fd"),
                                 Path("/usr/share/OVMF/OVMF_VARS_4M.fd"))
INTEL = EXAMPLES / "hosts/intel-46bit-cpu-39bit-iommu"  # a 16G GPU; the IOMMU maps 39 bits
AMD = EXAMPLES / "hosts/amd-epyc-two-gpus"  # two 32G GPUs; HyperTransport hole 0xfd00000000
PREF64 = "0x000000000014220c"


@pytest.fixture(scope="module")
def seabios() -> Path:
    return changed_copy(SEABIOS, 0x100, "bios-256k.bin")


@pytest.fixture(scope="module")
def ovmf() -> Path:
    code = changed_copy(OVMF_CODE, 0x200000, "OVMF_CODE_4M.fd")
    if not (FIRMWARE / "OVMF_VARS_4M.fd").exists():
        shutil.copyfile(OVMF_VARS, FIRMWARE / "OVMF_VARS_4M.fd")
    return code


@pytest.fixture(autouse=True)
def boot_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path_factory.mktemp("boots")
    folder.chmod(0o700)
    monkeypatch.setenv("LAYOUTD_BOOT_CACHE", str(folder))
    monkeypatch.setenv("LAYOUTD_BOOT_TIMEOUT", "1500")  # OVMF under TCG on a shared, busy machine
    return folder


def host_with(base: Path, folder: Path, added: dict[str, int]) -> Path:
    """A copy of the host tree `base` with more GPUs: each a copy of its first device (same
    IOMMU group) whose BAR1 has the given size."""
    root = folder / base.name
    if root.exists():
        return root
    shutil.copytree(base, root)
    devices = root / "sys/bus/pci/devices"
    template = sorted(devices.iterdir())[0]
    group = (template / "iommu_group").read_text().strip().rsplit("/", 1)[-1]
    for bdf, size in added.items():
        shutil.copytree(template, devices / bdf)
        lines = (template / "resource").read_text().splitlines()
        start = 0x10000000000 * (1 + len(list(devices.iterdir())))
        lines[1] = f"{start:#018x} {start + size - 1:#018x} {PREF64}"
        (devices / bdf / "resource").write_text("\n".join(lines) + "\n")
        (root / f"sys/kernel/iommu_groups/{group}/devices" / bdf).write_text(bdf + "\n")
    return root


def vfio(*bdfs: str) -> list[str]:
    return [word for bdf in bdfs for word in ("-device", f"vfio-pci,host={bdf}")]


def check(host: Path, args: Sequence[str]) -> tuple[int, dict[str, Any]]:
    result = run_layoutd("check", "--host", str(host), "--qemu-version", "7.2", "--format", "json",
                         "--", "qemu-system-x86_64", *args, timeout=900)
    assert "Traceback" not in result.stderr, result.stderr
    return result.returncode, json.loads(result.stdout)


def bars_of(data: dict[str, Any]) -> dict[tuple[str, int], int | None]:
    return {(b["device"], b["bar"]): None if b["start"] is None else int(b["start"], 16)
            for b in data["bars"]}


def independent(host: Path, args: Sequence[str], firmware: list[str], assigns: bool
                ) -> dict[tuple[str, int], int | None]:
    """The same VM booted by the test harness with its own stand-ins, read with query-pci."""
    argv, plays = stand_in_argv(list(args), host)
    real = booted_bars(qemu_binary("7.2"), [*firmware, *argv], list(plays), firmware="as-is",
                       timeout=600 if assigns else 150)
    return {plays[ident]: start for (ident, bar), start in real.items() if bar == 2}


def pflash(code: Path) -> list[str]:
    return ["-drive", f"if=pflash,format=raw,readonly=on,file={code}"]


def ovmf_pair(code: Path, folder: Path) -> list[str]:
    variables = folder / "vars.fd"
    shutil.copyfile(OVMF_VARS, variables)
    return [*pflash(code), "-drive", f"if=pflash,format=raw,file={variables}"]


Q35 = ["-machine", "q35", "-accel", "tcg", "-nodefaults"]
GPU = vfio("0000:01:00.0", "0000:01:00.1")


def test_seabios_without_a_row_is_booted_and_placed_as_the_real_one(seabios: Path) -> None:
    args = [*Q35, "-cpu", "EPYC,phys-bits=46", "-m", "2G", *GPU]
    code, data = check(INTEL, [*args, "-bios", str(seabios)])
    assert code == 0, data
    assert data["how_known"]["bars"] == "boot" and data["not_judged"] == []
    assert "booted under TCG" in data["firmware"]
    real = independent(INTEL, args, ["-bios", str(seabios)], True)
    assert bars_of(data) == real and len(real) == 2 and None not in real.values()
    model_code, model = check(INTEL, [*args, "-bios", str(SEABIOS)])
    assert model_code == 0 and model["how_known"]["bars"] == "model"
    assert bars_of(model) == bars_of(data)


def test_seabios_bar_in_the_amd_ht_hole(seabios: Path, tmp_path: Path) -> None:
    """900G on an EPYC guest and four 32G BARs: SeaBIOS's window after RAM reaches the
    HyperTransport hole; exit 1 naming the BAR and the hole."""
    host = host_with(AMD, tmp_path, {"0000:2b:00.0": 32 << 30, "0000:2c:00.0": 32 << 30})
    args = [*Q35, "-cpu", "EPYC,phys-bits=48", "-m", "900G",
            *vfio("0000:29:00.0", "0000:2a:00.0", "0000:2b:00.0", "0000:2c:00.0")]
    code, data = check(host, [*args, "-bios", str(seabios)])
    assert code == 1 and data["how_known"]["bars"] == "boot"
    hits = [c for c in data["collisions"] if c["kind"] == "bar"]
    assert hits and all(c["hole"]["start"] == "0xfd00000000" for c in hits), data["collisions"]
    real = independent(host, args, ["-bios", str(seabios)], True)
    assert bars_of(data) == real and len(real) == 8
    assert bars_of(check(host, [*args, "-bios", str(SEABIOS)])[1]) == real


def test_ovmf_without_a_row_above_the_iommu_top_and_left_unassigned(ovmf: Path,
                                                                   tmp_path: Path) -> None:
    """Booted at once (OVMF takes about a minute under TCG): the BARs above the 39-bit IOMMU top
    (46 trusted phys-bits: the window at 0x380000000000), and a 16G and a 64G GPU with 39 phys-bits
    on an AMD CPU (not trusted: the classic 32 GiB window, too small: nothing assigned); and the
    issue's `-cpu max,phys-bits=46 -m 16G` with the same two GPUs. Each against the model of
    Debian 12's OVMF, the first two against an independent boot too."""
    two = host_with(INTEL, tmp_path, {"0000:02:00.0": 64 << 30})
    gpus = vfio("0000:01:00.0", "0000:01:00.1", "0000:02:00.0")
    cases = {
        "above": (INTEL, [*Q35, "-cpu", "EPYC,phys-bits=46", "-m", "2G", *GPU], True),
        "unassigned": (two, [*Q35, "-cpu", "EPYC,phys-bits=39", "-m", "2G", *gpus], False),
        "issue": (two, [*Q35, "-cpu", "max,phys-bits=46", "-m", "16G", *gpus], True),
    }
    with ThreadPoolExecutor(max_workers=2 * len(cases)) as pool:
        checks = {name: pool.submit(check, host, [*args, *pflash(ovmf)])
                  for name, (host, args, _) in cases.items()}
        boots = {name: pool.submit(independent, host, args, ovmf_pair(ovmf, tmp_path / name), assigns)
                 for name, (host, args, assigns) in cases.items()
                 if name != "issue" and not (tmp_path / name).mkdir()}  # CPU is scarce: two
        found = {name: future.result() for name, future in checks.items()}
        real = {name: future.result() for name, future in boots.items()}
    for name, (host, args, _) in cases.items():
        code, data = found[name]
        assert data["how_known"]["bars"] == "boot", (name, data["warnings"])
        model = bars_of(check(host, [*args, *pflash(OVMF_CODE)])[1])
        assert bars_of(data) == real.get(name, model) == model, (name, data["bars"], real.get(name))
        assert code == 1, (name, data)
    above = found["above"][1]
    assert {c["hole"]["type"] for c in above["collisions"]} == {"aperture"}
    unassigned = found["unassigned"][1]
    assert all(b["start"] is None for b in unassigned["bars"]) and len(unassigned["bars"]) == 4
    assert {(c["id"], c["start"], c["hole"]["type"]) for c in unassigned["collisions"]} == {
        (f"{b['device']} BAR{b['bar']}", None, "unassigned") for b in unassigned["bars"]}
    text = run_layoutd("check", "--host", str(two), "--qemu-version", "7.2", "--",
                       "qemu-system-x86_64", *cases["unassigned"][1], *pflash(ovmf))
    assert "bar '0000:02:00.0 BAR1' is left unassigned" in text.stdout, text.stdout
    assert "the guest driver will see no BAR" in text.stdout
    assert "answer from the cache" in text.stdout  # the same VM again: no second boot


def test_a_repeated_check_is_answered_from_the_cache(seabios: Path, boot_cache: Path) -> None:
    args = [*Q35, "-cpu", "EPYC,phys-bits=46", "-m", "2G", *GPU, "-bios", str(seabios)]
    first = check(INTEL, args)[1]
    assert "answer from the cache" not in first["firmware"]
    second = check(INTEL, args)[1]
    assert "answer from the cache" in second["firmware"] and second["bars"] == first["bars"]
    # a cache folder others can write to is not trusted: booted again, and said
    boot_cache.chmod(0o777)
    try:
        third = check(INTEL, args)[1]
    finally:
        boot_cache.chmod(0o700)
    assert "answer from the cache" not in third["firmware"]
    assert any("writable by others" in w for w in third["warnings"]), third["warnings"]
    # a changed firmware file is another key
    entries = len(os.listdir(boot_cache))
    other = boot_cache.parent / "other-bios.bin"
    data = bytearray(seabios.read_bytes())
    data[0x101] ^= 0x01
    other.write_bytes(bytes(data))
    fourth = check(INTEL, [*args[:-1], str(other)])[1]
    assert "answer from the cache" not in fourth["firmware"]
    assert len(os.listdir(boot_cache)) == entries + 1
