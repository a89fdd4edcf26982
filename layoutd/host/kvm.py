"""What KVM on this host can do that changes a guest's map: System Management Mode.

QEMU 10.0's q35 builds its SMRAM ranges (which map the legacy VGA window over RAM) only when
SMM is on, and `smm=auto` under KVM follows KVM_CAP_X86_SMM. Nested KVM often lacks it.
"""

import fcntl
import os

KVMIO = 0xAE
KVM_CHECK_EXTENSION = KVMIO << 8 | 0x03  # _IO(KVMIO, 0x03)
KVM_CAP_X86_SMM = 117


def kvm_smm(dev: str = "/dev") -> bool | None:
    """KVM_CHECK_EXTENSION(KVM_CAP_X86_SMM) on DEV/kvm; None when KVM cannot be asked."""
    try:
        fd = os.open(f"{dev}/kvm", os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        return fcntl.ioctl(fd, KVM_CHECK_EXTENSION, KVM_CAP_X86_SMM) > 0
    except OSError:
        return None
    finally:
        os.close(fd)
