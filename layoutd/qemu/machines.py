"""Machine types: which versioned types a QEMU version accepts, and which are modelled.

Modelled: q35 and pc (i440fx) from 2.5, virt from 7.1, up to the binary's own version
(versions.MACHINE_RELEASES, versions.OLDEST_MACHINE). x86 types before 7.1 lack the AMD 1 TiB
rule (versions.amd_1tib_rule), up to 5.0 take `-numa node,mem=` (versions.numa_mem_supported),
up to 3.1 name file and memfd regions by QOM path (versions.canonical_region_names); nothing
else of the RAM map differs down to 2.5 (the real-QEMU table proves it).
"""

from layoutd.errors import NotModelled, QemuRefusal, UnsupportedOption
from layoutd.qemu.versions import OLDEST_MACHINE, QemuRelease, Version, distro_machine
from layoutd.record import Record

FAMILIES = {"x86_64": {"q35": "pc-q35-", "pc": "pc-i440fx-"}, "aarch64": {"virt": "virt-"}}
DEFAULT_ALIAS = {"x86_64": "pc", "aarch64": None}
BOOT_RAM = {"q35": "pc.ram", "pc": "pc.ram", "virt": "mach-virt.ram"}  # the boot RAM region's name


class Machine(Record, kw_only=False):
    family: str  # q35 | pc | virt
    release: Version  # 7.2
    name: str  # "pc-q35-7.2"


def resolve(name: str | None, arch: str, qemu: QemuRelease) -> Machine:
    """`q35` -> pc-q35-<version>; a versioned type must exist in that QEMU and be modelled."""
    chosen = proxmox_base(name or DEFAULT_ALIAS[arch] or "") or None
    if chosen is None:
        raise QemuRefusal("No machine specified, and there is no default\n"
                          "Use -machine help to list supported machines")
    families = FAMILIES[arch]
    if chosen in families:
        return Machine(chosen, qemu.version, families[chosen] + str(qemu.version))
    for family, prefix in families.items():
        if chosen.startswith(prefix):
            release = _release(chosen[len(prefix):])
            if release in qemu.machine_releases(family):
                return Machine(family, release, chosen)
            if release is not None:
                return _refuse_release(chosen, family, release, qemu)
    distro = distro_machine(chosen)
    if distro is not None or (arch == "x86_64" and chosen.startswith(("pc-q35-", "pc-i440fx-"))
                              and _release(chosen.split("-", 2)[2]) is None):
        who = f"a {distro.distro} machine type" if distro else "not an upstream machine type"
        raise NotModelled(f"-machine {chosen}: {who}, which layoutd does not model; the QEMU "
                          "binary that has it answers (a dry run)", field="qemu argv")
    if chosen in ("virt", "q35", "pc") or chosen.startswith(("virt-", "pc-")):
        raise QemuRefusal(_unsupported_type(chosen, qemu))
    raise UnsupportedOption(f"-machine {chosen}: not modelled (q35, pc and virt are)",
                            field="qemu argv")


def proxmox_base(name: str) -> str:
    """Proxmox's `pc-q35-9.2+pve1`, `q35+pve0`, `...+pve0.pxe` -> the upstream type. Its +pveN
    versions only Proxmox's own changes (qemu-server's PVE/QemuServer/Machine.pm lists each:
    SCSI drives, S3/S4, NIC options, hv_emcs); none moves memory. Other names pass unchanged."""
    distro = distro_machine(name)
    if distro is None or distro.distro != "Proxmox":
        return name
    return name.split("+pve", 1)[0]


def _release(text: str) -> Version | None:
    """major.minor (or major.minor.micro, which no QEMU accepts) -> Version; None for 'x'."""
    parts = text.split(".")
    if len(parts) not in (2, 3) or not all(part.isdigit() for part in parts):
        return None
    return Version(*(int(part) for part in parts))


def _unsupported_type(name: str, qemu: QemuRelease) -> str:
    said = f"unsupported machine type: \"{name}\"" if qemu.names_unknown_machine else (
        "unsupported machine type")
    return f"{said}\nUse -machine help to list supported machines"


def _refuse_release(name: str, family: str, release: Version, qemu: QemuRelease) -> Machine:
    removed = family in ("q35", "pc") and release in qemu.x86_machines_removed
    if release > qemu.version or removed:
        raise QemuRefusal(_unsupported_type(name, qemu))
    raise UnsupportedOption(f"-machine {name}: machine types older than "
                            f"{OLDEST_MACHINE[family]} are not modelled", field="qemu argv")
