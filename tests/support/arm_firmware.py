"""Boot real edk2 (ArmVirtQemu) on arm `virt` under TCG and read the BARs it assigned.

edk2 programs every BAR but enables decoding only for devices a UEFI driver binds, so QMP
query-pci shows a stand-in's BARs unmapped. The BAR registers themselves are read from the PCI
ECAM window with the HMP `xp` command (a read of the ECAM MMIO region; BAR registers have no
read side effects; a device edk2 rejects has all ones written to its BARs, which read back as
the size mask). The boot is done when BDS's end reaches the serial port (the PCI enumeration
runs before), or earlier once every BAR is assigned and stable.

`arm_bars` returns {(device id, BAR number): guest-physical start or None} for every memory BAR of
the devices whose QEMU id is in `ids`.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from qemu.qmp.legacy import QEMUMonitorProtocol

from tests.conftest import need
from tests.support.firmware_runner import TRIXIE_ROOT, running
from tests.support.qemu_runner import SID_ROOT, QemuBinary

Bars = dict[tuple[str, int], int | None]
# BDS has connected every PCI device by the time it prints one of these: the UEFI shell's countdown
# (2022.11, 2025.02), or sid's 2026.08 (no shell) giving up on booting
DONE = (b"startup.nsh", b"No bootable option")
EFI = "usr/share/qemu-efi-aarch64/QEMU_EFI.fd"


def efi_file(release: str) -> Path:
    """Debian's QEMU_EFI.fd: bookworm (this machine), trixie or sid (their roots)."""
    path = {"bookworm": Path("/") / EFI, "trixie": TRIXIE_ROOT / EFI, "sid": SID_ROOT / EFI}[release]
    need(path.exists(), f"{path} (Debian {release}'s qemu-efi-aarch64)")
    return path


def arm_bars(binary: QemuBinary, firmware: Path | None, args: Sequence[str], ids: Sequence[str], *,
             timeout: float = 120.0, nodefaults: bool = True) -> Bars:
    """`firmware`: a QEMU_EFI.fd (-bios), an AAVMF_CODE file (pflash, with a copy of the
    AAVMF_VARS.fd beside it), or None: `args` name it."""
    folder = tempfile.mkdtemp(prefix="layoutd-arm-")
    serial = os.path.join(folder, "serial.log")
    boot = _firmware_args(binary, firmware, folder) if firmware else []
    with running(binary, [*boot, *args, *(["-nodefaults"] if nodefaults else []),
                          "-serial", f"file:{serial}"], folder) as monitor:
        return _poll(monitor, ids, serial, timeout)


def _firmware_args(binary: QemuBinary, firmware: Path, folder: str) -> list[str]:
    code = str(firmware)
    if binary.version == "11.1" and code.startswith(str(SID_ROOT)):  # the chroot sees its own files
        code = code[len(str(SID_ROOT)):]
    elif binary.version == "11.1":  # and the host's /tmp
        code = shutil.copy(firmware, folder)
    if not firmware.name.startswith("AAVMF_CODE"):
        return ["-bios", code]
    variables = shutil.copy(firmware.with_name("AAVMF_VARS.fd"), folder)
    return ["-drive", f"if=pflash,format=raw,readonly=on,file={code}",
            "-drive", f"if=pflash,format=raw,file={variables}"]


def _hmp(monitor: QEMUMonitorProtocol, command: str) -> str:
    return str(monitor.cmd_raw("human-monitor-command", {"command-line": command})["return"])


def _ecam(monitor: QEMUMonitorProtocol) -> int:
    found = re.search(r"^\s*([0-9a-f]+)-[0-9a-f]+ .*alias pcie-ecam ", _hmp(monitor, "info mtree"), re.M)
    if found is None:
        raise RuntimeError("no pcie-ecam region in info mtree")
    return int(found.group(1), 16)


Where = dict[str, tuple[int, dict[int, int]]]  # id -> (config space offset in ECAM, {BAR: size})


def _where(monitor: QEMUMonitorProtocol, ids: Sequence[str]) -> Where:
    """Each device's ECAM offset and memory BAR numbers, from query-pci (behind bridges too)."""
    found: Where = {}

    def walk(devices: list[dict[str, Any]]) -> None:
        for device in devices:
            if device.get("qdev_id") in ids:
                offset = (device["bus"] << 20) + (device["slot"] << 15) + (device["function"] << 12)
                found[device["qdev_id"]] = (offset, {region["bar"]: region["size"]
                                                     for region in device["regions"]
                                                     if region["type"] == "memory" and region["bar"] < 6})
            bridge = device.get("pci_bridge")
            if bridge and bridge.get("devices"):
                walk(bridge["devices"])

    for bus in monitor.cmd_raw("query-pci")["return"]:
        walk(bus["devices"])
    return found


def _read_bars(monitor: QEMUMonitorProtocol, ecam: int, where: Where) -> Bars:
    def word(address: int) -> int:
        return int(_hmp(monitor, f"xp /1wx {address:#x}").split(":")[1].split()[0], 16)

    bars: Bars = {}
    for name, (offset, sizes) in where.items():
        for index, size in sizes.items():
            register = ecam + offset + 0x10 + 4 * index
            low = word(register)
            is64 = low & 0x6 == 0x4
            address = ((word(register + 4) << 32) if is64 else 0) | (low & ~0xF)
            rejected = address == (1 << (64 if is64 else 32)) - size  # all ones written back
            bars[(name, index)] = None if rejected or not address else address
    return bars


def _poll(monitor: QEMUMonitorProtocol, ids: Sequence[str], serial: str, timeout: float) -> Bars:
    deadline = time.monotonic() + timeout
    ecam = _ecam(monitor)
    last: Bars | None = None
    stable = 0
    while True:
        done = Path(serial).exists() and any(mark in Path(serial).read_bytes() for mark in DONE)
        where = _where(monitor, ids)  # a bus behind a root port is numbered by the firmware
        bars = _read_bars(monitor, ecam, where)
        stable = stable + 1 if bars == last else 0
        last = bars
        if done or time.monotonic() > deadline:
            return bars
        if stable >= 4 and len(where) == len(ids) and all(address is not None for address in bars.values()):
            return bars
        time.sleep(0.5)


def arm_boot_all(binary: QemuBinary, firmware: Path, jobs: Sequence[tuple[Sequence[str], Sequence[str]]],
                 *, timeout: float = 120.0, workers: int = 2) -> list[Bars]:
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(arm_bars, binary, firmware, args, ids, timeout=timeout)
                   for args, ids in jobs]
        return [future.result() for future in futures]
