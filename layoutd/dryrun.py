"""The dry run: ask the QEMU binary that will run a VM what it builds, without running the VM.

QEMU starts paused (-S) with the VM's memory configuration and nothing else of the host's: every
memory backend becomes an unpopulated one of the same type, size and alignment (memory-backend-ram
with reserve=off; memfd and file backends on a sealed-off memfd of this process, so no hugetlbfs
page is taken and no file is created; no prealloc), and disks, NICs, chardevs, host devices (VFIO,
SEV, ...) are dropped. Its map is read over QMP (a socketpair: no socket file) with qemu.qmp, as the
live audit reads a running VM. The child dies with layoutd (PR_SET_PDEATHSIG), and a watchdog kills
it at the time limit. Edge module: layoutd/qemu stays pure.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import signal
import socket
import subprocess
import threading
from collections.abc import Iterator, Sequence

from layoutd.errors import HostUnavailable, InputError, QemuRefusal
from layoutd.live.session import QmpMonitor
from layoutd.live.vm import LiveVm, read_vm
from layoutd.models.common import GuestRegion, Range
from layoutd.models.guest import GuestMap, MemoryDeviceInfo, NamedRegion, RamPiece
from layoutd.qemu.config import ram_bars_of
from layoutd.qemu.options import Option, keyval, split_argv
from layoutd.record import Record, field
from layoutd.units import parse_size

TIMEOUT = float(os.environ.get("LAYOUTD_DRYRUN_TIMEOUT", "20"))
"""Seconds the whole dry run may take (start, QMP, quit); QEMU is killed at the limit."""

HUGETLBFS_MAGIC = 0x958458F6
PR_SET_PDEATHSIG = 1
BOOT_RAM_ID = {"x86_64": "pc.ram", "aarch64": "mach-virt.ram"}
KEEP_OPTIONS = frozenset(["machine", "m", "cpu", "smp", "numa", "accel", "global", "bios", "L",
                          "vga", "enable-kvm", "no-acpi", "no-hpet", "nodefaults"])
MEMORY_DEVICES = frozenset(["pc-dimm", "nvdimm", "virtio-mem-pci", "virtio-pmem-pci"])
BRIDGES = frozenset(["pcie-root-port", "ioh3420", "pci-bridge", "pcie-pci-bridge", "pxb", "pxb-cxl",
                     "pxb-pcie", "x3130-upstream", "xio3130-downstream", "i82801b11-bridge"])
VGA_DEVICES = frozenset(["VGA", "cirrus-vga", "isa-vga", "isa-cirrus-vga", "vmware-svga",
                         "qxl-vga", "virtio-vga", "virtio-vga-gl", "ati-vga", "vhost-user-vga",
                         "bochs-display", "secondary-vga"])
HOST_SIDE = ("vfio-", "vhost-", "vhost_")  # devices that open something of the host's
BUILTIN_BUSES = frozenset(["pcie.0", "pci.0"])
DROPPED_MACHINE_PROPS = frozenset(["pflash0", "pflash1", "confidential-guest-support",
                                   "memory-encryption"])
DROPPED_BACKEND_PROPS = frozenset(["prealloc", "prealloc-threads", "prealloc-context",
                                   "host-nodes", "policy", "mem-path", "hugetlb", "hugetlbsize",
                                   "pmem", "discard-data", "readonly", "rom"])


class SafeCommand(Record, kw_only=False, frozen=False):
    """The dry run's command line (after the binary) and the memfds it names by /proc/self/fd."""

    argv: list[str]
    fds: list[int] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)  # options left out, for messages

    def close(self) -> None:
        for fd in self.fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        self.fds.clear()


def safe_command(argv: Sequence[str], arch: str, whole: bool = False,
                 boot: bool = False) -> SafeCommand:
    """The VM's command line with nothing of the host's memory, disks, devices or files; `whole`:
    also every device without a host side (not VFIO, vhost, *-host) and -fw_cfg, as given, in
    their order: a start-up check of a plan's whole command line (QEMU refusing a device shows);
    `boot` (with `whole`): also the NICs without their network and the disks' devices on an empty
    null-co node, so that the firmware sees the VM's PCI devices (layoutd.boot)."""
    safe = SafeCommand([])
    try:
        _rewrite(split_argv(argv), arch, safe, whole, boot)
    except BaseException:
        safe.close()
        raise
    safe.argv += ["-S", "-nodefaults", "-display", "none", "-no-user-config"]
    return safe


