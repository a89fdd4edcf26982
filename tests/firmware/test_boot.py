"""Firmware builds layoutd has no row for are booted (layoutd.boot), and the answer is used as a
model's would be: `check --format json` `bars` equals what the firmware does when booted for
real (an independent boot: tests/support/firmware_runner.py, its own stand-ins, one slot each),
and, since these builds are Debian's with one byte changed outside their code, equals the model of
the build they came from too.

The builds: Debian 12's SeaBIOS 1.16.2 (bios-256k.bin, a byte of its zero padding changed) and
OVMF 2022.11 (OVMF_CODE_4M.fd, a byte of the free space of its compressed volume changed, with
Debian's VARS template beside it), made here once and kept in the test cache; and a SeaBIOS
compiled from Debian's seabios source with another configuration (scripts/build-seabios.sh).
"""

import json
import os
import shutil
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import EXAMPLES, need, run_layoutd
from tests.support.firmware_runner import FIRMWARE, booted_bars, changed_copy, stand_in_argv
from tests.support.qemu_runner import CACHE, qemu_binary

pytestmark = pytest.mark.qemu  # starts real QEMU or firmware: not in -m "not qemu"

SEABIOS, OVMF_CODE, OVMF_VARS = (Path("/usr/share/seabios/bios-256k.bin"),
                                 Path("/usr/share/OVMF/OVMF_CODE_4M.fd"),
                                 Path("/usr/share/OVMF/OVMF_VARS_4M.fd"))
INTEL = EXAMPLES / "hosts/intel-46bit-cpu-39bit-iommu"  # a 16G GPU; the IOMMU maps 39 bits
AMD = EXAMPLES / "hosts/amd-epyc-two-gpus"  # two 32G GPUs; HyperTransport hole 0xfd00000000
PREF64 = "0x000000000014220c"


CUSTOM = CACHE / "seabios-custom/bios-256k.bin"  # scripts/build-seabios.sh


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
    """The same VM booted by the test harness with its own stand-ins, read with query-pci; one
    expected to leave BARs unassigned is read once its boot CPU waits for input (halted 5 s:
    OVMF that assigned nothing has no serial console to say so), never merely at a time limit."""
    argv, plays = stand_in_argv(list(args), host)
    real = booted_bars(qemu_binary("7.2"), [*firmware, *argv], list(plays), firmware="as-is",
                       timeout=1500, idle=not assigns)
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
    assert data["how_known"] == {"layout": "model", "bars": "boot"} and data["not_judged"] == []
    assert "booted under TCG" in data["firmware"]
    real = independent(INTEL, args, ["-bios", str(seabios)], True)
    assert bars_of(data) == real and len(real) == 2 and None not in real.values()
    model_code, model = check(INTEL, [*args, "-bios", str(SEABIOS)])
    assert model_code == 0 and model["how_known"]["bars"] == "model"
    assert bars_of(model) == bars_of(data)


