
"""Under KVM the guest CPU takes the host's vendor and physical address bits (`-cpu host`,
`-cpu max`, host-phys-bits=on). This machine's real CPU (/proc/cpuinfo, read by layoutd's own
parser) is the host, and real QEMU 7.2 and 10.0 under `-accel kvm`, paused with -S, the judge.
Where KVM cannot run `-accel kvm -cpu host` (no /dev/kvm, or a nested KVM that refuses the host
CPU) the runner skips them with QEMU's words: the one skip CI allows."""


import pytest

from layoutd.models.host import Cpu
from tests.conftest import need
from tests.qemu.compare import compare
from tests.support.qemu_runner import VERSIONS, this_machine_cpu

pytestmark = pytest.mark.qemu

# {bits} is the host's physical address bits; {over} a maxmem whose layout ends past 2^bits.
LINES = [
    "-accel kvm -machine q35 -cpu host -m 4G",
    "-accel kvm -machine q35 -cpu max -m 6G,slots=2,maxmem=64G",
    "-accel kvm -machine q35 -cpu host,host-phys-bits-limit=39 -m 4G,slots=2,maxmem=400G",
    "-accel kvm -machine q35 -cpu host,host-phys-bits-limit=39 -m 4G,slots=2,maxmem=2T",
    "-accel kvm -machine q35 -cpu host,host-phys-bits=off -m 4G,slots=2,maxmem=2T",
    "-accel kvm -machine q35 -cpu host,phys-bits=42 -m 4G,slots=2,maxmem=2T",
    "-accel kvm -machine q35 -cpu host,vendor=AuthenticAMD -m 4G,slots=2,maxmem=1000G",
    "-accel kvm -machine pc -cpu host,vendor=AuthenticAMD -m 4G,slots=2,maxmem=1000G",
    "-accel kvm -machine q35 -cpu host -m 4G,slots=2,maxmem={over}",
    "-accel kvm -machine q35 -cpu EPYC -m 4G,slots=2,maxmem=1000G",
    "-accel kvm -machine q35 -cpu EPYC,host-phys-bits=on -m 4G,slots=2,maxmem=1000G",
    "-enable-kvm -machine q35 -cpu Skylake-Server-v1 -m 2G",
    "-accel kvm -machine q35 -cpu qemu64 -m 2G,slots=2,maxmem=1000G",
    "-accel kvm -machine q35 -cpu EPYC,vendor=AuthenticAMD -m 4G,slots=2,maxmem=1000G",
    "-accel kvm -machine q35 -cpu Skylake-Server,vendor=AuthenticAMD,phys-bits=48 -m 1100G",
    # SMM (KVM_CAP_X86_SMM): QEMU 10.0's q35 maps the VGA window over RAM only with SMM on
    "-accel kvm -machine q35 -cpu host -m 2G -device VGA",
    "-accel kvm -machine pc -cpu host -m 2G -device VGA",
    "-accel kvm -machine pc-q35-7.2 -cpu host -m 2G -device VGA",
    "-accel kvm -machine q35,smm=off -cpu host -m 2G -device VGA",
    "-accel kvm -machine q35,smm=on -cpu host -m 2G -device VGA",
]


def _host_cpu() -> Cpu:
    cpu = this_machine_cpu()
    need(cpu.vendor in ("amd", "intel") and cpu.phys_bits is not None,
         f"an x86 host CPU with known address bits (/proc/cpuinfo says {cpu.vendor}, {cpu.phys_bits})")
    return cpu


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("line", LINES)
def test_kvm_matches_qemu(line: str, version: str) -> None:
    cpu = _host_cpu()
    assert cpu.phys_bits is not None
    over = f"{(1 << cpu.phys_bits) // (1 << 30)}G"
    args = line.replace("{over}", over).split()
    compare(version, "x86_64", args, host_cpu=cpu)