def _rewrite(options: list[Option], arch: str, safe: SafeCommand, whole: bool,
             boot: bool = False) -> None:
    kept_ids: set[str] = set()
    devices: list[dict[str, str]] = []
    numa_memdev = any(o.name == "numa" and ({"memdev", "mem"} & set(keyval(o.value or "", "type",
                                                                           "-numa")))
                      for o in options)  # memdev= nodes back boot RAM; legacy mem= forbids a backend
    machine_backend = None
    firmware = False
    for option in options:
        name, value = option.name, option.value or ""
        if name == "object":
            props = keyval(value, "qom-type", "-object")
            if props.get("qom-type", "").startswith("memory-backend-"):
                safe.argv += ["-object", _backend(props, safe)]
            else:
                safe.dropped.append(option.label())
        elif name == "device":
            props = keyval(value, "driver", "-device")
            driver = props.get("driver", "")
            if driver in MEMORY_DEVICES or driver in BRIDGES or driver in VGA_DEVICES:
                kept_ids.add(props.get("id", ""))
                if whole:  # in order: a later device may sit on this bridge
                    safe.argv += ["-device", _device(props, kept_ids)]
                else:
                    devices.append(props)
            elif whole and boot and _guest_only(driver, _without_backends(props)):
                safe.argv += _with_null_backends(props, len(safe.argv))
            elif whole and _guest_only(driver, props):
                safe.argv += ["-device", value]
            else:
                safe.dropped.append(option.label())
        elif name == "machine":
            props = keyval(value, "type", "-machine")
            firmware = firmware or any(k in props for k in ("pflash0", "pflash1"))
            machine_backend = props.get("memory-backend", machine_backend)
            kept = {k: v for k, v in props.items() if k not in DROPPED_MACHINE_PROPS}
            if kept:
                safe.argv += ["-machine", _join(kept, "type")]
        elif name == "mem-path":
            machine_backend = BOOT_RAM_ID.get(arch, "pc.ram")
            safe.argv += ["-object", _legacy_mem_path(value, options, machine_backend, safe)]
            safe.argv += ["-machine", f"memory-backend={machine_backend}"]
        elif name in ("drive", "pflash"):
            if name == "pflash" or keyval(value, "file", "-drive").get("if") == "pflash":
                firmware = True
            safe.dropped.append(option.label())
        elif name == "vga":
            safe.argv += ["-vga", "none" if value == "none" else "std"]
        elif name == "global" and _touches_host_memory(value):
            safe.dropped.append(option.label())
        elif name in KEEP_OPTIONS or (whole and name == "fw_cfg"):
            safe.argv += [f"-{name}"] + ([value] if option.value is not None else [])
        else:
            safe.dropped.append(option.label())
    if machine_backend is None and not numa_memdev:
        _boot_ram_backend(options, arch, safe)
    if firmware and arch == "aarch64" and not any(o.name == "bios" for o in options):
        safe.argv += ["-bios", _memfd_path(safe, "layoutd-firmware", 1 << 20)]
    for props in devices:
        safe.argv += ["-device", _device(props, kept_ids)]
    if arch == "x86_64" and not any(o.name in ("nodefaults", "vga") for o in options):
        safe.argv += ["-vga", "std"]  # the default VGA maps its window over low RAM


def _backend(props: dict[str, str], safe: SafeCommand) -> str:
    """The same backend, unpopulated: ram with reserve=off; memfd as is (its pages are never
    reserved); hugetlb memfd and file backends as a file backend on a memfd of ours, aligned as
    the original (its page size, or align=)."""
    kind = props["qom-type"]
    huge_memfd = kind == "memory-backend-memfd" and props.get("hugetlb", "off") in ("on", "true")
    kept = {k: v for k, v in props.items() if k not in DROPPED_BACKEND_PROPS}
    if kind == "memory-backend-ram":
        kept["reserve"] = "off"
    elif kind == "memory-backend-file" or huge_memfd:
        page = (_hugepage_size(props.get("hugetlbsize")) if huge_memfd
                else _page_size(props.get("mem-path", "")))
        align = max(page, _size(props.get("align", "0")))
        kept.update({"qom-type": "memory-backend-file", "reserve": "off", "share": "on",
                     "mem-path": _memfd_path(safe, f"layoutd-{props.get('id', 'backend')}", 0)})
        kept.pop("seal", None)
        if align > 4096:
            kept["align"] = str(align)
    return _join(kept, "qom-type")


