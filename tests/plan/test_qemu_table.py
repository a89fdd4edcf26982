"""The proof: real QEMU 7.2 and 10.0 build exactly every planned map, on every host of the table."""

import pytest

from layoutd.errors import NoAnswer
from tests.plan.support import collisions, plan_of, real_layout
from tests.support.qemu_runner import VERSIONS, Refused, qemu_binary

X86_HOSTS = ["amd-4gpu-1100g", "amd-epyc-two-gpus", "intel-4gpu-39bit", "intel-nic-msi-only"]
ARM_HOSTS = ["arm-hisilicon-d05", "arm-kunpeng-pci-windows", "arm-lx2160a-rmr"]

SMALL = "name: small\ncpu: {count: 2}\nmemory: {size: 8G}\n"
NUMA_HOTPLUG = """name: numa
cpu: {model: Skylake-Server, count: 4, phys_bits: 46}
memory: {size: 200G, hotplug: {slots: 4, max: 256G}}
numa:
  - {size: 120G, cpus: 0-1}
  - {size: 80G, cpus: 2-3}
"""
PC_3G = "name: pc3g\nmachine: pc\ncpu: {model: Skylake-Server}\nmemory: {size: 3G}\n"
EPYC_BIG = "name: epyc\ncpu: {model: EPYC, count: 4, phys_bits: 48}\nmemory: {size: 1100G}\n"
INTEL_BIG = (
    "name: intel\ncpu: {model: Skylake-Server, count: 4, phys_bits: 48}\n"
    "memory: {size: 1100G, hotplug: {slots: 2, max: 1200G}}\n"
)
HUGE = (
    "name: huge\ncpu: {model: Skylake-Server, count: 2}\n"
    "memory: {size: 140G, backend: memfd, hugepages: 1G, share: true}\n"
)
ARM = "name: arm\narch: aarch64\ncpu: {count: 2}\nmemory: {size: 6G, hotplug: {slots: 2, max: 8G}}\n"
# The guest CPU's vendor as QEMU decides it (the AMD 1 TiB rule): under TCG `max` is AMD and
# Dhyana (Hygon) is not; under KVM (the default) every model takes the host's; `vendor=` wins.
MAX_BIG = "name: maxcpu\naccel: tcg\ncpu: {model: max, count: 2, phys_bits: 48}\nmemory: {size: 1100G}\n"
DHYANA_BIG = (
    "name: dhyana\naccel: tcg\ncpu: {model: Dhyana, count: 2, phys_bits: 48}\nmemory: {size: 1100G}\n"
)
# Machine types before 7.1 have no AMD rule: RAM must be planned around the HT range.
OLD_TYPE = "name: oldtype\nmachine: pc-q35-6.2\ncpu: {model: host, count: 2}\nmemory: {size: 1100G}\n"
OLD_PC = "name: oldpc\nmachine: pc-i440fx-5.2\ncpu: {model: EPYC, phys_bits: 48}\nmemory: {size: 2T}\n"
VENDOR_AMD = (
    "name: asamd\ncpu: {model: Skylake-Server, vendor: amd, count: 2, phys_bits: 48}\nmemory: {size: 1100G}\n"
)
VENDOR_INTEL = (
    "name: asintel\ncpu: {model: EPYC, vendor: intel, count: 2, phys_bits: 48}\nmemory: {size: 1100G}\n"
)
# pc: max-ram-below-4g above 3 GiB still splits gigabyte-aligned at 3 GiB once RAM reaches it
PC_SPLIT = "name: pcsplit\nmachine: pc\ncpu: {model: Skylake-Server}\nmemory: {size: 3456M}\n"
ARM_NUMA = (
    "name: armnuma\narch: aarch64\ncpu: {count: 2}\nmemory: {size: 6G}\n"
    "numa: [{size: 2G, cpus: 0}, {size: 4G, cpus: 1}]\n"
)

