"""Boot a real Linux guest under QEMU TCG, run a script in it, collect what it wrote.

The guest kernel and initramfs come from scripts/build-guest.sh (called by
scripts/install-test-deps.sh); their paths are in $LAYOUTD_CACHE/guest/manifest.json. The kernels
with iommufd (everything built in) come from scripts/build-kernel.sh:
$LAYOUTD_CACHE/kernel/manifest.json. The guest's
/init (tests/kernel/guest/init) loads the VFIO and 9p modules, mounts the 9p shares named on the
kernel command line and runs /results/run.sh, which the test writes into a fresh writable share
(the results directory) before the boot. The guest writes its answers there as files.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import ROOT, need

CACHE = Path(os.environ.get("LAYOUTD_CACHE", Path.home() / ".cache" / "layoutd"))
MANIFEST = CACHE / "guest" / "manifest.json"
IOMMUFD_MANIFEST = CACHE / "kernel" / "manifest.json"
GUEST_DIR = ROOT / "tests" / "kernel" / "guest"
PYTHON = Path(os.environ.get("LAYOUTD_KERNEL_PYTHON", ROOT / ".venv" / "bin" / "python"))


def kept_under_tmp() -> str:
    """Host folders under /tmp that the guest's writable /tmp would hide: pass to prepare_chroot."""
    from tests.support.qemu_runner import CACHE

    paths = {ROOT, PYTHON.parent.parent, Path(os.path.realpath(PYTHON)).parent.parent, CACHE}
    return " ".join(sorted(str(p) for p in paths if str(p).startswith("/tmp/")))

QEMU = {"x86_64": "qemu-system-x86_64", "aarch64": "qemu-system-aarch64"}


def manifest(arch: str) -> dict[str, str]:
    need(MANIFEST.is_file(), f"the guest kernels ({MANIFEST}; scripts/build-guest.sh)")
    entry: dict[str, str] = json.loads(MANIFEST.read_text())[arch]
    for key in ("kernel", "initramfs", "userland"):
        if key in entry:
            need(Path(entry[key]).exists(), f"{entry[key]} (scripts/build-guest.sh)")
    return entry


def iommufd_kernel(arch: str, variant: str) -> dict[str, str]:
    """The guest kernel with iommufd: variant `compat-off` (no /dev/vfio/vfio) or `compat-on`
    (/dev/vfio/vfio served by iommufd). -> {kernel, initramfs} for `boot(kernel=...)`."""
    need(IOMMUFD_MANIFEST.is_file(),
         f"the iommufd guest kernels ({IOMMUFD_MANIFEST}; scripts/build-kernel.sh)")
    entry = json.loads(IOMMUFD_MANIFEST.read_text())[arch]
    files = {"kernel": entry[variant], "initramfs": entry["initramfs"]}
    for path in files.values():
        need(Path(path).exists(), f"{path} (scripts/build-kernel.sh)")
    return files


def qemu_binary(arch: str) -> str:
    path = shutil.which(QEMU[arch])
    need(path is not None, f"the program {QEMU[arch]}")
    assert path is not None
    return path


@dataclass
class Boot:
    console: str
    seconds: float
    results: Path
    returncode: int

    def file(self, name: str) -> str:
        path = self.results / name
        assert path.exists(), f"the guest wrote no {name}; console:\n{self.tail()}"
        return path.read_text()

    def json(self, name: str) -> object:
        text = self.file(name)
        try:
            return json.loads(text)
        except ValueError:
            raise AssertionError(f"{name} is not JSON: {text!r}\n{self.tail()}") from None

    def step(self, name: str) -> tuple[int, str, str]:
        """(exit code, stdout, stderr) of a guest step run with lib.sh's `step`."""
        return (int(self.file(f"{name}.rc")), self.file(f"{name}.out"), self.file(f"{name}.err"))

    def tail(self, lines: int = 60) -> str:
        return "\n".join(self.console.splitlines()[-lines:])


def boot(arch: str, machine_args: list[str], script: str, results: Path, *,
         shares: dict[str, tuple[Path, bool]], memory: str = "1024", timeout: float = 240,
         append: str = "", binary: str | None = None,
         kernel: dict[str, str] | None = None) -> Boot:
    """Boot ARCH with MACHINE_ARGS; SCRIPT runs as /results/run.sh in the guest.

    shares: 9p mount tag -> (host directory, read-only); the guest mounts tag T at /T
    (`results` is always added, writable, as /results).
    kernel: {kernel, initramfs} to boot instead of the Debian kernel (`iommufd_kernel`).
    """
    entry = kernel or manifest(arch)
    binary = binary or qemu_binary(arch)
    results.mkdir(parents=True, exist_ok=True)
    (results / "run.sh").write_text(script)
    all_shares = {**shares, "results": (results, False)}
    cmd = [binary, *machine_args, "-m", memory, "-smp", "1", "-nodefaults", "-no-reboot",
           "-display", "none", "-serial", "stdio", "-kernel", entry["kernel"],
           "-initrd", entry["initramfs"]]
    for tag, (path, readonly) in all_shares.items():
        opts = f"local,path={path},mount_tag={tag},security_model=none,multidevs=remap"
        cmd += ["-virtfs", opts + (",readonly=on" if readonly else "")]
    mounts = ",".join(f"{tag}:/{tag}" for tag in all_shares)
    console = "ttyS0" if arch == "x86_64" else "ttyAMA0"
    # no_timer_check: under TCG on a loaded machine the x86 kernel's check of the IO-APIC timer
    # can fail ("timer doesn't work through Interrupt-remapped IO-APIC") and panic the guest
    cmd += ["-append", f"console={console} panic=-1 loglevel=4 no_timer_check {append} "
            f"layoutd.9p={mounts} layoutd.script=/results/run.sh"]
    (results / "qemu.cmd").write_text(" ".join(cmd) + "\n")
    start = time.monotonic()
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        text = out.decode(errors="replace")
        (results / "console.log").write_text(text)
        raise AssertionError(f"the {arch} guest did not power off within {timeout} s:\n"
                             + "\n".join(text.splitlines()[-60:])) from None
    seconds = time.monotonic() - start
    text = out.decode(errors="replace")
    (results / "console.log").write_text(text)
    result = Boot(text, seconds, results, proc.returncode)
    assert "LAYOUTD-INIT poweroff" in text, f"the guest did not finish:\n{result.tail()}"
    return result


def parse_reserved_regions(text: str) -> list[tuple[int, int, str]]:
    """The kernel's own words: `0x%016llx 0x%016llx TYPE` per line."""
    out = []
    for line in text.splitlines():
        if line.strip():
            start, end, kind = line.split()
            out.append((int(start, 16), int(end, 16), kind))
    return out


def ranges_of(items: object) -> list[tuple[int, int]]:
    """[{start, end}] with hex strings (the contract's JSON) -> int pairs."""
    assert isinstance(items, list), items
    return [(int(r["start"], 16), int(r["end"], 16)) for r in items]
