"""Every QEMU version layoutd models, in one table, and every fact that differs between them.

`Version` is comparable (7.2 < 8.2.2 < 10.0). `ROWS` holds one `QemuRelease` per modelled binary
version (major.minor): how its facts are known, and each fact the model asks by name. Facts of a
machine type (the AMD 1 TiB rule, compact-highmem) go with the machine type's release, not the
binary's: `amd_1tib_rule(machine.release)`.

Adding a version: its release to MACHINE_RELEASES (if new) and one row to ROWS. Nothing else in
layoutd names a version number.
"""

from __future__ import annotations

import re

from layoutd.errors import InputError, NotModelled
from layoutd.qemu.cpu_models import CPU_MODELS
from layoutd.record import Record

_VERSION = re.compile(r"^\s*(\d+)\.(\d+)(?:\.(\d+))?\s*$")


class Version(Record, kw_only=False, order=True):
    major: int
    minor: int
    micro: int = 0

    @classmethod
    def parse(cls, text: str | Version) -> Version:
        """'7.2', '10.0', '8.2.2' (a Version passes through); anything else is an InputError."""
        if isinstance(text, Version):
            return text
        match = _VERSION.match(str(text))
        if not match:
            raise InputError(f"{text!r} is not a QEMU version such as 10.0 or 8.2.2")
        return cls(int(match.group(1)), int(match.group(2)), int(match.group(3) or 0))

    @property
    def release(self) -> Version:
        """major.minor: the row of the table, and the machine types' release."""
        return Version(self.major, self.minor)

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}" + (f".{self.micro}" if self.micro else "")


def v(text: str) -> Version:
    return Version.parse(text)


PROVEN = "proven"  # tests compare the model with the real binary (tests/qemu, tests/plan)
FROM_SOURCE = "modelled from source"  # read in QEMU's source, not run
DRY_RUN = "dry run only"  # the binary was started, not every rule compared


class QemuRelease(Record, kw_only=False):
    """One modelled QEMU binary version and the facts of it the model asks."""

    version: Version
    how_known: str  # PROVEN, FROM_SOURCE or DRY_RUN
    no_device_memory: str  # QEMU's words for a memory device on a machine without maxmem
    virt_no_device_memory: str  # the same on arm virt
    hole64_with_32bit_cpu: bool  # pc_max_used_gpa() counts the 64-bit PCI hole at phys-bits <= 32
    q35_vga_follows_smm: bool  # q35's SMRAM (VGA window over RAM) exists only with SMM on
    names_unknown_machine: bool  # "unsupported machine type: \"NAME\"" (else without the name)
    virtio_iommu_aw_bits: bool  # virtio-iommu-pci has the aw-bits property
    virtio_iommu_host_regions: bool  # virtio-iommu tells the guest each VFIO device's host
    # reserved regions (the holes of its usable IOVA ranges; hw/virtio/virtio-iommu.c, 9.1)
    seabios: str | None  # the SeaBIOS its Debian package ships as the default -bios (firmware/builds.py)
    strtosz_rewrite: bool  # qemu_strtosz as rewritten in 8.1: ".5G" accepted, "0x10M" refused
    phys_bits_unbounded: bool  # x86_cpu_realizefn checks phys-bits only against 32 (not 52)
    accel_errors_located: bool  # accelerator errors name the -accel option
    pae_gives_36_bits: bool  # a 32-bit CPU with PAE (not only PSE36) gets 36 phys-bits
    cpu_models: str  # its list of CPU model names in cpu_models.py (the binary's origin)
    virt_highmem_props: bool = True  # virt's compact-highmem, highmem-{redists,ecam,mmio,mmio-size}
    cxl_window_size_refusal: str = ("Size of a CXL fixed memory window must be a multiple of "
                                    "256MiB")
    x86_machines_removed: tuple[Version, ...] = ()  # modelled x86 types it no longer has
    virtio_gpu_hostmem: bool | None = False  # virtio-gpu-pci's hostmem= (a 64-bit BAR 4 of that
    # size, 11.1's query-pci); None: not known (10.0's Debian build here has no virtio-gpu module)

    def knows_cpu_model(self, name: str, arch: str) -> bool:
        """Whether `-cpu NAME` exists in this binary: its query-cpu-definitions (cpu_models.py)."""
        return name in CPU_MODELS[(arch, self.cpu_models)]

    def machine_releases(self, family: str) -> tuple[Version, ...]:
        """The versioned machine types of `family` this binary accepts and layoutd models."""
        gone = self.x86_machines_removed if family in ("q35", "pc") else ()
        return tuple(r for r in MACHINE_RELEASES
                     if OLDEST_MACHINE[family] <= r <= self.version and r not in gone)


