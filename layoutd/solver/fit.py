"""plan's part for BARs: keep every assigned 64-bit BAR where every host's IOMMU maps it.

The firmware puts the BARs by its own rules (layoutd.firmware); what a plan can change is the
guest's phys-bits (OVMF and SeaBIOS 1.16.3 put the window at the top of the address space),
OVMF's window size (X-PciMmio64Mb), pci-hole64-size (on AMD, where QEMU puts RAM), and on arm virt
QEMU's 64-bit window (highmem-mmio=off: edk2 then uses the 32-bit one). When the
spec leaves them open, the first change that works is taken, the nearest first: the window
alone, fewer phys-bits, a larger 64-bit hole, then phys-bits and window together. When the spec
fixes one, or nothing works, the answer is a "no" naming the BARs, with the changes that plan.
Pure: `replan(spec)` (solve and assemble again) and the firmware build come from the caller.
"""

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from layoutd.errors import LayoutdError, NoLayout
from layoutd.firmware.board import Placement
from layoutd.firmware.builds import BY_NAME, Build
from layoutd.firmware.plan import BadBar, planned_bars
from layoutd.models.guest import GuestMap
from layoutd.models.host import Device
from layoutd.models.plan import Plan
from layoutd.models.spec import VmSpec, with_changes
from layoutd.qemu.x86 import AMD_HT_START, HOLE64_DEFAULT
from layoutd.record import replace
from layoutd.solver.oracle import model_map
from layoutd.solver.suggest import Suggestion, value_text
from layoutd.solver.target import Target
from layoutd.units import GiB, align_up, format_size, hex_addr

MAX_TRIES = 40


Boot = Callable[[Sequence[str], GuestMap], Placement]  # a boot of a firmware without a model


def fit_bars(spec: VmSpec, plan: Plan, target: Target, devices: Mapping[str, Device], build: Build,
             replan: Callable[[VmSpec], Plan], firmware_of: Callable[[Plan], Build | None],
             boot: Boot | None = None, tries: int = MAX_TRIES) -> Plan:
    """`firmware_of(plan)`: the build the plan's command line boots (for the other firmware).
    `boot`: place the BARs by booting the firmware (`build` then only names it and its family);
    each candidate is then a boot, `tries` of them at most, and no other firmware is offered."""
    bad, placed = _check(plan, target, devices, build, boot)
    if not bad:
        return placed
    fixed = any(value is not None for value in (spec.cpu.phys_bits, spec.pci_window, spec.pci_hole64,
                                                spec.highmem_mmio))
    found: list[tuple[dict[str, Any], Plan]] = []
    for change in candidates(spec, plan, target, build)[:tries]:
        try:
            variant = replan(with_changes(spec, change))
            worse, result = _check(variant, target, devices, build, boot)
        except (LayoutdError, ValueError):
            continue
        if worse:
            continue
        if not fixed:
            said = _said(change)
            return replace(result, default_layout=False, warnings=(
                *result.warnings, f"{said} chosen so that {build.name} puts every assigned BAR "
                "where every host's IOMMU maps it"))
        if any(set(change) == set(other) for other, _ in found):
            continue  # one of each kind: the nearest pci_hole64, device memory, machine ...
        found.append((change, result))
        if len(found) == 4:
            break
    if boot is not None:
        raise _no(spec, bad, build, found)
    # the spec's own pins relaxed; one whose plan chooses what is offered already is left out
    offered = {_said(change) for change, _ in found}
    found += [(change, result) for change, result in
              _relaxed(spec, target, devices, build, replan, firmware_of)
              if not any(w == f"the plan then chooses {said}" for w in result.warnings
                         for said in offered)]
    raise _no(spec, bad, build, found + _other_firmware(spec, target, devices, build, replan,
                                                        firmware_of))


def _said(change: dict[str, Any]) -> str:
    return ", ".join(f"{path} {value_text(value)}" for path, value in change.items())


PINS = ("cpu.phys_bits", "pci_hole64", "pci_window", "highmem_mmio")


