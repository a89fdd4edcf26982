"""The sysfs reader: a root directory read as `/` (a real host's `/`, or a copied tree).

Links (driver, iommu_group, iommu_groups/N/devices/BDF, BDF/iommu) may be real symlinks or regular
files whose content is the link target, as in copied trees: both resolve by the target's last part.
"""

import os
import re
from os.path import join
from typing import Literal

from layoutd.errors import HostUnavailable, InputError, ParseError
from layoutd.models.host import (
    ROM_BAR,
    Bar,
    Cpu,
    Device,
    HostFacts,
    HostPlatform,
    HugetlbfsMount,
    IommuUnit,
    RawGroup,
)

GROUPS = "sys/kernel/iommu_groups"
PCI_DEVICES = "sys/bus/pci/devices"
IOMMU_CLASS = "sys/class/iommu"
HUGEPAGES = "sys/kernel/mm/hugepages"
ARCH_OF_VENDOR = {"amd": "x86_64", "intel": "x86_64", "hygon": "x86_64", "arm": "aarch64"}

_REGION = re.compile(r"^0x([0-9a-fA-F]{1,16})\s+0x([0-9a-fA-F]{1,16})\s+(\S+)$")
_RESOURCE = re.compile(r"^0x([0-9a-fA-F]{1,16})\s+0x([0-9a-fA-F]{1,16})\s+0x([0-9a-fA-F]{1,16})$")
_BDF = re.compile(r"^(?:([0-9a-fA-F]{4}):)?([0-9a-fA-F]{2}):([0-9a-fA-F]{2})\.([0-7])$")


def normalize_bdf(text: str) -> str | None:
    """'41:00.0' or '0000:41:00.0' -> '0000:41:00.0'; None when it is not a PCI address."""
    match = _BDF.match(text.strip())
    if not match:
        return None
    domain, bus, slot, function = match.groups()
    return f"{(domain or '0000').lower()}:{bus.lower()}:{slot.lower()}.{function}"


