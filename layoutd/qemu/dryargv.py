"""The dry run's command line: the VM's own, with nothing of the host's memory, disks, devices or
files (layoutd.dryrun starts it). Pure: what the host would answer (page sizes) comes in as
`HostFacts`; the memfds the command needs go out as `Memfd` requests, named in the argv by a
placeholder that the caller replaces with the memfd's /proc/self/fd path.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from layoutd.errors import InputError
from layoutd.qemu.options import Option, keyval, split_argv
from layoutd.record import Record, field
from layoutd.units import parse_size

BOOT_RAM_ID = {"x86_64": "pc.ram", "aarch64": "mach-virt.ram"}
KEEP_OPTIONS = frozenset(["machine", "m", "cpu", "smp", "numa", "accel", "global", "bios", "L",
                          "vga", "enable-kvm", "no-acpi", "no-hpet", "nodefaults"])
MEMORY_DEVICES = frozenset(["pc-dimm", "nvdimm", "virtio-mem-pci", "virtio-pmem-pci"])
BRIDGES = frozenset(["pcie-root-port", "ioh3420", "pci-bridge", "pcie-pci-bridge", "pxb", "pxb-cxl",
                     "pxb-pcie", "x3130-upstream", "xio3130-downstream", "i82801b11-bridge"])
VGA_DEVICES = frozenset(["VGA", "cirrus-vga", "isa-vga", "isa-cirrus-vga", "vmware-svga",
                         "qxl-vga", "virtio-vga", "virtio-vga-gl", "ati-vga", "vhost-user-vga",
                         "bochs-display", "secondary-vga"])
HOST_SIDE = ("vfio-", "vhost-", "vhost_")  # devices that open something of the host's
BUILTIN_BUSES = frozenset(["pcie.0", "pci.0"])
DROPPED_MACHINE_PROPS = frozenset(["pflash0", "pflash1", "confidential-guest-support",
                                   "memory-encryption"])
DROPPED_BACKEND_PROPS = frozenset(["prealloc", "prealloc-threads", "prealloc-context",
                                   "host-nodes", "policy", "mem-path", "hugetlb", "hugetlbsize",
                                   "pmem", "discard-data", "readonly", "rom"])


class Memfd(Record):
    """A memfd the command names (as `placeholder(index)`): its name, and its size (0: empty)."""

    name: str
    size: int


class HostFacts(Record):
    """What the host says about the files a command line names: each mem-path's page size (or
    why it could not be read), and the default huge page size."""

    page_sizes: Mapping[str, int | OSError] = field(default_factory=dict)
    hugepage: int = 2 << 20

    def page_size(self, path: str) -> int:
        size = self.page_sizes[path]
        if isinstance(size, OSError):
            raise InputError(f"mem-path {path}: {size.strerror}", field="qemu argv") from size
        return size


class SafeArgv(Record, frozen=False):
    """The dry run's command line (after the binary), with placeholders for its memfds."""

    argv: list[str] = field(default_factory=list)
    memfds: list[Memfd] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)  # options left out, for messages


def placeholder(index: int) -> str:
    """Where the argv names memfd `index` (NUL never occurs in a command line)."""
    return f"\0layoutd-memfd-{index}\0"


def rewrite(argv: Sequence[str], arch: str, facts: HostFacts, whole: bool = False,
            boot: bool = False) -> SafeArgv:
    """The VM's command line with nothing of the host's memory, disks, devices or files; `whole`:
    also every device without a host side (not VFIO, vhost, *-host) and -fw_cfg, as given, in
    their order: a start-up check of a plan's whole command line (QEMU refusing a device shows);
    `boot` (with `whole`): also the NICs without their network and the disks' devices on an empty
    null-co node, so that the firmware sees the VM's PCI devices (layoutd.boot)."""
    safe = SafeArgv()
    _rewrite(split_argv(argv), arch, safe, facts, whole, boot)
    safe.argv += ["-S", "-nodefaults", "-display", "none", "-no-user-config"]
    return safe


def host_files(options: Sequence[Option]) -> tuple[list[str], bool]:
    """The mem-paths whose page size the rewrite needs, and whether it needs the default huge
    page size; options that do not parse are left to the rewrite, which says so."""
    paths: list[str] = []
    hugepage = False
    for option in options:
        if option.name == "mem-path":
            paths.append(option.value or "")
        elif option.name == "object":
            try:
                props = keyval(option.value or "", "qom-type", "-object")
            except InputError:
                continue
            kind = props.get("qom-type")
            if kind == "memory-backend-file":
                paths.append(props.get("mem-path", ""))
            elif (kind == "memory-backend-memfd" and props.get("hugetlb", "off") in ("on", "true")
                  and not props.get("hugetlbsize")):
                hugepage = True
    return list(dict.fromkeys(paths)), hugepage


