"""edk2's PCI resource placement on arm `virt` (ArmVirtQemu: Debian's qemu-efi-aarch64 2022.11,
2025.02 and sid's 2026.08; OvmfPkg/Fdt/FdtPciHostBridgeLib, MdeModulePkg/Bus/Pci/PciBusDxe and
PciHostBridgeDxe, which did not change these rules between those releases).

- The windows come from QEMU's device tree: the 32-bit one (VIRT_PCIE_MMIO, 0x10000000-0x3efeffff)
  and the 64-bit one (VIRT_HIGH_PCIE_MMIO, when QEMU made it: layoutd.qemu.arm places it). The
  root bridge combines prefetchable and non-prefetchable memory, and decodes 64-bit memory only
  when the 64-bit window exists; without it every 64-bit BAR is degraded to the 32-bit pool.
- The pools, their order and their placement are edk2's PciBusDxe and PciHostBridgeDxe, the
  same as on x86 (pcibus.py).
- A pcie-root-port takes its devices' BARs as one entry per window in the root pools: its
  32-bit window at least 2 MiB (PciHotPlugInitDxe's default reserve; no 64-bit reserve on arm,
  where PcdPciMmio64Size is 0), its 64-bit prefetchable window exactly its BARs.
- When a pool fits nowhere, edk2 drops (PciHostBridgeAdjustAllocation) the device behind a root
  port with the largest single BAR in that pool, or a port's reserve if larger (the later one on
  a tie), and tries again; never a device on bus 0: with none left to drop it assigns no BAR at
  all (measured: every BAR reads 0).
"""

from __future__ import annotations

from layoutd.firmware.board import Board, Placed, Placement
from layoutd.firmware.builds import Build
from layoutd.firmware.pcibus import aperture, assign, fit
from layoutd.units import hex_addr, human_size

MMIO32 = (0x10000000, 0x3EFEFFFF)  # hw/arm/virt.c base_memmap[VIRT_PCIE_MMIO]


def place_armvirt(build: Build, board: Board) -> Placement:
    notes: list[str] = []
    mem32, mem64, bases, dropped, failed = fit(board, MMIO32, board.mmio64)
    for kind in failed:
        size, align = aperture(mem32 if kind == "32" else mem64)
        notes.append(f"the {kind}-bit BARs need {human_size(size)} aligned to "
                     f"{human_size(align)}, more than {_windows(board, kind)} can hold: "
                     f"{build.name} assigns no BAR at all")
    found: dict[tuple[str, int], int] = {}
    for kind, pool in (("32", mem32), ("64", mem64)):
        if bases.get(kind) is not None:
            assign(pool, bases[kind], found)
    bars = [Placed(device.id, bar.index, bar.size, bar.is64, found.get((device.id, bar.index)))
            for device in board.devices for bar in device.bars if bar.is64 and not bar.io]
    gone = sorted(d.id for d in board.devices if d.id in dropped)
    if gone:
        notes.append(f"{build.name} cannot fit every BAR in its windows and drops {', '.join(gone)} "
                     "(behind root ports, the largest BAR first): their BARs are left unassigned")
    low = [f"{p.device} BAR{p.bar}" for p in bars if p.start is not None and p.start < MMIO32[1]]
    if low:
        notes.append(f"{build.name} puts {', '.join(low)} in the 32-bit window "
                     f"{hex_addr(MMIO32[0])}-{hex_addr(MMIO32[1])}")
    return Placement(build.name, board.mmio64, tuple(bars), tuple(notes))


def _windows(board: Board, kind: str) -> str:
    low = f"the 32-bit window {hex_addr(MMIO32[0])}-{hex_addr(MMIO32[1])}"
    if kind == "64" and board.mmio64 is not None:
        return f"the 64-bit window {hex_addr(board.mmio64[0])}-{hex_addr(board.mmio64[1])} or {low}"
    return low

