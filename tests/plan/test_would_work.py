"""Every suggestion of a "no" plans when applied (issue 16): a property test over infeasible specs
on the bundled hosts. Each `would_work` change is applied to the spec's text, the spec read again,
and planned on the same hosts (the devices re-read when they change)."""

import json
from collections.abc import Sequence
from functools import cache
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from layoutd.errors import NoLayout
from layoutd.planning import assemble
from layoutd.solver import Target, combine, solve_spec
from layoutd.specfile import parse_spec
from tests.conftest import EXAMPLES
from tests.plan.support import apply_change

HOSTS = {"intel-4gpu-39bit": ["0000:01:00.0", "0000:03:00.0", "0000:04:00.0"],
         "amd-epyc-two-gpus": ["0000:29:00.0", "0000:2a:00.0"],
         "amd-4gpu-1100g": ["0000:01:00.0", "0000:41:00.0", "0000:81:00.0"],
         "intel-dl388g8-rmrr": ["0000:00:1f.0"],
         "intel-nic-msi-only": ["0000:83:00.0"],
         "arm-kunpeng-pci-windows": ["0000:05:00.0"], "arm-lx2160a-rmr": ["0000:01:00.0"]}
ARM = {"arm-kunpeng-pci-windows", "arm-lx2160a-rmr"}


WEIGHTED = ["intel-4gpu-39bit"] * 3 + ["amd-epyc-two-gpus"] * 2 + ["amd-4gpu-1100g"] * 2 + \
    ["intel-dl388g8-rmrr", "intel-nic-msi-only", "arm-kunpeng-pci-windows", "arm-lx2160a-rmr"]


@cache
def _target(host: str, devices: tuple[str, ...]) -> Target:
    from layoutd.host import probe_host

    view = probe_host(str(EXAMPLES / "hosts" / host), list(devices) or None)
    return combine([view], [view.source])


def _plan(text: str, host: str) -> Any:
    spec = parse_spec(text)
    target = _target(host, spec.pci_devices)
    solved = solve_spec(spec, target, "10.0", lambda devices: _target(host, tuple(devices)))
    return assemble(spec, target, solved, "10.0")


@st.composite
def specs(draw: Any) -> tuple[str, str]:
    host = draw(st.sampled_from(WEIGHTED))
    known = HOSTS[host]
    devices = draw(st.lists(st.sampled_from(known), unique=True, max_size=2)) if known else []
    size = draw(st.sampled_from([8, 64, 300, 480, 600, 1010, 1100, 2048, 4096, 12288]))
    cpu: dict[str, Any] = {"model": draw(st.sampled_from(["host", "EPYC", "qemu64", "Skylake-Server"])),
                           "count": 4}
    if draw(st.booleans()):
        cpu["phys_bits"] = draw(st.sampled_from([39, 40, 41, 44, 46, 48]))
    memory: dict[str, Any] = {"size": f"{size}G"}
    if draw(st.booleans()):
        memory["hotplug"] = {"slots": draw(st.sampled_from([1, 4, 16])),
                             "max": f"{size + draw(st.sampled_from([8, 256, 1024]))}G"}
    if draw(st.booleans()):
        memory["hugepages"] = "1G"
    data: dict[str, Any] = {"name": "prop", "cpu": cpu, "memory": memory, "devices": devices,
                            "machine": draw(st.sampled_from(["q35", "pc", "pc-q35-6.2", "pc-i440fx-6.2",
                                                             "pc-i440fx-7.2"]))}
    if host in ARM:
        data |= {"arch": "aarch64", "machine": "virt", "cpu": {"model": "max", "count": 4}}
    if draw(st.booleans()) and size % 2 == 0:
        data["numa"] = [{"size": f"{size // 2}G", "cpus": "0-1"}, {"size": f"{size // 2}G", "cpus": "2-3"}]
    return json.dumps(data), host


@settings(max_examples=200, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(specs())
def test_every_suggested_change_plans(case: tuple[str, str]) -> None:
    text, host = case
    try:
        _plan(text, host)
        return
    except NoLayout as error:
        ideas: Sequence[dict[str, Any]] = error.details["would_work"]
    for idea in ideas:
        changed = apply_change(text, idea["change"])
        _plan(changed, host)  # raises if the suggestion does not plan