def _rewrite(options: list[Option], arch: str, safe: SafeArgv, facts: HostFacts, whole: bool,
             boot: bool = False) -> None:
    kept_ids: set[str] = set()
    devices: list[dict[str, str]] = []
    numa_memdev = any(o.name == "numa" and ({"memdev", "mem"} & set(keyval(o.value or "", "type",
                                                                           "-numa")))
                      for o in options)  # memdev= nodes back boot RAM; legacy mem= forbids a backend
    machine_backend = None
    firmware = False
    for option in options:
        name, value = option.name, option.value or ""
        if name == "object":
            props = keyval(value, "qom-type", "-object")
            if props.get("qom-type", "").startswith("memory-backend-"):
                safe.argv += ["-object", _backend(props, safe, facts)]
            else:
                safe.dropped.append(option.label())
        elif name == "device":
            props = keyval(value, "driver", "-device")
            driver = props.get("driver", "")
            if driver in MEMORY_DEVICES or driver in BRIDGES or driver in VGA_DEVICES:
                kept_ids.add(props.get("id", ""))
                if whole:  # in order: a later device may sit on this bridge
                    safe.argv += ["-device", _device(props, kept_ids)]
                else:
                    devices.append(props)
            elif whole and boot and _guest_only(driver, _without_backends(props)):
                safe.argv += _with_null_backends(props, len(safe.argv))
            elif whole and _guest_only(driver, props):
                safe.argv += ["-device", value]
            else:
                safe.dropped.append(option.label())
        elif name == "machine":
            props = keyval(value, "type", "-machine")
            firmware = firmware or any(k in props for k in ("pflash0", "pflash1"))
            machine_backend = props.get("memory-backend", machine_backend)
            kept = {k: v for k, v in props.items() if k not in DROPPED_MACHINE_PROPS}
            if kept:
                safe.argv += ["-machine", _join(kept, "type")]
        elif name == "mem-path":
            machine_backend = BOOT_RAM_ID.get(arch, "pc.ram")
            safe.argv += ["-object", _legacy_mem_path(value, options, machine_backend, safe, facts)]
            safe.argv += ["-machine", f"memory-backend={machine_backend}"]
        elif name in ("drive", "pflash"):
            if name == "pflash" or keyval(value, "file", "-drive").get("if") == "pflash":
                firmware = True
            safe.dropped.append(option.label())
        elif name == "vga":
            safe.argv += ["-vga", "none" if value == "none" else "std"]
        elif name == "global" and _touches_host_memory(value):
            safe.dropped.append(option.label())
        elif name in KEEP_OPTIONS or (whole and name == "fw_cfg"):
            safe.argv += [f"-{name}"] + ([value] if option.value is not None else [])
        else:
            safe.dropped.append(option.label())
    if machine_backend is None and not numa_memdev:
        _boot_ram_backend(options, arch, safe)
    if firmware and arch == "aarch64" and not any(o.name == "bios" for o in options):
        safe.argv += ["-bios", _memfd_path(safe, "layoutd-firmware", 1 << 20)]
    for props in devices:
        safe.argv += ["-device", _device(props, kept_ids)]
    if arch == "x86_64" and not any(o.name in ("nodefaults", "vga") for o in options):
        safe.argv += ["-vga", "std"]  # the default VGA maps its window over low RAM


def _backend(props: dict[str, str], safe: SafeArgv, facts: HostFacts) -> str:
    """The same backend, unpopulated: ram with reserve=off; memfd as is (its pages are never
    reserved); hugetlb memfd and file backends as a file backend on a memfd of ours, aligned as
    the original (its page size, or align=)."""
    kind = props["qom-type"]
    huge_memfd = kind == "memory-backend-memfd" and props.get("hugetlb", "off") in ("on", "true")
    kept = {k: v for k, v in props.items() if k not in DROPPED_BACKEND_PROPS}
    if kind == "memory-backend-ram":
        kept["reserve"] = "off"
    elif kind == "memory-backend-file" or huge_memfd:
        page = (_hugepage_size(props.get("hugetlbsize"), facts) if huge_memfd
                else facts.page_size(props.get("mem-path", "")))
        align = max(page, _size(props.get("align", "0")))
        kept.update({"qom-type": "memory-backend-file", "reserve": "off", "share": "on",
                     "mem-path": _memfd_path(safe, f"layoutd-{props.get('id', 'backend')}", 0)})
        kept.pop("seal", None)
        if align > 4096:
            kept["align"] = str(align)
    return _join(kept, "qom-type")


