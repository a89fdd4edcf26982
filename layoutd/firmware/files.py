"""Which firmware build a VM boots: the file named on its command line, known by its sha256.

The only module of layoutd.firmware that reads files. No file named: QEMU's own bios-256k.bin,
the file QEMU would load from its folders (`dirs`: the command line's -L folders, then the
binary's own, `QEMU -L help`), else, when no binary is asked, the SeaBIOS Debian ships with that
QEMU version (and said so). A relative -bios name is searched as QEMU searches it.
"""

import os
from collections.abc import Sequence

from layoutd.firmware.builds import Build, by_hash, default_for_qemu

SEARCH = ("/usr/share/seabios", "/usr/share/qemu", "/usr/share/OVMF", "/usr/share/ovmf",
          "/usr/share/qemu-efi-aarch64", "/usr/share/AAVMF")


OWN_BIOS = "bios-256k.bin"  # what QEMU loads on pc and q35 without -bios (its SeaBIOS)


def identify(path: str | None, version: str, arch: str = "x86_64",
             dirs: Sequence[str] | None = None) -> tuple[Build | None, str | None]:
    """(the build, a note): with a build, which file it is when no file was named; else why
    not. The build is None when layoutd does not know it.
    `dirs`: the folders QEMU searches (None: no binary was asked, only the -L folders if any)."""
    if arch == "aarch64" and path is None:
        return None, ("arm virt without firmware: the guest kernel assigns the BARs, which "
                      "layoutd does not model")
    if path is None:
        own = _in(OWN_BIOS, dirs or ())
        if own is None and dirs is None:
            build = default_for_qemu(version)
            if build is None:
                return None, f"QEMU {version}'s own firmware is not a build layoutd knows"
            return build, f"QEMU's own {OWN_BIOS} as Debian ships it with QEMU {version}"
        if own is None:
            return None, (f"QEMU {version} has no {OWN_BIOS} in its folders "
                          f"({', '.join(dirs or ())}): its BAR placement is not predicted")
        build, note = _hashed(own, arch)
        if build is None:
            return None, note
        return build, f"QEMU's own {OWN_BIOS}, {own}"
    found = path if os.path.isfile(path) else None
    if found is None and not os.path.isabs(path):
        found = _in(path, [*(dirs or ()), *SEARCH])
    if found is None:
        return None, f"firmware {path}: no such file, so its BAR placement is not predicted"
    return _hashed(found, arch, path)


def _hashed(found: str, arch: str, path: str | None = None) -> tuple[Build | None, str | None]:
    """The build of the file at `found` by its sha256 (`path`: as the command line named it)."""
    said = path or found
    try:
        with open(found, "rb") as handle:
            import hashlib  # OpenSSL, ~2.5 ms of every start: only a named firmware file is hashed

            digest = hashlib.sha256(handle.read()).hexdigest()
    except OSError as error:
        return None, f"firmware {said}: cannot read it ({error.strerror})"
    build = by_hash(digest)
    if build is None:
        return None, (f"firmware {said} (sha256 {digest[:16]}...) is not a build layoutd knows: "
                      "where it puts the BARs is not predicted")
    if (build.family == "armvirt") != (arch == "aarch64"):
        return None, f"firmware {said} is {build.name}, not a firmware for {arch}"
    return build, None


def _in(name: str, folders: Sequence[str]) -> str | None:
    """The first folder's `name`, as QEMU's qemu_find_file looks."""
    for folder in folders:
        if os.path.isfile(os.path.join(folder, name)):
            return os.path.join(folder, name)
    return None
