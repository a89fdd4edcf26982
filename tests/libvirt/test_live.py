"""`layoutd hotplug --libvirt-domain` and `layoutd check --libvirt-domain` against a real libvirtd.

A paused TCG domain with 2G of RAM, 4 slots and maxMemory 10G; a test-made host tree whose one
IOMMU group (holding DEVICE, named to the hook through its `devices` setting, since no real VFIO
device exists here) reserves a 1 GiB hole 1 GiB into the domain's device-memory region, as QEMU
reports that region. The hook reads the same tree at `prepare begin` (boot RAM is clear of the hole,
so it lets the domain start); the hole is written in once QEMU has said where device memory is.

layoutd reaches the domain only through virsh on the private daemon's URI (`--connect`, or
LIBVIRT_DEFAULT_URI), as it would on a real host where libvirt owns the monitor socket.
"""

from __future__ import annotations

import json
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import assert_clean_failure, run_layoutd
from tests.libvirt.daemon import Virsh
from tests.live.conftest import DEVICE, GROUP, GiB, answer, overlaps, span, write_host

pytestmark = [pytest.mark.libvirt, pytest.mark.qemu]

DATA = Path(__file__).parent / "data"
NAME = "lt-hot"
MSI = (0xFEE00000, 0xFEEFFFFF)


