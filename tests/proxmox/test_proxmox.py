# ruff: noqa: E501  (command lines read best one per line)
"""Proxmox VE, which cannot run here: its command lines, in the shapes qemu-server's
config_to_command prints them for `qm showcmd VMID` (one line, arguments shell-quoted by
cmd2string; -id, -chardev/-mon QMP sockets, -pidfile, -daemonize, -smbios, OVMF pflash,
-readconfig /usr/share/qemu-server/pve-q35-4.0.cfg, vfio-pci hostpci devices with x-vga on its
root ports, `-machine type=...+pveN`, a taskset prefix for CPU affinity), are checked as they
are; and `layoutd proxmox-hook VMID PHASE` follows Proxmox's hookscript contract (called with
VMID and phase; a non-zero exit at pre-start aborts the start), with a `qm` on PATH that prints a
recorded showcmd in place of Proxmox's."""

import json
import shlex
import subprocess
from pathlib import Path

import pytest

from layoutd.proxmox import command_words
from layoutd.qemu.readconfig import PROXMOX_FILES, options_of
from tests.conftest import ROOT, assert_clean_failure, run_layoutd
from tests.support.qemu_runner import VERSIONS, qemu_binary, started

HERE = Path(__file__).parent
HOST = str(ROOT / "examples/hosts/amd-4gpu-1100g")
LINUX = HERE / "showcmd-100-linux-gpu.txt"  # q35+pve0 on QEMU 7.2 (PVE 7.4), OVMF, a GPU with x-vga
PINNED = HERE / "showcmd-101-pinned-crossing.txt"  # a Windows VM pinned to pc-q35-5.1+pve0
AFFINITY = HERE / "showcmd-102-affinity-ovmf.txt"  # taskset affinity; OVMF that is on this machine
pytestmark = pytest.mark.qemu
PVE_Q35 = "/usr/share/qemu-server/pve-q35-4.0.cfg"


def unquoted(path: Path) -> list[str]:
    """What `$(qm showcmd VMID)` gives a command: the output split at blanks, quotes kept."""
    return path.read_text().split()


def test_the_words_of_an_unquoted_showcmd_are_put_back() -> None:
    text = AFFINITY.read_text()
    words = command_words(unquoted(AFFINITY))
    assert words == shlex.split(text)[4:]  # without `/usr/bin/taskset --cpu-list --all-tasks 0-15`
    assert words[0] == "/usr/bin/kvm" and "vfio-pci,host=0000:41:00.0,id=hostpci0.0,bus=ich9-pcie-port-1,addr=0x0.0,multifunction=on,x-vga=on" in words


@pytest.mark.parametrize(("showcmd", "status"), [(LINUX, 3), (PINNED, 1), (AFFINITY, 0)])  # 3: Proxmox's OVMF is not here, its BARs not judged
def test_check_takes_a_showcmd_as_it_is(showcmd: Path, status: int) -> None:
    result = run_layoutd("check", "--host", HOST, "--format", "json", "--", *unquoted(showcmd))
    assert result.returncode == status, result.stdout + result.stderr
    answer = json.loads(result.stdout)
    assert any(w.startswith(f"-readconfig {PVE_Q35} is not on this machine") for w in answer["warnings"])
    if status == 1:  # the pinned 5.1 type has no AMD 1 TiB rule: RAM across the HT hole
        assert {c["hole"]["start"] for c in answer["collisions"]} == {"0xfd00000000"}
        assert answer["machine"] == "pc-q35-5.1"
        assert {"-machine": "pc-q35-7.1+pve0"} in [fix["change"] for fix in answer["would_work"]]


def test_the_gpu_on_proxmoxs_root_port_is_placed_by_the_firmware() -> None:
    """hostpci0 sits on ich9-pcie-port-1, which only pve-q35-4.0.cfg defines: read from what
    qemu-server's file defines, the BARs are placed (Debian's OVMF here)."""
    result = run_layoutd("check", "--host", HOST, "--format", "json", "--", *unquoted(AFFINITY))
    answer = json.loads(result.stdout)
    assert {(b["device"], b["bar"]) for b in answer["bars"]} == {("0000:41:00.0", 1), ("0000:41:00.0", 3)}
    assert all(b["start"] is not None for b in answer["bars"])


def test_a_readconfig_file_that_exists_is_read(tmp_path: Path) -> None:
    cfg = tmp_path / "ports.cfg"
    cfg.write_text('[device "rp9"]\n  driver = "pcie-root-port"\n  bus = "pcie.0"\n  chassis = "9"\n')
    args = ["--", "qemu-system-x86_64", "-machine", "q35", "-m", "2G", "-readconfig", str(cfg),
            "-bios", "/usr/share/seabios/bios-256k.bin", "-device", "vfio-pci,host=0000:41:00.0,bus=rp9"]
    result = run_layoutd("check", "--host", HOST, "--qemu-version", "7.2", "--format", "json", *args)
    assert result.returncode == 0, result.stderr
    assert {b["device"] for b in json.loads(result.stdout)["bars"]} == {"0000:41:00.0"}
    missing = run_layoutd("check", "--host", HOST, "--qemu-version", "7.2", "--", "qemu-system-x86_64",
                          "-m", "2G", "-readconfig", str(tmp_path / "nope.cfg"))
    assert_clean_failure(missing, 2, "-readconfig", "nope.cfg", "cannot read it")


