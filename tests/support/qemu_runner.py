"""Start real QEMU binaries paused (-S) and read what they built, over QMP with qemu.qmp.

QEMU 7.2 comes from Debian's packages; 10.0 is unpacked from bookworm-backports by
scripts/install-test-deps.sh into $LAYOUTD_CACHE/qemu-10.0; 11.1 runs with chroot in the Debian sid
root that scripts/sid-root.sh makes in $LAYOUTD_CACHE/sid-root (through sid-qemu.sh, which shows the
host's /tmp there, so QMP sockets and backend files have the same paths inside and out).
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from qemu.qmp.legacy import QEMUMonitorProtocol

from layoutd.models.host import Cpu
from layoutd.qemu.mtree import FlatEntry, ram_entries
from layoutd.qemu.versions import proven
from layoutd.record import replace
from tests.conftest import need, need_kvm

CACHE = Path(os.environ.get("LAYOUTD_CACHE", Path.home() / ".cache" / "layoutd"))
VERSIONS = tuple(str(version) for version in proven())  # the versions proven on real binaries
DEBIAN_VERSION = "7.2"  # bookworm's own qemu-system-*; the others are unpacked into CACHE
SID_ROOT = CACHE / "sid-root"
CHROOTED = ("11.1",)  # run in the sid root through a wrapper, not as a qemu-system-* binary
SID_QEMU = Path(__file__).with_name("sid-qemu.sh")
AARCH64_FIRMWARE = Path("/usr/share/qemu-efi-aarch64/QEMU_EFI.fd")
START_TIMEOUT = 60.0
QMP_TIMEOUT = 120.0  # seconds for one QMP command, even under TCG on a loaded machine


@dataclass(frozen=True)
class QemuBinary:
    version: str  # one of VERSIONS, or an unmodelled one (11.1) for the dry run
    arch: str  # "x86_64" or "aarch64"
    path: str
    base_args: tuple[str, ...] = ()  # -L folders for an unpacked build; the root and binary for chroot
    modules: str | None = None  # an unpacked build's own module folder (QEMU_MODULE_DIR)

    def argv(self, args: Sequence[str]) -> list[str]:
        """The command line; an unpacked build through env(1) with QEMU_MODULE_DIR set, since it
        would otherwise load the modules Debian's own QEMU installed (qemu-system-gui, audio):
        "Only modules from the same build can be loaded"."""
        start = ["env", f"QEMU_MODULE_DIR={self.modules}"] if self.modules else []
        return [*start, self.path, *self.base_args, *args]


def qemu_binary(version: str, arch: str = "x86_64") -> QemuBinary:
    """The real binary for a version; missing -> skip locally, fail in CI."""
    name = f"qemu-system-{arch}"
    if version == DEBIAN_VERSION:
        path = shutil.which(name) or f"/usr/bin/{name}"
        need(Path(path).exists(), f"{name} 7.2 (Debian package qemu-system-x86/qemu-system-arm)")
        return QemuBinary(version, arch, path)
    if version in CHROOTED:
        need((SID_ROOT / "usr" / "bin" / name).exists(), f"{name} 11.1 in the sid root {SID_ROOT}")
        return QemuBinary(version, arch, str(SID_QEMU), (str(SID_ROOT), name))
    root = CACHE / f"qemu-{version}"
    path = root / "usr" / "bin" / name
    need(path.exists(), f"{name} {version} unpacked in {root}")
    share = root / "usr" / "share"
    # its own modules with the same build's ui and audio ones (scripts/install-test-deps.sh)
    modules = CACHE / f"qemu-{version}-modules"
    if not modules.is_dir():
        modules = root / "usr" / "lib" / "x86_64-linux-gnu" / "qemu"
    return QemuBinary(version, arch, str(path), ("-L", str(share / "qemu"), "-L", str(share / "seabios")),
                      str(modules) if modules.is_dir() else None)


def aarch64_firmware() -> list[str]:
    need(AARCH64_FIRMWARE.exists(), f"{AARCH64_FIRMWARE} (Debian package qemu-efi-aarch64)")
    return ["-bios", str(AARCH64_FIRMWARE)]


def line_args(line: str, tmp: Path) -> list[str]:
    """A test's command line as arguments: {tmp} a test folder, {fw} the aarch64 firmware."""
    fw = " ".join(aarch64_firmware()) if "{fw}" in line else ""
    return shlex.split(line.replace("{tmp}", str(tmp)).replace("{fw}", fw))


@dataclass
class Refused:
    """QEMU exited instead of starting: its exit status and standard error."""

    returncode: int
    stderr: str


@dataclass
class RealMap:
    """What the real binary built, read back over QMP."""

    ram: list[FlatEntry]
    memory_devices: list[dict[str, Any]]
    mtree: str
    extra: dict[str, Any] = field(default_factory=dict)


class RunningQemu:
    """A paused QEMU with a QMP connection; blocking calls."""

    def __init__(self, process: subprocess.Popen[bytes], monitor: QEMUMonitorProtocol, folder: str):
        self.process = process
        self.monitor = monitor
        self.folder = folder

    def raw(self, command: str, arguments: dict[str, Any] | None = None) -> dict[str, Any]:
        """The reply as QEMU sent it: {"return": ...} or {"error": ...}."""
        return self.monitor.cmd_raw(command, arguments)

    def qmp(self, command: str, arguments: dict[str, Any] | None = None) -> Any:
        reply = self.raw(command, arguments)
        if "error" in reply:
            raise RuntimeError(f"{command}: {reply['error']}")
        return reply["return"]

    def hmp(self, command_line: str) -> str:
        return str(self.qmp("human-monitor-command", {"command-line": command_line}))

    def read_map(self) -> RealMap:
        text = self.hmp("info mtree -f")
        devices = self.qmp("query-memory-devices")
        return RealMap(ram=ram_entries(text), memory_devices=devices, mtree=text)


