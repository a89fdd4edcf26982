"""`libvirt fix` and `libvirt apply`: plan a domain's memory and write it back into its XML."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from layoutd.collisions import find_collisions
from layoutd.errors import InputError, NoAnswer, NoLayout, UnknownDevice
from layoutd.libvirt.argv import translate_xml
from layoutd.libvirt.domain import Domain, read_domain
from layoutd.libvirt.edit import apply_config, with_machine
from layoutd.libvirt.guard import domain_qemu_version
from layoutd.libvirt_versions import NEWEST_LIBVIRT, LibvirtVersion, mode_for, physaddr_for
from layoutd.models.common import GuestRegion
from layoutd.models.plan import Plan
from layoutd.models.spec import VmSpec
from layoutd.models.validate import validate
from layoutd.planning import make_plan
from layoutd.qemu import predict
from layoutd.qemu.cpus import VENDOR_IDS
from layoutd.qemu.x86 import ROM_WINDOW
from layoutd.record import replace
from layoutd.specfile import spec_device_origins


def spec_from_domain(domain: Domain, devices: Sequence[str] = ()) -> VmSpec:
    """What the domain asks for (size, CPUs, NUMA, backing, devices), free of any placement."""
    memory: dict[str, Any] = {"size": domain.memory}
    if domain.max_memory is not None:
        memory["hotplug"] = {"slots": domain.slots, "max": domain.max_memory}
    if domain.backing in ("memfd", "file"):
        memory["backend"] = domain.backing
    if domain.hugepage_size:
        memory["hugepages"] = domain.hugepage_size
    cpu: dict[str, Any] = {"count": domain.vcpus}
    if domain.cpu_mode in ("host-passthrough", "host-model"):
        cpu["model"] = "host"
    elif domain.cpu_mode == "maximum":
        cpu["model"] = "max"
    elif domain.cpu_model:
        cpu["model"] = domain.cpu_model
    if domain.phys_bits:
        cpu["phys_bits"] = domain.phys_bits
    if domain.cpu_vendor_id in VENDOR_IDS:
        cpu["vendor"] = VENDOR_IDS[domain.cpu_vendor_id]
    fields: dict[str, Any] = {
        "name": re.sub(r"[^A-Za-z0-9_.+-]", "_", domain.name), "arch": domain.arch,
        "machine": domain.machine, "cpu": cpu, "memory": memory,
        "numa": _cells(domain), "devices": list(domain.hostdevs or devices),
        "viommu": domain.iommu if domain.iommu in ("intel", "virtio") else "none",
        "accel": "kvm" if domain.domain_type == "kvm" else "tcg",
    }
    if domain.arch == "aarch64" and domain.loader:
        fields["firmware"] = domain.loader
    if domain.windows:  # libosinfo's metadata: never QEMU's AMD move of RAM past 1 TiB
        fields["guest"] = "windows"
    try:
        return validate(VmSpec, fields)
    except ValueError as error:
        raise InputError(f"cannot turn this domain into a plan request: {error}",
                         file=domain.source) from error


def _cells(domain: Domain) -> list[dict[str, Any]]:
    """NUMA cells grown by the memory devices they hold, so they add up to <memory>."""
    cells = []
    for cell in domain.cells:
        extra = sum(dev.size for dev in domain.memory_devices if (dev.node or 0) == cell.id)
        cells.append({"size": cell.size + extra, "cpus": cell.cpus})
    return cells


def fix(data: bytes, source: str, hosts: Sequence[str], version: str | None,
        devices: Sequence[str] = (), libvirt: LibvirtVersion = NEWEST_LIBVIRT
        ) -> tuple[bytes, Plan]:
    domain = read_domain(data, source)
    return apply(data, source, spec_from_domain(domain, devices), hosts, version, None, libvirt)


def apply(data: bytes, source: str, spec: VmSpec, hosts: Sequence[str],
          version: str | None, spec_file: str | None = None,
          libvirt: LibvirtVersion = NEWEST_LIBVIRT) -> tuple[bytes, Plan]:
    """The domain with the plan applied, for `libvirt` (what its <cpu> can say)."""
    domain = read_domain(data, source)
    if not spec.devices and domain.hostdevs:
        spec = replace(spec, devices=tuple(domain.hostdevs))
    chosen = domain_qemu_version(domain, version)
    try:
        plan = make_plan(spec, hosts, chosen)
    except NoLayout as error:
        raise error.speaking(lambda idea: xml_suggestion(idea, spec, libvirt)) from error
    except UnknownDevice as error:
        origins = {**(spec_device_origins(spec, spec_file) if spec_file else {}),
                   **{d: (source, f"<hostdev> {d}") for d in domain.hostdevs}}
        raise error.at(origins) from error
    result = apply_config(data, plan.config, source, libvirt)
    if plan.config.machine != spec.machine_type:  # the plan chose the type (a Windows guest)

        result = with_machine(result, plan.config.machine, source)
    return result, verify(result, plan, source, libvirt)


XML_OF = {
    "memory.size": "<memory unit='{unit}'>{number}</memory> (and <currentMemory>)",
    "memory.hotplug.max": "<maxMemory unit='{unit}'>{number}</maxMemory>",
    "memory.hotplug.slots": "<maxMemory slots='{value}'>",
    "memory.hugepages": "<memoryBacking><hugepages><page size='{number}' unit='{unit}'/>",
    "cpu.phys_bits": "<cpu><maxphysaddr mode='emulate' bits='{value}'/>",
    "machine": "<os><type machine='{value}'>",
    "viommu": "<devices><iommu model='{value}'>",
}
REMOVED = {"memory.hotplug": "<maxMemory> (and every <memory model='dimm'>)", "numa": "<cpu><numa>"}


def _xml_value(path: str, value: Any) -> str:
    text = str(value)
    number, unit = (text[:-1], f"{text[-1]}iB") if text[-1:] in "KMGT" else (text, "B")
    return XML_OF[path].format(value=text, number=number, unit=unit)


def xml_suggestion(idea: Any, spec: VmSpec, libvirt: LibvirtVersion = NEWEST_LIBVIRT) -> str:
    """A spec suggestion said as the domain XML elements to change, for `libvirt` (fewer
    phys-bits on a host CPU: host-passthrough's limit from 9.3, before that host-model)."""
    said = []
    for path, value in idea.change.items():
        if path == "devices":
            dropped = [d for d in spec.pci_devices if d not in value]
            said.append("remove the <hostdev> of " + ", ".join(dropped))
        elif value is None or value == []:
            said.append(f"remove {REMOVED.get(path, path)}")
        elif path == "cpu.phys_bits" and spec.cpu.model == "host" and spec.accel == "kvm":
            mode = mode_for("host", int(value), libvirt)
            said.append(f"<cpu mode='{mode}'>{physaddr_for(int(value), mode)}")
        elif path == "numa":
            said.append("<cpu><numa> cells of " + ", ".join(str(cell["size"]) for cell in value))
        else:
            said.append(_xml_value(path, value) if path in XML_OF else f"{path} {value}")
    return f"{'; '.join(said)} ({idea.full_why()})"


LEGACY_END = ROM_WINDOW[1]
"""Below 1 MiB the x86 VGA and ROM windows depend on the domain's own video device."""


def verify(result: bytes, plan: Plan, source: str,
           libvirt: LibvirtVersion = NEWEST_LIBVIRT) -> Plan:
    """The edited domain, read back the way the hook reads it, must build the plan's map.

    Ranges and kinds must match above 1 MiB; ids and nodes only when the plan has NUMA nodes
    (libvirt needs a NUMA cell for memory hotplug, so a plan without nodes gets one, named
    ram-node0). Below 1 MiB the domain's video decides; that RAM must avoid the holes too.
    Returns the plan with the map the domain really builds.
    """
    translation = translate_xml(result, source, libvirt)
    guest = predict(translation.argv, version=plan.qemu_version, arch=translation.domain.arch,
                    host_cpu=plan.host_cpu, host=plan.host_platform)
    with_nodes = bool(plan.config.numa)

    def shape(regions: Sequence[GuestRegion]) -> list[tuple[int, int, str, int | None]]:
        return sorted((r.start, r.end, r.kind, r.node if with_nodes else None)
                      for r in regions if r.start > LEGACY_END)

    built, wanted = shape(guest.layout), shape(plan.layout)
    if built != wanted:
        differ = [f"{a:#x}-{b:#x} {kind}" for a, b, kind, _ in set(built) ^ set(wanted)]
        raise NoAnswer("internal disagreement: the edited domain does not build the planned map: "
                       + ", ".join(sorted(differ)[:6]))
    clashes = find_collisions(guest.layout, [h for h in plan.holes if h.type != "direct-relaxable"])
    if clashes:
        raise NoAnswer("the edited domain would put RAM in a hole: " + clashes[0].describe())
    return replace(plan, layout=guest.layout)
