"""The VM spec (vm.yaml) of the contract. Strict: an unknown key is an error naming the field.

The schema and its checks only; layoutd/specfile.py reads a spec file (YAML) into it.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from layoutd.errors import InputError
from layoutd.models.fields import Before, Doc, Dump, FieldError, Ge, Le, MinLength, Pattern, Schema
from layoutd.models.validate import to_json, validate
from layoutd.record import Record, field
from layoutd.units import GiB, MiB, format_size, parse_size


def _size(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(f"{value!r} is not a size such as 4G")
    try:
        return parse_size(value)
    except InputError as error:
        raise ValueError(error.message) from error


Size = Annotated[
    int,
    Before(_size),
    Dump(format_size),
    Schema({"type": "string", "pattern": r"^\s*\d+(\.\d+)?\s*([KMGTPEkmgtpe](i?B)?|B)\s*$"}),
]
"""A size with its unit: 1100G, 512M (powers of 1024, as in QEMU), 4096B. A bare number is refused
when a spec is read (`_units_given`): QEMU's -m would read it as MiB, its objects as bytes."""

_BDF = re.compile(r"^([0-9a-f]{4}:)?[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$")
_CPUS = re.compile(r"^\d+(-\d+)?(,\d+(-\d+)?)*$")

DEFAULT_BLOCK = 128 * MiB


def _cpus(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("cpus must be a list such as 0-3 or 0-1,4-5")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, list | tuple):
        return ",".join(str(item) for item in value)
    return value


def cpu_list(text: str) -> list[int]:
    """'0-3,6' -> [0, 1, 2, 3, 6]."""
    result: list[int] = []
    for part in text.split(","):
        low, _, high = part.partition("-")
        result.extend(range(int(low), int(high or low) + 1))
    return result


class Cpu(Record):
    model: Annotated[
        str | None, Doc("QEMU -cpu model (default qemu64 / max); `host` takes the host's vendor")
    ] = None
    vendor: Literal["amd", "intel", "arm"] | None = None
    count: Annotated[int, Ge(1), Le(1024)] = 1
    phys_bits: Annotated[int, Ge(32), Le(52)] | None = None


class Hotplug(Record):
    slots: Annotated[int, Ge(0), Le(256)]
    max: Size


class Memory(Record):
    size: Size
    hotplug: Hotplug | None = None
    backend: Literal["ram", "memfd", "file"] = "ram"
    hugepages: Size | None = None
    path: str | None = None
    share: bool = False
    prealloc: bool = False
    reserve: Annotated[bool | None, Doc("extension: backend reserve=; off avoids overcommit refusals")] = None
    block: Annotated[Size, Doc("extension: guest memory block; every region aligns to it")] = DEFAULT_BLOCK

    def verify(self) -> None:
        """The checks across fields; input validation runs them (layoutd/models/validate.py)."""
        if self.size <= 0:
            raise FieldError(("size",), "memory.size must be more than 0")
        if self.block <= 0 or self.block & (self.block - 1):
            raise FieldError(("block",), f"memory.block {format_size(self.block)} must be a power of two")
        if self.hugepages is not None and (self.hugepages <= 0 or self.hugepages & (self.hugepages - 1)):
            raise FieldError(("hugepages",),
                             f"memory.hugepages {format_size(self.hugepages)} must be a power of two")
        if self.backend == "file" and not self.path:
            raise FieldError(("path",), "memory.path is required with backend: file")
        if self.path and self.backend != "file":
            raise FieldError(("path",), "memory.path is only used with backend: file")
        if self.hotplug and self.hotplug.max < self.size:
            raise FieldError(("hotplug", "max"),
                f"memory.hotplug.max {format_size(self.hotplug.max)} is below memory.size "
                f"{format_size(self.size)}"
            )
        if self.size % self.alignment:
            raise FieldError(("size",),
                f"memory.size {format_size(self.size)} is not a multiple of the "
                f"{format_size(self.alignment)} alignment (memory.block and memory.hugepages)"
            )
        if self.hotplug and self.hotplug.max % self.alignment:
            raise FieldError(("hotplug", "max"),
                f"memory.hotplug.max {format_size(self.hotplug.max)} is not a multiple of the "
                f"{format_size(self.alignment)} alignment"
            )

    @property
    def alignment(self) -> int:
        """Every region and size is a multiple of this: the guest block and the page size."""
        return max(self.block, self.hugepages or 0)


class NumaCell(Record):
    size: Size
    cpus: Annotated[str, Before(_cpus), Pattern(_CPUS.pattern)]