def _wait_for_socket(process: subprocess.Popen[bytes], socket_path: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while not os.path.exists(socket_path):
        if process.poll() is not None:
            return
        if time.monotonic() > deadline:
            process.kill()
            raise TimeoutError(f"QEMU did not open its QMP socket in {START_TIMEOUT} s")
        time.sleep(0.02)


@contextmanager
def launched(binary: QemuBinary, args: Sequence[str], folder: str, *, extra_qmp: bool = False,
             ) -> Iterator[RunningQemu | Refused]:
    """QEMU started with `args` and a QMP socket in `folder` (the one start and stop of the
    test harness: paused runs here, firmware boots in firmware_runner.py); a RunningQemu, or
    Refused when QEMU exits instead. QEMU quits and `folder` is removed afterwards."""
    socket_path = os.path.join(folder, "qmp.sock")
    argv = binary.argv([*args, "-display", "none", "-qmp", f"unix:{socket_path},server=on,wait=off"])
    if extra_qmp:
        argv += ["-qmp", f"unix:{os.path.join(folder, 'qmp2.sock')},server=on,wait=off"]
    process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)
    try:
        _wait_for_socket(process, socket_path)
        try:
            monitor = _connect(process, socket_path)
        except Exception:
            if process.wait(timeout=10) is not None:
                yield Refused(process.returncode, _stderr(process))
                return
            raise
        try:
            yield RunningQemu(process, monitor, folder)
        finally:
            with suppress(Exception):
                monitor.cmd_raw("quit")
            with suppress(Exception):
                monitor.close()
    finally:
        if process.poll() is None:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process.stderr:
            process.stderr.close()
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def started(binary: QemuBinary, args: Sequence[str], *, extra_qmp: bool = False,
            ) -> Iterator[RunningQemu | Refused]:
    """Start QEMU paused with -nodefaults; yield a RunningQemu, or Refused if QEMU exits."""
    if _wants_kvm(args):
        need_kvm(binary.argv([]))
    folder = tempfile.mkdtemp(prefix="layoutd-qemu-")
    with launched(binary, [*args, "-S", "-nodefaults"], folder, extra_qmp=extra_qmp) as qemu:
        if isinstance(qemu, Refused) and _wants_kvm(args) and "failed to set MSR" in qemu.stderr:
            pytest.skip(f"KVM here cannot run this CPU: {qemu.stderr.strip().splitlines()[-1]}")
        yield qemu


def this_machine_cpu() -> Cpu:
    """This machine's CPU as `layoutd probe --host live` reads it: /proc/cpuinfo and KVM's SMM."""
    from layoutd.host.kvm import kvm_smm
    from layoutd.host.sysfs import parse_cpuinfo

    return replace(parse_cpuinfo(Path("/proc/cpuinfo").read_text()), kvm_smm=kvm_smm())


def _wants_kvm(args: Sequence[str]) -> bool:
    pairs = zip(args, [*args[1:], ""], strict=True)
    return "-enable-kvm" in args or any(
        (option in ("-accel", "--accel") and value.split(",")[0] in ("kvm", "accel=kvm"))
        or (option in ("-machine", "-M") and "accel=kvm" in value)
        for option, value in pairs)


def _connect(process: subprocess.Popen[bytes], socket_path: str) -> QEMUMonitorProtocol:
    """Connect, retrying while QEMU lives: the socket file exists before QEMU listens on it."""
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        monitor = QEMUMonitorProtocol(socket_path)
        try:
            monitor.connect()
            # a QEMU that stops answering fails its test instead of hanging the suite
            monitor.settimeout(QMP_TIMEOUT)
            return monitor
        except Exception:
            if process.poll() is not None or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _stderr(process: subprocess.Popen[bytes]) -> str:
    assert process.stderr is not None
    return process.stderr.read().decode(errors="replace")


def real_map(binary: QemuBinary, args: Sequence[str]) -> RealMap | Refused:
    """Start, read the map, quit. Refused when QEMU would not start with these arguments."""
    with started(binary, args) as qemu:
        if isinstance(qemu, Refused):
            return qemu
        return qemu.read_map()


def wrapper(binary: QemuBinary, folder: Path, version_line: str | None = None) -> Path:
    """An executable FOLDER/qemu-system-ARCH that runs `binary` (any of 7.2, 10.0, 11.1) as if it
    were installed there; with version_line, `--version` answers that line instead (a QEMU whose
    version layoutd does not model, running a real binary)."""
    import shlex

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"qemu-system-{binary.arch}"
    run = " ".join(shlex.quote(part) for part in binary.argv([]))
    answer = (f'[ "$1" = --version ] && {{ echo {shlex.quote(version_line)}; exit 0; }}\n'
              if version_line else "")
    path.write_text(f"#!/bin/sh\n{answer}exec {run} \"$@\"\n")
    path.chmod(0o755)
    return path
