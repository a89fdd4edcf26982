"""Boot the guest firmware to learn where it puts the BARs, for a firmware layoutd has no model of.

The VM's own command line is started as the dry run starts it (layoutd.dryrun: memory unpopulated,
no hugepages, no prealloc, no disks' or NICs' backends, no host devices), but running: with its
firmware (pflash code read-only, its variable store copied into a memfd), its fw_cfg entries, its
bridges and guest devices, and each vfio-pci device replaced by stand-ins with the same 64-bit
BARs: `pci-testdev,membar=SIZE` for a prefetchable one, `nvme` sized to it for a
non-prefetchable one, at the device's own bus, slot and function (its other BARs at free
functions of the same slot). When the firmware has enumerated the bus (its boot-device message
on the serial line or the debug port; its boot CPU halted for IDLE seconds, waiting for input;
a reset after finding nothing to boot; or every BAR assigned and unchanged for STABLE seconds),
the BARs are read with QMP `query-pci` and, on q35, from the registers through ECAM; QEMU is then
killed. KVM when the VM asks for it and /dev/kvm can run it; TCG otherwise (`-cpu host` becomes
`max` with the guest's vendor and phys-bits). Nothing is written outside the answer cache
(below: trusted only in a folder of this user's that no one else can write). Edge module.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import time
from collections.abc import Mapping, Sequence
from typing import Any

from layoutd import supervise
from layoutd.dryrun import safe_command
from layoutd.emulator import on_path
from layoutd.errors import HostUnavailable, LayoutdError, QemuRefusal
from layoutd.firmware.board import Placed, Placement
from layoutd.firmware.guest import GuestPci, nvme_bar0
from layoutd.live.session import QmpMonitor
from layoutd.models.guest import GuestMap
from layoutd.models.host import Device
from layoutd.qemu.config import parse_config
from layoutd.qemu.options import keyval, split_argv
from layoutd.record import Record, field
from layoutd.trust import untrusted

TIMEOUT = float(os.environ.get("LAYOUTD_BOOT_TIMEOUT", "240"))
"""Seconds a firmware boot may take under TCG before layoutd gives up (OVMF: 10-60 s)."""
STABLE = 3.0  # seconds every BAR must stay assigned and unchanged without a boot message
IDLE = 5.0  # seconds the boot CPU must stay halted (waiting for input: POST is over)
POLL = 0.25
DONE = re.compile(rb"No bootable device|Booting from|Boot failed|Press ESC for boot menu|BdsDxe|"
                  rb"Shell> |startup\.nsh|No bootable option|Boot Failed|\[Bds\]Booting")
ROOT_BUSES = ("pcie.0", "pci.0")
VENDORS = {"intel": "GenuineIntel", "amd": "AuthenticAMD"}
HOST_CPU_PROPS = ("host-phys-bits", "host-phys-bits-limit", "migratable", "host-cache-info",
                  "lmce", "kvm", "l3-cache", "hv-passthrough")
UNMAPPED = (1 << 64) - 1


class StandIn(Record, kw_only=False):
    id: str  # the stand-in's QEMU id
    device: str  # the host BDF it plays
    bar: int  # the host BAR it plays
    size: int
    own_bar: int  # which of the stand-in's BARs plays it (pci-testdev: 2, nvme: 0)


class Booted(Record, kw_only=False, frozen=False):
    """What one boot found."""

    bars: list[Placed]  # every 64-bit memory BAR of the assigned devices (start None: unassigned),
    # then every memory BAR of the VM's own devices that have an id (ivshmem's shared memory)
    accel: str  # kvm | tcg
    seconds: float
    notes: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # "BDF BARn" no stand-in could play


def _host_of(props: Mapping[str, str]) -> str:
    bdf = props.get("host") or props.get("sysfsdev", "").rstrip("/").rsplit("/", 1)[-1]
    return bdf if bdf.count(":") == 2 else f"0000:{bdf}"


def stand_ins(argv: Sequence[str], pci: GuestPci, host: Mapping[str, Device]
              ) -> tuple[dict[str, list[str]], list[StandIn], list[str], list[str]]:
    """The -device arguments replacing each vfio-pci device (by host BDF), what each plays, the
    BARs no stand-in plays, and notes."""
    used: dict[tuple[str | None, int], set[int]] = {}
    for guest_device in pci.devices:
        used.setdefault((guest_device.port, guest_device.slot), set()).add(guest_device.function)
    for port in pci.ports:
        used.setdefault((port.port, port.slot), set()).add(port.function)
    where = {d.id: d for d in pci.devices}
    replacing: dict[str, list[str]] = {}
    plays: list[StandIn] = []
    missing: list[str] = []
    notes: list[str] = []
    number = 0
    approximated: list[str] = []
    for option in split_argv(argv):
        if option.name != "device":
            continue
        props = keyval(option.value or "", "driver", "-device")
        if props.get("driver") != "vfio-pci":
            continue
        bdf = _host_of(props)
        args = replacing.setdefault(bdf, [])
        placed = where.get(bdf)
        device = host.get(bdf)
        if placed is None or device is None:
            continue
        bars = [b for b in device.bars if b.is_memory and b.is_64 and not b.is_rom]
        if any(b.is_rom or not b.is_memory or not b.is_64 for b in device.bars):
            approximated.append(bdf)
        bus = props.get("bus")
        slot_used = used.setdefault((placed.port, placed.slot), set())
        functions = [placed.function] + [f for f in range(8) if f not in slot_used]
        pieces: list[tuple[str, int]] = []  # (device text without ids, own bar)
        for bar in bars:
            text, own = _stand_in_for(bar.size, bar.prefetchable, notes, bdf, bar.index)
            pieces.append((text, own))
        if not pieces:
            pieces.append(("pci-testdev", -1))  # keeps its slot (and a multifunction slot) filled
        for index, (text, own) in enumerate(pieces):
            if index >= len(functions):
                missing += [f"{bdf} BAR{bar.index}" for bar in bars[index:]]
                notes.append(f"{bdf}: no free function in its slot for a stand-in of "
                             f"{', '.join(f'BAR{b.index}' for b in bars[index:])}")
                break
            number += 1
            name = f"layoutd-standin{number}"
            function = functions[index]
            slot_used.add(function)
            extra = f",bus={bus}" if bus else ""
            extra += f",addr={placed.slot:#x}.{function}"
            if function == 0 and (len(pieces) > 1 or props.get("multifunction") in ("on", "true")):
                extra += ",multifunction=on"  # its own other functions, or the VM's
            if text.startswith("nvme"):
                extra += f",serial=layoutd{number}"
            args += ["-device", f"{text},id={name}{extra}"]
            if own >= 0:
                bar = bars[index]
                plays.append(StandIn(name, bdf, bar.index, bar.size, own))
    if approximated:
        notes.append(f"the stand-ins of {', '.join(approximated)} have their 64-bit memory BARs; "
                     "32-bit and I/O BARs and ROMs are not reproduced")
    return replacing, plays, missing, notes


def _stand_in_for(size: int, prefetchable: bool, notes: list[str], bdf: str, index: int
                  ) -> tuple[str, int]:
    """A device with one 64-bit BAR of `size`: nvme for a non-prefetchable BAR QEMU's nvme can
    be sized to, else pci-testdev (prefetchable)."""
    if not prefetchable:
        queues = _nvme_queues(size)
        if queues is not None:
            return f"nvme,max_ioqpairs={queues}", 0
        notes.append(f"{bdf} BAR{index} is non-prefetchable; its stand-in's is prefetchable "
                     "(no QEMU device has one of that size)")
    return f"pci-testdev,membar={size}", 2


def _nvme_queues(size: int) -> int | None:
    for queues in (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1000, 2000, 4000, 8000, 16000, 32000,
                   65535):
        if nvme_bar0({"max_ioqpairs": str(queues)}) == size:
            return queues
    return None


def boot_argv(argv: Sequence[str], guest: GuestMap, replacing: Mapping[str, list[str]],
              accel: str) -> list[str]:
    """The VM's command line for the boot: each vfio-pci device replaced in place (`replacing`:
    host BDF -> its stand-ins), the accelerator `accel`, and under TCG a CPU TCG can run."""
    out: list[str] = []
    skip = False
    for index, word in enumerate(argv):
        if skip:
            skip = False
            continue
        name = word.lstrip("-") if word.startswith("-") else None
        value = argv[index + 1] if index + 1 < len(argv) else ""
        props = keyval(value, "driver", "-device") if name == "device" else {}
        if props.get("driver") == "vfio-pci":
            skip = True
            out += replacing.get(_host_of(props), [])
            continue
        if name in ("accel", "enable-kvm", "machine", "M", "cpu") and accel == "tcg":
            replaced = _for_tcg(name, value, guest)
            skip = name != "enable-kvm"
            out += replaced
            continue
        out.append(word)
    names = {option.name for option in split_argv(argv)}
    if not names & {"nodefaults", "nic", "net", "netdev"}:  # QEMU's default NIC, without network
        nic = ["-device", f"{'e1000e' if 'q35' in guest.machine else 'e1000'},id=layoutd-nic"]
        first = next((i for i, word in enumerate(out) if word == "-device"), len(out))
        out[first:first] = nic
    return [*out, *(["-accel", "tcg"] if accel == "tcg" else [])]


def _for_tcg(name: str, value: str, guest: GuestMap) -> list[str]:
    if name == "enable-kvm":
        return []
    if name == "accel":
        return []  # -accel tcg is added at the end
    if name in ("machine", "M"):
        props = keyval(value, "type", "-machine")
        props.pop("accel", None)
        props.pop("kernel-irqchip", None)
        return ["-machine", _join(props, "type")] if props else []
    props = keyval(value, "model", "-cpu") if "," in value or value else {"model": value}
    model = props.pop("model", "qemu64")
    if model in ("host", "max"):
        model = "max"
        for key in HOST_CPU_PROPS:
            props.pop(key, None)
        if guest.cpu_vendor in VENDORS:
            props["vendor"] = VENDORS[guest.cpu_vendor]
    if guest.phys_bits:
        props["phys-bits"] = str(guest.phys_bits)
    return ["-cpu", _join({"model": model, **props}, "model")]


def _join(props: Mapping[str, str], implied: str) -> str:
    first = [props[implied]] if implied in props else []
    return ",".join(first + [f"{k}={v}" for k, v in props.items() if k != implied])


def pflash_units(argv: Sequence[str]) -> list[tuple[str, bool, str]]:
    """(file, read-only, format) of the VM's pflash units in unit order: -drive if=pflash, -pflash,
    or libvirt's -machine pflash0=NODE,pflash1=NODE over -blockdev."""
    units: list[tuple[str, bool, str]] = []
    nodes: dict[str, dict[str, str]] = {}
    named: list[str] = []
    for option in split_argv(argv):
        value = option.value or ""
        if option.name == "pflash":
            units.append((value, False, "raw"))
        elif option.name == "drive":
            props = keyval(value, "file", "-drive")
            if props.get("if") == "pflash" and props.get("file"):
                units.append((props["file"], props.get("readonly") in ("on", "true"),
                              props.get("format", "raw")))
        elif option.name == "blockdev":
            props = keyval(value, None, "-blockdev")
            nodes[props.get("node-name", "")] = props
        elif option.name in ("machine", "M"):
            props = keyval(value, "type", "-machine")
            named += [props[key] for key in ("pflash0", "pflash1") if key in props]
    for node in named:
        found = _node(nodes, node)
        if found is not None:
            units.append(found)
    return units


