"""Fleets: what a host publishes for a scheduler (Nova/Placement, Kubernetes NFD), and layout pools.

A pool is a plan (`layoutd plan ... --format json`) named by the operator. A host is a member when
the plan's command line, checked on that host, has no collision of RAM or of an assigned BAR:
`checking.check_command_line` and `firmware.check.verdict`, the judgement `layoutd check` makes. Where
that check cannot judge (a device the host lacks, BARs the firmware placement does not predict,
another architecture) the host is not a member and the reason is said.

`publish(source, pools)` gives one host's `Published` facts; `pool_table` gathers many hosts'
memberships for `layoutd fleet pools`.
Encoders for each engine are in emit/fleet.py.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from layoutd import checking
from layoutd.errors import InputError, LayoutdError, UnknownDevice
from layoutd.firmware.check import verdict
from layoutd.host import probe_host
from layoutd.models.fleet import HoleFact, Membership, Published, label_name, trait_name
from layoutd.models.host import HostView
from layoutd.qemu import versions
from layoutd.qemu.x86 import AMD_HT_END, AMD_HT_START, MSI_WINDOW
from layoutd.record import Record

POOL_NAME = re.compile(r"^[a-z0-9]([a-z0-9._-]{0,56}[a-z0-9])?$")
"""A pool name: lower case, digits, '-', '_', '.'; at most 58 characters, so that the NFD label
name `pool-<name>` stays within Kubernetes' 63 and the Nova trait within Placement's 255."""

class Pool(Record):
    """A named plan: what its members must map."""

    name: str
    file: str
    plan_name: str
    arch: str
    qemu_version: str
    qemu_argv: tuple[str, ...]


def parse_pool_option(text: str) -> tuple[str, str]:
    """NAME=PLAN.json -> (name, path); a bad name is bad input naming the option."""
    name, sep, path = text.partition("=")
    if not sep or not path:
        raise InputError(f"--pool {text!r}: give NAME=PLAN.json (a plan written by "
                         "`layoutd plan SPEC --host A --host B --format json`)")
    if not POOL_NAME.match(name):
        raise InputError(f"--pool {text!r}: the pool name {name!r} must be 1-58 characters of "
                         "a-z, 0-9, '-', '_' and '.', starting and ending with a letter or digit "
                         "(it becomes the NFD label layoutd.io/pool-NAME and the Nova trait "
                         "CUSTOM_LAYOUTD_POOL_NAME)")
    return name, path


def load_pools(options: Sequence[str]) -> list[Pool]:
    """Every --pool NAME=PLAN.json, read; two pools whose Nova traits coincide are refused."""
    pools = [load_pool(*parse_pool_option(text)) for text in options]
    seen: dict[str, str] = {}
    for pool in pools:
        other = seen.setdefault(trait_name(pool.name), pool.name)
        if other != pool.name or sum(p.name == pool.name for p in pools) > 1:
            raise InputError(f"--pool {pool.name}: given twice, or the same Nova trait "
                             f"{trait_name(pool.name)} as pool {other!r}")
    return pools


def load_pool(name: str, path: str) -> Pool:
    """A plan JSON as a pool; what is missing or wrong is named by file and field."""
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except OSError as error:
        raise InputError(f"pool {name}: cannot read the plan: {error.strerror}", file=path) from error
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise InputError(f"pool {name}: not a plan JSON ({error})", file=path) from error
    if not isinstance(data, dict):
        raise InputError(f"pool {name}: not a plan JSON (an object with qemu_argv, qemu_version "
                         "and config, as `layoutd plan --format json` writes)", file=path)

    def need(value: Any, field: str, ok: Callable[[Any], bool], wanted: str) -> Any:
        if not ok(value):
            raise InputError(f"pool {name}: {wanted}, not {json.dumps(value)[:60]}",
                             file=path, field=field)
        return value

    argv: list[str] = need(data.get("qemu_argv"), "qemu_argv", lambda v: isinstance(v, list)
                           and bool(v) and all(isinstance(w, str) for w in v),
                           "a non-empty list of strings")
    version: str = need(data.get("qemu_version"), "qemu_version",
                        lambda v: isinstance(v, str) and versions.is_modelled(v),
                        f"a modelled QEMU version ({versions.names()})")
    config: dict[str, Any] = need(data.get("config"), "config", lambda v: isinstance(v, dict),
                                  "the plan's config object")
    arch: str = need(config.get("arch"), "config.arch", lambda v: v in ("x86_64", "aarch64"),
                     "x86_64 or aarch64")
    plan_name: str = need(data.get("name", ""), "name", lambda v: isinstance(v, str), "a string")
    return Pool(name=name, file=path, plan_name=plan_name, arch=arch, qemu_version=version,
                qemu_argv=tuple(argv))


def host_arch(host: HostView) -> str | None:
    if host.platform.arch:
        return host.platform.arch
    return {"arm": "aarch64", "amd": "x86_64", "intel": "x86_64", "hygon": "x86_64"}.get(host.cpu.vendor)


def membership(pool: Pool, source: str, host: HostView) -> Membership:
    """Is `source` (already probed as `host`, every group) a member of `pool`? `check`'s judgement
    of the plan's command line on the host; what cannot be judged is a "no" with its reason."""
    arch = host_arch(host)
    if arch is not None and arch != pool.arch:
        return Membership(pool=pool.name, member=False,
                          reasons=(f"the plan is for {pool.arch}; this host is {arch}",))
    command = [f"qemu-system-{pool.arch}", *pool.qemu_argv]
    try:
        checked = checking.check_command_line(command, host_source=source, version=pool.qemu_version)
    except UnknownDevice as error:
        return Membership(pool=pool.name, member=False,
                          reasons=(f"this host cannot give the VM its device: {error.message}",))
    except LayoutdError as error:
        return Membership(pool=pool.name, member=False,
                          reasons=(f"could not be judged: {error.render()}",))
    found = verdict(checked.guest, checked.host, checked.bars)
    if found:
        return Membership(pool=pool.name, member=False,
                          reasons=tuple(collision.describe() for collision in found))
    unknown = checking.unjudged(checked.bars)
    if unknown:
        why = checked.bars.notes[0] if checked.bars and checked.bars.notes else "nothing told their place"
        return Membership(pool=pool.name, member=False,
                          reasons=(f"could not be judged: where {', '.join(unknown)} lie ({why})",))
    return Membership(pool=pool.name, member=True, reasons=(),
                      warnings=tuple(dict.fromkeys((*checked.guest.warnings, *checked.host.warnings))))