class VmSpec(Record):
    name: Annotated[str, MinLength(1), Pattern(r"^[A-Za-z0-9_.+-]+$")]
    arch: Literal["x86_64", "aarch64"] = "x86_64"
    machine: Annotated[str | None, Doc("q35 | pc | virt, or a versioned type; default per arch")] = None
    cpu: Cpu = field(default_factory=Cpu)
    memory: Memory
    numa: tuple[NumaCell, ...] = ()
    devices: tuple[str, ...] = ()
    viommu: Literal["none", "virtio", "intel"] = "none"
    firmware: Annotated[str | None, Doc(
        "x86_64: seabios | ovmf | PATH (the emitted command line names it; "
        "the BAR placement follows it); aarch64: the -bios path (UEFI)")] = None
    pci_window: Annotated[Size | None, Doc(
        "extension: OVMF's 64-bit PCI window (fw_cfg opt/ovmf/X-PciMmio64Mb); "
        "plan chooses it when not given")] = None
    pci_hole64: Annotated[Size | None, Doc(
        "extension: x86 pci-hole64-size (-global q35-pcihost/i440FX-pcihost); "
        "plan chooses it when not given")] = None
    highmem_mmio: Annotated[bool | None, Doc(
        "extension, aarch64: QEMU's 64-bit PCI window on virt (-machine highmem-mmio; QEMU 10.0 "
        "and later); false puts the BARs in the 32-bit window; plan chooses it when not given")
    ] = None
    accel: Annotated[Literal["kvm", "tcg"] | None, Doc(
        "extension: the VM's accelerator; default kvm on x86_64, tcg on aarch64")] = None
    guest: Annotated[Literal["windows", "other"] | None, Doc(
        "extension: the guest OS; windows: never move RAM past 1 TiB on an AMD guest (QEMU's "
        "relocation on types 7.1+ breaks NVIDIA drivers with Code 43, RHEL-98247)")] = None

    def verify(self) -> None:
        """The checks across fields; input validation runs them (layoutd/models/validate.py)."""
        family = machine_family(self.machine_type)
        if self.arch == "aarch64" and self.accel == "kvm":
            raise FieldError(("accel",), "accel: kvm on aarch64 is not modelled (the host's IPA "
                             "size sets the map); use accel: tcg")
        if family == "virt" and self.arch != "aarch64":
            raise FieldError(("machine",),
                             f"machine {self.machine_type} is an aarch64 machine; set arch: aarch64")
        if family in ("q35", "pc") and self.arch != "x86_64":
            raise FieldError(("machine",), f"machine {self.machine_type} is an x86_64 machine")
        if family is None:
            raise FieldError(
                ("machine",),
                f"machine {self.machine_type!r} is not one of q35, pc, virt "
                "(or pc-q35-X.Y, pc-i440fx-X.Y, virt-X.Y)"
            )
        if self.pci_window is not None and (self.pci_window <= 0 or self.pci_window % (1 << 20)):
            raise ValueError(f"pci_window {format_size(self.pci_window)} must be a positive "
                             "multiple of 1M (OVMF takes it in MiB)")
        if self.pci_hole64 is not None and (family == "virt" or self.pci_hole64 % (1 << 30)):
            raise FieldError(("pci_hole64",), f"pci_hole64 {format_size(self.pci_hole64)} must "
                             "be a multiple of 1G on q35 or pc")
        if self.highmem_mmio is not None and family != "virt":
            raise FieldError(("highmem_mmio",), "highmem_mmio is a setting of the aarch64 virt "
                             "machine")
        if self.viommu == "intel" and family != "q35":
            raise FieldError(("viommu",), "viommu: intel needs machine q35")
        for index, device in enumerate(self.devices):
            if not _BDF.match(device.lower()):
                raise FieldError(("devices", index),
                                 f"device {device!r} is not a PCI address such as 0000:41:00.0")
        if self.numa:
            total = sum(cell.size for cell in self.numa)
            if total != self.memory.size:
                raise FieldError(("numa",),
                    f"numa sizes add up to {format_size(total)}, "
                    f"not memory.size {format_size(self.memory.size)}"
                )
            for index, cell in enumerate(self.numa):
                if cell.size % self.memory.alignment:
                    raise FieldError(("numa", index, "size"),
                        f"numa[{index}].size {format_size(cell.size)} is not a multiple of the "
                        f"{format_size(self.memory.alignment)} alignment"
                    )
                if max(cpu_list(cell.cpus)) >= self.cpu.count:
                    raise FieldError(("numa", index, "cpus"),
                        f"numa[{index}].cpus {cell.cpus} names a CPU beyond cpu.count {self.cpu.count}"
                    )

    @property
    def machine_type(self) -> str:
        return self.machine or ("virt" if self.arch == "aarch64" else "q35")

    @property
    def windows(self) -> bool:
        return self.guest == "windows"

    @property
    def accelerator(self) -> Literal["kvm", "tcg"]:
        return self.accel or ("tcg" if self.arch == "aarch64" else "kvm")

    @property
    def family(self) -> Literal["q35", "pc", "virt"]:
        family = machine_family(self.machine_type)
        assert family is not None
        return family

    @property
    def pci_devices(self) -> tuple[str, ...]:
        return tuple(
            device.lower() if device.count(":") == 2 else f"0000:{device.lower()}" for device in self.devices
        )

    @property
    def hotplug_room(self) -> int:
        return self.memory.hotplug.max - self.memory.size if self.memory.hotplug else 0

    @property
    def hotplug_slots(self) -> int:
        return self.memory.hotplug.slots if self.memory.hotplug else 0


def machine_family(machine: str) -> Literal["q35", "pc", "virt"] | None:
    if machine == "q35" or re.fullmatch(r"pc-q35-\d+\.\d+", machine):
        return "q35"
    if machine == "pc" or re.fullmatch(r"pc-i440fx-\d+\.\d+", machine):
        return "pc"
    if machine == "virt" or re.fullmatch(r"virt-\d+\.\d+", machine):
        return "virt"
    return None


def with_changes(spec: VmSpec, change: dict[str, Any]) -> VmSpec:
    """The spec with dotted paths set (`{"memory.hotplug.max": "480G"}`; None removes a field)."""
    return validate(VmSpec, set_paths(_without_none(to_json(spec)), change))


def set_paths(data: dict[str, Any], change: dict[str, Any]) -> dict[str, Any]:
    """`data` (a spec as parsed) with dotted paths set in place; None removes a field."""
    for path, value in change.items():
        where = data
        *parents, last = path.split(".")
        for part in parents:
            where = where.setdefault(part, {})
        if value is None:
            where.pop(last, None)
        else:
            where[last] = value
    return data


def _without_none(data: dict[str, Any]) -> dict[str, Any]:
    return {key: _without_none(value) if isinstance(value, dict) else value
            for key, value in data.items() if value is not None}


__all__ = ["GiB", "VmSpec"]
