# ruff: noqa: E501  (command lines read best one per line)
"""A QEMU whose version layoutd does not model, end to end: check, plan and the hook answer from a
dry run of the binary itself (a wrapper that says it is 8.2.2 and runs a real 7.2). And the dry
run's safety: overcommit 0, hugepages, kill -9 of layoutd, QEMU refusing, the time limit."""

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from layoutd.dryrun import dry_run
from layoutd.qemu import predict
from tests.conftest import ROOT, run_layoutd
from tests.libvirt.test_hook import call, install
from tests.support.qemu_runner import Refused, qemu_binary, real_map, wrapper

pytestmark = pytest.mark.qemu

HOST = str(ROOT / "examples/hosts/amd-4gpu-1100g")
GPU = "0000:41:00.0"
SAYS = "QEMU emulator version 8.2.2 (Debian 1:8.2.2+ds-0ubuntu1)"
CLEAR = f"-machine q35 -cpu EPYC,phys-bits=48 -m 1100G -device vfio-pci,host={GPU}".split()
CROSSING = f"-machine q35 -cpu Skylake-Server,phys-bits=48 -m 1100G -device vfio-pci,host={GPU}".split()
SPEC = """name: dry
machine: q35
accel: tcg
cpu: {model: EPYC, count: 2, phys_bits: 48}
memory: {size: 1100G, hotplug: {slots: 2, max: 1200G}}
devices: [0000:41:00.0]
"""


@pytest.fixture
def qemu82(tmp_path: Path) -> Path:
    return wrapper(qemu_binary("7.2"), tmp_path / "bin82", SAYS)


@pytest.mark.parametrize("line", [CLEAR, CROSSING], ids=["clear", "crossing"])
def test_check_answers_from_the_dry_run(line: list[str], qemu82: Path) -> None:
    dry = run_layoutd("check", "--host", HOST, "--format", "json", "--", str(qemu82), *line)
    model = run_layoutd("check", "--host", HOST, "--format", "json", "--qemu-version", "7.2", "--",
                        str(qemu82), *line)
    assert (dry.returncode, model.returncode) == ((1, 1) if line is CROSSING else (0, 0)), dry.stderr
    said, predicted = json.loads(dry.stdout), json.loads(model.stdout)
    assert said["layout"] == predicted["layout"] and said["collisions"] == predicted["collisions"]
    assert any("QEMU 8.2 is not modelled: this map comes from a dry run of" in w for w in said["warnings"])


def test_check_verify_confirms_the_model(qemu82: Path) -> None:
    result = run_layoutd("check", "--verify", "--qemu-version", "7.2", "--host", HOST, "--",
                         str(qemu82), *CLEAR)
    assert result.returncode == 0, result.stderr
    assert "confirmed by a dry run of" in result.stdout


@pytest.mark.parametrize("version", ["10.0", "11.1"])
def test_check_verify_on_the_modelled_binaries(version: str, tmp_path: Path) -> None:
    binary = wrapper(qemu_binary(version), tmp_path / "bin")
    result = run_layoutd("check", "--verify", "--host", HOST, "--", str(binary), *CROSSING)
    assert result.returncode == 1, result.stderr  # the collision, confirmed by the binary
    assert f"note: confirmed by a dry run of {binary} (QEMU {version}." in result.stdout
    assert "warning: confirmed" not in result.stdout  # a confirmation asks nothing of the user


def test_plan_is_printed_only_when_the_dry_run_builds_it(qemu82: Path, tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC)
    result = run_layoutd("plan", str(spec), "--host", HOST, "--verify", str(qemu82), "--format", "json")
    assert result.returncode == 0, result.stderr
    warnings, notes = (json.loads(result.stdout)[key] for key in ("warnings", "notes"))
    assert "QEMU 8.2 is not modelled: planned with QEMU 7.2's rules" in warnings
    assert any(w.startswith("verified: a dry run of") for w in notes)
    assert not any(w.startswith("verified") for w in warnings)
    other = tmp_path / "other" / "qemu-system-x86_64"  # a binary that lays out RAM otherwise
    other.parent.mkdir()
    other.write_text(f'#!/bin/sh\n[ "$1" = --version ] && exec {qemu82} --version\n'
                     f'exec {qemu82} "$@" -machine max-ram-below-4g=1G\n')
    other.chmod(0o755)
    refused = run_layoutd("plan", str(spec), "--host", HOST, "--verify", str(other))
    assert refused.returncode == 1 and refused.stdout == ""
    assert "does not build the planned map" in refused.stderr
    assert "QEMU built ram pc.ram 0x100000-0x3fffffff, not planned" in refused.stderr


