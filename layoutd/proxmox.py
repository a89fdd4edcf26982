"""Proxmox VE: its VM command lines (`qm showcmd VMID`) and its hookscript contract.

qemu-server prints a command line with each argument shell-quoted where needed
(PVE::Tools::cmd2string: `'socket,id=qmp,...'`, `'"'"'` inside). `layoutd check -- $(qm showcmd
100)` gets those quotes as part of the words (the shell splits `$(...)` at blanks without removing
quotes): `command_words` puts the arguments back. A VM with CPU affinity starts through
`/usr/bin/taskset --cpu-list --all-tasks LIST`, which is left out.

A hookscript (`qm set VMID --hookscript local:snippets/NAME`) is run as `NAME VMID PHASE` with PHASE
pre-start, post-start, pre-stop or post-stop; a non-zero exit at pre-start aborts the start
(pve-docs, "Hookscripts"; qemu-server runs it with exec_hookscript(..., 'pre-start', 1)).
`judge` checks the VM's command line as `check` does and refuses only a proven collision, as the
libvirt hook does.
"""

from __future__ import annotations

import shlex
import subprocess
from collections.abc import Sequence

from layoutd.checking import check_command_line
from layoutd.collisions import check
from layoutd.errors import HostUnavailable, InputError
from layoutd.record import Record, field

QM = "qm"
QM_TIMEOUT = 30.0
TASKSET = ("taskset", "/usr/bin/taskset")


def command_words(words: Sequence[str]) -> list[str]:
    """The QEMU command line from `words`: as given, or, when the shell left qemu-server's quotes
    in them (`$(qm showcmd VMID)` unquoted), split again as the shell would have; without a
    leading taskset."""
    result = list(words)
    if any(word[:1] in ("'", '"') for word in result):
        try:
            result = shlex.split(" ".join(result))
        except ValueError as error:
            raise InputError(f"the command line's quotes do not close ({error})",
                             field="qemu argv") from error
    return strip_taskset(result)


def strip_taskset(argv: list[str]) -> list[str]:
    """`/usr/bin/taskset --cpu-list --all-tasks 0-7 /usr/bin/kvm ...` -> `/usr/bin/kvm ...`."""
    if not argv or argv[0] not in TASKSET:
        return argv
    index = 1
    while index < len(argv) and argv[index].startswith("-"):  # --cpu-list, --all-tasks: flags
        index += 1
    return argv[index + 1:] if index + 1 < len(argv) else argv  # after the CPU list


def showcmd(vmid: str) -> list[str]:
    """`qm showcmd VMID`, split into the QEMU command line."""
    if not vmid.isdigit():
        raise InputError(f"VMID {vmid!r} is not a number", field="VMID")
    try:
        result = subprocess.run([QM, "showcmd", vmid], capture_output=True, text=True,
                                timeout=QM_TIMEOUT, stdin=subprocess.DEVNULL, check=False)
    except (OSError, subprocess.SubprocessError) as error:
        raise HostUnavailable(f"cannot run `{QM} showcmd {vmid}`: {error}") from error
    if result.returncode != 0:
        said = (result.stderr.strip().splitlines() or ["no message"])[-1]
        raise HostUnavailable(f"`{QM} showcmd {vmid}` failed (exit status {result.returncode}): "
                              f"{said}")
    try:
        return strip_taskset(shlex.split(result.stdout.replace("\\\n", " ")))
    except ValueError as error:
        raise InputError(f"`{QM} showcmd {vmid}` printed a line whose quotes do not close "
                         f"({error})") from error


class Judgement(Record, kw_only=False, frozen=False):
    """The hook's answer: refuse (a proven collision) or not, and what to log."""

    refusal: str | None
    summary: str
    warnings: list[str] = field(default_factory=list)


NOT_HOST_HOLES = ("unassigned", "guest-phys-bits")  # the VM starts; the guest may lose a device


def judge(argv: Sequence[str], host_source: str | None, devices: Sequence[str] = (),
          version: str | None = None) -> Judgement:
    """The VM's command line checked as `check` does; a refusal only for RAM or an assigned BAR
    in a host hole (what makes QEMU fail with vfio_dma_map -22)."""
    checked = check_command_line(argv, host_source=host_source, given=devices, version=version)
    guest, host = checked.guest, checked.host
    ram = check(guest.layout, host)
    bars = checked.bars
    proven = [c for c in (bars.collisions if bars else []) if c.hole.type not in NOT_HOST_HOLES]
    others = [c.describe() for c in (bars.collisions if bars else [])
              if c.hole.type in NOT_HOST_HOLES]
    warnings = [*others, *guest.warnings, *(bars.notes if bars else [])]
    what = f"QEMU {guest.qemu_version} {guest.machine}, host {host.source}, devices " + (
        ", ".join(checked.devices) or "none")
    if not ram and not proven:
        unjudged = list(bars.not_judged) if bars else []
        summary = f"{what}: no proven collision" + (
            f"; not judged: {', '.join(unjudged)}" if unjudged else "")
        return Judgement(None, summary, warnings)
    lines = [f"guest memory would overlap host IOMMU holes that VFIO cannot map ({what}); QEMU "
             "would fail with vfio_dma_map ... = -22:"]
    for collision in (*ram, *proven):
        lines.append(f"  {collision.kind} {collision.id!r} {collision.start:#x}-{collision.end:#x} "
                     f"lies in the {collision.hole.describe()}")
    lines.append("`layoutd check -- $(qm showcmd VMID)` shows the predicted map, every collision "
                 "and what would work.")
    return Judgement("\n".join(lines), what, warnings)