def _legacy_mem_path(path: str, options: list[Option], backend_id: str, safe: SafeCommand) -> str:
    size = _ram_size_text(options) or "128M"
    align = _page_size(path)
    text = (f"memory-backend-file,id={backend_id},size={size},reserve=off,share=on,"
            f"mem-path={_memfd_path(safe, 'layoutd-ram', 0)}")
    return text + (f",align={align}" if align > 4096 else "")


def _boot_ram_backend(options: list[Option], arch: str, safe: SafeCommand) -> None:
    """-m SIZE alone makes an accounted anonymous mapping: give it as memory-backend-ram with
    reserve=off, under the boot RAM's own name (pc.ram, mach-virt.ram)."""
    size = _ram_size_text(options)
    if size is None:
        return  # the machine's default (128 MiB)
    backend_id = BOOT_RAM_ID.get(arch, "pc.ram")
    safe.argv += ["-object", f"memory-backend-ram,id={backend_id},size={size},reserve=off",
                  "-machine", f"memory-backend={backend_id}"]


def _ram_size_text(options: list[Option]) -> str | None:
    """The last -m's size as QEMU reads it (a bare number is MiB)."""
    size = None
    for option in options:
        if option.name == "m":
            props = keyval(option.value or "", "size", "-m")
            size = props.get("size", size)
    if size is None:
        return None
    return size + "M" if size.replace(".", "", 1).isdigit() else size


def _touches_host_memory(text: str) -> bool:
    """A -global on a memory backend (prealloc, reserve, host-nodes...) or virtio-mem's prealloc:
    never in a dry run."""
    if text.startswith("driver="):
        props = keyval(text, None, "-global")
        driver, prop = props.get("driver", ""), props.get("property", "")
    else:
        driver, _, prop = text.partition("=")[0].rpartition(".")
    return driver.startswith("memory-backend") or (driver.startswith("virtio-mem") and
                                                   prop == "prealloc")


def _device(props: dict[str, str], kept_ids: set[str]) -> str:
    """A kept device; VGA models become plain VGA (the same legacy window, no host display); a
    bus that was dropped is left to QEMU's choice."""
    props = {k: v for k, v in props.items() if k != "prealloc"}  # virtio-mem would fill its blocks
    if props["driver"] in VGA_DEVICES and props["driver"] not in ("VGA", "secondary-vga"):
        props = {k: v for k, v in props.items() if k in ("driver", "id", "bus", "addr")}
        props["driver"] = "VGA"
    bus = props.get("bus")
    if bus and bus not in BUILTIN_BUSES and bus.rsplit(".", 1)[0] not in kept_ids:
        props.pop("bus")
        if props["driver"] not in MEMORY_DEVICES or props["driver"] == "virtio-mem-pci":
            props.pop("addr", None)
    return _join(props, "driver")


def _guest_only(driver: str, props: dict[str, str]) -> bool:
    """A device with nothing of the host's behind it: no VFIO, vhost or *-host device, and no
    netdev, chardev or drive (those are dropped)."""
    return not (driver.startswith(HOST_SIDE) or driver.endswith("-host")
                or {"netdev", "chardev", "drive"} & set(props))


def _without_backends(props: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in props.items() if k not in ("netdev", "drive")}


def _with_null_backends(props: dict[str, str], number: int) -> list[str]:
    """A device without its NIC backend, and on an empty read-only null-co node for its disk."""
    kept = {k: v for k, v in props.items() if k != "netdev"}
    if "drive" not in kept:
        return ["-device", _join(kept, "driver")]
    kept["drive"] = f"layoutd-null{number}"
    return ["-blockdev", f"driver=null-co,node-name=layoutd-null{number},read-only=on",
            "-device", _join(kept, "driver")]


def _join(props: dict[str, str], implied: str) -> str:
    first = [props[implied]] if implied in props else []
    rest = [f"{k}={v.replace(',', ',,')}" for k, v in props.items() if k != implied]
    return ",".join(first + rest)


