"""What would clear a checked VM of its collisions: changed options, each predicted again. Pure.

`check` speaks the user's language: command-line options for a QEMU command line, XML elements
for a libvirt domain. Every fix here was run through the QEMU model and found clear of the holes.
"""

from collections.abc import Callable, Sequence

from layoutd.errors import LayoutdError
from layoutd.models.guest import GuestMap
from layoutd.qemu.options import keyval, split_argv
from layoutd.qemu.versions import AMD_1TIB_SINCE, Version, distro_machine
from layoutd.record import Record
from layoutd.units import MiB, format_size

NEWER_MACHINE = str(AMD_1TIB_SINCE)  # QEMU's AMD rule (RAM above 4 GiB to 1 TiB past the HT hole)
FAMILY_PREFIX = {"pc-q35-": "pc-q35-", "pc-i440fx-": "pc-i440fx-"}
STEP = 128 * MiB

Predict = Callable[[Sequence[str]], GuestMap]
Clear = Callable[[GuestMap], bool]


FLAGS = {"machine": "-machine", "memory": "-m", "cpu": "-cpu"}


class Fix(Record, kw_only=False):
    option: str  # "machine" | "memory" | "cpu"
    value: str  # pc-q35-7.1 | 1010G | EPYC,phys-bits=42
    why: str

    def argv_text(self) -> str:
        return f"{FLAGS[self.option]} {self.value} ({self.why})"

    def xml_text(self) -> str:
        if self.option == "machine":
            return f"<os><type machine='{self.value}'> ({self.why})"
        if self.option == "cpu":  # mode='emulate' is ignored on host-passthrough: host-model
            model, _, props = self.value.partition(",")
            bits = dict(p.split("=", 1) for p in props.split(",") if "=" in p).get("phys-bits")
            mode = " mode='host-model'" if model in ("host", "max") else ""
            return (f"<cpu{mode}><maxphysaddr mode='emulate' bits='{bits}'/></cpu> ({self.why})")
        return f"<memory unit='{self.value[-1]}iB'>{self.value[:-1]}</memory> ({self.why})"

    def as_json(self, language: str) -> dict[str, object]:
        key = {"argv": FLAGS, "libvirt": {"machine": "os.type.machine", "memory": "memory",
                           "cpu": "cpu.maxphysaddr"}
               }[language][self.option]
        text = self.xml_text() if language == "libvirt" else self.argv_text()
        return {"change": {key: self.value}, "text": text}


def fixes(args: Sequence[str], guest: GuestMap, predict: Predict, clear: Clear,
          windows: bool = False) -> list[Fix]:
    """A newer machine type (QEMU's AMD rule; never for a Windows guest, whose drivers fail on
    RAM moved past 1 TiB) and the largest -m that clear every collision."""
    found = []
    machine = None if windows else _newer_machine(args, guest, predict, clear)
    if machine:
        found.append(machine)
    memory = _largest_memory(args, guest, predict, clear)
    if memory:
        found.append(memory)
    return found


def refusal_fixes(args: Sequence[str], ram_size: int | None, predict: Predict,
                  clear: Callable[[GuestMap, Sequence[str]], bool]) -> list[Fix]:
    """What makes QEMU take a command line it refuses with `phys-bits too low`: the fewest
    phys-bits that hold the address space, or the largest -m under the CPU's own; each one
    predicted again (QEMU takes it) and clear of every hole."""
    def taken(changed: Sequence[str] | None) -> bool:
        return changed is not None and _clear(changed, predict, lambda guest: clear(guest, changed))

    found = []
    for bits in range(33, 53):
        changed = _with_cpu_prop(args, "phys-bits", str(bits))
        if changed is not None and taken(changed):
            value = changed[[o.position for o in split_argv(changed) if o.name == "cpu"][-1] + 1]
            found.append(Fix("cpu", value, "the fewest phys-bits that hold QEMU's address "
                             "space, RAM and BARs clear of every hole"))
            break
    if ram_size:
        steps = ram_size // STEP - 1
        low, high = 0, steps
        while low < high:
            middle = (low + high + 1) // 2
            if taken(_with_memory(args, middle * STEP)):
                low = middle
            else:
                high = middle - 1
        if low and taken(_with_memory(args, low * STEP)):
            found.append(Fix("memory", format_size(low * STEP), "the most RAM QEMU takes with "
                             "these phys-bits, clear of every hole"))
    return found