def test_seabios_built_with_another_configuration(tmp_path: Path) -> None:
    """Debian 12's SeaBIOS source built without debug output or boot menu: it says nothing, so
    the boot ends when every BAR stays put; placed as 1.16.2 places them (the same pciinit.c):
    clear on the Intel host, across the HyperTransport hole on the AMD one."""
    need(CUSTOM.exists(), f"{CUSTOM} (scripts/build-seabios.sh)")
    amd = host_with(AMD, tmp_path, {"0000:2b:00.0": 32 << 30, "0000:2c:00.0": 32 << 30})
    cases = [(INTEL, [*Q35, "-cpu", "EPYC,phys-bits=46", "-m", "2G", *GPU], 0),
             (amd, [*Q35, "-cpu", "EPYC,phys-bits=48", "-m", "900G",
                    *vfio("0000:29:00.0", "0000:2a:00.0", "0000:2b:00.0", "0000:2c:00.0")], 1)]
    for host, args, expected in cases:
        code, data = check(host, [*args, "-bios", str(CUSTOM)])
        assert code == expected and data["how_known"]["bars"] == "boot", data
        real = independent(host, args, ["-bios", str(CUSTOM)], True)
        assert bars_of(data) == real and None not in real.values()
        assert bars_of(check(host, [*args, "-bios", str(SEABIOS)])[1]) == real


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
    """Booted at once (OVMF takes a minute or more under TCG): the BARs above the 39-bit IOMMU
    top (46 trusted phys-bits: the window at 0x380000000000), and a 16G and a 64G GPU with 39
    phys-bits on an AMD CPU (not trusted: the classic 32 GiB window, too small: nothing
    assigned). Each against an independent boot and the model of Debian 12's OVMF."""
    two = host_with(INTEL, tmp_path, {"0000:02:00.0": 64 << 30})
    gpus = vfio("0000:01:00.0", "0000:01:00.1", "0000:02:00.0")
    cases = {
        "above": (INTEL, [*Q35, "-cpu", "EPYC,phys-bits=46", "-m", "2G", *GPU], True),
        "unassigned": (two, [*Q35, "-cpu", "EPYC,phys-bits=39", "-m", "2G", *gpus], False),
    }
    with ThreadPoolExecutor(max_workers=2 * len(cases)) as pool:
        checks = {name: pool.submit(check, host, [*args, *pflash(ovmf)])
                  for name, (host, args, _) in cases.items()}
        boots = {name: pool.submit(independent, host, args, ovmf_pair(ovmf, tmp_path / name),
                                   assigns)
                 for name, (host, args, assigns) in cases.items()
                 if not (tmp_path / name).mkdir()}
        found = {name: future.result() for name, future in checks.items()}
        real = {name: future.result() for name, future in boots.items()}
    for name, (host, args, _) in cases.items():
        code, data = found[name]
        assert data["how_known"]["bars"] == "boot", (name, data["warnings"])
        model = bars_of(check(host, [*args, *pflash(OVMF_CODE)])[1])
        assert bars_of(data) == real[name] == model, (name, data["bars"], real[name])
        assert code == 1, (name, data)
    above = found["above"][1]
    assert {c["hole"]["type"] for c in above["collisions"]} == {"aperture"}
    assert above["bars"][0]["start"] == "0x380000000000"
    unassigned = found["unassigned"][1]
    assert all(b["start"] is None for b in unassigned["bars"]) and len(unassigned["bars"]) == 4
    assert {(c["id"], c["start"], c["hole"]["type"]) for c in unassigned["collisions"]} == {
        (f"{b['device']} BAR{b['bar']}", None, "unassigned") for b in unassigned["bars"]}
    text = run_layoutd("check", "--host", str(two), "--qemu-version", "7.2", "--",
                       "qemu-system-x86_64", *cases["unassigned"][1], *pflash(ovmf), timeout=900)
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


HT = (0xFD00000000, 0xFFFFFFFFFF)


def test_plan_with_a_firmware_without_a_row_boots_where_the_iommu_maps(seabios: Path,
                                                                       tmp_path: Path) -> None:
    """960G on an EPYC guest with the byte-changed SeaBIOS: each candidate plan is booted; the
    plan takes a 64-bit hole that makes QEMU put RAM at 1 TiB, and its command line, booted by
    the test harness with its own stand-ins, puts every BAR where the plan says, clear of the
    HyperTransport hole."""
    spec = tmp_path / "vm.yaml"
    spec.write_text("name: ht\nmachine: q35\naccel: tcg\ncpu: {model: EPYC, count: 1}\n"
                    "memory: {size: 960G}\ndevices: [0000:29:00.0, 0000:2a:00.0]\n"
                    f"firmware: {seabios}\n")
    result = run_layoutd("plan", str(spec), "--host", str(AMD), "--qemu-version", "7.2",
                         "--format", "json", timeout=900)
    assert result.returncode == 0, result.stdout + result.stderr
    plan = json.loads(result.stdout)
    chosen = [w for w in plan["warnings"] if " chosen so that firmware " in w]
    assert chosen and chosen[0].startswith("pci_hole64 "), plan["warnings"]
    args, plays = stand_in_argv(list(plan["qemu_argv"]), AMD)
    real = booted_bars(qemu_binary("7.2"), args, list(plays), firmware="as-is", timeout=300,
                       nodefaults=False)
    booted = {plays[ident]: start for (ident, bar), start in real.items() if bar == 2}
    planned = {(bar["device"], bar["bar"]): int(bar["start"], 16) for bar in plan["bars"]}
    assert booted == planned and len(planned) == 4
    assert all(int(b["end"], 16) < HT[0] or int(b["start"], 16) > HT[1] for b in plan["bars"])
    code, data = check(AMD, plan["qemu_argv"])
    assert code == 0 and data["how_known"]["bars"] == "boot" and bars_of(data) == planned


