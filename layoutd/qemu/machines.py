"""Machine types: which versioned types each QEMU version accepts, and which are modelled.

Modelled: q35, pc (i440fx) and virt from 7.1 up to the binary's own version. Older types differ
(no AMD 1 TiB rule before 7.1, legacy DIMM alignment, no compact highmem on virt <= 7.1).
"""

from dataclasses import dataclass

from layoutd.errors import QemuRefusal, UnsupportedOption

VERSIONS = ("7.2", "10.0")
RELEASES = ("7.1", "7.2", "8.0", "8.1", "8.2", "9.0", "9.1", "9.2", "10.0")
FAMILIES = {"x86_64": {"q35": "pc-q35-", "pc": "pc-i440fx-"}, "aarch64": {"virt": "virt-"}}
DEFAULT_ALIAS = {"x86_64": "pc", "aarch64": None}


@dataclass(frozen=True)
class Machine:
    family: str  # q35 | pc | virt
    release: str  # "7.2"
    name: str  # "pc-q35-7.2"

    def at_least(self, release: str) -> bool:
        return _key(self.release) >= _key(release)


def _key(release: str) -> tuple[int, ...]:
    return tuple(int(part) for part in release.split("."))


def releases_of(version: str) -> tuple[str, ...]:
    return tuple(r for r in RELEASES if _key(r) <= _key(version))


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
            if release in releases_of(version):
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
    if _key(release) > _key(version):
        raise QemuRefusal(_unsupported_type(name, version))
    raise UnsupportedOption(f"-machine {name}: machine types older than 7.1 are not modelled",
                            field="qemu argv")