def _node(nodes: Mapping[str, dict[str, str]], name: str) -> tuple[str, bool, str] | None:
    """The file under a -blockdev node, whether any layer is read-only, and its format."""
    readonly, fmt = False, "raw"
    for _ in range(4):
        props = nodes.get(name, {})
        readonly = readonly or props.get("read-only") in ("on", "true")
        if props.get("driver") in ("raw", "qcow2"):
            fmt = props["driver"]
        if "filename" in props:
            return props["filename"], readonly, fmt
        name = props.get("file", "")
    return None


def _memfd(safe: Any, name: str, data: bytes = b"") -> tuple[str, int]:
    """A memfd QEMU inherits (closed in layoutd by the start) and our own copy to read it."""
    fd = os.memfd_create(name, os.MFD_CLOEXEC)
    if data:
        os.write(fd, data)
    safe.fds.append(fd)
    return f"/proc/self/fd/{fd}", os.dup(fd)


def boot(binary: str, argv: Sequence[str], arch: str, guest: GuestMap, pci: GuestPci,
         host: Mapping[str, Device], timeout: float = TIMEOUT) -> Booted:
    """Boot the firmware with stand-ins and read where it put the assigned devices' BARs.

    KVM first when the VM asks for it and /dev/kvm opens, else (or when KVM cannot run it) TCG.
    HostUnavailable when QEMU cannot be started or the firmware did not finish in `timeout`
    seconds; QemuRefusal when QEMU refuses the command line."""
    devices, plays, missing, notes = stand_ins(argv, pci, host)
    wanted = parse_config(argv).accel
    accels = (["kvm"] if wanted == "kvm" and os.access("/dev/kvm", os.R_OK | os.W_OK) else []) + ["tcg"]
    tried: list[str] = []
    for accel in accels:
        try:
            found = _boot_once(binary, boot_argv(argv, guest, devices, accel), arch, plays,
                               accel, timeout)
        except (HostUnavailable, QemuRefusal) as error:
            if accel == "kvm":
                tried.append(f"KVM could not run it ({error.message}); booted under TCG")
                continue
            raise
        if accel == "tcg" and wanted == "kvm":
            cpu = parse_config(argv).cpu_model or "qemu64"
            tried.append("booted under TCG, not KVM" + (
                f" (-cpu {cpu} as max with the guest's vendor and {guest.phys_bits} phys-bits)"
                if cpu in ("host", "max") else ""))
        found.notes = [*tried, *notes, *found.notes]
        found.missing = missing
        return found
    raise AssertionError("unreachable")