_NO_MAXMEM_7 = ("memory devices (e.g. for memory hotplug) are not enabled, please specify the "
                "maxmem option")
_NO_MAXMEM_10 = ("the configuration is not prepared for memory devices (e.g., for memory "
                 "hotplug), consider specifying the maxmem option")

_BEFORE_5_2 = tuple(v(text) for text in (
    "2.5", "2.6", "2.7", "2.8", "2.9", "2.10", "2.11", "2.12", "3.0", "3.1", "4.0", "4.1", "4.2",
    "5.0", "5.1"))  # the modelled x86 machine types 11.1 no longer has

ROWS: dict[Version, QemuRelease] = {
    row.version: row for row in (
        QemuRelease(
            v("7.2"), PROVEN,
            no_device_memory=_NO_MAXMEM_7,
            virt_no_device_memory="memory devices (e.g. for memory hotplug) are not supported by "
                                  "the machine",  # virt 7.2 has no device-memory region at all
            hole64_with_32bit_cpu=False,  # "32-bit systems don't have hole64"
            q35_vga_follows_smm=False,
            names_unknown_machine=False,
            virtio_iommu_aw_bits=False,
            virtio_iommu_host_regions=False,  # no trace event virtio_iommu_host_resv_regions
            seabios="1.16.2",
            strtosz_rewrite=False,
            phys_bits_unbounded=False,
            accel_errors_located=False,
            pae_gives_36_bits=False,  # PSE36 only (checked with pentium,pae=on and qemu32)
            cpu_models="bookworm",
            virt_highmem_props=False,  # "Property 'virt-7.2-machine.highmem-mmio' not found"
            cxl_window_size_refusal="Size of a CXL fixed memory window must my a multiple of "
                                    "256MiB",  # sic
        ),
        QemuRelease(
            v("10.0"), PROVEN,
            no_device_memory=_NO_MAXMEM_10,
            virt_no_device_memory=_NO_MAXMEM_10,
            hole64_with_32bit_cpu=True,
            q35_vga_follows_smm=True,
            names_unknown_machine=True,
            virtio_iommu_aw_bits=True,
            virtio_iommu_host_regions=True,  # `-trace help` lists virtio_iommu_host_resv_regions
            seabios="1.16.3",
            strtosz_rewrite=True,
            phys_bits_unbounded=False,
            accel_errors_located=False,
            pae_gives_36_bits=True,
            cpu_models="bookworm-backports",
            virtio_gpu_hostmem=None,
        ),
        QemuRelease(
            v("11.1"), PROVEN,  # Debian sid's, in a debootstrapped root (scripts/sid-root.sh)
            no_device_memory=_NO_MAXMEM_10,
            virt_no_device_memory=_NO_MAXMEM_10,
            hole64_with_32bit_cpu=True,
            q35_vga_follows_smm=False,  # from 10.2 mch_realize makes "smram-region" first
            names_unknown_machine=True,
            virtio_iommu_aw_bits=True,
            virtio_iommu_host_regions=True,  # `-trace help` lists virtio_iommu_host_resv_regions
            seabios="1.17.0",  # sid's, proven in tests/firmware
            strtosz_rewrite=True,
            phys_bits_unbounded=True,  # the TARGET_PHYS_ADDR_SPACE_BITS (52) bound is gone
            accel_errors_located=True,
            pae_gives_36_bits=True,
            cpu_models="sid",
            x86_machines_removed=_BEFORE_5_2,  # gone from -machine help
            virtio_gpu_hostmem=True,
        ),
    )
}

DEFAULT = v("10.0")  # what `plan` models without --qemu-version

MACHINE_RELEASES = _BEFORE_5_2 + tuple(v(text) for text in (
    "5.2", "6.0", "6.1", "6.2", "7.0", "7.1", "7.2", "8.0", "8.1", "8.2", "9.0", "9.1", "9.2",
    "10.0", "10.1", "10.2", "11.0", "11.1"))
