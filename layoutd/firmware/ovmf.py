"""OVMF's PCI resource placement (edk2 2022.11, 2025.02 and 2026.08 as Debian builds them:
OvmfPkg/Library/PlatformInitLib/MemDetect.c, OvmfPkg/PciHotPlugInitDxe, MdeModulePkg/Bus/Pci/
PciBusDxe and PciHostBridgeDxe).

- The 64-bit window (PlatformGetFirstNonAddress): 32 GiB, or opt/ovmf/X-PciMmio64Mb MiB (at most
  16 TiB), placed at the end of RAM (etc/reserved-memory-end when QEMU gives it), aligned to
  1 GiB and to the largest power of two not above its size. When the firmware trusts the guest's
  phys-bits (`firmware_phys_bits`) and that window is smaller than an eighth of the address
  space, the window is that eighth, at the top (PlatformDynamicMmioWindow).
- 2025.02 and later (PlatformAddressWidthFromCpuid): CPUID's GuestPhysBits, when QEMU sets it,
  makes any phys-bits trusted and caps them; the cap without 5-level paging is 46 (47 before);
  Debian builds without PcdUse5LevelPageTable, so la57 changes nothing. A dynamic window that
  overlaps an E820 entry moves below it, aligned to its size (PlatformReservationConflictCB:
  QEMU's AMD HyperTransport range at 0xfd00000000 with 40 phys-bits). X-PciMmio64Mb is taken as
  it is, no dynamic window (edk2 9ac1704af6, a Debian patch on 2025.02, upstream in 2026.08).
- OVMF reads the vendor for the phys-bits check from CPUID 0x80000000, which QEMU 10.1 and later
  leave empty for Intel CPUs on machine types 10.1 and later (x-vendor-cpuid-only-v2): there,
  Intel's 36 and 39 bits are not trusted (measured on QEMU 11.1 with 2022.11, 2025.02, 2026.08).
- The 32-bit window (PlatformMemMapInitialization, `mmio32`): 2022.11 on q35 0xc0000000-
  0xfbffffff (above MMCONFIG at 0xb0000000); 2025.02 and later move MMCONFIG to 0xe0000000 and
  start q35's window at Uc32Base (4 GiB minus the largest power of two not above 4 GiB minus the
  RAM below 4 GiB: 0x80000000 with 2 GiB), up to 0xdfffffff; pc: Uc32Base to 0xfbffffff.
- The BARs go in as edk2's PciBusDxe and PciHostBridgeDxe put them (pcibus.py, as on arm): the
  root bridge's 64-bit pool (root-bus 64-bit BARs, prefetchable or not, and each root port's
  64-bit prefetchable window) in the 64-bit window, or in the 32-bit one when it does not fit;
  the 32-bit pool (32-bit BARs, ROMs, each root port's 32-bit window, which holds the 64-bit
  non-prefetchable BARs behind it, at least 2 MiB) in the 32-bit window. A root port's
  prefetchable window is at least 1/256 of a 64-bit window larger than 32 GiB (rounded up to a
  power of two: PciHotPlugInitDxe's padding).
- No 64-bit window (X-PciMmio64Mb=0 where OVMF takes it): PciBusDxe degrades every 64-bit BAR to
  the 32-bit pool.
- When a pool fits nowhere, edk2 drops the device behind a root port with the largest BAR and
  tries again (pcibus.fit, as on arm; measured on 2022.11); with none left to drop it assigns
  nothing at all (measured: no device gets a BAR, not even the built-in SATA controller).
"""


from layoutd.firmware import pcibus
from layoutd.firmware.board import Board, Placed, Placement, cpuid_phys_bits
from layoutd.firmware.builds import Build
from layoutd.qemu.x86 import FOUR_GIB
from layoutd.record import replace
from layoutd.units import GiB, MiB, align_up, hex_addr, human_size