def _with_cpu_prop(args: Sequence[str], name: str, value: str) -> list[str] | None:
    """The command line with a -cpu property set (the last -cpu counts); None without -cpu."""
    cpus = [option for option in split_argv(args) if option.name == "cpu" and option.value]
    if not cpus:
        return None
    result = list(args)
    parts = [part for part in str(cpus[-1].value).split(",") if not part.startswith(f"{name}=")]
    result[cpus[-1].position + 1] = ",".join([*parts, f"{name}={value}"])
    return result


def _newer_machine(args: Sequence[str], guest: GuestMap, predict: Predict, clear: Clear) -> Fix | None:
    prefix = next((p for p in FAMILY_PREFIX if guest.machine.startswith(p)), None)
    if prefix is None or _release(guest.machine[len(prefix):]) >= AMD_1TIB_SINCE:
        return None
    current = _machine_of(args) or ""
    newer = prefix + NEWER_MACHINE + (current[current.index("+pve"):] if "+pve" in current else "")
    if not _clear(_with_machine(args, newer), predict, clear):
        return None
    return Fix("machine", newer, f"or newer: machine types {NEWER_MACHINE}+ let QEMU move RAM "
               "above 4 GiB to 1 TiB for an AMD guest CPU, past the HyperTransport hole; the "
               "guest's memory stays the same")


def distro_machine_fix(args: Sequence[str], predict: Predict, clear: Clear) -> Fix | None:
    """A distro machine type without the AMD 1 TiB rule -> its distro's first type with it
    (versions.distro_machine), shown only when `predict` (the binary's dry run) builds it clear."""
    machine = _machine_of(args)
    distro = distro_machine(machine) if machine else None
    if distro is None or distro.amd_1tib_rule is not False or distro.first_with_rule is None:
        return None
    newer = distro.first_with_rule
    if not _clear(_with_machine(args, newer), predict, clear):
        return None
    return Fix("machine", newer, f"or newer: {distro.distro}'s machine types from {newer} let QEMU "
               "move RAM above 4 GiB to 1 TiB for an AMD guest CPU, past the HyperTransport hole; "
               "the guest's memory stays the same")


def _machine_of(args: Sequence[str]) -> str | None:
    """The machine type the command line asks for (the last -machine with a type)."""
    found = None
    for option in split_argv(args):
        if option.name == "machine" and option.value is not None:
            found = keyval(option.value, "type", "-machine").get("type", found)
    return found


def _largest_memory(args: Sequence[str], guest: GuestMap, predict: Predict, clear: Clear) -> Fix | None:
    steps = guest.ram_size // STEP - 1
    low, high = 0, steps
    while low < high:
        middle = (low + high + 1) // 2
        if _clear(_with_memory(args, middle * STEP), predict, clear):
            low = middle
        else:
            high = middle - 1
    if low == 0 or not _clear(_with_memory(args, low * STEP), predict, clear):
        return None
    return Fix("memory", format_size(low * STEP), "the most boot RAM clear of every hole; "
               "`layoutd plan` keeps all of it by moving the rest into DIMMs")


def _clear(args: Sequence[str] | None, predict: Predict, clear: Clear) -> bool:
    if args is None:
        return False
    try:
        return clear(predict(args))
    except LayoutdError:
        return False


def _release(text: str) -> Version:
    try:
        return Version.parse(text)
    except LayoutdError:
        return Version(0, 0)


def _with_machine(args: Sequence[str], machine: str) -> list[str] | None:
    """The command line with the machine type replaced (the last -machine with a type wins)."""
    result = list(args)
    for option in reversed(split_argv(args)):
        if option.name != "machine" or option.value is None:
            continue
        parts = option.value.split(",")
        for index, part in enumerate(parts):
            if index == 0 and "=" not in part:
                parts[0] = machine
                break
            if part.startswith("type="):
                parts[index] = f"type={machine}"
                break
        else:
            continue
        result[option.position + 1] = ",".join(parts)
        return result
    return None


def _with_memory(args: Sequence[str], size: int) -> list[str] | None:
    result = list(args)
    for option in reversed(split_argv(args)):
        if option.name == "m" and option.value is not None:
            parts = option.value.split(",")
            index = 0 if "=" not in parts[0] else next(
                (i for i, p in enumerate(parts) if p.startswith("size=")), -1)
            if index < 0:
                return None
            parts[index] = ("size=" if "=" in parts[index] else "") + format_size(size)
            result[option.position + 1] = ",".join(parts)
            return result
    return None