def test_stand_ins_keep_the_device_slot_and_bar_shapes() -> None:
    """Each 64-bit BAR gets a stand-in of its size and kind at the device's own slot (its other
    BARs at free functions of that slot); a non-prefetchable one QEMU's nvme of that size."""
    from layoutd.boot import stand_ins
    from layoutd.firmware.guest import nvme_bar0, read_argv
    from layoutd.host import probe_host

    host = probe_host(str(INTEL), ["0000:01:00.0"])
    devices = {d.address: d for d in host.devices}
    gpu = devices["0000:01:00.0"]
    nvme_like = replace_bar(gpu, 1, 16 * 1024, prefetchable=False)
    devices["0000:01:00.0"] = nvme_like
    argv = ["-machine", "q35", "-nodefaults", "-device", "pcie-root-port,id=rp1,chassis=1",
            "-device", "vfio-pci,host=0000:01:00.0,bus=rp1", "-device", "vfio-pci,host=0000:01:00.1"]
    pci = read_argv(argv, "q35", devices)
    replacing, plays, missing, notes = stand_ins(argv, pci, devices)
    first = replacing["0000:01:00.0"]
    assert first[1].startswith("nvme,max_ioqpairs=") and ",bus=rp1,addr=0x0.0,multifunction=on" in first[1]
    queues = first[1].split("max_ioqpairs=")[1].split(",")[0]
    assert nvme_bar0({"max_ioqpairs": queues}) == 16 * 1024
    assert first[3].startswith("pci-testdev,membar=33554432,") and ",bus=rp1,addr=0x0.1" in first[3]
    assert [(p.device, p.bar, p.size, p.own_bar) for p in plays] == [
        ("0000:01:00.0", 1, 16 * 1024, 0), ("0000:01:00.0", 3, 32 << 20, 2)]
    assert replacing["0000:01:00.1"][1].startswith("pci-testdev,id=")  # keeps its slot filled
    assert missing == [] and any("not reproduced" in note for note in notes)


def replace_bar(device: Any, index: int, size: int, prefetchable: bool) -> Any:
    """`device` with BAR `index` resized (and made non-prefetchable)."""
    from layoutd.record import replace

    flags_mask = ~0x2000  # IORESOURCE_PREFETCH
    bars = tuple(replace(bar, end=bar.start + size - 1,
                         flags=bar.flags if prefetchable else bar.flags & flags_mask)
                 if bar.index == index else bar for bar in device.bars)
    return replace(device, bars=bars)


def test_verify_boots_a_modelled_firmware_and_says_whether_the_model_agreed() -> None:
    """`check --verify` with Debian's own SeaBIOS (modelled): the firmware is booted too, the
    booted places are the answer, and the report says the model put every BAR there."""
    need(SEABIOS.exists(), f"{SEABIOS} (Debian package seabios)")
    result = run_layoutd("check", "--host", str(INTEL), "--qemu-version", "7.2", "--verify",
                         "--format", "json", "--", "qemu-system-x86_64", *Q35, "-cpu",
                         "EPYC,phys-bits=46", "-m", "2G", *GPU, "-bios", str(SEABIOS), timeout=300)
    data = json.loads(result.stdout)
    assert result.returncode == 0 and data["how_known"]["bars"] == "boot", data
    assert "SeaBIOS 1.16.2 (Debian 12) (booted under TCG" in data["firmware"]
    said = data["warnings"] + data.get("notes", [])
    assert any("--verify: the SeaBIOS 1.16.2 (Debian 12) model put every BAR where the boot "
               "found it" in line for line in said), said


