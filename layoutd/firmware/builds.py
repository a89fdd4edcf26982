"""The firmware builds layoutd models, known by the sha256 of their files.

A file whose hash is not here is not guessed at: `identify` says it is unknown. The spec's
`firmware: ovmf` names Debian's OVMF file; `firmware: seabios` names no file: QEMU loads its own
bios-256k.bin, and the plan is made for the build that file is (files.identify). Debian 13's and sid's OVMF
are known by their files (read from the trixie and sid roots the test scripts make).
"""

from layoutd.qemu.versions import is_modelled, row
from layoutd.record import Record


class Build(Record, kw_only=False):
    family: str  # seabios | ovmf | armvirt (edk2 ArmVirtQemu, arm virt)
    version: str  # 1.16.2, 1.16.3, 2022.11
    name: str  # for reports
    path: str = ""  # where Debian installs it
    file: str = ""  # what a plan names with -bios (OVMF's one-file image boots so, as it is)

    def at_least(self, version: str) -> bool:
        return _key(self.version) >= _key(version)


def _key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


SEABIOS_12 = Build("seabios", "1.16.2", "SeaBIOS 1.16.2 (Debian 12)", "/usr/share/seabios/bios-256k.bin")
SEABIOS_BPO = Build("seabios", "1.16.3", "SeaBIOS 1.16.3 (Debian 12 backports, Debian 13)",
                    "/usr/share/seabios/bios-256k.bin")
SEABIOS_SID = Build("seabios", "1.17.0", "SeaBIOS 1.17.0 (Debian sid)", "/usr/share/seabios/bios-256k.bin")
OVMF_12 = Build("ovmf", "2022.11", "OVMF edk2 2022.11 (Debian 12)", "/usr/share/OVMF/OVMF_CODE_4M.fd",
                file="/usr/share/ovmf/OVMF.fd")
OVMF_13 = Build("ovmf", "2025.02", "OVMF edk2 2025.02 (Debian 13)", "/usr/share/OVMF/OVMF_CODE_4M.fd",
                file="/usr/share/ovmf/OVMF.fd")
OVMF_SID = Build("ovmf", "2026.08", "OVMF edk2 2026.08 (Debian sid)", "/usr/share/OVMF/OVMF_CODE_4M.fd",
                 file="/usr/share/ovmf/OVMF.fd")
EFI_ARM = "/usr/share/qemu-efi-aarch64/QEMU_EFI.fd"
EFI_ARM_PFLASH = "/usr/share/AAVMF/AAVMF_CODE.fd"  # the same build as a 64 MiB pflash image
ARMVIRT_12 = Build("armvirt", "2022.11", "edk2 2022.11 ArmVirtQemu (Debian 12)", EFI_ARM, file=EFI_ARM)
ARMVIRT_13 = Build("armvirt", "2025.02", "edk2 2025.02 ArmVirtQemu (Debian 13)", EFI_ARM, file=EFI_ARM)
ARMVIRT_SID = Build("armvirt", "2026.08", "edk2 2026.08 ArmVirtQemu (Debian sid)", EFI_ARM, file=EFI_ARM)

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
    # ovmf 2025.02-8+deb13u1
    "624e06de18b4fa535e90db7160d00d3d07d206422b89999bf1e27d920264e4e0": OVMF_13,  # OVMF_CODE_4M.fd
    "1a46295574430cfb7f825ee3e4dc64b052acbef08e310377ed7c64cb757a9dc1": OVMF_13,  # OVMF_CODE_4M.secboot.fd
    "9ee9f2382e0c6aa95c87fed4131f9c1080a084d8ef7bff3d8b89147bf2a34b1b": OVMF_13,  # ...secboot.strictnx.fd
    "14954040cc754ade0c625ac3470ea46d4c14318b5b1396de4ef77090203d76db": OVMF_13,  # ovmf/OVMF.fd
    # ovmf 2026.08+ds-2
    "7e34e3b83224968bb0714c0ebc88f75c5c37b4cc892c902e511ccc7a7c107f94": OVMF_SID,  # OVMF_CODE_4M.fd
    "b3cdbd705066cdf2bb0c0b40b77c341dc2a19e0db56c9af0a54fa1737ff3ee5b": OVMF_SID,  # OVMF_CODE_4M.secboot.fd
    "6038b93ae5f86a57cae845e85b2c0382a778406a6e1547b09be1488feca58413": OVMF_SID,  # ...secboot.strictnx.fd
    "6a3e8f438ad7269f5dfd884647587b88391fb23965bb3aa7902b519438dba129": OVMF_SID,  # ovmf/OVMF.fd
    # qemu-efi-aarch64: QEMU_EFI.fd (-bios) and the AAVMF pflash images
    "1794df260f8a1b1c938b5cee48f277327d8ce901a07ff44d2cd86ca043dae96a": ARMVIRT_12,  # QEMU_EFI.fd
    "5f8ef96257f27e2815270bc54cbf6923bb344cbb5cd72be5b392c2ee4939181a": ARMVIRT_12,  # AAVMF_CODE.fd
    "86493b7dc94bb917347116c600e7e94c12ee9b295aef990bed00a101237e0d69": ARMVIRT_13,  # QEMU_EFI.fd
    "5d3147294c56ce8cb636c57c181776a89bc7ba254274c35698dc5795758052d3": ARMVIRT_13,  # AAVMF_CODE.no-secboot
    "655bcbc1e715200d9b4bf417fa5b06d49e2998304712bf9ac121064e278dae56": ARMVIRT_13,  # AAVMF_CODE.secboot.fd
    "6570699231a9eb9327e76a2031a0909fdacd4f5f99f1be1566ac7acaa1211ea7": ARMVIRT_13,  # ...secboot.strictnx.fd
    "a996c72d5258dabf5fcb11a64bd22e0cc6673e3d193031feea02ac643f16dad5": ARMVIRT_SID,  # QEMU_EFI.fd
    "d8c9747a54225408332c83cba93f1e62160d5f72fccf78cb523ce2effe97c67f": ARMVIRT_SID,  # AAVMF_CODE.no-secboot
    "fd8c2fc61db5745ea19ce623eb7c64dfb65f65f4416d526355b099da1be5e6ab": ARMVIRT_SID,  # AAVMF_CODE.secboot.fd
    "23cdb8cb29e929104c09cecaa87eb1ca917ca8839d8953596871900eb1fc16aa": ARMVIRT_SID,  # ...secboot.strictnx.fd
}

BY_NAME = {"seabios": SEABIOS_12, "ovmf": OVMF_12}



def default_for_qemu(version: str) -> Build | None:
    """QEMU's own default (-bios bios-256k.bin from its data folders) as Debian pairs them;
    None for a QEMU the version table does not know."""
    if not is_modelled(version):
        return None
    wanted = row(version).seabios
    return next((build for build in (SEABIOS_12, SEABIOS_BPO, SEABIOS_SID) if build.version == wanted),
                None)


def by_hash(digest: str) -> Build | None:
    return KNOWN.get(digest.lower())
