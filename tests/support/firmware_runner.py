"""Boot real guest firmware under TCG (no -S) until it has assigned the PCI BARs; read them with
QMP query-pci. SeaBIOS is done in about a second, OVMF in 10-60 s: boots run concurrently.

`booted_bars` returns {(device id, BAR number): guest-physical start or None (unassigned)} for
every memory BAR of the devices whose QEMU id is in `ids`.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from qemu.qmp.legacy import QEMUMonitorProtocol

from layoutd.host.sysfs import parse_resource
from tests.conftest import need
from tests.support.qemu_runner import CACHE, SID_ROOT, QemuBinary, Refused, launched

SEABIOS = Path("/usr/share/seabios/bios-256k.bin")
OVMF_CODE = Path("/usr/share/OVMF/OVMF_CODE_4M.fd")
OVMF_VARS = Path("/usr/share/OVMF/OVMF_VARS_4M.fd")
TRIXIE_ROOT = CACHE / "trixie-root"  # scripts/trixie-root.sh: Debian 13's ovmf 2025.02
# firmware name -> (the root holding Debian's ovmf package, whether QEMU runs inside that root)
OVMF_ROOTS = {"ovmf": (Path("/"), False), "ovmf-13": (TRIXIE_ROOT, False), "ovmf-sid": (SID_ROOT, True)}
UNMAPPED = (1 << 64) - 1
FIRMWARE = CACHE / "unknown-firmware"  # Debian's builds with a byte changed: no row in layoutd

Bars = dict[tuple[str, int], int | None]


def seabios_args() -> list[str]:
    need(SEABIOS.exists(), f"{SEABIOS} (Debian package seabios)")
    return ["-bios", str(SEABIOS)]


def ovmf_args(folder: str, firmware: str = "ovmf") -> list[str]:
    """Debian's OVMF_CODE_4M.fd as pflash: the host's (Debian 12), the trixie root's (Debian 13)
    or the sid root's (read inside the root, where sid's QEMU runs), with a copy of its VARS."""
    root, inside = OVMF_ROOTS[firmware]
    code = root / OVMF_CODE.relative_to("/")
    need(code.exists(), f"{code} (Debian package ovmf{'' if root == Path('/') else ' in ' + str(root)})")
    variables = os.path.join(folder, "vars.fd")
    shutil.copyfile(root / OVMF_VARS.relative_to("/"), variables)
    return ["-drive", f"if=pflash,format=raw,readonly=on,file={OVMF_CODE if inside else code}",
            "-drive", f"if=pflash,format=raw,file={variables}"]


def read_bars(reply: list[dict[str, Any]], ids: Iterable[str]) -> Bars:
    wanted = set(ids)
    found: Bars = {}

    def walk(devices: list[dict[str, Any]]) -> None:
        for device in devices:
            if device.get("qdev_id") in wanted:
                for region in device.get("regions", []):
                    if region["type"] == "memory" and region["bar"] < 6:  # a ROM is not decoded
                        address = region["address"] % (1 << 64)
                        found[(device["qdev_id"], region["bar"])] = (
                            None if address in (UNMAPPED, 0) else address)
            bridge = device.get("pci_bridge")
            if bridge and bridge.get("devices"):
                walk(bridge["devices"])

    for bus in reply:
        walk(bus["devices"])
    return found


def booted_bars(binary: QemuBinary, args: Sequence[str], ids: Sequence[str], *,
                firmware: str = "seabios", timeout: float = 90.0,
                until: Callable[[], bool] | None = None, nodefaults: bool = True,
                idle: bool = False) -> Bars:
    """Boot and poll until every BAR of `ids` is assigned and stable, or `timeout` passes, or
    (for a firmware expected to assign nothing) `until()` says the others are done, or (`idle`)
    the boot CPU has stayed halted for 5 s: the firmware waits for input, its POST is over."""
    folder = tempfile.mkdtemp(prefix="layoutd-fw-")
    boot = (seabios_args() if firmware == "seabios" else
            ovmf_args(folder, firmware) if firmware in OVMF_ROOTS else [])
    with running(binary, [*boot, *args, *(["-nodefaults"] if nodefaults else [])], folder) as monitor:
        if idle:
            halted: list[float] = []

            def waiting() -> bool:
                said = monitor.cmd_raw("human-monitor-command",
                                       {"command-line": "info registers"})["return"]
                if "HLT=1" not in said:
                    halted.clear()
                    return False
                halted.append(time.monotonic())
                return halted[-1] - halted[0] >= 5.0

            until = waiting
        return _poll(monitor, ids, timeout, until)


def booted_hole64(binary: QemuBinary, args: Sequence[str], ids: Sequence[str], *,
                  timeout: float = 120.0, bridge: str = "/machine/q35") -> tuple[Bars, int, int]:
    """Boot with the command line's own firmware until the BARs of `ids` are placed; those
    BARs and the 64-bit PCI hole QEMU then tells the guest: (start, end inclusive) from its host
    bridge's pci-hole64-start and pci-hole64-end (exclusive)."""
    folder = tempfile.mkdtemp(prefix="layoutd-fw-")
    with running(binary, list(args), folder) as monitor:
        bars = _poll(monitor, ids, timeout, None)
        start, end = (monitor.cmd_raw("qom-get", {"path": bridge, "property": name})["return"]
                      for name in ("pci-hole64-start", "pci-hole64-end"))
    return bars, int(start), int(end) - 1


