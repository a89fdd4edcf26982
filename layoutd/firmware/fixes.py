"""What would move a checked VM's BARs where the IOMMU maps them: fewer guest phys-bits, or
OVMF's window (X-PciMmio64Mb); on arm virt, no 64-bit window (highmem-mmio=off). Each change is
checked again (RAM and BARs) before it is shown. Pure.
"""

from collections.abc import Callable, Sequence

from layoutd.firmware.guest import MMIO64_FILE
from layoutd.libvirt_versions import PASSTHROUGH_LIMIT_SINCE, LibvirtVersion, mode_for, physaddr_for
from layoutd.qemu.options import split_argv
from layoutd.record import Record
from layoutd.units import GiB, format_size

Clear = Callable[[Sequence[str]], bool]  # the changed command line has no collision left


class BarFix(Record, kw_only=False):
    option: str  # -cpu | -fw_cfg
    value: str
    xml: str  # the same in a libvirt domain
    why: str

    def argv_text(self) -> str:
        return f"{self.option} {self.value} ({self.why})"

    def xml_text(self) -> str:
        return f"{self.xml} ({self.why})"

    def as_json(self, language: str) -> dict[str, object]:
        if language == "libvirt":
            return {"change": {self.xml.split(" ")[0].strip("<>"): self.xml}, "text": self.xml_text()}
        return {"change": {self.option: self.value}, "text": self.argv_text()}


def bar_fixes(args: Sequence[str], phys_bits: int, top_bits: int, ovmf: bool, host_cpu: bool,
              clear: Clear, libvirt: LibvirtVersion = PASSTHROUGH_LIMIT_SINCE) -> list[BarFix]:
    """The largest phys-bits that clears every collision, and the smallest OVMF window that does.
    `libvirt`: the version the XML is said for (host-passthrough's limit needs 9.3; before, the
    host's own named model, host-model, takes the phys-bits)."""
    found = []
    for bits in range(min(phys_bits - 1, top_bits), 35, -1):
        changed = _with_bits(args, bits, host_cpu)
        if changed is not None and clear(changed):
            mode = mode_for("host" if host_cpu else "", bits, libvirt)
            xml = physaddr_for(bits, mode)
            if mode == "host-model":  # the CPU's mode changes too
                xml = f"<cpu mode='host-model'>{xml}</cpu>"
            found.append(BarFix("-cpu", _cpu_value(changed), xml,
                                f"the guest's {bits} phys-bits bring the firmware's 64-bit window "
                                "below the IOMMU top"))
            break
    for size in (GiB << k for k in range(5, 15)) if ovmf else ():
        value = f"name={MMIO64_FILE},string={size >> 20}"
        if clear([*args, "-fw_cfg", value]):
            xml = (f"<sysinfo type='fwcfg'><entry name='{MMIO64_FILE}'>{size >> 20}</entry>"
                   "</sysinfo>")
            found.append(BarFix("-fw_cfg", value, xml, f"OVMF's 64-bit window of "
                                f"{format_size(size)} then lies where the IOMMU maps it"))
            break
    return found


def _with_bits(args: Sequence[str], bits: int, host_cpu: bool) -> list[str] | None:
    """`args` with -cpu limited to `bits` (host/max: host-phys-bits-limit, else phys-bits)."""
    words = list(args)
    for option in split_argv(args):
        if option.name == "cpu" and option.value is not None:
            parts = [p for p in option.value.split(",") if not p.startswith(
                ("phys-bits=", "host-phys-bits-limit="))]
            parts.append(f"host-phys-bits-limit={bits}" if host_cpu else f"phys-bits={bits}")
            words[option.position + 1] = ",".join(parts)
            return words
    return None if host_cpu else [*words, "-cpu", f"qemu64,phys-bits={bits}"]


def _cpu_value(args: Sequence[str]) -> str:
    return next(o.value for o in split_argv(args) if o.name == "cpu" and o.value is not None)


def arm_bar_fixes(args: Sequence[str], clear: Clear) -> list[BarFix]:
    """arm virt (QEMU 10.0 and later; 7.2 has neither property): without QEMU's 64-bit PCI window
    (`highmem-mmio=off`) edk2 puts the 64-bit BARs in the 32-bit window, when they fit there; a
    larger window (`highmem-mmio-size`, 1T and up) holds BARs the 512 GiB one cannot, higher up.
    The window cannot move lower: QEMU refuses a highmem-mmio-size below 512 GiB."""
    found = []
    off = _with_machine(args, "highmem-mmio=off")
    if off is not None and clear(off[0]):
        found.append(BarFix("-machine", off[1], _qemu_xml("highmem-mmio=off"), "edk2 then puts "
                            "the 64-bit BARs in the 32-bit window 0x10000000-0x3efeffff"))
    for size in ("1T", "2T", "4T", "8T", "16T"):
        larger = _with_machine(args, f"highmem-mmio-size={size}")
        if larger is not None and clear(larger[0]):
            found.append(BarFix("-machine", larger[1], _qemu_xml(f"highmem-mmio-size={size}"),
                                f"QEMU's 64-bit PCI window of {size} then holds every BAR"))
            break
    return found


def _with_machine(args: Sequence[str], prop: str) -> tuple[list[str], str] | None:
    """`args` with `prop` added to -machine, and the new -machine value."""
    for option in split_argv(args):
        if option.name == "machine" and option.value is not None:
            changed = list(args)
            changed[option.position + 1] = value = f"{option.value},{prop}"
            return changed, value
    return None


def _qemu_xml(prop: str) -> str:
    return (f"<qemu:commandline><qemu:arg value='-machine'/><qemu:arg value='{prop}'/>"
            "</qemu:commandline>")
