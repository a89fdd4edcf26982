"""One definition of forbidden (HostView.forbidden): check, plan, the hook, the live audit and
hotplug agree on a host whose usable ranges have a gap no reserved region explains.

The host is the amd-epyc-two-gpus tree with a recorded VFIO type1 answer (laid out as the kernel
writes it) that leaves 16 GiB-20 GiB out: a narrower IOVA-range capability than the holes say.
"""

from pathlib import Path

import pytest

from layoutd.host import probe_host
from layoutd.host.abi import build_type1_reply
from layoutd.host.dump import write_dump
from layoutd.host.sysfs import read_tree
from layoutd.libvirt import hookconf
from layoutd.models.common import Range
from layoutd.models.host import IoctlReply
from layoutd.units import GiB
from tests.conftest import EXAMPLES, run_layoutd

DEVICE = "0000:2a:00.0"  # group 27
GAP = (16 * GiB, 20 * GiB - 1)
KERNEL_RANGES = [(0, 0xFEDFFFFF), (0xFEF00000, GAP[0] - 1), (GAP[1] + 1, 0xFCFFFFFFFF)]
DOMAIN = """<domain type='qemu'>
  <name>gap</name>
  <memory unit='GiB'>32</memory>
  <vcpu>2</vcpu>
  <os><type arch='x86_64' machine='q35'>hvm</type></os>
  <cpu mode='custom' match='exact'><model fallback='forbid'>Skylake-Server</model></cpu>
  <devices>
    <emulator>/nonexistent/qemu-system-x86_64</emulator>
    <hostdev mode='subsystem' type='pci' managed='yes'>
      <source><address domain='0x0000' bus='0x2a' slot='0x00' function='0x0'/></source>
    </hostdev>
  </devices>
</domain>
"""


@pytest.fixture
def dump(tmp_path: Path) -> str:
    facts = read_tree(str(EXAMPLES / "hosts" / "amd-epyc-two-gpus"))
    reply = IoctlReply(reader="vfio-type1", groups=(27,),
                       reply=build_type1_reply(KERNEL_RANGES).hex())
    path = str(tmp_path / "gap.json")
    write_dump(path, facts, recorded_from="test", selected=[DEVICE], reply=reply)
    return path


def _in_gap(start: str | int, end: str | int) -> bool:
    low, high = (int(x, 16) if isinstance(x, str) else x for x in (start, end))
    return low <= GAP[1] and high >= GAP[0]


def test_the_view_forbids_the_unexplained_gap(dump: str) -> None:
    host = probe_host(dump, [DEVICE])
    forbidden = [(h.start, h.end, h.type) for h in host.forbidden()]
    assert (GAP[0], GAP[1], "unusable") in forbidden
    assert host.holes_for(Range(start=0, end=32 * GiB)) == [
        h for h in host.forbidden() if h.start < 32 * GiB]


def test_check_finds_ram_in_the_gap(dump: str) -> None:
    result = run_layoutd("check", "--host", dump, "--qemu-version", "10.0", "--format", "json",
                         "--", "qemu-system-x86_64", "-machine", "q35", "-m", "32G",
                         "-device", f"vfio-pci,host={DEVICE}")
    assert result.returncode == 1, result.stderr
    import json

    found = json.loads(result.stdout)["collisions"]
    assert [c["hole"]["type"] for c in found] == ["unusable"]
    assert all(_in_gap(c["start"], c["end"]) for c in found)


def test_check_libvirt_and_the_hook_refuse_it(dump: str, tmp_path: Path) -> None:
    xml = tmp_path / "gap.xml"
    xml.write_text(DOMAIN)
    result = run_layoutd("check", "--host", dump, "--qemu-version", "10.0", "--libvirt", str(xml))
    assert result.returncode == 1 and "unusable hole" in result.stdout, result.stderr
    config = tmp_path / "hook.conf"
    config.write_text(hookconf.render("enforce", dump, [], str(tmp_path / "hook.log"))
                      .replace("qemu_version =", "qemu_version = 10.0"))
    hook = run_layoutd("hook", "--config", str(config), "gap", "prepare", "begin", "-",
                       stdin=DOMAIN)
    assert hook.returncode == 1 and "unusable hole" in hook.stderr, hook.stderr


def test_plan_avoids_the_gap(dump: str) -> None:
    from layoutd.planning import make_plan
    from layoutd.specfile import parse_spec

    spec = parse_spec(f"name: gap\naccel: tcg\nmachine: q35\nmemory: {{size: 32G}}\n"
                      f"devices: [{DEVICE}]\n")
    plan = make_plan(spec, [dump], "10.0")
    assert plan.layout and not any(_in_gap(r.start, r.end) for r in plan.layout)


def test_audit_and_hotplug_avoid_the_gap(dump: str) -> None:
    """The live audit's and hotplug's judgement, on the map QEMU builds (as a running VM's)."""
    from layoutd.collisions import check
    from layoutd.live.hotplug import room
    from layoutd.live.placement import place
    from layoutd.live.vm import LiveVm, MemoryConfig
    from layoutd.qemu import predict

    host = probe_host(dump, [DEVICE])
    guest = predict(["-machine", "q35", "-m", "32G"], version="10.0")
    assert [c.hole.type for c in check(guest.layout, host)] == ["unusable"]
    region = Range(start=12 * GiB, end=28 * GiB - 1)
    vm = LiveVm(name="vm", version=(10, 0, 0), arch="x86_64", machine="pc-q35-10.0-machine",
                ram=[], devices=[], memory=MemoryConfig(8 * GiB, 24 * GiB, 4),
                device_memory=region, phys_bits=48, vfio=[DEVICE])
    found = place(8 * GiB, 2 << 20, room(vm, host, region), need_slot=True)
    assert not isinstance(found, str) and hasattr(found, "start"), found
    assert found.start == GAP[1] + 1
