"""The solver's English: every rejection's text and every warning a solution carries, and which
rejection a "no" leads with. Pure."""

from collections.abc import Sequence

from layoutd.qemu import x86
from layoutd.qemu.boot import ACPI_MAX_RAM_SLOTS as MAX_SLOTS
from layoutd.solver.problem import Problem, Rejection
from layoutd.units import format_size, hex_addr

ONLINE = ("the guest must online hotplugged memory to use it (Linux: memhp_default_state=online "
          "on the kernel command line, or a udev rule)")
ONLINE_WINDOWS = ("the guest sees it as hot-added memory (ACPI memory devices): Windows onlines it "
                  "itself where its edition supports memory hot-add")
BLOCK_NAMES = {"low": "low RAM", "high": "high RAM", "boot": "boot RAM"}


def main_reason(problem: Problem, rejections: Sequence[Rejection]) -> Rejection:
    if problem.family != "virt" and hole_at(problem, 0):
        return Rejection(
            stage="low",
            text="x86 guest RAM must start at guest address 0x0, which the host cannot map",
            blocked=(0, problem.align - 1),
        )
    if problem.family == "virt" and hole_at(problem, problem.ram_start):
        return Rejection(
            stage="boot",
            text=f"arm virt guest RAM must start at {hex_addr(problem.ram_start)}, which the host cannot map",
            blocked=(problem.ram_start, problem.ram_start + problem.align - 1),
        )
    order = ("slots", "hotplug", "devices", "top", "high", "boot", "low", "regime")
    useful = [r for r in rejections if r.stage != "regime"] or list(rejections)
    if not useful:
        return Rejection(stage="devices", text="nothing fits")
    return min(useful, key=lambda r: order.index(r.stage))


def hole_at(problem: Problem, address: int) -> bool:
    return not any(start <= address <= end for start, end in problem.free)


def split_not_modelled(max_below_4g: int | None, ram: int) -> Rejection:
    cap = format_size(max_below_4g or 0)
    return Rejection(stage="low", text=f"max-ram-below-4g {cap} with {format_size(ram)} is not modelled")


def no_firmware_room(low: int) -> Rejection:
    return Rejection(stage="low", text=f"low RAM {format_size(low)} leaves firmware no room")


def too_many_devices(count: int) -> Rejection:
    return Rejection(stage="slots",
                     text=f"the RAM would need {count} memory devices; QEMU allows {MAX_SLOTS} slots")


def no_placement(base: int) -> Rejection:
    return Rejection(stage="devices", text=f"no way to place the memory devices above {hex_addr(base)}")


def block_does_not_fit(stage: str, start: int, size: int) -> Rejection:
    where = f"{hex_addr(start)}-{hex_addr(start + size - 1)}"
    text = f"{BLOCK_NAMES[stage]} {format_size(size)} at {where} does not fit"
    return Rejection(stage=stage, text=text, blocked=(start, start + size - 1))


def devices_do_not_fit(problem: Problem, leftover: int, room: int, base: int) -> Rejection:
    text = (
        f"{format_size(leftover)} of RAM must go in memory devices from "
        f"{hex_addr(base)}, but {room_text(room, base, problem)}"
    )
    return Rejection(stage="devices", text=text, blocked=(base, problem.limit))


def room_text(room: int, base: int, problem: Problem) -> str:
    """How much is usable from `base` up to the limit, said without "above X below Y" for X > Y."""
    limit = f"{hex_addr(problem.limit)} ({problem.limit_reason})"
    if base > problem.limit:
        return f"{hex_addr(base)} is already past the highest address allowed, {limit}"
    return f"only {format_size(room)} is usable outside holes from {hex_addr(base)} up to {limit}"


def hotplug_does_not_fit(problem: Problem, free: int, pieces: int, base: int) -> Rejection:
    where = (room_text(free, base, problem) if free < problem.room else
             f"the {format_size(free)} free outside holes is in more than the "
             f"{pieces} pieces QEMU's memory slots allow")
    return Rejection(stage="hotplug", text=f"the hotplug room {format_size(problem.room)} does not "
                     f"fit: {where}", blocked=(base, problem.limit))


def above_limit(problem: Problem, highest: int) -> Rejection:
    return Rejection(
        stage="top",
        text=f"the layout reaches {hex_addr(highest)}, above {hex_addr(problem.limit)} "
        f"({problem.limit_reason})",
        blocked=(problem.limit + 1, highest),
    )


def devices_hold_ram(problem: Problem, count: int) -> str:
    online = ONLINE_WINDOWS if problem.windows else ONLINE
    return f"{count} memory device(s) hold RAM the boot RAM cannot: {online}"


def relocated_to_1tib() -> str:
    return ("the guest CPU is AMD and the layout reaches the HyperTransport range "
            f"{hex_addr(x86.AMD_HT_START)}-{hex_addr(x86.AMD_HT_END)}, so QEMU moves RAM above "
            "4 GiB to 1 TiB; the plan follows")


def slots_raised(spec_slots: int, slots: int, devices: int, room: int) -> str:
    return (f"slots raised from {spec_slots} to {slots}: {devices} memory "
            f"device(s) hold RAM that cannot sit in boot RAM, and the hotplug room needs {room}")


def maxmem_raised(wanted: int, maxmem: int, base: int, top: int) -> str:
    return (f"maxmem raised from {format_size(wanted)} to {format_size(maxmem)} so that "
            f"device memory from {hex_addr(base)} spans the holes up to {hex_addr(top)}")


def hole64_above_limit(problem: Problem, start: int, size: int) -> Rejection:
    return Rejection(stage="top", text=f"the 64-bit PCI hole of {format_size(size)} (pci_hole64) from "
                     f"{hex_addr(start)} ends above {hex_addr(problem.limit)} "
                     f"({problem.limit_reason})", blocked=(start, start + size - 1))


def no_room_for_hole64(problem: Problem, start: int, size: int) -> Rejection:
    where = (f"it would start at {hex_addr(start)}, past" if start > problem.limit else
             f"less than 1G is left from {hex_addr(start)} up to")
    return Rejection(
        stage="top",
        text=f"no room for the 64-bit PCI hole: {where} the highest address allowed, "
        f"{hex_addr(problem.limit)} ({problem.limit_reason})",
        blocked=(start, start + size - 1),
    )


def hole64_lowered(problem: Problem, size: int, fits: int) -> str:
    return (f"pci-hole64-size lowered from {format_size(size)} to {format_size(fits)} so that "
            f"the 64-bit PCI hole ends below {hex_addr(problem.limit)} ({problem.limit_reason})")


def other_regime(problem: Problem) -> Rejection:
    """Why high RAM cannot start where this choice put it."""
    if not problem.amd_rule:
        return Rejection(stage="regime", text="no relocation for this CPU and machine type")
    if problem.windows:
        return Rejection(stage="regime", text="QEMU would move RAM above 4 GiB past 1 TiB, which a "
                         "Windows guest must not get (Code 43)")
    return Rejection(stage="regime", text="QEMU would choose the other AMD high-RAM start")


def phys_bits_set(bits: int, highest: int, default: int) -> str:
    return (f"phys-bits set to {bits}: the layout reaches {hex_addr(highest)}, beyond QEMU's "
            f"default of {default} bits")