def test_ivshmem_memory_placed_by_a_booted_firmware_is_judged_like_ram(seabios: Path) -> None:
    """Looking Glass's shape (ivshmem-plain on a 32G shared backend) next to a 32G GPU, 960G on
    an EPYC guest: the byte-changed SeaBIOS, booted, puts the first of the two equal BARs (the
    ivshmem, in the lower slot) across the HyperTransport hole; its memory is guest memory VFIO
    maps, so it is in `layout` and a collision, exactly as the model of Debian's build says."""
    args = [*Q35, "-cpu", "EPYC,phys-bits=48", "-m", "960G",
            "-object", "memory-backend-ram,id=lg,size=32G,share=on",
            "-device", "ivshmem-plain,memdev=lg,id=lg0", "-device", "vfio-pci,host=0000:2a:00.0"]
    code, data = check(AMD, [*args, "-bios", str(seabios)])
    model_code, model = check(AMD, [*args, "-bios", str(SEABIOS)])
    assert data["how_known"]["bars"] == "boot" and model["how_known"]["bars"] == "model"
    assert code == model_code == 1
    shared = [r for r in data["layout"] if r["kind"] == "ivshmem"]
    assert shared and shared[0]["start"] == "0xf800000000", data["layout"]
    assert data["layout"] == model["layout"] and data["collisions"] == model["collisions"]
    assert any(c["kind"] == "ivshmem" and c["hole"]["start"] == "0xfd00000000"
               for c in data["collisions"]), data["collisions"]


def test_the_boot_takes_nothing_of_the_host_and_leaves_nothing(seabios: Path, tmp_path: Path,
                                                              boot_cache: Path) -> None:
    """The VM's hugepage-backed, preallocated RAM, its disk and its tap NIC: the boot's command
    line has an unpopulated memfd instead, an empty read-only null-co node under the disk's device
    and the NIC without its network; after the boot no QEMU of it runs and nothing was written but
    the cache entry (TMPDIR and the working folder stay empty)."""
    import subprocess

    from layoutd.dryrun import safe_command

    vm = ["-machine", "q35,memory-backend=ram0", "-m", "4G",
          "-object", "memory-backend-file,id=ram0,size=4G,mem-path=/dev/hugepages,prealloc=on,"
          "share=on", "-drive", "file=/nonexistent/disk.qcow2,if=none,id=d0",
          "-device", "virtio-blk-pci,drive=d0,id=disk0", "-netdev", "tap,id=n0,ifname=tap9",
          "-device", "virtio-net-pci,netdev=n0,id=nic0"]
    safe = safe_command(vm, "x86_64", whole=True, boot=True)
    try:
        text = " ".join(safe.argv)
    finally:
        safe.close()
    assert "prealloc" not in text and "/dev/hugepages" not in text and "mem-path=/proc/self/fd/" in text
    assert "disk.qcow2" not in text and "driver=null-co" in text and "read-only=on" in text
    assert "tap" not in text and "netdev" not in text and "virtio-net-pci,id=nic0" in text
    scratch, work = tmp_path / "tmp", tmp_path / "cwd"
    scratch.mkdir()
    work.mkdir()
    args = [*Q35, "-cpu", "EPYC,phys-bits=46", "-m", "2G", *GPU, "-bios", str(seabios),
            "-object", "memory-backend-file,id=lg,size=64M,mem-path=/dev/shm/layoutd-test-lg,"
            "share=on", "-device", "ivshmem-plain,memdev=lg,id=lg0"]
    result = subprocess.run([sys.executable, "-m", "layoutd.cli", "check", "--host", str(INTEL),
                             "--qemu-version", "7.2", "--format", "json", "--",
                             "qemu-system-x86_64", *args], capture_output=True, text=True,
                            timeout=300, cwd=work, env={**os.environ, "TMPDIR": str(scratch)})
    assert json.loads(result.stdout)["how_known"]["bars"] == "boot", result.stderr
    assert list(scratch.iterdir()) == [] and list(work.iterdir()) == []
    assert not Path("/dev/shm/layoutd-test-lg").exists()
    assert [p.name for p in boot_cache.iterdir()] and all(
        p.name.startswith("boot-") for p in boot_cache.iterdir())
    running = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert str(seabios) not in running