def _boot_once(binary: str, argv: Sequence[str], arch: str, plays: Sequence[StandIn], accel: str,
               timeout: float) -> Booted:
    safe = safe_command(argv, arch, whole=True, boot=True)
    readers: list[int] = []
    units = pflash_units(argv)[:2]
    if len(units) == 1 and units[0][1] and _vars_for(units[0][0]):
        units.append((_vars_for(units[0][0]) or "", False, "raw"))  # libvirt's <nvram>: a copy
    try:
        for index, (path, readonly, fmt) in enumerate(units):
            if readonly:
                safe.argv += ["-drive", f"if=pflash,unit={index},format={fmt},readonly=on,"
                              f"file={path.replace(',', ',,')}"]
                continue
            try:
                with open(path, "rb") as handle:
                    data = handle.read()
            except OSError as error:
                raise HostUnavailable(f"cannot read the VM's pflash file {path}: "
                                      f"{error.strerror}") from error
            copy, mine = _memfd(safe, "layoutd-pflash", data)
            os.close(mine)
            safe.argv += ["-drive", f"if=pflash,unit={index},format={fmt},file={copy}"]
        serial, serial_fd = _memfd(safe, "layoutd-serial")
        debug, debug_fd = _memfd(safe, "layoutd-debug")
        readers += [serial_fd, debug_fd]
        if arch == "x86_64":
            safe.argv += ["-chardev", f"file,id=layoutd-serial,path={serial}",
                          "-serial", "chardev:layoutd-serial",
                          "-chardev", f"file,id=layoutd-debug,path={debug}",
                          "-device", "isa-debugcon,iobase=0x402,chardev=layoutd-debug"]
        else:
            safe.argv += ["-chardev", f"file,id=layoutd-serial,path={serial}",
                          "-serial", "chardev:layoutd-serial"]
        # a firmware that finds nothing to boot and resets (SeaBIOS after 60 s) stops there,
        # its BARs as it left them: done, even when it said nothing
        safe.argv += ["-action", "reboot=shutdown,shutdown=pause"]
        started = time.monotonic()
        with supervise.started(binary, safe, timeout + 10) as (process, sock):
            try:
                monitor = QmpMonitor.on_socket(sock, f"firmware boot of {binary}", 20)
            except HostUnavailable:
                raise _why(binary, process) from None
            try:
                monitor.execute("cont")
                bars, seconds = _watch(monitor, plays, readers, started, timeout, accel)
            except HostUnavailable as error:
                if process.poll() is not None:
                    raise _why(binary, process) from error
                raise error
            finally:
                with contextlib.suppress(Exception):
                    monitor.execute("quit")
                monitor.close()
    finally:
        safe.close()
        for fd in readers:
            os.close(fd)
    return Booted(bars, accel, seconds)


