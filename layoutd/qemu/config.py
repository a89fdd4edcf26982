"""What a QEMU command line says about memory: one `VmConfig`. Pure; no layout decisions here.

Options that cannot change the guest-physical RAM map are accepted and ignored. An option that
can and is not modelled raises UnsupportedOption naming it.
"""

import re
from collections.abc import Sequence

from layoutd.errors import LayoutdError, QemuRefusal, UnsupportedOption
from layoutd.models.guest import RamBar
from layoutd.qemu.options import (
    SIZE_SYNTAX,
    BadSize,
    Option,
    keyval,
    parse_bool,
    parse_int,
    split_argv,
    strtosz,
)
from layoutd.qemu.versions import DEFAULT, QemuRelease, row
from layoutd.record import Record, field
from layoutd.units import parse_size

BACKENDS = ("memory-backend-ram", "memory-backend-memfd", "memory-backend-file")
BACKEND_PROPS = frozenset(
    [
        "qom-type", "id", "size", "share", "prealloc", "prealloc-threads", "reserve", "merge",
        "dump", "hugetlb", "hugetlbsize", "seal", "mem-path", "align", "offset", "readonly",
        "rom", "pmem", "discard-data", "host-nodes", "policy",
        "x-use-canonical-path-for-ramblock-id"
    ]
)
MEMORY_DEVICES = {"pc-dimm": "dimm", "nvdimm": "nvdimm", "virtio-mem-pci": "virtio-mem",
                  "virtio-pmem-pci": "virtio-pmem"}
DEVICE_PROPS = frozenset(
    [
        "driver", "id", "memdev", "addr", "memaddr", "node", "slot", "requested-size",
        "block-size", "label-size", "unarmed", "uuid", "bus", "multifunction", "prealloc",
        "dynamic-memslots", "unplugged-inaccessible", "x-early-migration", "disable-legacy",
        "disable-modern", "ats", "iommu_platform"
    ]
)
VGA_DEVICES = frozenset(
    [
        "VGA", "cirrus-vga", "isa-vga", "isa-cirrus-vga", "vmware-svga", "qxl-vga",
        "virtio-vga", "virtio-vga-gl", "ati-vga", "vhost-user-vga"
    ]
)
UNMODELLED_DEVICES = frozenset(
    [
        "hv-balloon", "cxl-type3", "cxl-rp", "cxl-upstream", "cxl-downstream",
        "sgx-epc", "virtio-mem-device", "virtio-pmem", "memory-backend-epc"
    ]
)
UNMODELLED_MACHINE_PROPS = frozenset(["sgx-epc", "mte", "x-remote"])
CXL_WINDOW_PROPS = ("size", "targets", "interleave-granularity")  # of -M cxl-fmw.N.PROP[.M]
HOLE64_GLOBALS = ("q35-pcihost", "i440FX-pcihost")


class Backend(Record, kw_only=False, frozen=False):
    id: str
    type: str
    size: int
    props: dict[str, str]


class MemDevice(Record, kw_only=False, frozen=False):
    driver: str
    kind: str  # dimm | nvdimm | virtio-mem | virtio-pmem
    id: str
    text: str  # the -device argument, for QEMU's error prefix
    props: dict[str, str]

    def size_prop(self, name: str) -> int | None:
        value = self.props.get(name)
        return None if value is None else parse_size(value, what=f"{self.driver} {name}")


class RamBarDevice(Record, kw_only=False, frozen=False):
    """An emulated device with guest memory behind a BAR (models.guest.RamBar once sized)."""

    kind: str  # ivshmem | virtio-gpu-hostmem
    id: str  # its id, else its driver: as the firmware placement names it
    bar: int
    text: str  # the -device argument, for QEMU's error prefix
    memdev: str | None = None  # ivshmem-plain: the backend whose size the BAR takes
    size: int = 0


class NumaNode(Record, kw_only=False, frozen=False):
    nodeid: int
    memdev: str | None
    mem: int | None = None  # legacy `mem=` (machine types up to 5.0)
    text: str = ""  # the -numa argument, for QEMU's error prefix