CASES = [
    *[(SMALL, [host]) for host in X86_HOSTS],
    *[(NUMA_HOTPLUG, [host]) for host in ("intel-nic-msi-only", "hole-128g", "several-devices")],
    (PC_3G, ["rmrr-low"]),
    (SMALL, ["rmrr-low"]),
    (EPYC_BIG, ["amd-4gpu-1100g"]),
    (INTEL_BIG, ["amd-4gpu-1100g"]),
    (INTEL_BIG, ["amd-ht"]),
    (HUGE, ["hole-128g"]),
    (NUMA_HOTPLUG, ["migrate-a", "migrate-b"]),
    (SMALL, ["iommu-39bit"]),
    *[(ARM, [host]) for host in ARM_HOSTS],
    (ARM, ["arm-windows"]),
    (ARM_NUMA, ["arm-hisilicon-d05"]),
    (MAX_BIG, ["intel-ht"]),
    (DHYANA_BIG, ["amd-ht"]),
    (VENDOR_AMD, ["intel-ht"]),
    (VENDOR_INTEL, ["amd-ht"]),
    (PC_SPLIT, ["pc-hole-3g25"]),
    (OLD_TYPE, ["amd-ht"]),
    (OLD_TYPE, ["amd-epyc-two-gpus"]),
    (OLD_PC, ["amd-4gpu-1100g"]),
]


def _id(case: tuple[str, list[str]]) -> str:
    return case[0].split("\n")[0].removeprefix("name: ") + "@" + "+".join(case[1])


@pytest.mark.qemu
@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("case", CASES, ids=[_id(c) for c in CASES])
def test_real_qemu_builds_the_plan(case: tuple[str, list[str]], version: str) -> None:
    text, hosts = case
    spec, goal, plan = plan_of(text, hosts, version)
    binary = qemu_binary(version, plan.config.arch)
    result = real_layout(binary, plan)
    assert not isinstance(result, Refused), (plan.qemu_argv, result)
    ram, numa = result
    assert ram == [(r.start, r.end, r.id) for r in plan.layout], plan.qemu_argv
    assert collisions(plan, goal, ram) == []
    assert sum(end - start + 1 for start, end, _ in ram) + _rom_window(plan) == spec.memory.size
    if spec.numa:
        assert numa == {index: cell.size for index, cell in enumerate(spec.numa)}
    else:  # 7.2 prints "0 nodes" without -numa
        assert numa in ({}, {0: spec.memory.size})


def _rom_window(plan: object) -> int:
    """x86 maps 0xa0000-0xfffff as VGA and ROM, not RAM: 384 KiB of boot RAM is not in the flat view."""
    return 0x60000 if plan.config.arch == "x86_64" else 0


NO_CASES = [
    (
        "name: big\nmemory: {size: 600G}\ncpu: {phys_bits: 46}\n",
        ["iommu-39bit"],
        ["0x7fffffffff", "would work: memory.size"],
    ),
    (SMALL, ["intel-dl388g8-rmrr"], ["direct hole 0x0-0xffffff", "group 19", "nothing close works"]),
    (
        "name: p\ncpu: {model: EPYC, phys_bits: 40}\nmemory: {size: 1100G}\n",
        ["amd-4gpu-1100g"],
        ["phys-bits (40)", "cpu.phys_bits: 48"],
    ),
    (
        "name: a\narch: aarch64\nmemory: {size: 600G}\n",
        ["iommu-39bit"],
        ["0x7fffffffff", "would work: memory.size"],
    ),
]


@pytest.mark.parametrize("case", NO_CASES, ids=[c[1][0] + str(i) for i, c in enumerate(NO_CASES)])
def test_impossible_specs_are_explained(case: tuple[str, list[str], list[str]]) -> None:
    text, hosts, needles = case
    with pytest.raises(NoAnswer) as caught:
        plan_of(text, hosts)
    for needle in needles:
        assert needle in caught.value.message, caught.value.message