DEFAULT_MMIO64 = 32 * GiB  # PcdPciMmio64Size in OvmfPkgX64.dsc
MAX_MMIO64_MB = 0x1000000  # X-PciMmio64Mb above 16 TiB is ignored
MMIO32_END = 0xFC000000  # the 32-bit window's end (the gap below the IO-APIC)
Q35_MMCONFIG_OLD = 0xB0000000  # PcdPciExpressBaseAddress in 2022.11
Q35_MMCONFIG_NEW = 0xE0000000  # ... and in 2025.02 and later


def window(build: Build, board: Board) -> tuple[int, int, list[str]]:
    """(base, size, notes) of the 64-bit PCI window."""
    notes = []
    size = DEFAULT_MMIO64
    override = False
    if board.mmio64_mb is not None:
        if board.mmio64_mb <= MAX_MMIO64_MB:
            size = board.mmio64_mb * MiB
            override = build.at_least("2025.02")
        else:
            notes.append(f"X-PciMmio64Mb={board.mmio64_mb} is above 16 TiB: OVMF ignores it")
    first = max(board.ram_end, FOUR_GIB)
    if size and board.reserved_memory_end:
        first = max(first, board.reserved_memory_end)
    base = align_up(first, GiB)
    size = align_up(size, GiB)
    if size:
        base = align_up(base, 1 << (size.bit_length() - 1))
    if override:
        return base, size, notes
    bits = firmware_phys_bits(build, board)
    if bits is not None:
        space, mmio = 1 << bits, 1 << (bits - 3)
        if size < mmio and base + mmio < space:
            base = space - mmio
            if build.at_least("2025.02"):
                base = _below_reservations(board, base, mmio, notes)
            return base, mmio, notes
    elif size:
        vendor = f"a {board.vendor} CPU" if board.ext_vendor else (
            "an Intel CPU on this machine type (QEMU 10.1 and later leave the vendor out of "
            "CPUID 0x80000000, where OVMF reads it)")
        notes.append(f"OVMF does not trust phys-bits={board.phys_bits} for {vendor} (only 36/39 "
                     "on Intel, 40 on AMD, or 41 and more): it uses its classic window")
    return base, size, notes


def firmware_phys_bits(build: Build, board: Board) -> int | None:
    """The phys-bits OVMF works with, or None when it does not trust the guest's."""
    guest = board.guest_phys_bits if build.at_least("2025.02") else 0
    # OVMF reads the vendor from CPUID 0x80000000, which QEMU 10.1 leaves empty for Intel
    seen = board if board.ext_vendor else replace(board, vendor="other")
    bits = min(board.phys_bits, guest) if guest else cpuid_phys_bits(seen)
    if bits is None:
        return None
    bits = min(bits, 46 if build.at_least("2025.02") else 47)  # 4-level paging
    return 40 if not board.page_1g and bits > 40 else bits


def _below_reservations(board: Board, base: int, size: int, notes: list[str]) -> int:
    """PlatformReservationConflictCB over QEMU's E820 table in its order (the AMD reservation,
    then RAM below and above 4 GiB): a window overlapping an entry moves below it."""
    entries = [*((start, end + 1) for start, end in board.e820_reserved), (0, board.ram_below_4g)]
    if board.ram_end > FOUR_GIB:
        entries.append((board.ram_high_start, board.ram_end))
    for start, end in entries:
        if max(start, base) < min(end, base + size):
            moved = (start - size) & ~(size - 1)
            notes.append(f"OVMF's window {hex_addr(base)}-{hex_addr(base + size - 1)} overlaps the "
                         f"E820 entry {hex_addr(start)}-{hex_addr(end - 1)}: moved below it")
            base = moved
    return base


