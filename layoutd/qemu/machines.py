"""Machine types: which versioned types each QEMU version accepts, and which are modelled.

Modelled: q35 and pc (i440fx) from 2.5 (2.4 is the oldest 10.0 has; it differs), virt from 7.1, up to the
binary's own version. x86 types before 7.1 lack the AMD 1 TiB rule (x86.amd_rule); types up to
5.0 take the legacy `-numa node,mem=`; up to 3.1, file and memfd backends' regions are named by
their QOM path (`/objects/ID`); nothing else of the RAM map differs down to 2.5 (the real-QEMU
table proves it on 7.2 and 10.0). virt before 7.1 has no compact highmem.
"""

from dataclasses import dataclass

from layoutd.errors import QemuRefusal, UnsupportedOption

VERSIONS = ("7.2", "10.0", "11.1")
RELEASES = ("7.1", "7.2", "8.0", "8.1", "8.2", "9.0", "9.1", "9.2", "10.0", "10.1", "10.2", "11.0",
            "11.1")
X86_LEGACY = ("2.5", "2.6", "2.7", "2.8", "2.9", "2.10", "2.11", "2.12", "3.0", "3.1",
              "4.0", "4.1", "4.2")
X86_OLD = (*X86_LEGACY, "5.0", "5.1", "5.2", "6.0", "6.1", "6.2", "7.0")  # modelled on x86 only
X86_REMOVED = {"11.1": (*X86_LEGACY, "5.0", "5.1")}  # types a version no longer has (-machine help)
FAMILIES = {"x86_64": {"q35": "pc-q35-", "pc": "pc-i440fx-"}, "aarch64": {"virt": "virt-"}}
DEFAULT_ALIAS = {"x86_64": "pc", "aarch64": None}
BOOT_RAM = {"q35": "pc.ram", "pc": "pc.ram", "virt": "mach-virt.ram"}  # the boot RAM region's name


@dataclass(frozen=True)
class Machine:
    family: str  # q35 | pc | virt
    release: str  # "7.2"
    name: str  # "pc-q35-7.2"

    def at_least(self, release: str) -> bool:
        return _key(self.release) >= _key(release)


def legacy_numa_mem(machine: Machine) -> bool:
    """QEMU keeps `-numa node,mem=` for machine types up to 5.0 (numa_mem_supported)."""
    return not machine.at_least("5.1")


def canonical_region_names(machine: Machine) -> bool:
    """Up to 3.1, file and memfd backends name their region by QOM path (`/objects/ID`)."""
    return machine.family in ("q35", "pc") and not machine.at_least("4.0")


def _key(release: str) -> tuple[int, ...]:
    return tuple(int(part) for part in release.split("."))


def at_least(version: str, release: str) -> bool:
    """QEMU `version` is `release` or newer ("10.0" >= "7.2")."""
    return _key(version) >= _key(release)


def releases_of(version: str, family: str = "virt") -> tuple[str, ...]:
    known = X86_OLD + RELEASES if family in ("q35", "pc") else RELEASES
    gone = X86_REMOVED.get(version, ()) if family in ("q35", "pc") else ()
    return tuple(r for r in known if _key(r) <= _key(version) and r not in gone)


def resolve(name: str | None, arch: str, version: str) -> Machine:
    """`q35` -> pc-q35-<version>; a versioned type must exist in that QEMU and be modelled."""
    chosen = name or DEFAULT_ALIAS[arch]
    if chosen is None:
        raise QemuRefusal("No machine specified, and there is no default\n"
                          "Use -machine help to list supported machines")
    families = FAMILIES[arch]
    if chosen in families:
        return Machine(chosen, version, families[chosen] + version)
    for family, prefix in families.items():
        if chosen.startswith(prefix):
            release = chosen[len(prefix):]
            if release in releases_of(version, family):
                return Machine(family, release, chosen)
            if release in RELEASES or _looks_like_release(release):
                return _refuse_release(chosen, release, version)
    if chosen in ("virt", "q35", "pc") or chosen.startswith(("virt-", "pc-")):
        raise QemuRefusal(_unsupported_type(chosen, version))
    raise UnsupportedOption(f"-machine {chosen}: not modelled (q35, pc and virt are)",
                            field="qemu argv")


def _looks_like_release(text: str) -> bool:
    return all(part.isdigit() for part in text.split(".")) and "." in text


def _unsupported_type(name: str, version: str) -> str:
    said = "unsupported machine type" if version == "7.2" else f"unsupported machine type: \"{name}\""
    return f"{said}\nUse -machine help to list supported machines"


def _refuse_release(name: str, release: str, version: str) -> Machine:
    if _key(release) > _key(version) or release in X86_REMOVED.get(version, ()):
        raise QemuRefusal(_unsupported_type(name, version))
    oldest = "2.5" if name.startswith("pc-") else "7.1"
    raise UnsupportedOption(f"-machine {name}: machine types older than {oldest} are not modelled",
                            field="qemu argv")
