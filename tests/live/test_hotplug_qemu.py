"""Hotplug and audit against real QEMU 7.2 and 10.0, x86 q35 and arm virt, with a host hole
inside the guest's device-memory region."""

from __future__ import annotations

from pathlib import Path

import pytest

from layoutd.live.session import QmpMonitor
from layoutd.live.vm import derived_device_memory, read_vm
from tests.conftest import assert_clean_failure
from tests.live.conftest import CONFIGS, GiB, Guest, answer, guest, overlaps, span
from tests.support.qemu_runner import VERSIONS

pytestmark = pytest.mark.qemu


def landed(g: Guest, device_id: str) -> tuple[int, int]:
    for device in g.devices():
        data = device["data"]
        if data.get("id") == device_id:
            start = data.get("addr", data.get("memaddr"))
            return start, start + data.get("max-size", data.get("size")) - 1
    raise AssertionError(f"{device_id} not in query-memory-devices")


def plug(g: Guest, size: str, *extra: str) -> tuple[int, int]:
    """Plan, then execute; the device must land where the plan said, outside the hole."""
    planned = answer(g.hotplug("--size", size, *extra))
    assert planned["executed"] is False
    done = g.hotplug("--size", size, "--execute", *extra)
    assert done.returncode == 0, done.stderr
    result = answer(done)
    assert result["placement"] == planned["placement"]
    placement = span(result["placement"])
    assert landed(g, result["id"]) == placement
    assert not overlaps(placement, g.hole)
    assert g.region[0] <= placement[0] and placement[1] <= g.region[1]
    assert [c["execute"] for c in result["qmp"]] == ["object-add", "device_add"]
    return placement


@pytest.mark.parametrize(("version", "arch"), CONFIGS)
def test_guard_running_vm(version: str, arch: str, tmp_path: Path) -> None:
    with guest(version, arch, tmp_path) as g:
        # The device-memory region: QEMU's QOM answer equals QEMU's rule applied to the real map.
        monitor = QmpMonitor(g.socket)
        try:
            vm = read_vm(monitor)
        finally:
            monitor.close()
        assert vm.device_memory is not None
        assert (vm.device_memory.start, vm.device_memory.end) == g.region
        derived = derived_device_memory(vm)
        assert derived is not None and (derived.start, derived.end) == g.region

        # The audit sees the real RAM map and no collision yet.
        before = g.check()
        assert before.returncode == 0, before.stderr
        layout = answer(before)["layout"]
        real = [(e.start, e.end) for e in g.qemu.read_map().ram]
        assert [span(r) for r in layout] == real

        # Several sizes: the first sits at the base, the 1 GiB one jumps the hole, the last
        # fills the gap left below the hole.
        first = plug(g, "512M")
        assert first[0] == g.region[0]
        second = plug(g, "1G")
        assert second[0] > g.hole[1]
        third = plug(g, "256M")
        assert first[1] < third[0] < g.hole[0]

        # More than fits: exit 1, a hint, and nothing added.
        objects, devices = g.objects(), g.devices()
        refused = g.hotplug("--size", "64G", "--execute")
        assert_clean_failure(refused, 1, "cannot place 64G")
        assert "largest size that fits now" in refused.stderr
        assert answer(refused)["placement"] is None
        assert (g.objects(), g.devices()) == (objects, devices)

        # device_add refused on purpose (rp1 is the PCIe port's id): the backend is rolled back.
        taken = answer(g.hotplug("--size", "256M", "--id", "rp1", "--execute"))
        assert "Duplicate" in taken["error"] or "duplicate" in taken["error"]
        assert [c["execute"] for c in taken["qmp"]] == ["object-add", "device_add", "object-del"], taken
        assert (g.objects(), g.devices()) == (objects, devices)

        # A DIMM plugged by hand into the hole: the audit finds it (exit 1) and names both.
        g.qemu.qmp("object-add", {"qom-type": "memory-backend-ram", "id": "rogue-mem",
                                  "size": GiB // 2})
        g.qemu.qmp("device_add", {"driver": "pc-dimm", "id": "rogue", "memdev": "rogue-mem",
                                  "addr": g.hole[0]})
        after = g.check()
        assert_clean_failure(after, 1)
        collisions = answer(after)["collisions"]
        assert [(c["id"], c["kind"], c["hole"]["type"], c["hole"]["group"]) for c in collisions] \
            == [("rogue", "dimm", "reserved", 7)]
        assert span(collisions[0]) == (g.hole[0], g.hole[0] + GiB // 2 - 1)


@pytest.mark.parametrize("version", VERSIONS)
def test_virtio_mem_lands_outside_the_hole(version: str, tmp_path: Path) -> None:
    second_port = ("-device", "pcie-root-port,id=rp2,bus=pcie.0,chassis=2")
    with guest(version, "x86_64", tmp_path, extra=second_port) as g:
        first = plug(g, "512M", "--kind", "virtio-mem")
        assert first[0] == g.region[0]
        second = answer(g.hotplug("--size", "1G", "--kind", "virtio-mem", "--execute"))
        placement = span(second["placement"])
        assert not overlaps(placement, g.hole) and landed(g, second["id"]) == placement
        device = second["qmp"][1]["arguments"]
        assert device["driver"] == "virtio-mem-pci" and device["memaddr"] == placement[0]
        assert second["dma_mappings"]["device"] * int(second["block_size"], 16) == GiB
        # the only free PCIe port is taken now: a third one is refused, nothing added
        objects = g.objects()
        refused = g.hotplug("--size", "256M", "--kind", "virtio-mem", "--execute")
        assert_clean_failure(refused, 1, "PCIe port")
        assert g.objects() == objects