@pytest.mark.parametrize("version", VERSIONS)
def test_proxmoxs_configuration_reads_in_qemu_as_layoutd_reads_it(version: str, tmp_path: Path) -> None:
    """The facts of pve-q35-4.0.cfg, written as a file, started by the real QEMU with -readconfig:
    every device it defines is where the options layoutd makes of it put it."""
    cfg = tmp_path / "pve-q35-4.0.cfg"
    cfg.write_text(PROXMOX_FILES[PVE_Q35])
    options = options_of(cfg.read_text(), str(cfg))
    ours = {}
    for flag, value in zip(options[::2], options[1::2], strict=True):
        props = dict(part.split("=", 1) for part in value.split(","))
        assert flag == "-device"
        slot, _, function = props["addr"].partition(".")
        ours[props["id"]] = (props["bus"], int(slot, 16) << 3 | int(function or "0"))
    with started(qemu_binary(version), ["-nodefaults", "-machine", "q35", "-m", "512M", "-readconfig", str(cfg)]) as qemu:
        assert not hasattr(qemu, "stderr"), qemu
        found = {}
        for name in ours:
            path = f"/machine/peripheral/{name}"
            bus = qemu.qmp("qom-get", {"path": path, "property": "parent_bus"}).rsplit("/", 1)[-1]
            found[name] = (bus, qemu.qmp("qom-get", {"path": path, "property": "addr"}))
    assert found == ours


def install(tmp_path: Path, vms: dict[str, Path], policy: str = "enforce") -> tuple[dict[str, str], Path, Path]:
    """A `qm` on PATH answering `showcmd VMID` with a recorded line, and a hook configuration."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(parents=True)
    cases = "".join(f'  {vmid}) exec cat {shlex.quote(str(path))} ;;\n' for vmid, path in vms.items())
    qm = bin_dir / "qm"
    qm.write_text(f'#!/bin/sh\n[ "$1" = showcmd ] || exit 2\ncase "$2" in\n{cases}'
                  '  *) echo "Configuration file \'nodes/pve/qemu-server/$2.conf\' does not exist" >&2; exit 2 ;;\nesac\n')
    qm.chmod(0o755)
    log = tmp_path / "hook.log"
    config = tmp_path / "hook.conf"
    config.write_text(f"policy = {policy}\nhost = {HOST}\nlog = {log}\n")
    import os

    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "LAYOUTD_HOOK_CONFIG": str(config)}
    return env, config, log


def hook(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    script = ROOT / "examples/proxmox/layoutd-hook"
    return subprocess.run([str(script), *args], capture_output=True, text=True, env=env, timeout=120,
                          check=False)


def test_the_hookscript_refuses_only_a_proven_collision(tmp_path: Path) -> None:
    env, _, log = install(tmp_path, {"100": LINUX, "101": PINNED})
    env["PATH"] = f"{ROOT / '.venv/bin'}:{env['PATH']}"
    clean = hook(env, "100", "pre-start")
    assert clean.returncode == 0, clean.stderr
    assert "VM 100: ok:" in clean.stdout
    crossing = hook(env, "101", "pre-start")
    assert crossing.returncode == 1, crossing.stdout + crossing.stderr
    assert "refusing to start VM 101" in crossing.stderr and "0xfd00000000-0xffffffffff" in crossing.stderr
    assert "Traceback" not in crossing.stderr
    for phase in ("post-start", "pre-stop", "post-stop"):
        assert hook(env, "101", phase).returncode == 0  # only pre-start is judged
    text = log.read_text()
    assert "VM 101 pre-start: refused:" in text and "VM 100 pre-start: ok:" in text


def test_the_hookscript_under_warn_and_when_qm_cannot_answer(tmp_path: Path) -> None:
    env, _, log = install(tmp_path, {"101": PINNED}, policy="warn")
    env["PATH"] = f"{ROOT / '.venv/bin'}:{env['PATH']}"
    warned = hook(env, "101", "pre-start")
    assert warned.returncode == 0 and "allowed (policy warn)" in log.read_text()
    env, _, log = install(tmp_path / "enforce", {})
    env["PATH"] = f"{ROOT / '.venv/bin'}:{env['PATH']}"
    unknown = hook(env, "999", "pre-start")
    assert unknown.returncode == 3 and "qm showcmd 999` failed" in unknown.stderr
    assert hook(env, "abc", "pre-start").returncode == 2


def test_a_vm_layoutd_cannot_model_starts_with_a_warning(tmp_path: Path) -> None:
    line = LINUX.read_text().replace("type=pc-q35-7.2+pve0", "type=pc-q35-rhel9.6.0")
    showcmd = tmp_path / "showcmd.txt"
    showcmd.write_text(line)
    env, _, log = install(tmp_path, {"103": showcmd})
    env["PATH"] = f"{ROOT / '.venv/bin'}:{env['PATH']}"
    result = hook(env, "103", "pre-start")
    assert result.returncode == 0, result.stderr  # QEMU here refuses the RHEL type: not proven
    assert "allowed (warning)" in log.read_text()