def _legacy_mem_path(path: str, options: list[Option], backend_id: str, safe: SafeArgv,
                     facts: HostFacts) -> str:
    size = _ram_size_text(options) or "128M"
    align = facts.page_size(path)
    text = (f"memory-backend-file,id={backend_id},size={size},reserve=off,share=on,"
            f"mem-path={_memfd_path(safe, 'layoutd-ram', 0)}")
    return text + (f",align={align}" if align > 4096 else "")


def _boot_ram_backend(options: list[Option], arch: str, safe: SafeArgv) -> None:
    """-m SIZE alone makes an accounted anonymous mapping: give it as memory-backend-ram with
    reserve=off, under the boot RAM's own name (pc.ram, mach-virt.ram)."""
    size = _ram_size_text(options)
    if size is None:
        return  # the machine's default (128 MiB)
    backend_id = BOOT_RAM_ID.get(arch, "pc.ram")
    safe.argv += ["-object", f"memory-backend-ram,id={backend_id},size={size},reserve=off",
                  "-machine", f"memory-backend={backend_id}"]


def _ram_size_text(options: list[Option]) -> str | None:
    """The last -m's size as QEMU reads it (a bare number is MiB)."""
    size = None
    for option in options:
        if option.name == "m":
            props = keyval(option.value or "", "size", "-m")
            size = props.get("size", size)
    if size is None:
        return None
    return size + "M" if size.replace(".", "", 1).isdigit() else size


def _touches_host_memory(text: str) -> bool:
    """A -global on a memory backend (prealloc, reserve, host-nodes...) or virtio-mem's prealloc:
    never in a dry run."""
    if text.startswith("driver="):
        props = keyval(text, None, "-global")
        driver, prop = props.get("driver", ""), props.get("property", "")
    else:
        driver, _, prop = text.partition("=")[0].rpartition(".")
    return driver.startswith("memory-backend") or (driver.startswith("virtio-mem") and
                                                   prop == "prealloc")


def _device(props: dict[str, str], kept_ids: set[str]) -> str:
    """A kept device; VGA models become plain VGA (the same legacy window, no host display); a
    bus that was dropped is left to QEMU's choice."""
    props = {k: v for k, v in props.items() if k != "prealloc"}  # virtio-mem would fill its blocks
    if props["driver"] in VGA_DEVICES and props["driver"] not in ("VGA", "secondary-vga"):
        props = {k: v for k, v in props.items() if k in ("driver", "id", "bus", "addr")}
        props["driver"] = "VGA"
    bus = props.get("bus")
    if bus and bus not in BUILTIN_BUSES and bus.rsplit(".", 1)[0] not in kept_ids:
        props.pop("bus")
        if props["driver"] not in MEMORY_DEVICES or props["driver"] == "virtio-mem-pci":
            props.pop("addr", None)
    return _join(props, "driver")


def _guest_only(driver: str, props: dict[str, str]) -> bool:
    """A device with nothing of the host's behind it: no VFIO, vhost or *-host device, and no
    netdev, chardev or drive (those are dropped)."""
    return not (driver.startswith(HOST_SIDE) or driver.endswith("-host")
                or {"netdev", "chardev", "drive"} & set(props))


def _without_backends(props: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in props.items() if k not in ("netdev", "drive")}


def _with_null_backends(props: dict[str, str], number: int) -> list[str]:
    """A device without its NIC backend, and on an empty read-only null-co node for its disk."""
    kept = {k: v for k, v in props.items() if k != "netdev"}
    if "drive" not in kept:
        return ["-device", _join(kept, "driver")]
    kept["drive"] = f"layoutd-null{number}"
    return ["-blockdev", f"driver=null-co,node-name=layoutd-null{number},read-only=on",
            "-device", _join(kept, "driver")]


def _join(props: dict[str, str], implied: str) -> str:
    first = [props[implied]] if implied in props else []
    rest = [f"{k}={v.replace(',', ',,')}" for k, v in props.items() if k != implied]
    return ",".join(first + rest)


def _size(text: str) -> int:
    return parse_size(text, what="align")


def _hugepage_size(text: str | None, facts: HostFacts) -> int:
    return _size(text) if text else facts.hugepage


def _memfd_path(safe: SafeArgv, name: str, size: int) -> str:
    safe.memfds.append(Memfd(name=name, size=size))
    return placeholder(len(safe.memfds) - 1)
