"""What would move a checked VM's BARs where the IOMMU maps them: fewer guest phys-bits, or
OVMF's window (X-PciMmio64Mb); on arm virt, no 64-bit window (highmem-mmio=off). Each change is
checked again (RAM and BARs) before it is shown. Pure.
"""

from collections.abc import Callable, Sequence

from layoutd.firmware.guest import MMIO64_FILE
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
              clear: Clear) -> list[BarFix]:
    """The largest phys-bits that clears every collision, and the smallest OVMF window that does."""
    found = []
    for bits in range(min(phys_bits - 1, top_bits), 35, -1):
        changed = _with_bits(args, bits, host_cpu)
        if changed is not None and clear(changed):
            xml = (f"<maxphysaddr mode='passthrough' limit='{bits}'/>" if host_cpu
                   else f"<maxphysaddr mode='emulate' bits='{bits}'/>")
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
    """arm virt: without QEMU's 64-bit PCI window (`highmem-mmio=off`; not in QEMU 7.2) edk2
    puts the 64-bit BARs in the 32-bit window, when they fit there. The window cannot move lower:
    QEMU refuses a highmem-mmio-size below 512 GiB."""
    changed = list(args)
    for option in split_argv(args):
        if option.name == "machine" and option.value is not None:
            value = f"{option.value},highmem-mmio=off"
            changed[option.position + 1] = value
            break
    else:
        return []
    if not clear(changed):
        return []
    xml = ("<qemu:commandline><qemu:arg value='-machine'/><qemu:arg value='highmem-mmio=off'/>"
           "</qemu:commandline>")
    return [BarFix("-machine", value, xml, "edk2 then puts the 64-bit BARs in the 32-bit window "
                   "0x10000000-0x3efeffff")]