class VmConfig(Record, frozen=False):
    qemu: QemuRelease = field(default_factory=lambda: row(DEFAULT))  # reads the command line
    machine: str | None = None
    machine_props: dict[str, str] = field(default_factory=dict)
    ram_size: int | None = None  # None: the machine's default (or the memory-backend's size)
    slots: int = 0
    maxmem: int | None = None
    cpu_model: str | None = None
    cpu_props: dict[str, str] = field(default_factory=dict)
    accel: str = "tcg"
    accel_option: str | None = None  # "-accel kvm,...": where QEMU 11.1 locates accel errors
    accel_given: bool = False  # -accel, -enable-kvm or -machine accel=
    backends: dict[str, Backend] = field(default_factory=dict)
    numa: list[NumaNode] = field(default_factory=list)
    devices: list[MemDevice] = field(default_factory=list)
    vfio: list[str] = field(default_factory=list)
    hole64_size: dict[str, int] = field(default_factory=dict)  # host bridge -> size
    defaults: bool = True
    vga: str | None = None  # -vga MODEL
    vga_devices: int = 0
    firmware: bool = False  # -bios / pflash given
    cxl_bridges: list[str] = field(default_factory=list)  # ids of pxb-cxl devices
    cxl_windows: dict[int, dict[str, str]] = field(default_factory=dict)  # -M cxl-fmw.N.*
    acpi: bool = True
    ram_bars: list[RamBarDevice] = field(default_factory=list)


def parse_config(argv: Sequence[str], qemu: QemuRelease | None = None) -> VmConfig:
    config = VmConfig(qemu=qemu or row(DEFAULT))
    for option in split_argv(argv):
        _HANDLERS.get(option.name, _ignore)(config, option)
    for device in config.ram_bars:  # objects exist before devices, whatever the order given
        if device.memdev is not None:
            if device.memdev not in config.backends:
                raise QemuRefusal(f"-device {device.text}: Device '{device.memdev}' not found")
            device.size = config.backends[device.memdev].size
    if not config.accel_given and config.machine and "+pve" in config.machine:
        config.accel = "kvm"  # Proxmox's QEMU starts KVM unless told accel=tcg (qemu-server)
    return config


def _value(option: Option) -> str:
    assert option.value is not None
    return option.value


def _ignore(config: VmConfig, option: Option) -> None:
    return None


def _unsupported(config: VmConfig, option: Option) -> None:
    raise UnsupportedOption(f"{option.label()}: can change guest memory and is not modelled",
                            field="qemu argv")


def _machine(config: VmConfig, option: Option) -> None:
    props = keyval(_value(option), "type", "-machine")
    for key in props:
        if key in UNMODELLED_MACHINE_PROPS:
            raise UnsupportedOption(f"-machine {key}=: not modelled", field="qemu argv")
    for key in [key for key in props if key.startswith("cxl-fmw.")]:
        _cxl_window(config, key, props.pop(key))
    if "type" in props:
        config.machine = props.pop("type")
    if "accel" in props:
        config.accel = props["accel"].split(":")[0]
        config.accel_given = True
    config.machine_props.update(props)


def _cxl_window(config: VmConfig, key: str, value: str) -> None:
    """-M cxl-fmw.N.size=S, cxl-fmw.N.targets.M=BRIDGE, cxl-fmw.N.interleave-granularity=G."""
    parts = key.split(".")
    if len(parts) < 3 or not parts[1].isdigit() or parts[2] not in CXL_WINDOW_PROPS:
        raise UnsupportedOption(f"-machine {key}=: not modelled", field="qemu argv")
    config.cxl_windows.setdefault(int(parts[1]), {})[".".join(parts[2:])] = value


def _memory(config: VmConfig, option: Option) -> None:
    props = keyval(_value(option), "size", "-m")
    for key in props:
        if key not in ("size", "slots", "maxmem"):
            raise QemuRefusal(f"Invalid parameter '{key}'")
    if "size" in props:
        text = props["size"]
        config.ram_size = _size(config, text, f"-m {_value(option)}: ", "size")
        if text[-1:].isdigit():  # QEMU's legacy suffix-less format means MiB (hex too)
            try:
                config.ram_size = strtosz(text + "M", config.qemu)
            except BadSize:
                raise QemuRefusal("Parameter 'memory.size' expects size") from None
    if "slots" in props:
        config.slots = parse_int(props["slots"], "-m slots")
    if "maxmem" in props:
        config.maxmem = _size(config, props["maxmem"], f"-m {_value(option)}: ", "maxmem")