"""Versioned machine types (pc-q35-X, pc-i440fx-X, virt-X) layoutd models, oldest first."""

OLDEST_MACHINE = {"q35": v("2.5"), "pc": v("2.5"), "virt": v("7.1")}
"""x86 types 2.5-4.2 map RAM as 5.0 does (proven on 7.2 and 10.0; 2.4, the oldest 10.0 has,
differs); virt before 7.1 has no compact highmem."""


AMD_1TIB_SINCE = v("7.1")
"""x86 machine types from this release move high RAM to 1 TiB for AMD guests reaching the HT
range (enforce_amd_1tb_hole)."""


WITHOUT_AMD_1TIB = v("7.0")  # the newest machine types without that rule


def amd_1tib_rule(machine: Version) -> bool:
    return machine >= AMD_1TIB_SINCE


class DistroMachine(Record, kw_only=False):
    """A machine type a distribution's QEMU adds (RHEL, Proxmox, Ubuntu): not modelled, so the
    binary answers it by a dry run; the facts its public source says are kept here."""

    name: str  # as given: pc-q35-rhel9.6.0
    distro: str  # RHEL | Proxmox | Ubuntu
    family: str  # q35 | pc
    amd_1tib_rule: bool | None  # enforce_amd_1tb_hole; None: not read in the distro's source
    first_with_rule: str | None = None  # the distro's oldest type of this family with the rule


RHEL_AMD_1TIB_SINCE = (9, 2, 0)
"""RHEL's q35 types move high RAM to 1 TiB for AMD guests from pc-q35-rhel9.2.0: qemu-kvm's
patch "x86: rhel 9.2.0 machine type" (CentOS Stream / RHEL 9 qemu-kvm 7.2) sets
enforce_amd_1tb_hole = false in pc_q35_machine_rhel900_options (so in every older q35 type) and
in pc_machine_rhel760_options (pc-i440fx-rhel7.6.0, the only RHEL i440fx type)."""

_RHEL = re.compile(r"^pc-(q35|i440fx)-rhel(\d+)\.(\d+)\.(\d+)$")
_PROXMOX = re.compile(r"^(?:(q35|pc)|pc-(q35|i440fx)-(\d+\.\d+))\+pve(\d+)(?:\.pxe)?$")
_UBUNTU_SERIES = ("trusty|xenial|bionic|cosmic|disco|eoan|focal|groovy|hirsute|impish|jammy|kinetic|"
                  "lunar|mantic|noble|oracular|plucky|questing|resolute")
_UBUNTU = re.compile(rf"^(?:pc-(q35|i440fx)-(?:{_UBUNTU_SERIES})(?:-hpb)?|ubuntu(-q35)?(?:-hpb)?)$")


def distro_machine(name: str) -> DistroMachine | None:
    """The distribution a machine type name belongs to, or None (upstream, or unknown)."""
    found = _RHEL.match(name)
    if found:
        family = "q35" if found.group(1) == "q35" else "pc"
        release = tuple(int(found.group(i)) for i in (2, 3, 4))
        rule = family == "q35" and release >= RHEL_AMD_1TIB_SINCE
        return DistroMachine(name, "RHEL", family, rule,
                             "pc-q35-rhel9.2.0" if family == "q35" else None)
    found = _PROXMOX.match(name)
    if found:  # +pveN versions only Proxmox's own changes to upstream's X.Y type (SCSI drives,
        # S3/S4, NIC options, hv_emcs: qemu-server's PVE/QemuServer/Machine.pm); `q35+pve0` is
        # the binary's newest type
        family = "q35" if "q35" in (found.group(1), found.group(2)) else "pc"
        proxmox_rule = amd_1tib_rule(v(found.group(3))) if found.group(3) else None
        return DistroMachine(name, "Proxmox", family, proxmox_rule)
    found = _UBUNTU.match(name)
    if found:  # Ubuntu's types (and ubuntu/ubuntu-q35 aliases): upstream's of the same QEMU
        family = "pc" if found.group(1) == "i440fx" or (name.startswith("ubuntu") and
                                                         not found.group(2)) else "q35"
        return DistroMachine(name, "Ubuntu", family, None)
    return None


