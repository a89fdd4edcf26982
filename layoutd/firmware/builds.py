"""The firmware builds layoutd models, known by the sha256 of their files.

A file whose hash is not here is not guessed at: `identify` says it is unknown. The spec's
`firmware: seabios | ovmf` names the Debian 12 build and its file.
"""

from layoutd.record import Record


class Build(Record, kw_only=False):
    family: str  # seabios | ovmf
    version: str  # 1.16.2, 1.16.3, 2022.11
    name: str  # for reports
    path: str = ""  # where Debian installs it
    file: str = ""  # what a plan names with -bios (OVMF's one-file image boots so, as it is)

    def at_least(self, version: str) -> bool:
        return _key(self.version) >= _key(version)


def _key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


SEABIOS_12 = Build("seabios", "1.16.2", "SeaBIOS 1.16.2 (Debian 12)", "/usr/share/seabios/bios-256k.bin",
                   file="/usr/share/seabios/bios-256k.bin")
SEABIOS_BPO = Build("seabios", "1.16.3", "SeaBIOS 1.16.3 (Debian 12 backports, Debian 13)",
                    "/usr/share/seabios/bios-256k.bin")
SEABIOS_SID = Build("seabios", "1.17.0", "SeaBIOS 1.17.0 (Debian sid)", "/usr/share/seabios/bios-256k.bin")
OVMF_12 = Build("ovmf", "2022.11", "OVMF edk2 2022.11 (Debian 12)", "/usr/share/OVMF/OVMF_CODE_4M.fd",
                file="/usr/share/ovmf/OVMF.fd")

# sha256 of each file Debian ships -> the build it is
KNOWN: dict[str, Build] = {
    "2da2018c7555e50b660a84a273a14a79cb87b9070fe6a90e9f151a53e357f7e6": SEABIOS_12,  # bios-256k.bin
    "7ba476745bd8d32d66b7a5bd12999e2445e7a345a4a72c30352b1d4a69a26e88": SEABIOS_12,  # bios.bin
    "328ee0205b22b3edc7ed4f7c8697626d64a5e9c289a8e349f49f0b9a8c3204a0": SEABIOS_BPO,  # bios-256k.bin
    "c3d4fcc602b096de0942e282b23a85e77de990ccfaa8f9ca05e518ca2141094a": SEABIOS_BPO,  # bios.bin
    "53005f576a0f9eaa7e799dde360b4a4fc1c7f52c3ef080e56619bbd6a148a27b": SEABIOS_SID,  # bios-256k.bin
    "06d31c1a07cb4f900d33276ec01f245b2259511802543cc4372c9caa79fa3644": SEABIOS_SID,  # bios.bin
    "b157d97b1f69729514feb7f201d2cbe4957f23ab77920e361fe9f822ba49ca4c": OVMF_12,  # OVMF_CODE_4M.fd
    "d50189a486d22af418198226a3a5bcb6ddac775590f6a808bd629474ee034d62": OVMF_12,  # OVMF_CODE_4M.secboot.fd
    "d9b568def24088c92f34b5479e0ed7e44d0a4d4cea8a0f5716719180bba48106": OVMF_12,  # OVMF_CODE.fd
    "6ee6a5db7a1443d17594f1e00e3cf2a2250bc1c95c8f9101bc49c9977ce11a68": OVMF_12,  # OVMF_CODE.secboot.fd
    "7b456907dd0786d415999e801a1ac4637b8ed4d7cf5378cfc6edbe5e574dd773": OVMF_12,  # ovmf/OVMF.fd
}

BY_NAME = {"seabios": SEABIOS_12, "ovmf": OVMF_12}



def default_for_qemu(version: str) -> Build | None:
    """QEMU's own default (-bios bios-256k.bin from its data folders) as Debian pairs them;
    None for a QEMU the version table does not know."""
    from layoutd.qemu.versions import is_modelled, row

    if not is_modelled(version):
        return None
    wanted = row(version).seabios
    return next((build for build in (SEABIOS_12, SEABIOS_BPO, SEABIOS_SID) if build.version == wanted),
                None)


def by_hash(digest: str) -> Build | None:
    return KNOWN.get(digest.lower())