def _size(config: VmConfig, text: str, prefix: str, name: str, words: str = SIZE_SYNTAX) -> int:
    """A size as QEMU parses it, refused in QEMU's words."""
    try:
        return strtosz(text, config.qemu)
    except BadSize as error:
        if error.out_of_range:
            raise QemuRefusal(f"{prefix}Value '{text}' is out of range for parameter '{name}'") from error
        unit = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kKmMgGtTpPeE])i?[bB]\s*", text)
        fixes = (f"write {unit.group(1)}{unit.group(2).upper()}: QEMU's sizes end in one letter, "
                 "K M G T P E, each a power of 1024",) if unit else ()
        raise QemuRefusal(f"{prefix}Parameter '{name}' {words}", fixes=fixes) from error


def _cpu(config: VmConfig, option: Option) -> None:
    parts = _value(option).split(",")
    config.cpu_model = parts[0]
    for part in parts[1:]:
        if "=" in part:
            key, value = part.split("=", 1)
            config.cpu_props[key] = value
        elif part[:1] in "+-" and part[1:]:  # the legacy +feature / -feature
            config.cpu_props[part[1:]] = "on" if part[0] == "+" else "off"


def _accel(config: VmConfig, option: Option) -> None:
    if config.accel == "tcg" or option.name == "enable-kvm":
        chosen = "kvm" if option.name == "enable-kvm" else keyval(_value(option), "accel", "-accel")
        config.accel = chosen if isinstance(chosen, str) else chosen.get("accel", "tcg")
        config.accel_option = option.label() if option.name == "accel" else None
    config.accel_given = True


def _object(config: VmConfig, option: Option) -> None:
    props = keyval(_value(option), "qom-type", "-object")
    kind = props.get("qom-type", "")
    if kind in BACKENDS:
        _backend(config, props, option)
    elif kind.startswith("memory-backend") or kind in UNMODELLED_DEVICES:
        _unsupported(config, option)


def _backend(config: VmConfig, props: dict[str, str], option: Option) -> None:
    unknown = set(props) - BACKEND_PROPS
    if unknown:
        raise UnsupportedOption(f"{option.label()}: property {sorted(unknown)[0]!r} is not modelled",
                                field="qemu argv")
    if "id" not in props:
        raise QemuRefusal("-object: Parameter 'id' is missing")
    if "size" not in props:
        raise QemuRefusal(f"-object {_value(option)}: can't create backend with size 0")
    size = _size(config, props["size"], f"-object {_value(option)}: ", "size", "expects a size value")
    if size == 0:
        raise QemuRefusal(f"-object {_value(option)}: can't create backend with size 0")
    if props["qom-type"] == "memory-backend-file" and "mem-path" not in props:
        raise QemuRefusal(f"-object {_value(option)}: mem-path property not set")
    config.backends[props["id"]] = Backend(props["id"], props["qom-type"], size, props)


def _numa(config: VmConfig, option: Option) -> None:
    props = keyval(_value(option), "type", "-numa")
    if props.get("type", "node") != "node":
        return  # dist, cpu, hmat-lb, hmat-cache: topology only
    mem = parse_size(props["mem"], default_suffix="M", what="-numa mem") if "mem" in props else None
    nodeid = parse_int(props["nodeid"], "-numa nodeid") if "nodeid" in props else len(config.numa)
    config.numa.append(NumaNode(nodeid, props.get("memdev"), mem, _value(option)))


def _device(config: VmConfig, option: Option) -> None:
    text = _value(option)
    props = keyval(text, "driver", "-device")
    driver = props.get("driver", "")
    if driver in MEMORY_DEVICES:
        unknown = set(props) - DEVICE_PROPS
        if unknown:
            raise UnsupportedOption(f"-device {text}: property {sorted(unknown)[0]!r} is not modelled",
                                    field="qemu argv")
        config.devices.append(MemDevice(driver, MEMORY_DEVICES[driver], props.get("id", ""), text, props))
    elif driver == "vfio-pci":
        if "host" in props:
            config.vfio.append(_full_bdf(props["host"]))
    elif driver in VGA_DEVICES:
        config.vga_devices += 1
    elif driver == "pxb-cxl":
        config.cxl_bridges.append(props.get("id", ""))
    elif driver in RAM_BAR_DRIVERS:
        _ram_bar(config, text, props)
    elif driver in UNMODELLED_DEVICES:
        _unsupported(config, option)