def _relaxed(spec: VmSpec, target: Target, devices: Mapping[str, Device], build: Build,
             replan: Callable[[VmSpec], Plan], firmware_of: Callable[[Plan], Build | None]
             ) -> list[tuple[dict[str, Any], Plan]]:
    """The user's own pins (phys-bits, the hole's or window's size, a versioned machine type)
    each left for the plan to choose: every one that then plans, with what it chooses instead."""
    found = []
    values = {"cpu.phys_bits": spec.cpu.phys_bits, "pci_hole64": spec.pci_hole64,
              "pci_window": spec.pci_window, "highmem_mmio": spec.highmem_mmio}
    pinned = spec.cpu.phys_bits
    for bits in range(pinned + 1, (target.host_phys_bits or 52) + 1) if pinned else ():
        try:  # the fewest more phys-bits that plan as they are
            variant = with_changes(spec, {"cpu.phys_bits": bits})
            bad, placed = _check(replan(variant), target, devices, build)
        except (LayoutdError, ValueError):
            continue
        if not bad:
            found.append(({"cpu.phys_bits": bits}, placed))
            break
    pins: list[dict[str, Any]] = [{path: None} for path in PINS if values[path] is not None]
    if spec.machine_type != spec.family:  # a versioned machine type: the release's own
        pins.append({"machine": spec.family})
    for change in pins:
        try:
            variant = with_changes(spec, change)
            placed = fit_bars(variant, replan(variant), target, devices, build, replan, firmware_of)
        except (LayoutdError, ValueError):
            continue
        chosen = [w.split(" chosen so that ")[0] for w in placed.warnings if " chosen so that " in w]
        found.append((change, replace(placed, warnings=(*placed.warnings, *(
            [f"the plan then chooses {', '.join(chosen)}"] if chosen else [])))))
    return found


def _other_firmware(spec: VmSpec, target: Target, devices: Mapping[str, Device], build: Build,
                    replan: Callable[[VmSpec], Plan], firmware_of: Callable[[Plan], Build | None]
                    ) -> list[tuple[dict[str, Any], Plan]]:
    """The other firmware, when it places every BAR well (suggested, never chosen for the user)."""
    found = []
    for name, named in BY_NAME.items() if spec.arch == "x86_64" else ():
        if named.family == build.family:
            continue
        try:
            result = replan(with_changes(spec, {"firmware": name}))
        except (LayoutdError, ValueError):
            continue
        other = firmware_of(result)
        if other is None:
            continue
        worse, placed = _check(result, target, devices, other)
        if not worse:
            found.append(({"firmware": name}, placed))
    return found


def _check(plan: Plan, target: Target, devices: Mapping[str, Device], build: Build,
           boot: Boot | None = None) -> tuple[list[BadBar], Plan]:
    guest = model_map(plan.qemu_argv, plan.qemu_version, plan.host_cpu, plan.config.arch)
    booted = boot(plan.qemu_argv, guest) if boot else None
    bars, bad, placement = planned_bars(plan.qemu_argv, guest, devices, build, target.usable,
                                        booted)
    notes = tuple(note for note in placement.notes if note not in plan.warnings)
    return bad, replace(plan, bars=tuple(bars), firmware=placement.firmware if booted else build.name,
                        warnings=(*plan.warnings, *notes))


def candidates(spec: VmSpec, plan: Plan, target: Target, build: Build) -> list[dict[str, Any]]:
    """Changes to try, the nearest first. arm virt: only without QEMU's 64-bit window (edk2 then
    uses the 32-bit one; the window itself cannot move below 512 GiB)."""
    if build.family == "armvirt":
        return [{"highmem_mmio": False}] if spec.highmem_mmio is not False else []
    bits = plan.config.phys_bits or _bits_of(plan)
    top_bits = min(bits, (min(target.top, target.iommu_top) + 1).bit_length() - 1)
    windows: list[int] = []
    if build.family == "ovmf":
        windows = [GiB << k for k in range(5, 15) if GiB << k != spec.pci_window]  # 32G .. 16T
    found: list[dict[str, Any]] = [{"pci_window": format_size(w)} for w in windows]
    lower = range(min(bits - 1, top_bits), 35, -1)
    found += [{"cpu.phys_bits": b} for b in lower]
    found += [{"pci_hole64": format_size(h)} for h in holes(spec, plan)]
    found += [{"memory.hotplug": {"slots": 1, "max": format_size(spec.memory.size + extra)}}
              for extra in device_memory(spec, plan)]
    found += machines(spec, plan)
    found += [{"cpu.phys_bits": b, "pci_window": format_size(w)} for b in lower for w in windows
              if w < 1 << b]
    return found


