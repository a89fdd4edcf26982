# ruff: noqa: E501  (command lines read best one per line)
"""Guest memory behind an emulated device's BAR, which VFIO maps as RAM once the firmware placed
it (ivshmem-plain: Looking Glass's frame buffer; virtio-gpu-pci hostmem on 11.1): `check` puts it
in `layout` where the firmware puts the BAR and judges it like RAM. Proven by booting the real
firmware under TCG on the real QEMU 7.2, 10.0 and 11.1 and reading query-pci."""

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, run_layoutd
from tests.support.firmware_runner import booted_bars, ovmf_args
from tests.support.qemu_runner import VERSIONS, qemu_binary

pytestmark = pytest.mark.qemu

AMD = str(ROOT / "examples/hosts/amd-4gpu-1100g")
INTEL_39 = str(ROOT / "examples/hosts/intel-46bit-cpu-39bit-iommu")  # 46-bit CPU, 39-bit IOMMU


def looking_glass(folder: Path, size: str, bus: str = "") -> list[str]:
    """Looking Glass's shape: a shared file backend and ivshmem-plain on it."""
    return ["-object", f"memory-backend-file,id=lg,mem-path={folder / 'looking-glass'},size={size},share=on",
            "-device", "ivshmem-plain,memdev=lg,id=lg0" + (f",bus={bus}" if bus else "")]


def checked(host: str, version: str, args: Sequence[str]) -> tuple[int, dict[str, Any]]:
    result = run_layoutd("check", "--host", host, "--qemu-version", version, "--format", "json",
                         "--", "qemu-system-x86_64", *args)
    assert result.returncode in (0, 1), result.stderr
    return result.returncode, json.loads(result.stdout)


def placed(answer: dict[str, Any], kind: str, name: str) -> int | None:
    found = [int(r["start"], 16) for r in answer["layout"] if (r["kind"], r["id"]) == (kind, name)]
    return found[0] if found else None


HT_HOLE = range(0xFD00000000, 0x10000000000)
CASES = {  # name -> (machine and memory, ivshmem size, the QEMU versions whose SeaBIOS puts it in the HT hole)
    "clean: below 4 GiB": (["-machine", "q35", "-cpu", "EPYC", "-m", "4G"], "128M", ()),
    # a 7.0 machine type moves no RAM for AMD: RAM ends at the HT hole; SeaBIOS 1.16.2 puts the
    # BAR right after RAM, in the hole; 1.16.3+ put the 64-bit window at the top of phys-bits
    "in the AMD HyperTransport hole": (["-machine", "pc-q35-6.2", "-cpu", "EPYC,phys-bits=48", "-m", "1010G",
                                        "-object", "memory-backend-ram,id=ram,size=1010G,reserve=off",
                                        "-machine", "memory-backend=ram"], "2G", ("7.2",)),
}


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("case", CASES)
def test_ivshmem_is_placed_as_seabios_places_it_and_judged(version: str, case: str, tmp_path: Path) -> None:
    machine, size, in_hole = CASES[case]
    status = 1 if version in in_hole else 0
    args = ["-accel", "tcg", *machine, "-nodefaults", *looking_glass(tmp_path, size)]
    code, answer = checked(AMD, version, args)
    real = booted_bars(qemu_binary(version), args, ["lg0"], firmware="")  # QEMU's own SeaBIOS
    assert real[("lg0", 2)] is not None
    assert placed(answer, "ivshmem", "lg0") == real[("lg0", 2)], (answer["layout"], real)
    assert code == status, answer
    assert (real[("lg0", 2)] in HT_HOLE) == bool(status)
    hit = [c for c in answer["collisions"] if c["kind"] == "ivshmem"]
    assert bool(hit) == bool(status)
    if hit:
        assert {c["hole"]["start"] for c in hit} == {"0xfd00000000"}
        assert answer["would_work"], "a newer machine type moves RAM, and the BAR, past the hole"


def test_the_looking_glass_report_above_a_39_bit_iommu(tmp_path: Path) -> None:
    """gnif/LookingGlass#1184: an Intel 13th gen host (46-bit CPU, 39-bit IOMMU), `-cpu host`,
    OVMF, a GPU and a 256 MiB ivshmem-plain on its own root port, given as JSON; QEMU failed with
    VFIO_MAP_DMA -22 at iova 0x382000000000. Here under TCG: -cpu Skylake-Server,phys-bits=46,
    Debian 12's OVMF, a 128 GiB pci-testdev BAR for the GPU. check predicts that very address."""
    boot = ovmf_args(str(tmp_path))
    args = ["-machine", "q35", "-accel", "tcg", "-cpu", "Skylake-Server,phys-bits=46", "-m", "4G", "-nodefaults", *boot,
            "-device", "pcie-root-port,id=pci.1,chassis=1", "-device", "pci-testdev,membar=128G,id=gpu,bus=pci.1",
            "-object", json.dumps({"qom-type": "memory-backend-file", "id": "shmmem-shmem0",
                                   "mem-path": str(tmp_path / "kvmfr0"), "size": 268435456, "share": True}),
            "-device", "pcie-root-port,id=pci.16,chassis=16",
            "-device", json.dumps({"driver": "ivshmem-plain", "id": "shmem0", "memdev": "shmmem-shmem0",
                                   "bus": "pci.16", "addr": "0x0"})]
    code, answer = checked(INTEL_39, "10.0", args)
    assert placed(answer, "ivshmem", "shmem0") == 0x382000000000
    real = booted_bars(qemu_binary("10.0"), args, ["shmem0"], firmware="", timeout=240.0)
    assert real[("shmem0", 2)] == 0x382000000000
    assert code == 1
    assert [c["hole"]["type"] for c in answer["collisions"] if c["id"] == "shmem0"] == ["aperture"]


