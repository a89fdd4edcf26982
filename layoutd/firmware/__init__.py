"""Where the guest firmware puts PCI BARs: a pure model of SeaBIOS and OVMF (edk2) on x86, and of
edk2 (ArmVirtQemu) on arm virt.

`place(build, board)` answers for one firmware build (`builds.Build`) and one guest (`Board`: what
the firmware reads from QEMU: CPUID, the E820 RAM end, fw_cfg files, the PCI devices and their
BARs). Every BAR gets its guest-physical start, or None when the firmware leaves it unassigned.
No I/O here; `files.py` identifies a firmware file by its sha256.
"""

from layoutd.firmware.armvirt import place_armvirt
from layoutd.firmware.board import ROM, Board, PciDevice, Placed, Placement
from layoutd.firmware.builds import Build
from layoutd.firmware.ovmf import place_ovmf
from layoutd.firmware.seabios import place_seabios
from layoutd.record import replace


def place(build: Build, board: Board) -> Placement:
    if build.family == "seabios":
        return place_seabios(build, board)
    flat, hidden = without_nested(board) if build.family == "armvirt" else (board, [])
    placement = (place_armvirt(build, flat) if build.family == "armvirt" else place_ovmf(build, flat))
    if not hidden:
        return placement
    bars = [Placed(d.id, b.index, b.size, b.is64, None) for d in hidden for b in d.bars if not b.io]
    bars += [Placed(d.id, ROM, d.rom, False, None) for d in hidden if d.rom]
    note = (f"{build.name}: bridges other than root ports on the root bus (a bridge behind a "
            f"bridge, a pci-bridge) are not modelled: the BARs of "
            f"{', '.join(d.id for d in hidden)} are not placed")
    return Placement(placement.firmware, placement.window, (*placement.bars, *bars),
                     (*placement.notes, note))


def without_nested(board: Board) -> tuple[Board, list[PciDevice]]:
    """The board without other bridges than root ports on the root bus, and the devices behind
    those (edk2's model knows these root ports only)."""
    nested = {port.id for port in board.ports
              if port.port is not None or port.driver not in ("pcie-root-port", "ioh3420")}
    if not nested:
        return board, []
    hidden = [device for device in board.devices if device.port in nested]
    return replace(board, devices=tuple(d for d in board.devices if d.port not in nested),
                   ports=tuple(p for p in board.ports if p.id not in nested)), hidden