def test_hook_answers_from_the_domains_emulator(qemu82: Path, tmp_path: Path) -> None:
    hook = install(tmp_path / "root", "--host", HOST, "--policy", "enforce")
    xml = (ROOT / "tests/libvirt/data/colliding.xml").read_text()
    xml = xml.replace("/usr/bin/qemu-system-x86_64", str(qemu82)).replace("bus='0x2a'", "bus='0x41'")
    refused = call(hook, "lt-big", "prepare", "begin", "-", stdin=xml)
    assert refused.returncode == 1, refused.stderr
    assert "QEMU 8.2 is not modelled: map from a dry run of" in refused.stderr
    allowed = call(hook, "lt-big", "prepare", "begin", "-",
                   stdin=xml.replace("Skylake-Server", "EPYC").replace("bits='44'", "bits='48'"))
    assert allowed.returncode == 0, allowed.stderr
    log = (tmp_path / "root/var/log/layoutd/hook.log").read_text()
    assert "ok: 3 RAM region(s) clear" in log and "map from a dry run of" in log


@pytest.fixture
def overcommit_guess() -> Iterator[None]:
    """vm.overcommit_memory=0 (the kernel's heuristic, most hosts' default) for one test."""
    path = Path("/proc/sys/vm/overcommit_memory")
    before = path.read_text().strip()
    path.write_text("0")
    try:
        yield
    finally:
        path.write_text(before)


def test_two_tib_guest_under_overcommit_0(overcommit_guess: None, tmp_path: Path) -> None:
    line = ["-machine", "q35", "-cpu", "EPYC,phys-bits=48", "-m", "2T", "-nodefaults"]
    direct = real_map(qemu_binary("7.2"), line)
    assert isinstance(direct, Refused) and "Cannot allocate memory" in direct.stderr
    run = dry_run(qemu_binary("7.2").path, line, "x86_64")
    expected = predict(line, version="7.2")
    assert [(r.start, r.end) for r in run.vm.layout()] == [(r.start, r.end) for r in expected.layout]


@pytest.fixture
def gigantic_pages(tmp_path: Path) -> Iterator[Path]:
    """A hugetlbfs mount with 1 GiB pages, none of them reserved."""
    folder = tmp_path / "huge"
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "hugetlbfs", "-o", "pagesize=1G", "none", str(folder)],
                             capture_output=True, text=True, check=False)
    assert mounted.returncode == 0, mounted.stderr
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=False)


def test_hugepage_backed_guest_takes_no_hugepage(gigantic_pages: Path) -> None:
    line = ["-machine", "q35", "-m", "2G,slots=2,maxmem=8G", "-nodefaults",
            "-object", "memory-backend-ram,id=s0,size=2M", "-device", "pc-dimm,id=d0,memdev=s0",
            "-object", f"memory-backend-file,id=h0,size=2G,mem-path={gigantic_pages},prealloc=on",
            "-device", "pc-dimm,id=d1,memdev=h0"]
    before = Path("/proc/meminfo").read_text().split("HugePages_Total")[1].split("Hugepagesize")[0]
    direct = real_map(qemu_binary("7.2"), line)
    assert isinstance(direct, Refused)  # no 1 GiB page is there to take
    run = dry_run(qemu_binary("7.2").path, line, "x86_64")
    huge = next(d for d in run.vm.devices if d.id == "d1")
    assert huge.start % (1 << 30) == 0 and huge.start == run.vm.device_memory.start + (1 << 30)
    assert before == Path("/proc/meminfo").read_text().split("HugePages_Total")[1].split("Hugepagesize")[0]


HARNESS = """
import sys, time
from layoutd import dryrun
from layoutd.live import session
def stuck(cls, sock, name, timeout=30):
    print("started", flush=True)
    time.sleep(600)
session.QmpMonitor.on_socket = classmethod(stuck)
dryrun.dry_run(sys.argv[1], sys.argv[2:], "x86_64", timeout=600)
"""