def _vars_for(code: str) -> str | None:
    """The variable store template next to a read-only code image (OVMF_CODE_4M.fd ->
    OVMF_VARS_4M.fd), or None."""
    folder, name = os.path.split(code)
    if "CODE" not in name:
        return None
    base = name.replace("CODE", "VARS").split(".")[0]
    path = os.path.join(folder, base + ".fd")
    return path if os.path.isfile(path) else None


def _why(binary: str, process: Any) -> LayoutdError:
    with contextlib.suppress(Exception):
        process.wait(timeout=5)
    stderr = os.pread(process.errors, 1 << 16, 0).decode(errors="replace")
    return QemuRefusal(f"{binary} refused to boot the firmware (exit status {process.returncode}): "
                       f"{supervise.first_error(stderr) or 'no message'}")


def _watch(monitor: Any, plays: Sequence[StandIn], readers: Sequence[int], started: float,
           timeout: float, accel: str) -> tuple[list[Placed], float]:
    last: dict[tuple[str, int], int | None] | None = None
    since = time.monotonic()
    halted_since: float | None = None
    while True:
        status = monitor.execute("query-status").get("status")
        if status in ("internal-error", "guest-panicked"):
            raise HostUnavailable(f"the guest stopped ({status}) before the firmware placed the "
                                  f"BARs under {accel.upper()}")
        said = b"".join(os.pread(fd, 1 << 20, 0) for fd in readers)
        registers = monitor.execute("human-monitor-command", {"command-line": "info registers"})
        now = time.monotonic()
        halted_since = (halted_since or now) if "HLT=1" in str(registers) else None
        done = (bool(DONE.search(said)) or status == "shutdown"
                or (halted_since is not None and now - halted_since >= IDLE))
        found = _read(monitor, plays)
        if found != last:
            last, since = found, now
        every = bool(found) and all(start is not None for start in found.values())
        if done or (every and now - since >= STABLE) or not plays:
            if done:  # the message may come a moment before the last register write is seen
                found = _read(monitor, plays)
            return ([*(Placed(p.device, p.bar, p.size, True, found.get((p.device, p.bar)))
                       for p in plays), *_own_bars(monitor)], now - started)
        if now - started > timeout:
            raise HostUnavailable(f"gave up after {timeout:g} s: the firmware had not finished "
                                  "enumerating PCI (set LAYOUTD_BOOT_TIMEOUT to allow longer)")
        time.sleep(POLL)


