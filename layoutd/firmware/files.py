"""Which firmware build a VM boots: the file named on its command line, known by its sha256.

The only module of layoutd.firmware that reads files. No file named: QEMU's own bios-256k.bin,
taken as the SeaBIOS Debian ships with that QEMU version (and said so).
"""

import hashlib
import os

from layoutd.firmware.builds import Build, by_hash, default_for_qemu

SEARCH = ("/usr/share/seabios", "/usr/share/qemu", "/usr/share/OVMF", "/usr/share/ovmf",
          "/usr/share/qemu-efi-aarch64", "/usr/share/AAVMF")


def identify(path: str | None, version: str, arch: str = "x86_64"
             ) -> tuple[Build | None, str | None]:
    """(the build, a note for the report); the build is None when layoutd does not know it."""
    if arch == "aarch64" and path is None:
        return None, ("arm virt without firmware: the guest kernel assigns the BARs, which "
                      "layoutd does not model")
    if path is None:
        build = default_for_qemu(version)
        if build is None:
            return None, f"QEMU {version}'s own firmware is not a build layoutd knows"
        return build, (f"no firmware named: QEMU {version}'s own bios-256k.bin, taken as "
                       f"{build.name}")
    found = _locate(path)
    if found is None:
        return None, f"firmware {path}: no such file, so its BAR placement is not predicted"

    try:
        with open(found, "rb") as handle:
            digest = hashlib.sha256(handle.read()).hexdigest()
    except OSError as error:
        return None, f"firmware {path}: cannot read it ({error.strerror})"
    build = by_hash(digest)
    if build is None:
        return None, (f"firmware {path} (sha256 {digest[:16]}...) is not a build layoutd knows: "
                      "where it puts the BARs is not predicted")
    if (build.family == "armvirt") != (arch == "aarch64"):
        return None, f"firmware {path} is {build.name}, not a firmware for {arch}"
    return build, None


def _locate(path: str) -> str | None:
    if os.path.isfile(path):
        return path
    if not os.path.isabs(path):
        for folder in SEARCH:
            if os.path.isfile(os.path.join(folder, path)):
                return os.path.join(folder, path)
    return None