def mmio32(build: Build, board: Board) -> tuple[int, int]:
    """OVMF's 32-bit PCI window [start, end] (PlatformMemMapInitialization). Uc32Base is 4 GiB
    minus the largest power of two not above 4 GiB minus the RAM below 4 GiB. 2022.11: q35 from
    the end of MMCONFIG (0xb0000000 + 256 MiB), pc from Uc32Base, both to 0xfc000000; 2025.02
    and later put MMCONFIG at 0xe0000000: q35 from Uc32Base to there, pc as before."""
    free = FOUR_GIB - max(board.ram_below_4g, 1)
    uc32 = FOUR_GIB - (1 << (free.bit_length() - 1))
    if board.machine == "q35":
        if build.at_least("2025.02"):
            return uc32, Q35_MMCONFIG_NEW - 1
        return Q35_MMCONFIG_OLD + 256 * MiB, MMIO32_END - 1
    return uc32, MMIO32_END - 1


def place_ovmf(build: Build, board: Board) -> Placement:
    base, size, notes = window(build, board)
    if not size:
        notes.append("X-PciMmio64Mb=0 turns OVMF's 64-bit window off: PciBusDxe degrades every "
                     "64-bit BAR to the 32-bit window")
    padding = 1 << ((size >> 8) - 1).bit_length() if size > 32 * GiB else 0
    return _place(build, board, base, size, padding, notes)


def _place(build: Build, board: Board, base: int, size: int, padding: int,
           notes: list[str]) -> Placement:
    """PciBusDxe's pools (pcibus.py) with OVMF's windows: the 64-bit pool (root-bus 64-bit BARs,
    root ports' prefetchable windows, padded) in the 64-bit window, else in the 32-bit one; the
    32-bit pool (32-bit BARs, ROMs, root ports' 32-bit windows with the 64-bit non-prefetchable
    BARs behind them) in the 32-bit window."""
    low = mmio32(build, board)
    high = (base, base + size - 1) if size and base >= 0 else None
    board = replace(board, mmio64=(base, base + size - 1) if size else None)
    mem32, mem64 = pcibus.pools(board, pref64=padding)
    dropped: set[str] = set()
    bases: dict[str, int] = {}
    if base < 0 and mem64:
        notes.append("OVMF's window moved below address 0 (measured: no BAR assigned)")
    else:
        mem32, mem64, bases, dropped, failed = pcibus.fit(board, low, high, padding)
        notes.extend(_failed(kind, mem32 if kind == "32" else mem64, high, low) for kind in failed)
        if mem64 and bases.get("64", FOUR_GIB) < FOUR_GIB:
            notes.append("the 64-bit BARs do not fit OVMF's 64-bit window: it puts them in the "
                         "32-bit one")
        gone = sorted(d.id for d in board.devices if d.id in dropped)
        if gone:
            notes.append(f"{build.name} cannot fit every BAR in its windows and drops "
                         f"{', '.join(gone)} (behind root ports, the largest BAR first): their "
                         "BARs are left unassigned")
    placed: dict[tuple[str, int], int] = {}
    for kind, pool in (("32", mem32), ("64", mem64)):
        if kind in bases:
            pcibus.assign(pool, bases[kind], placed)
    bars = [Placed(device.id, bar.index, bar.size, bar.is64, placed.get((device.id, bar.index)))
            for device in board.devices for bar in device.bars if not bar.io]
    below = [f"{p.device} BAR{p.bar}" for p in bars
             if p.is64 and p.start is not None and p.start < FOUR_GIB]
    if below:
        notes.append(f"{build.name} puts {', '.join(below)} in its 32-bit window "
                     f"{hex_addr(low[0])}-{hex_addr(low[1])}")
    return Placement(build.name, high, tuple(bars), tuple(notes))


def _failed(kind: str, pool: list[pcibus.Entry], high: tuple[int, int] | None,
            low: tuple[int, int]) -> str:
    size, align = pcibus.aperture(pool)
    where = f"the 32-bit window {hex_addr(low[0])}-{hex_addr(low[1])}"
    if kind == "64" and high:
        where = f"OVMF's window {hex_addr(high[0])}-{hex_addr(high[1])} nor {where}"
    return (f"the {kind}-bit BARs need {human_size(size)} aligned to {human_size(align)}; "
            f"{where} cannot hold them, and no device behind a root port is left to drop: OVMF "
            "assigns no BAR at all")