def _read(monitor: Any, plays: Sequence[StandIn]) -> dict[tuple[str, int], int | None]:
    """Each played BAR's address: QMP query-pci, then the BAR registers through ECAM (HMP xp)
    where QEMU shows a BAR unmapped (a firmware may program a BAR and leave decoding off)."""
    by_id = {p.id: p for p in plays}
    found: dict[tuple[str, int], int | None] = {}
    where: dict[str, tuple[int, int, int]] = {}

    def walk(devices: list[dict[str, Any]]) -> None:
        for device in devices:
            play = by_id.get(device.get("qdev_id", ""))
            if play is not None:
                where[play.id] = (device["bus"], device["slot"], device["function"])
                address = None
                for region in device.get("regions", []):
                    if region.get("bar") == play.own_bar and region.get("type") == "memory":
                        value = region["address"] % (1 << 64)
                        address = None if value in (UNMAPPED, 0) else value
                found[(play.device, play.bar)] = address
            bridge = device.get("pci_bridge") or {}
            walk(bridge.get("devices") or [])

    for bus in monitor.execute("query-pci"):
        walk(bus.get("devices", []))
    unmapped = [p for p in plays if found.get((p.device, p.bar)) is None and p.id in where]
    if unmapped:
        base = _ecam_base(monitor)
        if base is not None:
            for play in unmapped:
                found[(play.device, play.bar)] = _ecam_bar(monitor, base, where[play.id],
                                                           play.own_bar)
    return found


