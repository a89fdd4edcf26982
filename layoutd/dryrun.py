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
from collections.abc import Sequence

from layoutd.errors import HostUnavailable
from layoutd.live.session import QmpMonitor
from layoutd.live.vm import LiveVm, read_vm
from layoutd.models.common import GuestRegion, Range
from layoutd.models.guest import GuestMap, MemoryDeviceInfo, NamedRegion, RamPiece
from layoutd.qemu.config import ram_bars_of
from layoutd.qemu.dryargv import HostFacts, host_files, placeholder, rewrite
from layoutd.qemu.options import keyval, split_argv
from layoutd.record import Record
from layoutd.supervise import SafeCommand, refusal, started

TIMEOUT = float(os.environ.get("LAYOUTD_DRYRUN_TIMEOUT", "20"))
"""Seconds the whole dry run may take (start, QMP, quit); QEMU is killed at the limit."""

HUGETLBFS_MAGIC = 0x958458F6


def safe_command(argv: Sequence[str], arch: str, whole: bool = False,
                 boot: bool = False) -> SafeCommand:
    """The dry run's command line (layoutd.qemu.dryargv.rewrite: `whole`, `boot` as there), with
    this host's page sizes and its memfds in place."""
    safe = rewrite(argv, arch, host_facts(argv), whole, boot)
    command = SafeCommand(safe.argv, dropped=safe.dropped)
    try:
        for index, memfd in enumerate(safe.memfds):
            path = _memfd_path(command, memfd.name, memfd.size)
            command.argv = [arg.replace(placeholder(index), path) for arg in command.argv]
    except BaseException:
        command.close()
        raise
    return command


def host_facts(argv: Sequence[str]) -> HostFacts:
    """The page sizes of the files a command line names, as the rewrite needs them."""
    paths, hugepage = host_files(split_argv(argv))
    sizes: dict[str, int | OSError] = {}
    for path in paths:
        try:
            sizes[path] = _page_size(path)
        except OSError as error:
            sizes[path] = error
    return HostFacts(page_sizes=sizes, hugepage=_hugepage_size() if hugepage else 2 << 20)


def _page_size(path: str) -> int:
    """The page size QEMU takes for a backend file: hugetlbfs's, else the base page size."""
    probe = path
    while probe and not os.path.exists(probe):
        probe = os.path.dirname(probe.rstrip("/"))
    info = os.statvfs(probe or ".")
    return info.f_bsize if _fs_magic(probe or ".") == HUGETLBFS_MAGIC else os.sysconf("SC_PAGE_SIZE")


def _fs_magic(path: str) -> int:
    """statfs(2)'s f_type, which statvfs does not give."""
    buffer = ctypes.create_string_buffer(256)
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.statfs(os.fsencode(path), buffer) != 0:
        return 0
    return int.from_bytes(buffer.raw[:8], "little")


def _hugepage_size() -> int:
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
        with started(binary, safe, timeout) as (process, sock):
            try:
                monitor = QmpMonitor.on_socket(sock, f"dry run of {binary}", timeout)
            except HostUnavailable:
                raise refusal(binary, process, timeout) from None
            try:
                vm = read_vm(monitor)
                with contextlib.suppress(Exception):
                    monitor.execute("quit")
            except HostUnavailable:
                raise refusal(binary, process, timeout) from None
            finally:
                monitor.close()
    finally:
        safe.close()
    version = ".".join(str(part) for part in vm.version)
    return DryRun(binary, version, vm, safe.dropped)


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