def test_a_multifunction_gpu_behind_a_root_port_keeps_its_slot(seabios: Path) -> None:
    """libvirt's shape: GPU and audio as functions 0 and 1 of one slot behind a pcie-root-port.
    The GPU's second 64-bit BAR gets a free function of the same slot; booted = the model."""
    args = [*Q35, "-cpu", "EPYC,phys-bits=46", "-m", "2G",
            "-device", "pcie-root-port,id=rp1,chassis=1",
            "-device", "vfio-pci,host=0000:01:00.0,bus=rp1,addr=0.0,multifunction=on",
            "-device", "vfio-pci,host=0000:01:00.1,bus=rp1,addr=0.1"]
    code, data = check(INTEL, [*args, "-bios", str(seabios)])
    assert code == 0 and data["how_known"]["bars"] == "boot", data
    model = bars_of(check(INTEL, [*args, "-bios", str(SEABIOS)])[1])
    assert bars_of(data) == model and len(model) == 2


def test_plan_chooses_ovmfs_window_by_booting_it(tmp_path: Path) -> None:
    """Debian 12's one-file OVMF.fd with a byte of free space changed, a TCG EPYC guest (40
    trusted phys-bits: OVMF's dynamic window at 0xe000000000, above the 39-bit IOMMU): plan boots
    each candidate and takes X-PciMmio64Mb=131072 (128G at the end of RAM), as it does for
    Debian's own file by the model; that command line, booted by the harness, puts both BARs
    where the plan says, below the IOMMU top."""
    original = Path("/usr/share/ovmf/OVMF.fd")
    firmware = changed_copy(original, 0x1E0000, "OVMF.fd")
    plans = {}
    for name, path in (("booted", firmware), ("model", original)):
        spec = tmp_path / f"{name}.yaml"
        spec.write_text(f"name: {name}\nmachine: q35\naccel: tcg\ncpu: {{model: EPYC, count: 1}}\n"
                        f"memory: {{size: 8G}}\ndevices: [0000:01:00.0, 0000:01:00.1]\n"
                        f"firmware: {path}\n")
        result = run_layoutd("plan", str(spec), "--host", str(INTEL), "--qemu-version", "7.2",
                             "--format", "json", timeout=1800)
        assert result.returncode == 0, result.stdout + result.stderr
        plans[name] = json.loads(result.stdout)
    booted = plans["booted"]
    assert any(w.startswith(f"pci_window 128G chosen so that firmware {firmware} ")
               for w in booted["warnings"]), booted["warnings"]
    assert booted["bars"] == plans["model"]["bars"]
    assert "name=opt/ovmf/X-PciMmio64Mb,string=131072" in booted["qemu_argv"]
    args, plays = stand_in_argv(list(booted["qemu_argv"]), INTEL)
    real = booted_bars(qemu_binary("7.2"), args, list(plays), firmware="as-is", timeout=1500,
                       nodefaults=False)
    found = {plays[ident]: start for (ident, bar), start in real.items() if bar == 2}
    planned = {(b["device"], b["bar"]): int(b["start"], 16) for b in booted["bars"]}
    assert found == planned and len(planned) == 2
    assert all(int(b["end"], 16) < 1 << 39 for b in booted["bars"])


def test_a_kvm_guest_with_cpu_host_is_booted_where_kvm_can_else_under_tcg(ovmf: Path) -> None:
    """The r/VFIO case (`-accel kvm -cpu host` on the 46-bit CPU / 39-bit IOMMU host) with the
    byte-changed OVMF: booted under KVM where it runs it, else under TCG with `-cpu host` as
    `max` with the host's vendor and phys-bits (said); either way the BARs are where the model of
    Debian's build puts them (0x380000000000, above the IOMMU top), and the would-work (39
    phys-bits) was booted too."""
    args = ["-accel", "kvm", "-machine", "q35", "-nodefaults", "-cpu", "host", "-m", "16G", *GPU]
    code, data = check(INTEL, [*args, *pflash(ovmf)])
    model = check(INTEL, [*args, *pflash(OVMF_CODE)])[1]
    assert code == 1 and data["how_known"]["bars"] == "boot", data["warnings"]
    assert bars_of(data) == bars_of(model) and data["bars"][0]["start"] == "0x380000000000"
    if "booted under TCG" in data["firmware"]:
        assert any("-cpu host as max with the guest's vendor and 46 phys-bits" in w
                   for w in data["warnings"]), data["warnings"]
    assert [fix["change"] for fix in data["would_work"]] == [{"-cpu": "host,host-phys-bits-limit=39"}]