def _own_bars(monitor: Any) -> list[Placed]:
    """Every memory BAR of the VM's own devices with an id, as QMP query-pci shows it."""
    found: list[Placed] = []

    def walk(devices: list[dict[str, Any]]) -> None:
        for device in devices:
            name = device.get("qdev_id") or ""
            if name and not name.startswith("layoutd-"):
                for region in device.get("regions", []):
                    if region.get("type") == "memory" and region.get("bar", 6) < 6:
                        value = region["address"] % (1 << 64)
                        found.append(Placed(name, region["bar"], region["size"],
                                            bool(region.get("mem_type_64")),
                                            None if value in (UNMAPPED, 0) else value))
            walk((device.get("pci_bridge") or {}).get("devices") or [])

    for bus in monitor.execute("query-pci"):
        walk(bus.get("devices", []))
    return found


def _ecam_base(monitor: Any) -> int | None:
    """q35's MMCONFIG base as the firmware set it; None elsewhere."""
    try:
        text = monitor.execute("human-monitor-command", {"command-line": "info mtree -f"})
    except LayoutdError:
        return None
    match = re.search(r"^\s*([0-9a-f]+)-[0-9a-f]+ \(prio \S+, i/o\): pcie-mmcfg-mmio", text, re.M)
    return int(match.group(1), 16) if match else None


def _ecam_bar(monitor: Any, base: int, bdf: tuple[int, int, int], index: int) -> int | None:
    bus, slot, function = bdf
    address = base + (bus << 20) + (slot << 15) + (function << 12) + 0x10 + 4 * index
    try:
        text = monitor.execute("human-monitor-command",
                               {"command-line": f"xp /2wx {address:#x}"})
    except LayoutdError:
        return None
    words = re.findall(r"0x([0-9a-f]{8})", text.split(":", 1)[-1])
    if len(words) < 2:
        return None
    value = (int(words[1], 16) << 32 | int(words[0], 16)) & ~0xF
    return value or None


# ---- the answer as a placement, cached -------------------------------------------------------

CACHE_VERSION = 2


def cache_folder() -> str:
    """LAYOUTD_BOOT_CACHE, else /var/cache/layoutd/boots for root (the hook), else
    $XDG_CACHE_HOME/layoutd/boots or ~/.cache/layoutd/boots."""
    if os.environ.get("LAYOUTD_BOOT_CACHE"):
        return os.environ["LAYOUTD_BOOT_CACHE"]
    if os.getuid() == 0:
        return "/var/cache/layoutd/boots"
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "layoutd", "boots")


def _trusted_folder() -> tuple[str | None, str | None]:
    """(the cache folder, None) when it is ours alone (as the lock folder: a real folder owned by
    this user, writable by no one else), else (None, why not)."""
    folder = cache_folder()
    try:
        os.makedirs(folder, mode=0o700, exist_ok=True)
        problem = untrusted(folder)
    except OSError as error:
        problem = error.strerror
    return (None, f"boot cache {folder} not used ({problem})") if problem else (folder, None)