@contextmanager
def running(binary: QemuBinary, args: Sequence[str], folder: str) -> Iterator[QEMUMonitorProtocol]:
    """QEMU started (not paused) with a QMP socket in `folder` by qemu_runner's one start and
    stop (`launched`); the connected monitor."""
    with launched(binary, args, folder) as qemu:
        if isinstance(qemu, Refused):
            raise RuntimeError(f"QEMU refused: {qemu.stderr}")
        yield qemu.monitor


def _poll(monitor: QEMUMonitorProtocol, ids: Sequence[str], timeout: float,
          until: Callable[[], bool] | None) -> Bars:
    deadline = time.monotonic() + timeout
    last: Bars | None = None
    while True:
        bars = read_bars(monitor.cmd_raw("query-pci")["return"], ids)
        done = bars and all(address is not None for address in bars.values())
        if (done and bars == last) or time.monotonic() > deadline or (until and until()):
            return bars
        last = bars if done else None
        time.sleep(0.5)


def boot_all(binary: QemuBinary, jobs: Sequence[tuple[Sequence[str], Sequence[str], bool]], *,
             firmware: str, timeout: float, margin: float) -> list[Bars]:
    """Several boots at once (OVMF under TCG is slow), one thread each. A job whose flag is False
    expects BARs left unassigned: it is read `margin` seconds after every other boot is done."""
    finished: list[float] = []
    positives = sum(1 for _, _, assigns in jobs if assigns)

    def others_done() -> bool:
        return len(finished) >= positives and time.monotonic() > max(finished, default=0) + margin

    def one(args: Sequence[str], ids: Sequence[str], assigns: bool) -> Bars:
        try:
            return booted_bars(binary, args, ids, firmware=firmware, timeout=timeout,
                               until=None if assigns else others_done)
        finally:
            if assigns:
                finished.append(time.monotonic())

    with ThreadPoolExecutor(max_workers=max(1, len(jobs))) as pool:
        futures = [pool.submit(one, args, ids, assigns) for args, ids, assigns in jobs]
        return [future.result() for future in futures]


def stand_in_argv(argv: list[str], host: Path) -> tuple[list[str], dict[str, tuple[str, int]]]:
    """The argv with each vfio-pci device replaced by stand-ins for its 64-bit BARs (read from
    the host tree's sysfs `resource`): pci-testdev membar=SIZE for the first, ivshmem-plain for
    the others, each in a slot of its own; and which stand-in (QEMU id) plays which (device, BAR,
    read as BAR2). Independent of layoutd.boot's stand-ins (one slot, several functions)."""
    out: list[str] = []
    plays: dict[str, tuple[str, int]] = {}
    for number, word in enumerate(argv):
        if not (out and out[-1] == "-device" and word.startswith("vfio-pci")):
            out.append(word)
            continue
        out.pop()
        props = dict(part.split("=", 1) for part in word.split(",")[1:])
        name_of = props.get("id", f"v{number}")
        resource = (host / "sys/bus/pci/devices" / props["host"] / "resource").read_text()
        bars = [bar for bar in parse_resource(resource, "resource") if bar.is_64 and not bar.is_rom]
        for index, bar in enumerate(bars):
            name = f"{name_of}-b{bar.index}"
            plays[name] = (props["host"], bar.index)
            if index == 0:
                out += ["-device", f"pci-testdev,membar={bar.size},id={name}"]
            else:
                out += ["-object", f"memory-backend-ram,id=m{name},size={bar.size},share=on",
                        "-device", f"ivshmem-plain,memdev=m{name},id={name}"]
    return out, plays


def changed_copy(original: Path, offset: int, name: str) -> Path:
    """`original` with the byte at `offset` (padding or free space, outside its code) flipped:
    a firmware layoutd has no row for; made once, kept in the test cache."""
    need(original.exists(), f"{original} (Debian packages seabios and ovmf)")
    target = FIRMWARE / name
    if not target.exists():
        data = bytearray(original.read_bytes())
        assert data[offset] in (0x00, 0xFF)
        data[offset] ^= 0x01
        FIRMWARE.mkdir(parents=True, exist_ok=True)
        temporary = target.with_suffix(".tmp")
        temporary.write_bytes(bytes(data))
        temporary.replace(target)
    return target