@dataclass
class Domain:
    virsh: Virsh
    name: str
    host: str  # the host tree (read as `/`)
    region: tuple[int, int]  # device memory, inclusive, as QEMU reports it
    hole: tuple[int, int] = (0, -1)

    def monitor(self, command: str, arguments: dict[str, Any] | None = None) -> Any:
        message = {"execute": command, **({"arguments": arguments} if arguments else {})}
        reply = self.virsh.run("qemu-monitor-command", "--pretty", self.name, json.dumps(message))
        return json.loads(reply.stdout)["return"]

    def objects(self) -> set[str]:
        return {entry["name"] for entry in self.monitor("qom-list", {"path": "/objects"})}

    def devices(self) -> list[tuple[str, int, int]]:
        """query-memory-devices: (id, start, end inclusive)."""
        found = []
        for device in self.monitor("query-memory-devices"):
            data = device["data"]
            start = data.get("addr", data.get("memaddr"))  # virtio-mem: memaddr and max-size
            found.append((data["id"], start, start + data.get("max-size", data.get("size")) - 1))
        return sorted(found)

    def libvirt_dimms(self) -> list[tuple[str, int, int]]:
        """The DIMMs in libvirt's live XML: (alias, base, end inclusive)."""
        root = ET.fromstring(self.virsh.run("dumpxml", self.name).stdout)
        found = []
        for memory in root.iterfind("devices/memory[@model='dimm']"):
            base = int(memory.find("address").get("base", ""), 16)  # type: ignore[union-attr]
            size = int(memory.findtext("target/size", "")) * 1024  # libvirt writes KiB
            found.append((memory.find("alias").get("name", ""), base, base + size - 1))  # type: ignore[union-attr]
        return sorted(found)

    def set_hole(self, start: int, end: int) -> None:
        self.hole = (start, end)
        regions = sorted([MSI, self.hole])
        (Path(self.host) / "sys/kernel/iommu_groups" / str(GROUP) / "reserved_regions").write_text(
            "".join(f"0x{s:016x} 0x{e:016x} {'msi' if (s, e) == MSI else 'reserved'}\n"
                    for s, e in regions))

    def layoutd(self, *args: str) -> subprocess.CompletedProcess[str]:
        """layoutd with --connect to the private daemon and --host the tree."""
        return run_layoutd(*args, "--connect", self.virsh.uri, "--host", self.host, timeout=180)

    def hotplug(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.layoutd("hotplug", "--libvirt-domain", self.name, "--format", "json", *args)


@pytest.fixture
def domain(libvirtd: Virsh, tmp_path: Path) -> Iterator[Domain]:
    host = write_host(tmp_path / "host", [(*MSI, "msi")])
    libvirtd.install_hook("--policy", "enforce", "--host", host, "--devices", DEVICE)
    path = tmp_path / f"{NAME}.xml"
    path.write_text((DATA / "hotplug.xml").read_text())
    libvirtd.run("define", str(path))
    try:
        started = libvirtd.run("start", NAME, "--paused", check=False)
        assert started.returncode == 0, started.stderr + libvirtd.qemu_log(NAME)[-2000:]
        assert f"{NAME} prepare begin: ok" in libvirtd.hook_log.read_text()
        probe = Domain(libvirtd, NAME, host, (0, 0))
        where = {prop: int(probe.monitor("qom-get", {"path": "/machine/device-memory[0]",
                                                     "property": prop})) for prop in ("addr", "size")}
        probe.region = (where["addr"], where["addr"] + where["size"] - 1)
        probe.set_hole(probe.region[0] + GiB, probe.region[0] + 2 * GiB - 1)
        yield probe
    finally:
        libvirtd.run("destroy", NAME, check=False)
        libvirtd.run("undefine", NAME, check=False)


def test_a_planned_hotplug_prints_a_placement_outside_the_hole_and_changes_nothing(
        domain: Domain) -> None:
    before = (domain.objects(), domain.devices(), domain.libvirt_dimms())
    result = domain.hotplug("--size", "2G")
    assert result.returncode == 0, result.stderr
    plan = answer(result)
    placed = span(plan["placement"])
    assert plan["executed"] is False and plan["qmp"] == []
    assert placed[1] - placed[0] + 1 == 2 * GiB
    # QEMU's own first fit, the base of device memory, would lie across the hole.
    assert overlaps((domain.region[0], domain.region[0] + 2 * GiB - 1), domain.hole)
    assert not overlaps(placed, domain.hole)
    assert domain.hole[1] < placed[0] and placed[1] <= domain.region[1]
    assert [span(hole) for hole in plan["avoided"]] == [domain.hole]
    assert f"base='{plan['placement']['start']}'" in plan["libvirt_xml"]
    assert (domain.objects(), domain.devices(), domain.libvirt_dimms()) == before

    text = domain.layoutd("hotplug", "--libvirt-domain", domain.name, "--size", "2G")
    assert text.returncode == 0, text.stderr
    assert f"at {plan['placement']['start']}-{plan['placement']['end']}" in text.stdout
    assert "not attached; add --execute" in text.stdout
    assert (domain.objects(), domain.devices(), domain.libvirt_dimms()) == before


def test_execute_plugs_the_dimm_where_planned_and_libvirt_knows_it(domain: Domain) -> None:
    planned = answer(domain.hotplug("--size", "2G"))
    done = domain.hotplug("--size", "2G", "--execute")
    assert done.returncode == 0, done.stderr
    result = answer(done)
    assert result["executed"] is True and result["placement"] == planned["placement"]
    placed = span(result["placement"])
    assert domain.devices() == [(result["id"], *placed)]
    assert not overlaps(placed, domain.hole)
    # libvirt attached it: its live XML lists the DIMM at the same base, so save, migration and
    # libvirt's own next hotplug (slot choice) account for it.
    assert domain.libvirt_dimms() == [(result["id"], *placed)]
    assert result["memdev"] in domain.objects()

    # The gap below the hole is the lowest room left for 512M; 1G does not fit there.
    small = answer(domain.hotplug("--size", "512M", "--execute"))
    assert span(small["placement"])[0] == domain.region[0]
    big = answer(domain.hotplug("--size", "1G", "--execute"))
    assert span(big["placement"])[0] > domain.hole[1]
    plugged = domain.devices()
    assert len(plugged) == 3 and not any(overlaps((s, e), domain.hole) for _, s, e in plugged)
    assert domain.libvirt_dimms() == plugged

    audit = domain.layoutd("check", "--libvirt-domain", domain.name, "--devices", DEVICE,
                           "--format", "json")
    assert audit.returncode == 0, audit.stderr
    report = answer(audit)
    assert report["collisions"] == []
    assert sorted((r["id"], *span(r)) for r in report["layout"] if r["kind"] == "dimm") == plugged


def test_a_size_that_cannot_fit_exits_1_and_adds_nothing(domain: Domain) -> None:
    # Within maxmem and slots, but the hole splits device memory into two spans both smaller.
    budget = 8 * GiB  # maxMemory 10G - memory 2G
    low = domain.region[0] + 5 * GiB
    domain.set_hole(low, low + GiB - 1)
    spans = [(domain.region[0], low - 1), (low + GiB, domain.region[1])]
    largest = max(end - start + 1 for start, end in spans)
    assert largest < budget
    before = (domain.objects(), domain.devices(), domain.libvirt_dimms())

    refused = domain.hotplug("--size", "8G", "--execute")
    assert_clean_failure(refused, 1, "cannot place 8G")
    document = answer(refused)
    assert document["placement"] is None and document["executed"] is False
    assert int(document["largest_fit"], 16) == largest
    assert (domain.objects(), domain.devices(), domain.libvirt_dimms()) == before

    past_maxmem = domain.hotplug("--size", "64G", "--execute")
    assert_clean_failure(past_maxmem, 1, "cannot place 64G")
    assert (domain.objects(), domain.devices(), domain.libvirt_dimms()) == before


def test_a_refused_attach_exits_1_and_leaves_nothing(domain: Domain) -> None:
    first = domain.hotplug("--size", "512M", "--id", "ua-mine", "--execute")
    assert first.returncode == 0, first.stderr
    before = (domain.objects(), domain.devices(), domain.libvirt_dimms())
    again = domain.hotplug("--size", "512M", "--id", "ua-mine", "--execute")
    assert_clean_failure(again, 1, "libvirt refused to attach 'ua-mine'", "nothing was added")
    assert (domain.objects(), domain.devices(), domain.libvirt_dimms()) == before


def test_check_audits_the_domain_through_libvirt(domain: Domain, tmp_path: Path) -> None:
    # LIBVIRT_DEFAULT_URI and LAYOUTD_HOST instead of --connect and --host.
    env = {"LIBVIRT_DEFAULT_URI": domain.virsh.uri, "LAYOUTD_HOST": domain.host}

    def check(*args: str) -> subprocess.CompletedProcess[str]:
        return run_layoutd("check", "--libvirt-domain", domain.name, "--devices", DEVICE, *args,
                           env=env, timeout=180)

    clean = check("--format", "json")
    assert clean.returncode == 0, clean.stderr
    ram = answer(clean)["layout"]
    assert ram and all(r["kind"] == "ram" for r in ram)
    assert answer(clean)["device_memory"] == {"start": hex(domain.region[0]),
                                              "end": hex(domain.region[1])}

    # A DIMM libvirt plugs on its own, by hand, straight into the hole.
    by_hand = tmp_path / "by-hand.xml"
    by_hand.write_text(
        f"<memory model='dimm'><target><size unit='KiB'>{GiB // 1024}</size><node>0</node>"
        f"</target><address type='dimm' slot='0' base='{hex(domain.hole[0])}'/></memory>")
    domain.virsh.run("attach-device", domain.name, str(by_hand), "--live")

    found = check("--format", "json")
    assert_clean_failure(found, 1)
    collisions = answer(found)["collisions"]
    assert [(c["kind"], *span(c)) for c in collisions] == [("dimm", *domain.hole)]
    assert collisions[0]["hole"]["type"] == "reserved" and collisions[0]["hole"]["group"] == GROUP
    text = check()
    assert text.returncode == 1
    assert f"{domain.hole[0]:#x}-{domain.hole[1]:#x} lies in the reserved hole" in text.stdout
    assert f"VM libvirt domain {domain.name}" in text.stdout


def test_connect_is_usage_checked_and_a_missing_domain_is_exit_3(libvirtd: Virsh) -> None:
    wrong = run_layoutd("check", "--connect", libvirtd.uri, "--qmp", "/nonexistent")
    assert_clean_failure(wrong, 2, "--connect URI only applies with --libvirt-domain")
    missing = run_layoutd("hotplug", "--libvirt-domain", "lt-none", "--connect", libvirtd.uri,
                          "--size", "1G")
    assert_clean_failure(missing, 3, "lt-none")


def test_virtio_mem_goes_over_the_monitor_with_a_warning(domain: Domain) -> None:
    done = domain.hotplug("--size", "2G", "--kind", "virtio-mem", "--execute")
    assert done.returncode == 0, done.stderr
    result = answer(done)
    placed = span(result["placement"])
    assert not overlaps(placed, domain.hole) and domain.hole[1] < placed[0]
    assert [c["execute"] for c in result["qmp"]] == ["object-add", "device_add"]
    assert domain.devices() == [(result["id"], *placed)]
    assert any("libvirt does not know it" in warning for warning in result["warnings"])