def cache_key(binary: str, argv: Sequence[str], pci: GuestPci, plays: Sequence[StandIn],
              replacing: Mapping[str, list[str]]) -> str:
    """Everything that decides the answer: the firmware's bytes (every pflash unit or -bios
    file), the QEMU binary (path, size, mtime, inode: its version with it, without running it),
    the command line (VFIO devices as their stand-ins) and what each stand-in plays."""

    path = on_path(binary) or binary
    info = os.stat(path)
    files = [unit[0] for unit in pflash_units(argv)] + ([pci.firmware] if pci.firmware else [])
    hashes = {}
    for name in dict.fromkeys(files):
        try:
            with open(name, "rb") as handle:
                hashes[name] = hashlib.sha256(handle.read()).hexdigest()
        except OSError:
            hashes[name] = "unreadable"
    data = {"v": CACHE_VERSION, "binary": [os.path.realpath(path), info.st_size,
                                           info.st_mtime_ns, info.st_ino],
            "argv": list(argv), "firmware": hashes,
            "replacing": dict(replacing),
            "plays": [[p.id, p.device, p.bar, p.size, p.own_bar] for p in plays]}
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


def _load(folder: str, key: str) -> Booted | None:
    path = os.path.join(folder, f"boot-{key[:40]}.json")
    try:
        handle = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        info = os.fstat(handle)
        if info.st_uid != os.getuid() or info.st_mode & 0o022:
            return None
        data = json.loads(os.read(handle, 1 << 20))
    except (OSError, ValueError):
        return None
    finally:
        os.close(handle)
    try:
        if data["key"] != key:
            return None
        bars = [Placed(b["device"], b["bar"], b["size"], b["is64"], b["start"])
                for b in data["bars"]]
        return Booted(bars, data["accel"], data["seconds"], list(data["notes"]),
                      list(data["missing"]))
    except (KeyError, TypeError):
        return None


def _store(folder: str, key: str, found: Booted) -> None:
    data = {"key": key, "accel": found.accel, "seconds": found.seconds, "notes": found.notes,
            "missing": found.missing,
            "bars": [{"device": b.device, "bar": b.bar, "size": b.size, "is64": b.is64,
                      "start": b.start} for b in found.bars]}
    try:
        # written whole, then renamed (tempfile would load shutil into every check: os does it)
        temporary = os.path.join(folder, f".boot-{os.getpid()}-{key[:40]}.json")
        handle = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        with os.fdopen(handle, "w") as out:
            json.dump(data, out)
        os.replace(temporary, os.path.join(folder, f"boot-{key[:40]}.json"))
    except OSError:
        pass  # a cache that cannot be written only costs the next boot


class BootAnswer(Record, kw_only=False, frozen=False):
    placement: Placement | None  # None: nothing could be booted
    notes: list[str]
    missing: list[str] = field(default_factory=list)  # BARs no stand-in played
    cached: bool = False


def booted_placement(binary: str, argv: Sequence[str], arch: str, guest: GuestMap, pci: GuestPci,
                     host: Mapping[str, Device], label: str) -> BootAnswer:
    """The firmware's placement of the assigned devices' 64-bit BARs, from a boot (or the cache
    of one with the same key); `placement` None and the reason in `notes` when it could not be
    booted. `label` names the firmware in reports."""
    replacing, plays, _, _ = stand_ins(argv, pci, host)
    folder, why = _trusted_folder()
    notes = [why] if why else []
    try:
        key = cache_key(binary, argv, pci, plays, replacing)
    except OSError as error:
        return BootAnswer(None, [f"{label}: cannot boot it, {binary}: {error.strerror}"])
    found = _load(folder, key) if folder else None
    cached = found is not None
    if found is None:
        try:
            found = boot(binary, argv, arch, guest, pci, host)
        except LayoutdError as error:
            return BootAnswer(None, [*notes, f"{label}: booting it to see where it puts the BARs "
                                             f"failed: {error.message}"])
        if folder:
            _store(folder, key, found)
    how = (f"booted under {found.accel.upper()} in {found.seconds:.1f} s, answer from the cache"
           if cached else f"booted under {found.accel.upper()} in {found.seconds:.1f} s")
    placement = Placement(f"{label} ({how})", None, tuple(found.bars))
    return BootAnswer(placement, [*notes, *found.notes], found.missing, cached)