def checks_32bit_memory_end(machine: Version) -> bool:
    """pc machine types from 8.2 check a 32-bit CPU's RAM (or device memory) end against its
    phys-bits; older ones set broken_32bit_mem_addr_check (checked on 10.0: pc-i440fx-8.1 starts
    `-cpu pentium -m 8G`, 8.2 refuses it)."""
    return machine >= v("8.2")


def numa_mem_supported(machine: Version) -> bool:
    """Machine types up to 5.0 still take `-numa node,mem=` (numa_mem_supported)."""
    return machine <= v("5.0")


def canonical_region_names(machine: Version) -> bool:
    """x86 types up to 3.1 name file and memfd backends' regions by QOM path (`/objects/ID`)."""
    return machine <= v("3.1")


def compact_highmem(machine: Version) -> bool:
    """virt-7.2 and newer default to compact-highmem=on."""
    return machine >= v("7.2")


ANSWERED: dict[Version, str] = {
    v("6.2"): "Ubuntu 22.04",
    v("7.0"): "",
    v("7.1"): "",
    v("7.2"): "Debian 12 (7.2.x): tests/qemu, tests/plan, tests/kernel",
    v("8.0"): "",
    v("8.1"): "qemu_strtosz rewritten (util/cutils.c; strtosz_rewrite)",
    v("8.2"): "Ubuntu 24.04. pc types from 8.2 check a 32-bit CPU's RAM end "
              "(checks_32bit_memory_end)",
    v("9.0"): "",
    v("9.1"): "q35 `smm-ranges`: without SMM, mch_realize returns before \"smram-region\" and the "
              "VGA window stays RAM (hw/pci-host/q35.c; fixed by 11.1)",
    v("9.2"): "",
    v("10.0"): "Debian bookworm-backports (10.0.2): the same tests as 7.2",
    v("10.1"): "",
    v("10.2"): "q35 types from 10.2 default to a 64 MiB TSEG (pc_compat_10_1 keeps mch "
               "extended-tseg-mbytes=16; read on 11.1; not in the map at -S)",
    v("11.0"): "",
    v("11.1"): "Debian sid (11.1.3) in a debootstrapped root: the same tests as 7.2 and 10.0",
}
"""Every QEMU release layoutd answers for, with what to know about it. A release without a row
in ROWS is answered by a dry run of the binary: check and the hook report its map; plan prints a
plan made with the nearest older row's rules only if the dry run builds it."""


def how_known(version: str | Version) -> str:
    found = ROWS.get(Version.parse(version).release)
    return found.how_known if found is not None else DRY_RUN


def markdown_table() -> str:
    """ANSWERED as docs/qemu-model.md shows it (tests/core/test_versions_doc.py: they agree)."""
    lines = ["| QEMU | how layoutd knows it | notes |", "|---|---|---|"]
    for version, note in sorted(ANSWERED.items()):
        how = how_known(version)
        if how == DRY_RUN:
            note = "; ".join(filter(None, [note, f"plan uses {nearest_older(version)}'s rules"]))
        lines.append(f"| {version} | {how} | {note} |")
    return "\n".join(lines) + "\n"


def modelled() -> tuple[Version, ...]:
    return tuple(sorted(ROWS))


def proven() -> tuple[Version, ...]:
    return tuple(version for version in modelled() if ROWS[version].how_known == PROVEN)


def names() -> str:
    """'7.2, 10.0': for messages."""
    return ", ".join(str(version) for version in modelled())


def is_modelled(version: str | Version) -> bool:
    """Whether the table has a row for `version` (8.2.2 counts as 8.2)."""
    try:
        return Version.parse(version).release in ROWS
    except InputError:
        return False


def nearest_older(version: str | Version) -> Version:
    """The newest modelled version not newer than `version` (else the oldest modelled)."""
    wanted = Version.parse(version).release
    older = [known for known in modelled() if known <= wanted]
    return older[-1] if older else modelled()[0]


def row(version: str | Version) -> QemuRelease:
    """The row of a version (8.2.2 -> the 8.2 row); InputError when it is not modelled."""
    found = ROWS.get(Version.parse(version).release)
    if found is None:
        raise NotModelled(f"QEMU {version} is not modelled (modelled: {names()})")
    return found


def oldest_accepting(machine: Version) -> Version | None:
    """The oldest modelled QEMU that accepts machine types of release `machine`."""
    return next((version for version in modelled() if machine <= version), None)
