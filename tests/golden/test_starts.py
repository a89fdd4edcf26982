"""Every golden plan's command line starts on the real QEMU it is for, and on every other proven
version planned the same way: a plan's command line must start as it is.

The dry run's start-up check (`dry_run(..., whole=True)`): the whole command line as the plan
gives it, paused (-S), with only host memory made safe (backends unpopulated, no prealloc or
hugetlbfs pages) and each vfio-pci device replaced by stand-ins of its 64-bit BARs' sizes
(tests/firmware/test_plan_boot.py's). Every other device (virtio-iommu-pci, intel-iommu, memory devices)
and option stays, so QEMU's refusals of them show here. A TCG plan's map must be QEMU's; a KVM
plan is for its host's CPU, so only its start counts, and where KVM here cannot run the CPU it
starts on TCG (-cpu host as max) instead.
"""

from pathlib import Path

import pytest

from layoutd.dryrun import differences, dry_run
from layoutd.emit.plan import render
from layoutd.errors import LayoutdError
from layoutd.planning import make_plan
from layoutd.specfile import load_spec
from tests.conftest import EXAMPLES, ROOT, kvm_refusal, need
from tests.firmware.test_plan_boot import stand_ins
from tests.support.qemu_runner import VERSIONS, qemu_binary, wrapper

pytestmark = pytest.mark.qemu  # starts real QEMU or firmware: not in -m "not qemu"

GOLDEN = Path(__file__).parent / "plan"
GOLDEN_VERSION = "10.0"  # what tests/golden/test_golden.py plans with
CASES = sorted(path.relative_to(GOLDEN) for path in GOLDEN.glob("*/*.sh"))


@pytest.fixture(autouse=True)
def _from_the_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    monkeypatch.delenv("LAYOUTD_HOST", raising=False)


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("case", CASES, ids=[str(case.with_suffix("")) for case in CASES])
def test_plan_starts_on_real_qemu(tmp_path: Path, case: Path, version: str) -> None:
    spec, hosts = case.parent.name, case.stem.split("+")
    try:
        plan = make_plan(load_spec(f"examples/specs/{spec}.yaml"),
                         [f"examples/hosts/{host}" for host in hosts], version)
    except LayoutdError as error:  # this version cannot have the plan: nothing to start
        assert version != GOLDEN_VERSION, error.render()
        return
    if version == GOLDEN_VERSION:  # the very command line users copy from the golden file
        assert render(plan, "argv") == (GOLDEN / case).read_text()
    arch = plan.config.arch
    firmware = plan.config.firmware
    need(firmware is None or Path(firmware).exists(), f"the firmware {firmware}")
    binary = str(wrapper(qemu_binary(version, arch), tmp_path / "bin"))
    argv, _ = stand_ins(list(plan.qemu_argv), EXAMPLES / "hosts" / hosts[0])
    kvm = plan.config.accel == "kvm"
    bits = plan.host_cpu.phys_bits if plan.host_cpu else None
    if kvm and kvm_refusal((binary,)) is not None:
        argv = on_tcg(argv, bits)
    try:
        run = dry_run(binary, argv, arch, whole=True)
    except LayoutdError as error:
        if not (kvm and "failed to set MSR" in error.render()):
            pytest.fail(f"QEMU {version} refuses the plan's command line {' '.join(argv)}: "
                        f"{error.render()}", pytrace=False)
        run = dry_run(binary, on_tcg(argv, bits), arch, whole=True)  # KVM here cannot run this CPU
    if not kvm:
        assert differences(plan.layout, run.vm.layout()) == []


def on_tcg(argv: list[str], phys_bits: int | None) -> list[str]:
    """-accel kvm as tcg, -cpu host as max with the planned host's phys-bits (the rest as it is)."""
    out = list(argv)
    for index, word in enumerate(out[:-1]):
        if word == "-accel" and out[index + 1] == "kvm":
            out[index + 1] = "tcg"
        if word == "-cpu" and out[index + 1].split(",")[0] == "host":
            out[index + 1] = "max" + out[index + 1][len("host"):]
            if "phys-bits=" not in out[index + 1] and phys_bits:
                out[index + 1] += f",phys-bits={phys_bits}"
    return out
