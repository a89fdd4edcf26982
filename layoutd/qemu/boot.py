"""Boot RAM: its size and what backs it (hw/core/machine.c, hw/core/numa.c, system/vl.c)."""

from layoutd.errors import QemuRefusal
from layoutd.qemu.config import VmConfig
from layoutd.qemu.render import Backing
from layoutd.record import Record
from layoutd.units import MiB, align_up

DEFAULT_RAM = 128 * MiB
ACPI_MAX_RAM_SLOTS = 256


class BootRam(Record, kw_only=False):
    size: int
    backing: tuple[Backing, ...]
    busy: frozenset[str]  # backends consumed by boot RAM
    nodes: int  # NUMA nodes, 0 without -numa


def boot_ram(config: VmConfig, region_name: str, legacy_numa: bool = False) -> BootRam:
    """legacy_numa: the machine type takes `-numa node,mem=` (types up to 5.0)."""
    backend_id = config.machine_props.get("memory-backend")
    size = align_up(config.ram_size, 8192) if config.ram_size is not None else None
    if backend_id:
        return _machine_backend(config, backend_id, size)
    size = DEFAULT_RAM if size is None else size
    if any(node.mem is not None for node in config.numa):
        return _legacy_numa(config, size, region_name, legacy_numa)
    if config.numa:
        return _numa(config, size)
    return BootRam(size, (Backing(region_name, size, None),), frozenset(), 0)


def _machine_backend(config: VmConfig, backend_id: str, size: int | None) -> BootRam:
    if config.numa and any(node.memdev for node in config.numa):
        raise QemuRefusal("'-machine memory-backend' and '-numa memdev' properties are "
                          "mutually exclusive")
    backend = config.backends.get(backend_id)
    if backend is None:
        raise QemuRefusal(f"Memory backend '{backend_id}' not found")
    if size is not None and size != backend.size:
        raise QemuRefusal("Machine memory size does not match the size of the memory backend")
    node = 0 if config.numa else None
    nodes = len(config.numa)
    return BootRam(backend.size, (Backing(backend_id, backend.size, node),),
                   frozenset({backend_id}), nodes)


def _numa(config: VmConfig, size: int) -> BootRam:
    by_id = {}
    for node in config.numa:
        if node.nodeid in by_id:
            raise QemuRefusal(f"Duplicate NUMA nodeid: {node.nodeid}")
        by_id[node.nodeid] = node
    for index in range(len(by_id)):
        if index not in by_id:
            raise QemuRefusal(f"numa: Node ID missing: {index}")
    backing: list[Backing] = []
    for index in range(len(by_id)):
        memdev = by_id[index].memdev
        if memdev is None:
            continue
        backend = config.backends.get(memdev)
        if backend is None:
            raise QemuRefusal(f"Property 'memdev' can't find value '{memdev}'")
        backing.append(Backing(memdev, backend.size, index))
    total = sum(b.size for b in backing)
    if total != size:
        raise QemuRefusal(f"total memory for NUMA nodes ({total:#x}) should equal RAM size "
                          f"({size:#x})")
    return BootRam(size, tuple(backing), frozenset(b.name for b in backing), len(by_id))


def _legacy_numa(config: VmConfig, size: int, region_name: str, supported: bool) -> BootRam:
    """`-numa node,mem=`: boot RAM stays one region (QEMU's default backend); the nodes'
    sizes only describe it to the guest and must add up to it (hw/core/numa.c)."""
    if not supported:
        first = next(node for node in config.numa if node.mem is not None)
        raise QemuRefusal(f"-numa {first.text}: Parameter -numa node,mem is not supported by "
                          "this machine type\nUse -numa node,memdev instead")
    if any(node.memdev for node in config.numa):
        raise QemuRefusal("numa: cannot mix 'mem' and 'memdev' on -numa node")
    total = sum(node.mem or 0 for node in config.numa)
    if total != size:
        raise QemuRefusal(f"total memory for NUMA nodes ({total:#x}) should equal RAM size "
                          f"({size:#x})")
    return BootRam(size, (Backing(region_name, size, None),), frozenset(), len(config.numa))


def check_memory_options(config: VmConfig, ram_size: int) -> None:
    """QEMU's checks of -m size,slots,maxmem (hw/core/machine.c machine_set_mem)."""
    if config.maxmem is None:
        if config.slots:
            raise QemuRefusal("slots specified but no max-size", fixes=(
                "-m SIZE,slots=N,maxmem=MAX: slots need maxmem too, the most memory the guest may "
                "have with every hotplugged DIMM (at least SIZE)",))
        return
    if config.maxmem < ram_size:
        raise QemuRefusal(f"invalid value of maxmem: maximum memory size ({config.maxmem:#x}) "
                          f"must be at least the initial memory size ({ram_size:#x})")
    if config.slots and config.maxmem == ram_size:
        raise QemuRefusal("invalid value of maxmem: memory slots were specified but maximum "
                          f"memory size ({config.maxmem:#x}) is equal to the initial memory "
                          f"size ({ram_size:#x})")