def _size(text: str) -> int:
    return parse_size(text, what="align")


def _page_size(path: str) -> int:
    """The page size QEMU takes for a backend file: hugetlbfs's, else the base page size."""
    probe = path
    while probe and not os.path.exists(probe):
        probe = os.path.dirname(probe.rstrip("/"))
    try:
        info = os.statvfs(probe or ".")
    except OSError as error:
        raise InputError(f"mem-path {path}: {error.strerror}", field="qemu argv") from error
    return info.f_bsize if _fs_magic(probe or ".") == HUGETLBFS_MAGIC else os.sysconf("SC_PAGE_SIZE")


def _fs_magic(path: str) -> int:
    """statfs(2)'s f_type, which statvfs does not give."""
    buffer = ctypes.create_string_buffer(256)
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.statfs(os.fsencode(path), buffer) != 0:
        return 0
    return int.from_bytes(buffer.raw[:8], "little")


def _hugepage_size(text: str | None) -> int:
    if text:
        return _size(text)
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("Hugepagesize:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 2 << 20


def _memfd_path(safe: SafeCommand, name: str, size: int) -> str:
    """A memfd of ours (no file anywhere; gone with the last process holding it), named as
    /proc/self/fd/N inside QEMU, which inherits it."""
    fd = os.memfd_create(name, os.MFD_CLOEXEC)
    safe.fds.append(fd)
    if size:
        os.ftruncate(fd, size)
    return f"/proc/self/fd/{fd}"


class DryRun(Record, kw_only=False, frozen=False):
    """What the binary built, and how it was asked."""

    binary: str
    version: str  # major.minor.micro, from QEMU itself (query-version)
    vm: LiveVm
    dropped: list[str]


def dry_run(binary: str, argv: Sequence[str], arch: str, timeout: float = TIMEOUT,
            whole: bool = False) -> DryRun:
    """Start `binary` paused with the safe form of `argv`, read its map, make it quit.

    QemuRefusal when QEMU exits instead (its first error line); HostUnavailable when it cannot
    be started or does not answer within `timeout` seconds. Nothing stays behind either way.
    """
    safe = safe_command(argv, arch, whole)
    try:
        with _started(binary, safe, timeout) as (process, sock):
            try:
                monitor = QmpMonitor.on_socket(sock, f"dry run of {binary}", timeout)
            except HostUnavailable:
                raise _refusal(binary, process, timeout) from None
            try:
                vm = read_vm(monitor)
                with contextlib.suppress(Exception):
                    monitor.execute("quit")
            except HostUnavailable:
                raise _refusal(binary, process, timeout) from None
            finally:
                monitor.close()
    finally:
        safe.close()
    version = ".".join(str(part) for part in vm.version)
    return DryRun(binary, version, vm, safe.dropped)


@contextlib.contextmanager
def _started(binary: str, safe: SafeCommand,
             timeout: float) -> Iterator[tuple[subprocess.Popen[bytes], socket.socket]]:
    """QEMU with its monitor on one end of a socketpair; killed and reaped on the way out."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    argv = [binary, *safe.argv, "-chardev", f"socket,id=layoutd-qmp,fd={theirs.fileno()}",
            "-mon", "chardev=layoutd-qmp,mode=control"]
    parent = os.getpid()
    errors = os.memfd_create("layoutd-qemu-stderr", os.MFD_CLOEXEC)  # never fills, as a pipe can
    try:
        process = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=errors,
            pass_fds=[theirs.fileno(), *safe.fds], preexec_fn=lambda: _die_with(parent),
            start_new_session=False)
    except OSError as error:
        ours.close()
        theirs.close()
        os.close(errors)
        raise HostUnavailable(f"cannot run {binary}: {error.strerror}") from error
    theirs.close()
    safe.close()  # QEMU holds its own copies of the memfds
    watchdog = threading.Timer(timeout, _kill, [process])
    watchdog.daemon = True
    watchdog.start()
    process.timed_out = False  # type: ignore[attr-defined]
    process.errors = errors  # type: ignore[attr-defined]
    finished = False
    try:
        yield process, ours
        finished = True
    finally:
        watchdog.cancel()
        ours.close()
        try:  # after `quit` QEMU exits by itself; on any other way out it is killed at once
            process.wait(timeout=2.0 if finished else 0)
        except subprocess.TimeoutExpired:
            _kill(process)
            process.wait()
        os.close(errors)


def _die_with(parent: int) -> None:
    """In the child before exec: SIGKILL when layoutd dies, even by kill -9."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # layoutd died before the line above took effect
        os._exit(1)


def _kill(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.timed_out = True  # type: ignore[attr-defined]
        with contextlib.suppress(OSError):
            process.kill()


def _refusal(binary: str, process: subprocess.Popen[bytes], timeout: float) -> Exception:
    """Why the monitor went away: QEMU's own error line, or the time limit."""
    try:
        process.wait(timeout=max(1.0, timeout / 4))
    except subprocess.TimeoutExpired:
        _kill(process)
        process.wait()
    if getattr(process, "timed_out", False):
        return HostUnavailable(f"the dry run of {binary} did not finish within {timeout:g} s "
                               "(QEMU was killed); set LAYOUTD_DRYRUN_TIMEOUT to allow longer")
    stderr = os.pread(process.errors, 1 << 16, 0).decode(errors="replace")  # type: ignore[attr-defined]
    said = first_error(stderr)
    return QemuRefusal(f"{binary} refused the dry run (exit status {process.returncode}): "
                       f"{said or 'no message'}")


def first_error(stderr: str) -> str:
    """QEMU's first error line, without the program prefix and without warnings."""
    for line in stderr.splitlines():
        text = re.sub(r"^\S*qemu-system-\w+: ", "", line).strip()
        if text and not re.match(r"(-\S+ \S+: )?warning:", text):
            return text
    return ""


def guest_map(run: DryRun, argv: Sequence[str], arch: str) -> GuestMap:
    """The dry run's map in the form the model gives (layoutd.models.guest.GuestMap)."""
    vm = run.vm
    layout = vm.layout()
    memory = vm.device_memory
    regions = (NamedRegion(name="device-memory", start=memory.start, end=memory.end),) if memory else ()
    ends = [region.end for region in layout] + ([memory.end] if memory else [])
    devices = tuple(MemoryDeviceInfo(type=d.kind, id=d.id, addr=d.start, size=d.size,
                                 region_size=d.size, node=d.node, memdev=d.memdev, slot=d.slot)
                    for d in vm.devices)
    return GuestMap(
        qemu_version=run.version, arch=arch, machine=vm.machine.removesuffix("-machine"),
        layout=tuple(layout), regions=regions,
        device_memory=Range(start=memory.start, end=memory.end) if memory else None,
        slots=vm.memory.slots, maxmem=vm.memory.max_size if vm.memory.slots or vm.memory.max_size
        > vm.memory.size else None, ram_size=vm.memory.size, phys_bits=vm.phys_bits or 0,
        highest_address=max(ends, default=0), cpu_vendor="other", vfio_devices=vfio_hosts(argv),
        memory_devices=devices, warnings=(), ram_bars=ram_bars_of(argv), how_known="dry-run",
        ram_view=tuple(RamPiece(start=e.start, end=e.end, name=e.name, offset=e.offset)
                       for e in vm.ram))


def vfio_hosts(argv: Sequence[str]) -> tuple[str, ...]:
    """host= of every vfio-pci device of a command line."""
    found = []
    for option in split_argv(argv):
        if option.name == "device":
            props = keyval(option.value or "", "driver", "-device")
            if props.get("driver", "").startswith("vfio-pci") and props.get("host"):
                found.append(props["host"])
    return tuple(dict.fromkeys(found))


def differences(expected: Sequence[GuestRegion], real: Sequence[GuestRegion]) -> list[str]:
    """How two RAM maps differ, one line per range only one of them has."""
    def ranges(layout: Sequence[GuestRegion]) -> dict[tuple[int, int], str]:
        return {(r.start, r.end): f"{r.kind} {r.id}" for r in layout}

    mine, theirs = ranges(expected), ranges(real)
    lines = [f"planned {what} {start:#x}-{end:#x}, QEMU has no such range"
             for (start, end), what in mine.items() if (start, end) not in theirs]
    lines += [f"QEMU built {what} {start:#x}-{end:#x}, not planned"
              for (start, end), what in theirs.items() if (start, end) not in mine]
    return lines