def test_kill_9_of_layoutd_mid_run_leaves_no_qemu_and_no_file() -> None:
    line = ["-machine", "q35", "-m", "64G", "-object", "memory-backend-file,id=f0,size=1G,mem-path=/dev/hugepages",
            "-numa", "node,memdev=f0", "-numa", "node"]
    layoutd = subprocess.Popen([sys.executable, "-c", HARNESS, qemu_binary("7.2").path, *line],
                               stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert layoutd.stdout is not None and layoutd.stdout.readline().strip() == "started"
        children = Path(f"/proc/{layoutd.pid}/task/{layoutd.pid}/children").read_text().split()
        assert len(children) == 1
        qemu = int(children[0])
        opened = _open_files(qemu)
        written = [path for path, flags in opened.values()  # a file QEMU could write (not a library)
                   if path.startswith("/") and not path.startswith(("/dev/", "/memfd:")) and flags & 3]
        assert written == [] and any(p.startswith("/memfd:layoutd-") for p, _ in opened.values()), opened
    finally:
        layoutd.send_signal(signal.SIGKILL)
        layoutd.wait()
    for _ in range(100):  # SIGKILL from PR_SET_PDEATHSIG: gone (or a zombie) at once
        state = Path(f"/proc/{qemu}/stat")
        if not state.exists() or state.read_text().split(") ")[1].startswith("Z"):
            break
        time.sleep(0.1)
    else:
        pytest.fail(f"QEMU {qemu} outlived layoutd")


def _open_files(pid: int) -> dict[str, tuple[str, int]]:
    """fd -> (path, open flags) of a running process; an fd closed while it is read is left out."""
    found = {}
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            path = os.readlink(f"/proc/{pid}/fd/{fd}")
            info = Path(f"/proc/{pid}/fdinfo/{fd}").read_text().splitlines()
        except FileNotFoundError:
            continue
        flags = next((int(line.split()[1], 8) for line in info if line.startswith("flags:")), 0)
        found[fd] = (path, flags)
    return found


def test_qemu_refusing(qemu82: Path) -> None:
    result = run_layoutd("check", "--host", HOST, "--", str(qemu82), "-machine", "q35", "-m", "4G,slots=2")
    assert result.returncode == 2
    assert "refused the dry run (exit status 1): slots specified but no max-size" in result.stderr


def test_time_limit(tmp_path: Path) -> None:
    hung = tmp_path / "qemu-system-x86_64"
    hung.write_text('#!/bin/sh\n[ "$1" = --version ] && { echo "QEMU emulator version 8.2.2"; exit 0; }\n'
                    "exec sleep 1234.5\n")
    hung.chmod(0o755)
    result = run_layoutd("check", "--host", HOST, "--", str(hung), "-m", "1G",
                         env={"LAYOUTD_DRYRUN_TIMEOUT": "1"})
    assert result.returncode == 3 and "did not finish within 1 s" in result.stderr, result.stderr
    left = [p for p in Path("/proc").iterdir() if p.name.isdigit() and _cmdline(p) == "sleep 1234.5"]
    assert left == []


def _cmdline(process: Path) -> str:
    try:
        return (process / "cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        return ""


def test_plan_verify_starts_the_plans_devices(tmp_path: Path) -> None:
    """--verify keeps virtio-iommu-pci (only VFIO devices are left out): a plan whose device QEMU
    refuses is not printed. The arm64 example verified on the real 10.0 and 11.1."""
    for version in ("10.0", "11.1"):
        binary = wrapper(qemu_binary(version, "aarch64"), tmp_path / version)
        good = run_layoutd("plan", "examples/specs/arm64.yaml", "--host",
                           "examples/hosts/arm-kunpeng-pci-windows", "--verify", str(binary))
        assert good.returncode == 0, good.stderr
        assert "-device virtio-iommu-pci" in good.stdout and "verified: a dry run" in good.stdout
    refusing = tmp_path / "refusing" / "qemu-system-aarch64"  # as if the device were refused
    refusing.parent.mkdir()
    refusing.write_text(f'#!/bin/sh\n[ "$1" = --version ] && exec {binary} --version\n'
                        f'exec {binary} "$@" -global virtio-iommu-pci.len-reserved-regions=1\n')
    refusing.chmod(0o755)
    refused = run_layoutd("plan", "examples/specs/arm64.yaml", "--host",
                          "examples/hosts/arm-kunpeng-pci-windows", "--verify", str(refusing))
    assert refused.returncode != 0 and refused.stdout == ""
    assert "len-reserved-regions" in refused.stderr