def device_memory(spec: VmSpec, plan: Plan) -> list[int]:
    """maxmem beyond the RAM (one slot) to try when the spec has no hotplug: device memory sits
    after RAM and the firmware's 64-bit window after it (SeaBIOS reads etc/reserved-memory-end),
    and on an AMD guest a device-memory region reaching the HyperTransport range makes QEMU move
    RAM and it past 1 TiB (`-m 900G,slots=1,maxmem=1100G`)."""
    if plan.config.arch != "x86_64" or spec.memory.hotplug is not None:
        return []
    end = max((r.end for r in plan.layout if r.kind == "ram"), default=0) + 1
    base = align_up(end, GiB)
    reaching = [align_up(AMD_HT_START - base, GiB)] if base < AMD_HT_START else []
    return sorted({size for size in [*reaching, *(GiB << k for k in range(5, 11))] if size > 0})


def machines(spec: VmSpec, plan: Plan) -> list[dict[str, Any]]:
    """The other x86 machine family (another RAM split below 4 GiB and 64-bit hole)."""
    if plan.config.arch != "x86_64" or spec.family not in ("q35", "pc"):
        return []
    other = "pc" if spec.family == "q35" else "q35"
    return [] if spec.viommu == "intel" else [{"machine": other}]


def holes(spec: VmSpec, plan: Plan) -> list[int]:
    """pci-hole64-sizes larger than the plan's: on an AMD guest a hole reaching the HyperTransport
    range makes QEMU move RAM above 4 GiB to 1 TiB, and the firmware's window with it (neither
    SeaBIOS nor OVMF reads the hole's size: only where RAM ends moves their window)."""
    if plan.config.arch != "x86_64":
        return []
    current = spec.pci_hole64 or plan.config.pci_hole64_size or HOLE64_DEFAULT[spec.family]
    start = next((r.start for r in plan.regions if r.name == "pci-hole64"), None)
    reaching = [align_up(AMD_HT_START + 1 - start, GiB)] if start and start < AMD_HT_START else []
    return sorted({size for size in [*reaching, *(GiB << k for k in range(5, 12))] if size > current})


def _bits_of(plan: Plan) -> int:
    guest = model_map(plan.qemu_argv, plan.qemu_version, plan.host_cpu, plan.config.arch)
    return guest.phys_bits


def _no(spec: VmSpec, bad: list[BadBar], build: Build, found: list[tuple[dict[str, Any], Plan]]
        ) -> NoLayout:
    ideas = []
    for change, result in found:
        where = ", ".join(f"{b.device} BAR{b.bar} at {hex_addr(b.start or 0)}" for b in result.bars)
        chose = next((w for w in result.warnings if w.startswith("the plan then chooses ")), "")
        ideas.append(Suggestion(change, f"{result.firmware} then puts {where}"
                                        + (f"; {chose}" if chose else "")))
    blocked = [{"start": None if b.start is None else hex_addr(b.start),
                "end": None if b.end is None else hex_addr(b.end), "type": "bar",
                "group": None, "devices": [b.name.split()[0]], "text": b.why} for b in bad]
    headline = (f"no layout exists for {spec.name!r}: {build.name} puts "
                f"{', '.join(b.name for b in bad)} where no host's IOMMU maps it")
    return NoLayout(headline, [b.why for b in bad], ideas, details={"blocked_by": blocked})