def hole_kind(start: int, end: int, kernel_type: str, arch: str | None, vendor: str) -> str:
    if kernel_type == "msi":
        return "msi-window" if (start, end) == MSI_WINDOW else "msi-doorbell"
    if kernel_type in ("direct", "direct-relaxable"):
        return "rmr" if arch == "aarch64" else "rmrr"
    if vendor in ("amd", "hygon") and start <= AMD_HT_END and end >= AMD_HT_START:
        return "amd-ht"
    return "reserved"


def iommu_bits(aperture_end: int | None) -> int | None:
    """The IOMMU's address width from its top (2^N - 1 gives N)."""
    return None if aperture_end is None else (aperture_end + 1).bit_length() - 1


def host_facts(source: str, host: HostView, pools: Iterable[Membership]) -> Published:
    arch = host_arch(host)
    merged: dict[tuple[int, int, str], list[int]] = {}
    for hole in host.reserved:
        groups = merged.setdefault((hole.start, hole.end, hole.type), [])
        if hole.group is not None and hole.group not in groups:
            groups.append(hole.group)
    holes = tuple(HoleFact(start=start, end=end, type=kind,
                           kind=hole_kind(start, end, kind, arch, host.cpu.vendor),
                           groups=tuple(sorted(groups)))
                  for (start, end, kind), groups in sorted(merged.items()))
    return Published(source=host.source, arch=arch, cpu_vendor=host.cpu.vendor,
                     cpu_phys_bits=host.cpu.phys_bits, iommu_bits=iommu_bits(host.aperture_end),
                     aperture_end=host.aperture_end, usable=host.usable, holes=holes,
                     pools=tuple(pools), warnings=host.warnings)


def publish(source: str, pools: Sequence[Pool]) -> Published:
    """One host's facts and its membership in each pool (the host probed once, every group)."""
    host = probe_host(source)
    return host_facts(source, host, [membership(pool, source, host) for pool in pools])


def pool_table(published: Sequence[Published], pools: Sequence[Pool]) -> dict[str, Any]:
    """`fleet pools`: each pool's members and the other hosts with why not, each host's pools,
    and the hosts in no pool. Membership is a relation between hosts and pools, answered by
    lookups: no graph search is needed (and networkx is not a dependency)."""
    table: dict[str, Any] = {
        pool.name: {"file": pool.file, "plan": pool.plan_name, "trait": trait_name(pool.name),
                    "label": label_name(pool.name), "members": [], "not_members": []}
        for pool in pools}
    for host in published:
        for entry in host.pools:
            row = table[entry.pool]
            if entry.member:
                row["members"].append(host.source)
            else:
                row["not_members"].append({"host": host.source, "reasons": list(entry.reasons)})
    return {"pools": table,
            "hosts": {host.source: host.members() for host in published},
            "unpooled": [host.source for host in published if not host.members()]}
