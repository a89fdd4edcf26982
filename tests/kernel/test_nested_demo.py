"""The end-to-end story, on a real kernel: inside an x86_64 guest whose emulated Intel IOMMU maps
39 bits, a nested QEMU with the guest's `edu` device assigned (vfio-pci) refuses to start when a
DIMM sits above 2^39 (`vfio_dma_map(...) = -22 (Invalid argument)`), starts (-S, QMP says
prelaunch) when the same DIMM sits inside, and starts with the command line `layoutd plan` wrote
for the VM from the guest's own live host facts. `layoutd check` on the failing command line
must predict the failure.

Both QEMU 7.2 (Debian) and 10.0 (bookworm-backports, unpacked) run nested, from the host's root
shared read-only into the guest. The real output is quoted in docs/kernel-proof.md.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT
from tests.kernel.harness import PYTHON, Boot, boot, kept_under_tmp
from tests.kernel.test_x86_readers import EDU, x86_machine
from tests.support.qemu_runner import qemu_binary

pytestmark = pytest.mark.kernel

ABOVE = 0x8000000000  # 2^39: the first byte the guest's IOMMU cannot map
INSIDE = 0x100000000
QMP_IN = ('{"execute":"qmp_capabilities"}\n{"execute":"query-status"}\n'
          '{"execute":"quit"}\n')


def vm_args(dimm_addr: int) -> list[str]:
    """A hand-written layout: 128 MiB of RAM and a 128 MiB DIMM placed at dimm_addr."""
    return ["-machine", "pc-q35-7.2", "-accel", "tcg", "-cpu", "qemu64",
            "-m", "128M,slots=1,maxmem=600G",
            "-object", "memory-backend-ram,id=d0,size=128M",
            "-device", f"pc-dimm,id=dimm0,memdev=d0,addr={dimm_addr:#x}",
            "-device", "vfio-pci,host=$bdf,id=hostdev0"]


PAUSED = ["-nodefaults", "-display", "none", "-S", "-qmp", "stdio"]


def nested_script(qemus: tuple[tuple[str, str], ...] = (("72", "7.2"), ("10", "10.0")),
                  vm: Callable[[int], list[str]] = vm_args, planned_by: str = "72",
                  via: str = "") -> str:
    """The guest's script: each QEMU (step tag, version) starts the `vm` layout with the DIMM
    above and inside the top; then check and plan for the `planned_by` QEMU, whose planned line
    run_planned.py starts (`via`: its extra options, such as --iommufd ID)."""
    binaries = {tag: qemu_binary(version) for tag, version in qemus}
    lines = [
        f". /hostroot{ROOT}/tests/kernel/guest/lib.sh",
        f"bdf=$(find_pci {EDU[0]} {EDU[1]})",
        'echo "$bdf" > $R/bdf',
        'bind_vfio "$bdf" > $R/driver',
        "ls /dev/vfio > $R/dev_vfio 2>&1",
        f"prepare_chroot /hostroot {kept_under_tmp()}",
        f"cat > /hostroot/tmp/qmp.in <<'EOF'\n{QMP_IN}EOF",
        f"sed \"s/@EDU@/$bdf/\" /hostroot{ROOT}/tests/kernel/guest/demo-vm.yaml"
        " > $R/demo-vm.yaml",
        'J="chroot /hostroot env -i PATH=/usr/bin:/bin HOME=/tmp PYTHONDONTWRITEBYTECODE=1"',
    ]
    for tag, q in binaries.items():
        base = " ".join(shlex.quote(a) for a in q.argv([]))
        for name, addr in (("above", ABOVE), ("inside", INSIDE)):
            args = " ".join(vm(addr) + PAUSED)
            lines.append(f"step {name}{tag} $J timeout 120 {base} {args} < /hostroot/tmp/qmp.in")
    naive = " ".join(vm(ABOVE))
    planner = binaries[planned_by]
    base = " ".join(shlex.quote(a) for a in planner.argv([]))
    lines += [
        f"step check $J {PYTHON} -m layoutd.cli check --host live --devices $bdf --format json"
        f" --qemu-version {planner.version} -- qemu-system-x86_64 {naive}",
        f"step plan $J {PYTHON} -m layoutd.cli plan /tmp/results/demo-vm.yaml --host live"
        f" --qemu-version {planner.version} --format json",
        '[ "$(cat $R/plan.rc)" = 0 ] && '
        f"step planned{planned_by} $J timeout 120 {PYTHON} {ROOT}/tests/kernel/guest/run_planned.py"
        f" /tmp/results/plan.out 0x8000000 {via} {base} -- -accel tcg {' '.join(PAUSED)}",
    ]
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def nested(tmp_path_factory: pytest.TempPathFactory) -> Boot:
    results = tmp_path_factory.mktemp("nested")
    guest = boot("x86_64", x86_machine(39), nested_script(), results,
                 shares={"hostroot": (Path("/"), True)}, append="intel_iommu=on",
                 memory="2048")
    print(f"nested demo: boot-to-poweroff {guest.seconds:.1f} s")
    return guest


@pytest.mark.parametrize("version,function", [("72", "vfio_dma_map("),
                                              ("10", "vfio_container_dma_map(")])
def test_dimm_above_the_iommu_top_fails_to_start(nested: Boot, version: str, function: str,
                                                 ) -> None:
    code, out, err = nested.step(f"above{version}")
    assert code != 0, f"QEMU started although RAM sits above 2^39:\n{out}\n{err}"
    assert "prelaunch" not in out
    line = next((x for x in err.splitlines() if function in x), None)
    assert line is not None, err
    assert f", {ABOVE:#x}, 0x8000000, " in line and "= -22 (Invalid argument)" in line, line


@pytest.mark.parametrize("version", ["72", "10"])
def test_same_dimm_inside_the_top_starts(nested: Boot, version: str) -> None:
    code, out, err = nested.step(f"inside{version}")
    assert code == 0, err
    assert '"status": "prelaunch"' in out, out
    assert "vfio_dma_map" not in err and "dma_map" not in err, err


def test_check_predicts_the_failure(nested: Boot) -> None:
    code, out, err = nested.step("check")
    assert code == 1, f"layoutd check should say no (exit 1), got {code}:\n{out}\n{err}"
    report = json.loads(out)
    hits = [c for c in report["collisions"] if int(c["start"], 16) >= ABOVE]
    assert hits, report["collisions"]
    assert hits[0]["id"] == "dimm0" and hits[0]["kind"] == "dimm", hits[0]


def planned_start(nested: Boot, tag: str) -> tuple[dict[str, Any], str]:
    """The plan made in the guest, and the stderr of its line started with a DIMM plugged at the
    start of its hotplug room: asserts the start, the plan below the top, and the DIMM mapped."""
    code, out, err = nested.step("plan")
    assert code == 0, f"layoutd plan in the guest exited {code}:\n{err}"
    plan: dict[str, Any] = json.loads(out)
    assert plan["qemu_argv"], plan
    assert all(int(r["end"], 16) < ABOVE for r in plan["layout"]), plan["layout"]
    assert any("vfio-pci" in a for a in plan["qemu_argv"]), plan["qemu_argv"]
    code, out, err = nested.step(f"planned{tag}")
    assert code == 0, err
    assert '"status": "prelaunch"' in out, out
    assert "dma_map" not in err and "DMA mapping failed" not in err, err
    # the same 128 MiB DIMM that failed above 2^39, plugged where the plan left room: mapped
    replies = [json.loads(x) for x in out.splitlines() if x.startswith("{")]
    dimms = [d for r in replies if isinstance(r.get("return"), list) for d in r["return"]]
    assert dimms, out
    addr = dimms[0]["data"]["addr"]
    assert int(plan["hotplug_room"][0]["start"], 16) == addr < ABOVE
    assert dimms[0]["data"]["size"] == 0x8000000 and dimms[0]["data"]["hotplugged"], dimms[0]
    return plan, err


def test_planned_command_line_starts(nested: Boot) -> None:
    planned_start(nested, "72")