def parse_reserved_regions(text: str, file: str) -> list[tuple[int, int, str]]:
    """`0x%016x 0x%016x TYPE` lines -> (start, inclusive end, type). Blank lines are skipped."""
    regions: list[tuple[int, int, str]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped:
            continue
        match = _REGION.match(stripped)
        if not match:
            raise ParseError(
                f"line {number} is not 'START END TYPE' with hex addresses (as the kernel writes "
                f"'0x00000000fee00000 0x00000000feefffff msi'): {stripped[:80]!r}",
                file=file,
            )
        start, end = int(match.group(1), 16), int(match.group(2), 16)
        if start > end:
            raise ParseError(
                f"line {number}: the region ends ({match.group(2)}) before it starts ({match.group(1)})",
                file=file,
            )
        regions.append((start, end, match.group(3)))
    return regions


def parse_resource(text: str, file: str) -> list[Bar]:
    """A device's sysfs `resource` (`0x%016llx 0x%016llx 0x%016llx`: start, end, flags per line)
    -> the used BARs and ROM (lines 0-6; the SR-IOV and bridge-window lines after them are not
    the device's own BARs)."""
    bars: list[Bar] = []
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped:
            continue
        match = _RESOURCE.match(stripped)
        if not match:
            raise ParseError(
                f"line {number} is not 'START END FLAGS' in hex (as the kernel writes "
                f"'0x000000f000000000 0x000000f3ffffffff 0x000000000014220c'): {stripped[:80]!r}",
                file=file,
            )
        start, end, flags = (int(group, 16) for group in match.groups())
        if number - 1 > ROM_BAR or flags == 0 or end == 0:
            continue
        if start > end:
            raise ParseError(f"line {number}: the BAR ends before it starts", file=file)
        bars.append(Bar(index=number - 1, start=start, end=end, flags=flags))
    return bars


def parse_cpuinfo(text: str) -> Cpu:
    """Vendor, physical address bits and model name from /proc/cpuinfo (first CPU)."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() not in fields:
            fields[key.strip()] = value.strip()
    vendor_id = fields.get("vendor_id", "")
    vendor: Literal["amd", "intel", "hygon", "arm", "unknown"] = "unknown"
    if vendor_id == "AuthenticAMD":
        vendor = "amd"
    elif vendor_id == "HygonGenuine":  # QEMU's AMD rule does not count Hygon as AMD
        vendor = "hygon"
    elif vendor_id == "GenuineIntel":
        vendor = "intel"
    elif "CPU implementer" in fields:
        vendor = "arm"
    bits = re.match(r"(\d+)\s+bits physical", fields.get("address sizes", ""))
    return Cpu(
        vendor=vendor,
        phys_bits=int(bits.group(1)) if bits else None,
        model_name=fields.get("model name"),
    )


def intel_top(cap_text: str, file: str) -> int:
    """The top IOVA of an Intel unit: 2^min(MGAW, widest SAGAW) - 1, from the VT-d CAP register."""
    try:
        cap = int(cap_text.strip(), 16)
    except ValueError:
        raise ParseError(f"{cap_text.strip()[:40]!r} is not a hex capability register", file=file) from None
    mgaw = ((cap >> 16) & 0x3F) + 1
    sagaw = (cap >> 8) & 0x1F
    widths = [width for bit, width in ((1, 39), (2, 48), (3, 57)) if sagaw & (1 << bit)]
    bits = min(mgaw, max(widths)) if widths else mgaw
    return (1 << bits) - 1


def link_name(path: str) -> str | None:
    """The last component of a link's target: a symlink, or a file holding the target text."""
    if os.path.islink(path):
        return os.readlink(path).rstrip("/").rsplit("/", 1)[-1]
    if os.path.isfile(path):
        with open(path, errors="replace") as handle:
            text = handle.read().strip()
        return text.rstrip("/").rsplit("/", 1)[-1] if text else None
    return None


def _read(path: str) -> str | None:
    """A file's text (os.path, not pathlib: pathlib costs every start ~5 ms of imports)."""
    try:
        with open(path, errors="replace") as handle:
            return handle.read()
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return None
    except PermissionError:
        raise HostUnavailable(f"permission denied reading {path}") from None


def read_tree(root: str, *, live: bool = False) -> HostFacts:
    """Every IOMMU group, device and unit under `root`. `live`: a missing IOMMU is exit 3."""
    base = root
    if not os.path.isdir(base):
        raise InputError("no such host tree (give a directory read as '/', a dump file, or 'live')",
                         file=root)
    groups_dir = join(base, GROUPS)
    if not os.path.isdir(groups_dir):
        if live:
            raise HostUnavailable(f"{groups_dir} does not exist: this kernel has no IOMMU support")
        raise InputError(f"not a host tree: {GROUPS} is missing", file=root)
    groups = [_read_group(base, entry) for entry in _group_dirs(groups_dir)]
    if not groups:
        raise HostUnavailable(
            f"{groups_dir} is empty: no IOMMU is enabled on this host (turn on VT-d/AMD-Vi in the "
            "firmware and boot with intel_iommu=on or amd_iommu=on), so no device can be given to a VM"
        )
    devices = _read_devices(base, groups)
    cpu = parse_cpuinfo(_read(join(base, "proc/cpuinfo")) or "")
    return HostFacts(
        cpu=cpu,
        devices=tuple(devices),
        groups=tuple(groups),
        iommus=tuple(_read_units(base)),
        root=str(root),
        platform=read_platform(base, os.uname().machine if live else None, cpu),
    )


def read_platform(base: str, arch: str | None, cpu: Cpu) -> HostPlatform:
    """Architecture (uname -m live; a tree's proc/sys/kernel/arch, else its CPU's), hugepage
    sizes and hugetlbfs mounts: what QEMU's memory backends take from the host."""
    arch = arch or (_read(join(base, "proc/sys/kernel/arch")) or "").strip() or ARCH_OF_VENDOR.get(cpu.vendor)
    meminfo = re.search(r"^Hugepagesize:\s+(\d+) kB", _read(join(base, "proc/meminfo")) or "", re.MULTILINE)
    default = int(meminfo.group(1)) * 1024 if meminfo else None
    sizes = sorted(int(m.group(1)) * 1024 for m in (re.match(r"hugepages-(\d+)kB$", name)
                                                    for name in _entries(join(base, HUGEPAGES))) if m)
    mounts = parse_hugetlbfs_mounts(_read(join(base, "proc/mounts")) or "", default)
    return HostPlatform(arch=arch, hugepage_size=default, hugepage_sizes=tuple(sizes),
                        hugetlbfs=tuple(mounts))


def parse_hugetlbfs_mounts(text: str, default: int | None) -> list[HugetlbfsMount]:
    """hugetlbfs lines of /proc/mounts; the kernel always shows pagesize=NK or NM."""
    found = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 4 or fields[2] != "hugetlbfs":
            continue
        size = re.search(r"(?:^|,)pagesize=(\d+)([KMG])", fields[3])
        page = int(size.group(1)) << {"K": 10, "M": 20, "G": 30}[size.group(2)] if size else default
        if page:
            path = fields[1].replace("\\040", " ")
            found.append(HugetlbfsMount(path=path, page_size=page))
    return found


def _group_dirs(groups_dir: str) -> list[tuple[int, str]]:
    found = []
    for name in os.listdir(groups_dir):
        if name.isdigit() and os.path.isdir(join(groups_dir, name)):
            found.append((int(name), join(groups_dir, name)))
    return sorted(found)


def _read_group(base: str, item: tuple[int, str]) -> RawGroup:
    number, path = item
    devices_dir = join(path, "devices")
    names = sorted(n for n in (normalize_bdf(name) for name in _entries(devices_dir)) if n)
    if not names:
        raise ParseError(
            f"IOMMU group {number} lists no devices (the kernel removes empty groups): "
            "the tree is incomplete",
            file=str(devices_dir),
        )
    regions_file = join(path, "reserved_regions")
    text = _read(regions_file)
    if text is None:
        raise ParseError("missing: every IOMMU group has a reserved_regions file", file=str(regions_file))
    parse_reserved_regions(text, str(regions_file))  # fail early, naming the file and line
    kind = _read(join(path, "type"))
    return RawGroup(
        number=number,
        type=kind.strip() or None if kind is not None else None,
        devices=tuple(names),
        reserved_regions=text,
    )


def _entries(directory: str) -> list[str]:
    """The names in a directory, sorted; none when it is missing."""
    try:
        return sorted(os.listdir(directory))
    except (FileNotFoundError, NotADirectoryError):
        return []


def _read_devices(base: str, groups: list[RawGroup]) -> list[Device]:
    devices: list[Device] = []
    for group in groups:
        for address in group.devices:
            where = join(base, PCI_DEVICES, address)
            linked = link_name(join(where, "iommu_group"))
            if linked is not None and linked != str(group.number):
                raise ParseError(
                    f"the device's iommu_group names group {linked}, but group {group.number} lists it",
                    file=join(where, "iommu_group"),
                )
            pci_class = _read(join(where, "class"))
            resource = _read(join(where, "resource"))
            devices.append(
                Device(
                    address=address,
                    group=group.number,
                    driver=link_name(join(where, "driver")),
                    pci_class=pci_class.strip().lower() or None if pci_class else None,
                    bars=tuple(parse_resource(resource, join(where, "resource"))) if resource else (),
                )
            )
    return devices


def _read_units(base: str) -> list[IommuUnit]:
    units = []
    for name in _entries(join(base, IOMMU_CLASS)):
        entry = join(base, IOMMU_CLASS, name)
        cap = _read(join(entry, "intel-iommu", "cap"))
        members = sorted(n for n in (normalize_bdf(e) for e in _entries(join(entry, "devices"))) if n)
        units.append(
            IommuUnit(name=name, cap=cap.strip() if cap else None, devices=tuple(members))
        )
    return units