RAM_BAR_DRIVERS = frozenset(["ivshmem-plain", "ivshmem-doorbell", "virtio-gpu-pci",
                             "vhost-user-fs-pci"])


def _ram_bar(config: VmConfig, text: str, props: dict[str, str]) -> None:
    """Devices with guest memory behind a BAR (VFIO maps it as RAM once the firmware placed
    it), as QEMU 7.2, 10.0 and 11.1 take them (query-pci and their refusals)."""
    driver = props["driver"]
    name = props.get("id") or driver
    if driver == "ivshmem-plain":
        if "memdev" not in props:
            raise QemuRefusal(f"-device {text}: You must specify a 'memdev'")
        config.ram_bars.append(RamBarDevice("ivshmem", name, 2, text, props["memdev"]))
    elif driver == "ivshmem-doorbell":
        if "memdev" in props:
            raise QemuRefusal(f"-device {text}: Property 'ivshmem-doorbell.memdev' not found")
        config.ram_bars.append(RamBarDevice("ivshmem", name, 2, text))  # size 0: not known
    elif driver == "vhost-user-fs-pci" and "cache-size" in props:  # a DAX window never merged
        raise QemuRefusal(f"-device {text}: Property 'vhost-user-fs-pci.cache-size' not found")
    elif driver == "virtio-gpu-pci" and "hostmem" in props:  # which QEMU has it: build.py
        size = _size(config, props["hostmem"], f"-device {text}: ", "hostmem")
        config.ram_bars.append(RamBarDevice("virtio-gpu-hostmem", name, 4, text, None, size))


def ram_bars_of(argv: Sequence[str]) -> tuple[RamBar, ...]:
    """The guest memory behind ivshmem's and virtio-gpu's (hostmem) BARs of a command line QEMU
    took (a dry run's, a libvirt domain's with its <shmem>): for checking.place_ram_bars."""
    try:
        devices = parse_config(argv).ram_bars
    except LayoutdError:
        return ()  # a form this reader does not know: the caller says what was not placed
    return tuple(RamBar(kind=d.kind, id=d.id, bar=d.bar, size=d.size) for d in devices
                 if d.size or d.kind == "ivshmem")


def _full_bdf(host: str) -> str:
    return host if host.count(":") == 2 else f"0000:{host}"


def _global(config: VmConfig, option: Option) -> None:
    text = _value(option)
    if text.startswith("driver="):
        props = keyval(text, None, "-global")
        driver, prop, value = props.get("driver", ""), props.get("property", ""), props.get("value", "")
    else:
        name, _, value = text.partition("=")
        driver, _, prop = name.rpartition(".")
    if driver in HOLE64_GLOBALS and prop == "pci-hole64-size":
        config.hole64_size[driver] = _size(config, value, f"can't apply global {text}: ",
                                           "pci-hole64-size")
    elif driver in HOLE64_GLOBALS or driver in MEMORY_DEVICES or driver.startswith("memory-backend"):
        raise UnsupportedOption(f"-global {text}: not modelled", field="qemu argv")


def _nodefaults(config: VmConfig, option: Option) -> None:
    config.defaults = False


def _vga(config: VmConfig, option: Option) -> None:
    config.vga = _value(option)


def _firmware(config: VmConfig, option: Option) -> None:
    config.firmware = True


def _drive(config: VmConfig, option: Option) -> None:
    if keyval(_value(option), "file", "-drive").get("if") == "pflash":
        config.firmware = True


def _no_acpi(config: VmConfig, option: Option) -> None:
    config.acpi = False


_HANDLERS = {
    "machine": _machine,
    "m": _memory,
    "cpu": _cpu,
    "accel": _accel,
    "enable-kvm": _accel,
    "object": _object,
    "numa": _numa,
    "device": _device,
    "global": _global,
    "nodefaults": _nodefaults,
    "vga": _vga,
    "bios": _firmware,
    "pflash": _firmware,
    "drive": _drive,
    "no-acpi": _no_acpi,
    "readconfig": _unsupported,
    "set": _unsupported,
}


def flag(props: dict[str, str], name: str, default: bool) -> bool:
    """An on/off machine property; `auto` (and absence) is the default."""
    if name not in props or props[name] == "auto":
        return default
    return parse_bool(props[name], f"-machine {name}")
