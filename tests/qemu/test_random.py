"""Random command lines: the prediction must equal what real QEMU builds (or refuses)."""

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import need
from tests.qemu.compare import compare
from tests.support.qemu_runner import VERSIONS, aarch64_firmware

pytestmark = pytest.mark.qemu

GiB = 1 << 30
MiB = 1 << 20
X86_CPUS = ["qemu64", "EPYC", "EPYC-Rome", "Skylake-Server", "Cascadelake-Server", "kvm64",
            "pentium2", "qemu32"]
# 80 x86 and 40 virt lines in all, shared by the three versions (the suite's time stays put)
SETTINGS = settings(max_examples=27, deadline=None, derandomize=False,
                    suppress_health_check=[HealthCheck.too_slow])


def _overcommit() -> bool:
    return Path("/proc/sys/vm/overcommit_memory").read_text().strip() == "1"


@st.composite
def memory_devices(draw: st.DrawFn, base_guess: int) -> list[str]:
    """Backends and devices; `addr` drawn near where device memory starts (may be refused)."""
    args: list[str] = []
    for index in range(draw(st.integers(0, 3))):
        size = draw(st.sampled_from([2 * MiB, 6 * MiB, 128 * MiB, GiB, 3 * GiB]))
        backend = draw(st.sampled_from(["memory-backend-ram", "memory-backend-memfd"]))
        args += ["-object", f"{backend},id=b{index},size={size}"]
        kind = draw(st.sampled_from(["pc-dimm", "pc-dimm", "virtio-mem-pci"]))
        device = f"{kind},id=dev{index},memdev=b{index}"
        if draw(st.booleans()):
            key = "memaddr" if kind == "virtio-mem-pci" else "addr"
            device += f",{key}={base_guess + draw(st.integers(0, 8)) * GiB // 2:#x}"
        args += ["-device", device]
    return args


@st.composite
def x86_lines(draw: st.DrawFn) -> list[str]:
    family = draw(st.sampled_from(["q35", "pc"]))
    prefix = "pc-q35-" if family == "q35" else "pc-i440fx-"
    machine = draw(st.sampled_from([family, family, prefix + "5.0", prefix + "6.2", prefix + "7.0",
                                    prefix + "7.1"]))
    if draw(st.booleans()):
        machine += f",max-ram-below-4g={draw(st.sampled_from(['1G', '1536M', '2G', '3G', '4G']))}"
    cpu = draw(st.sampled_from(X86_CPUS))
    bits = draw(st.sampled_from([None, None, 40, 44, 48]))
    if bits:
        cpu += f",phys-bits={bits}"
    ram = draw(st.sampled_from([512 * MiB, 2 * GiB, 2816 * MiB, 3584 * MiB, 6 * GiB, 64 * GiB,
                                900 * GiB, 978 * GiB, 1100 * GiB, 2048 * GiB]))
    memory = f"{ram // MiB}M"
    devices: list[str] = []
    if draw(st.booleans()):
        slots = draw(st.integers(0, 4))
        maxmem = ram + draw(st.sampled_from([4 * GiB, 16 * GiB, 200 * GiB]))
        memory += f",slots={slots},maxmem={maxmem // MiB}M"
        devices = draw(memory_devices(4 * GiB + ram))
    args = ["-machine", machine, "-cpu", cpu, "-m", memory, *devices]
    if draw(st.booleans()):
        size = draw(st.sampled_from(["0", "1G", "64G"]))
        bridge = "q35-pcihost" if family == "q35" else "i440FX-pcihost"
        args += ["-global", f"{bridge}.pci-hole64-size={size}"]
    if ram >= 4 * GiB and draw(st.booleans()):
        half = ram // 2 // MiB
        args += ["-object", f"memory-backend-ram,id=n0,size={half}M,reserve=off",
                 "-object", f"memory-backend-ram,id=n1,size={ram // MiB - half}M,reserve=off",
                 "-numa", "node,memdev=n0", "-numa", "node,memdev=n1"]
    return args


@st.composite
def virt_lines(draw: st.DrawFn) -> list[str]:
    cpu = draw(st.sampled_from(["max", "cortex-a57", "cortex-a53"]))
    ram = draw(st.sampled_from([512 * MiB, 2 * GiB, 3 * GiB + 512 * MiB, 200 * GiB, 1024 * GiB]))
    memory = f"{ram // MiB}M"
    args = ["-machine", draw(st.sampled_from(["virt", "virt,gic-version=3", "virt,highmem=off"])),
            "-cpu", cpu]
    if draw(st.booleans()):
        slots = draw(st.integers(0, 3))
        maxmem = ram + draw(st.sampled_from([4 * GiB, 64 * GiB]))
        memory += f",slots={slots},maxmem={maxmem // MiB}M"
        args += draw(memory_devices(GiB + ram))
        if draw(st.booleans()):
            args += aarch64_firmware()
    return [*args, "-m", memory]


@pytest.mark.parametrize("version", VERSIONS)
@SETTINGS
@given(line=x86_lines())
def test_random_x86_matches_qemu(version: str, line: list[str]) -> None:
    need(_overcommit(), "vm.overcommit_memory=1 (guests of up to 2 TiB start paused)")
    compare(version, "x86_64", line)


@pytest.mark.parametrize("version", VERSIONS)
@settings(max_examples=14, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(line=virt_lines())
def test_random_virt_matches_qemu(version: str, line: list[str]) -> None:
    need(_overcommit(), "vm.overcommit_memory=1 (guests of up to 1 TiB start paused)")
    compare(version, "aarch64", line)
