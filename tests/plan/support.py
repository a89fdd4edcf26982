"""Plan a spec against hosts in-process, and read back what real QEMU built from the plan."""

import json
import re
from collections.abc import Sequence
from typing import Any

from layoutd.collisions import find_collisions
from layoutd.models.plan import Plan
from layoutd.models.spec import VmSpec
from layoutd.planning import assemble
from layoutd.solver import Target, solve_spec
from layoutd.specfile import parse_spec
from tests.conftest import EXAMPLES
from tests.plan.hosts import HARD, target
from tests.support.qemu_runner import QemuBinary, Refused, aarch64_firmware, started, this_machine_cpu


def host_target(names: Sequence[str]) -> Target:
    """HARD names are synthetic; anything else is a tree under examples/hosts/."""
    from layoutd.host import probe_host

    if all(name in HARD for name in names):
        return target(*(HARD[name] for name in names))
    from layoutd.solver import combine

    views = [probe_host(str(EXAMPLES / "hosts" / name), None) for name in names]
    return combine(views, [v.source for v in views])


def plan_of(spec_text: str, hosts: Sequence[str], version: str = "10.0") -> tuple[VmSpec, Target, Plan]:
    spec = parse_spec(spec_text)
    goal = host_target(hosts)
    solved = solve_spec(spec, goal, version)
    return spec, goal, assemble(spec, goal, solved, version)


def runnable(argv: Sequence[str], plan: Plan | None = None) -> list[str]:
    """The plan's argv as this machine can run it: no vfio-pci (no devices here), no hugetlbfs.

    The runner adds -nodefaults; x86 gets back the VGA that QEMU adds by default (as the plan assumes).
    A plan made for another host's CPU under KVM (`-accel kvm`, where every model takes the host's
    vendor and host/max its address bits) runs under TCG with that vendor and those bits given
    explicitly: the layout depends on nothing else of the CPU. tests/qemu/test_kvm.py proves the
    KVM rule on this machine's real CPU, and test_kvm_plan.py a plan for this machine under KVM.
    """
    if plan is not None and "-accel" in argv and not _plan_for_this_cpu(plan):
        argv = _as_tcg(argv, plan)
    result: list[str] = (
        ["-device", "VGA"] if "qemu-system-aarch64" not in argv and "virt" not in argv[1] else []
    )
    index = 0
    while index < len(argv):
        option, value = argv[index], argv[index + 1] if index + 1 < len(argv) else ""
        if option == "-device" and value.startswith("vfio-pci,"):
            index += 2
            continue
        if option == "-bios":
            result += aarch64_firmware()
            index += 2
            continue
        if option == "-object":
            value = re.sub(r"memory-backend-(memfd|file)", "memory-backend-ram", value)
            value = re.sub(r",(hugetlb|hugetlbsize|mem-path|align)=[^,]*", "", value)
        result += [option, value] if value and not value.startswith("-") else [option]
        index += 2 if value and not value.startswith("-") else 1
    return result


def _plan_for_this_cpu(plan: Plan) -> bool:
    here = this_machine_cpu()
    assumed = plan.host_cpu
    return assumed is not None and (assumed.vendor, assumed.phys_bits, assumed.kvm_smm) == (
        here.vendor, here.phys_bits, here.kvm_smm)


def _as_tcg(argv: Sequence[str], plan: Plan) -> list[str]:
    from layoutd.qemu import predict
    from layoutd.qemu.cpus import VENDOR_ID

    guest = predict(argv, version=plan.qemu_version, host_cpu=plan.host_cpu)
    cpu = f"max,vendor={VENDOR_ID[guest.cpu_vendor]},phys-bits={guest.phys_bits}"
    no_smm = plan.host_cpu is not None and plan.host_cpu.kvm_smm is False  # KVM there lacks SMM
    result: list[str] = []
    index = 0
    while index < len(argv):
        option, value = argv[index], argv[index + 1]
        if option == "-cpu":
            value = cpu
        elif option == "-machine" and no_smm:
            value += ",smm=off"
        if option != "-accel":
            result += [option, value]
        index += 2
    return result


def real_layout(
    binary: QemuBinary, plan: Plan
) -> tuple[list[tuple[int, int, str]], dict[int, int]] | Refused:
    """The RAM QEMU mapped, named as the plan names it, and `info numa` sizes in bytes."""
    with started(binary, runnable(plan.qemu_argv, plan)) as qemu:
        if isinstance(qemu, Refused):
            return qemu
        real = qemu.read_map()
        numa = qemu.hmp("info numa")
    owners = {d["data"]["memdev"].rsplit("/", 1)[-1]: d["data"]["id"] for d in real.memory_devices}
    ram = [(e.start, e.end, owners.get(e.name, e.name)) for e in real.ram]
    sizes = {int(n): int(mb) << 20 for n, mb in re.findall(r"node (\d+) size: (\d+) MB", numa)}
    return ram, sizes


def collisions(plan: Plan, goal: Target, ram: Sequence[tuple[int, int, str]]) -> list[str]:
    from layoutd.models.common import GuestRegion

    regions = [GuestRegion(start=s, end=e, kind="ram", id=n) for s, e, n in ram]
    return [c.describe() for c in find_collisions(regions, goal.holes)]


def apply_change(text: str, change: dict[str, Any]) -> str:
    """The spec with the dotted paths of a would_work change set (None removes the key), applied
    here independently of layoutd's own models.spec.with_changes."""
    import yaml

    from layoutd.specfile import Loader

    def put(tree: dict[str, Any], keys: list[str], value: Any) -> None:
        if len(keys) > 1:
            put(tree.setdefault(keys[0], {}), keys[1:], value)
        elif value is None:
            tree.pop(keys[0], None)
        else:
            tree[keys[0]] = value

    data = yaml.load(text, Loader=Loader)
    for path, value in change.items():
        put(data, path.split("."), value)
    return json.dumps(data)  # JSON is YAML, with every string quoted