@pytest.mark.parametrize("version", VERSIONS)
def test_virtio_gpu_host_memory(version: str, tmp_path: Path) -> None:
    """virtio-gpu-pci hostmem=: 11.1 has it (BAR4, 64-bit prefetchable, placed and judged), 7.2
    refuses it in its own words; 10.0's Debian build here has no virtio-gpu module: not modelled."""
    args = ["-machine", "q35", "-accel", "tcg", "-cpu", "EPYC", "-m", "4G", "-nodefaults",
            "-device", "virtio-gpu-pci,hostmem=256M,id=gpu0"]
    result = run_layoutd("check", "--host", AMD, "--qemu-version", version, "--", "qemu-system-x86_64", *args)
    if version == "7.2":
        assert result.returncode == 2 and "Property 'virtio-gpu-pci.hostmem' not found" in result.stderr
        return
    if version == "10.0":
        assert result.returncode == 2 and "hostmem on QEMU 10.0 is not modelled" in result.stderr
        assert "is QEMU 7.2" in result.stderr  # the dry run would ask qemu-system-x86_64: not 10.0
        return
    code, answer = checked(AMD, version, args)
    real = booted_bars(qemu_binary(version), args, ["gpu0"], firmware="")
    assert real[("gpu0", 4)] is not None
    assert placed(answer, "virtio-gpu-hostmem", "gpu0") == real[("gpu0", 4)]
    assert code == 0


@pytest.mark.parametrize("version", VERSIONS)
def test_what_qemu_refuses_is_said_in_its_words(version: str) -> None:
    """Checked on each binary: ivshmem-doorbell has no memdev; upstream vhost-user-fs has no DAX
    cache window; ivshmem-plain needs its memdev."""
    for device, said in (("ivshmem-doorbell,memdev=x", "Property 'ivshmem-doorbell.memdev' not found"),
                         ("vhost-user-fs-pci,chardev=c,tag=t,cache-size=1G", "Property 'vhost-user-fs-pci.cache-size' not found"),
                         ("ivshmem-plain", "You must specify a 'memdev'"),
                         ("ivshmem-plain,memdev=nope", "Device 'nope' not found")):
        result = run_layoutd("check", "--host", AMD, "--qemu-version", version, "--", "qemu-system-x86_64",
                             "-m", "1G", "-device", device)
        assert result.returncode == 2 and said in result.stderr, (device, result.stderr)
        real = qemu_binary(version)
        from tests.support.qemu_runner import Refused, real_map

        refused = real_map(real, ["-nodefaults", "-m", "1G", "-chardev", "socket,id=c,path=/tmp/layoutd-no.sock,server=on,wait=off",
                                  "-device", device])
        assert isinstance(refused, Refused) and said in refused.stderr, (device, refused)


def test_a_qemu_answered_by_its_dry_run_places_ivshmem_too(tmp_path: Path) -> None:
    """A QEMU without a model row (a real 7.2 that says it is 8.2.2) answers RAM by its dry run;
    ivshmem's BAR is then placed by the firmware the binary loads, and judged: the HT hole case."""
    from tests.support.qemu_runner import wrapper

    binary = wrapper(qemu_binary("7.2"), tmp_path / "bin", "QEMU emulator version 8.2.2")
    machine, size, _ = CASES["in the AMD HyperTransport hole"]
    args = ["-accel", "tcg", *machine, "-nodefaults", *looking_glass(tmp_path, size)]
    result = run_layoutd("check", "--host", AMD, "--format", "json", "--", str(binary), *args)
    assert result.returncode == 1, result.stderr
    answer = json.loads(result.stdout)
    assert any("QEMU 8.2 is not modelled" in w for w in answer["warnings"])
    real = booted_bars(qemu_binary("7.2"), args, ["lg0"], firmware="")
    assert placed(answer, "ivshmem", "lg0") == real[("lg0", 2)] == 0xFD00000000


def test_ivshmem_doorbell_is_not_judged() -> None:
    """ivshmem-doorbell's memory comes from the ivshmem server at start: its size is not on the
    command line, so it is not judged (exit 3, in not_judged), never "no collision"."""
    result = run_layoutd("check", "--host", AMD, "--qemu-version", "7.2", "--format", "json", "--",
                         "qemu-system-x86_64", "-machine", "q35", "-m", "2G", "-chardev", "socket,id=c,path=/tmp/layoutd-no.sock",
                         "-device", "ivshmem-doorbell,chardev=c,id=db0", "-device", "vfio-pci,host=0000:41:00.0")
    assert result.returncode == 3, result.stderr
    assert [item["what"] for item in json.loads(result.stdout)["not_judged"]] == ["ivshmem db0 BAR2"]
