"""A private real libvirtd for the tests: root, no systemd, its own mount namespace.

Private etc/run/lib/log folders (and a cache kept between sessions, so the ~12 s QEMU
capability probe happens once) are bind-mounted over libvirt's own inside `unshare -m`; the
machine's /etc/libvirt is never touched. Clients connect through qemu:///system?socket=PATH.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import ROOT, need, need_binary, run_layoutd

CACHE = Path(os.environ.get("LAYOUTD_CACHE", Path.home() / ".cache" / "layoutd")) / "libvirt-cache"
START_TIMEOUT = 90.0
COMMAND_TIMEOUT = 120.0

LIBVIRTD_CONF = """\
unix_sock_dir = "/run/libvirt"
auth_unix_ro = "none"
auth_unix_rw = "none"
log_outputs = "3:file:/var/log/libvirt/libvirtd.log"
"""
QEMU_CONF = """\
user = "root"
group = "root"
dynamic_ownership = 0
security_driver = "none"
stdio_handler = "file"
cgroup_controllers = [ ]
hugetlbfs_mount = ["/run/libvirt/hugepages-1G", "/run/libvirt/hugepages-2M"]
"""
# libvirt 9.0 takes every hugetlbfs_mount but the first as the default page size
# (virQEMUDriverConfigHugeTLBFSInit(..., i != 0)): 2 MiB last, as the kernel's default.
HUGETLBFS = {"/run/libvirt/hugepages-2M": 2 << 20, "/run/libvirt/hugepages-1G": 1 << 30}


@dataclass
class Virsh:
    uri: str
    state: Path

    def run(self, *args: str, check: bool = True, timeout: float = COMMAND_TIMEOUT
            ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(["virsh", "-c", self.uri, *args], capture_output=True, text=True,
                                timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"virsh {' '.join(args)}: {result.stderr.strip()}")
        return result

    def install_hook(self, *options: str) -> None:
        """(Re)write the hook and its configuration; the daemon reads the config at each call."""
        result = run_layoutd("install-hook", "--root", str(self.state), *options)
        assert result.returncode == 0, result.stderr

    @property
    def hook_log(self) -> Path:
        return self.state / "var/log/layoutd/hook.log"

    def qemu_log(self, name: str) -> str:
        path = self.state / "var/log/libvirt/qemu" / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""


TRIXIE_ROOT = CACHE.parent / "trixie-root"  # scripts/trixie-root.sh: Debian 13's libvirt 11.3
SID_LIBVIRT_ROOT = CACHE.parent / "sid-libvirt-root"  # scripts/sid-libvirt-root.sh: sid's 12.x


def start_daemon(root: Path | None = None, conf: str = "") -> tuple[Virsh, subprocess.Popen[bytes]]:
    """The private daemon: this machine's libvirtd, or with `root` the one of that Debian root
    (run with chroot; no hook installed there: its tests only translate). `conf`: more lines
    for libvirtd.conf (a second daemon's own host_uuid, so that libvirt migrates between them)."""
    for program in ("libvirtd", "virsh", "unshare", "mount"):
        need_binary(program)
    need(Path("/usr/sbin/libvirtd").exists() and os.geteuid() == 0,
         "root and libvirtd (Debian packages libvirt-daemon, libvirt-daemon-driver-qemu)")
    if root is not None:
        need((root / "usr/sbin/libvirtd").exists(), f"a Debian root with libvirtd in {root} "
             "(scripts/trixie-root.sh, scripts/sid-libvirt-root.sh)")
    state = Path(tempfile.mkdtemp(prefix="layoutd-libvirtd-"))
    for name in ("etc/libvirt", "run/libvirt", "var/lib/libvirt", "var/log/libvirt"):
        (state / name).mkdir(parents=True)
    cache = CACHE if root is None else CACHE.with_name(f"libvirt-cache-{root.name}")
    cache.mkdir(parents=True, exist_ok=True)
    (state / "etc/libvirt/libvirtd.conf").write_text(LIBVIRTD_CONF + conf)
    (state / "etc/libvirt/qemu.conf").write_text(QEMU_CONF)
    virsh = Virsh(f"qemu:///system?socket={state}/run/libvirt/libvirt-sock", state)
    if root is None:
        virsh.install_hook("--policy", "enforce")  # hooks must exist before the daemon starts
    log = open(state / "daemon.out", "wb")  # noqa: SIM115 - closed with the process
    process = subprocess.Popen(
        ["unshare", "-m", sys.executable, str(Path(__file__).with_name("reaper.py")),
         str(state), str(cache), *([str(root)] if root else [])],
        stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True)
    _wait_ready(virsh, process)
    return virsh, process


def _wait_ready(virsh: Virsh, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        socket = virsh.state / "run/libvirt/libvirt-sock"
        if socket.exists() and virsh.run("version", check=False, timeout=30).returncode == 0:
            return
        time.sleep(0.2)
    out = (virsh.state / "daemon.out").read_text(errors="replace")
    stop_daemon(virsh, process)
    raise AssertionError(f"libvirtd did not come up: {out[-2000:]}")


def stop_daemon(virsh: Virsh, process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        listed = virsh.run("list", "--name", check=False, timeout=30).stdout.split()
        for name in listed:
            virsh.run("destroy", name, check=False, timeout=30)
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
    shutil.rmtree(virsh.state, ignore_errors=True)
