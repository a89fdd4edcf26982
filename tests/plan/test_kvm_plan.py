"""A plan for this machine's own CPU under KVM (the default accelerator on x86_64), run as
emitted (`-accel kvm`, less the vfio-pci devices this machine lacks) by real QEMU 7.2 and 10.0:
the map QEMU builds is the planned one. The host is examples/hosts/amd-epyc-two-gpus (its IOMMU
holes, the HyperTransport range among them) with this machine's /proc/cpuinfo: under KVM every
CPU model takes that CPU's vendor, so whether RAM moves to 1 TiB depends on the machine the
test runs on, and the plan must follow it."""

import shutil
from pathlib import Path

import pytest

from layoutd.host import probe_host
from layoutd.planning import assemble
from layoutd.record import replace
from layoutd.solver import combine, solve_spec
from layoutd.specfile import parse_spec
from tests.conftest import EXAMPLES
from tests.plan.support import collisions, real_layout
from tests.support.qemu_runner import VERSIONS, Refused, qemu_binary, this_machine_cpu

pytestmark = pytest.mark.qemu

HT_HOLE = (0xFD00000000, 0xFFFFFFFFFF)
SPECS = [
    "name: passthrough\ncpu: {model: host, count: 2}\nmemory: {size: 1100G}\ndevices: [0000:2a:00.0]\n",
    "name: named\ncpu: {model: EPYC, count: 2, phys_bits: 46}\nmemory: {size: 1100G}\n"
    "devices: [0000:2a:00.0]\n",
    "name: maxcpu\ncpu: {model: max}\nmemory: {size: 8G, hotplug: {slots: 2, max: 1050G}}\n"
    "devices: [0000:2a:00.0]\n",
]


@pytest.fixture(scope="module")
def this_machine(tmp_path_factory: pytest.TempPathFactory) -> str:
    root = tmp_path_factory.mktemp("host") / "amd-holes-this-cpu"
    shutil.copytree(EXAMPLES / "hosts" / "amd-epyc-two-gpus", root, symlinks=True)
    (root / "proc" / "cpuinfo").write_text(Path("/proc/cpuinfo").read_text())
    return str(root)


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("text", SPECS, ids=lambda text: text.split("\n")[0].removeprefix("name: "))
def test_kvm_plan_runs_as_planned(text: str, version: str, this_machine: str) -> None:
    spec = parse_spec(text)
    view = probe_host(this_machine, list(spec.pci_devices))
    here = this_machine_cpu()
    view = replace(view, cpu=replace(view.cpu, kvm_smm=here.kvm_smm))
    goal = combine([view], [view.source])
    plan = assemble(spec, goal, solve_spec(spec, goal, version), version)
    assert plan.qemu_argv[:2] == ("-accel", "kvm")
    assert plan.host_cpu is not None and plan.host_cpu.vendor == here.vendor
    result = real_layout(qemu_binary(version), plan)
    assert not isinstance(result, Refused), (plan.qemu_argv, result)
    ram, _ = result
    assert ram == [(r.start, r.end, r.id) for r in plan.layout], plan.qemu_argv
    assert collisions(plan, goal, ram) == []
    assert all(end < HT_HOLE[0] or start > HT_HOLE[1] for start, end, _ in ram)
    boot_high = [start for start, _, name in ram if start >= 1 << 32 and "dimm" not in name]
    if here.vendor != "amd" and boot_high:
        assert boot_high[0] == 1 << 32  # an Intel host makes every model Intel: no move to 1 TiB
