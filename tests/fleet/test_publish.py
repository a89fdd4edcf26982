"""`layoutd fleet publish` and `fleet pools`: membership is `check`'s answer; bad input is exit 2."""

import json
import shutil
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES, assert_clean_failure, run_layoutd
from tests.fleet.conftest import HOSTS, check_exit, pool_args, publish


def test_members_are_the_hosts_check_accepts(pools: dict[str, Path], published: dict[str, dict],
                                             check_codes: dict[tuple[str, str], int | None]) -> None:
    members: dict[str, set[str]] = {name: set() for name in pools}
    for (name, host), code in check_codes.items():
        entry = next(p for p in published[host]["pools"] if p["name"] == name)
        if code is None:  # another architecture
            assert not entry["member"] and "this host is" in entry["reasons"][0], entry
            continue
        assert entry["member"] == (code == 0), (name, host, code, entry)
        if entry["member"]:
            members[name].add(host)
            assert entry["reasons"] == []
        else:
            assert code in (1, 2) and entry["reasons"], (name, host, code, entry)
    # the pools tell hosts apart: each has members, and only the all-x86 small VM is on most
    assert all(members.values()), members
    assert "intel-dl388g8-rmrr" not in members["small"]  # its RMRR 0x0-0xffffff takes low RAM
    assert {"intel-46bit-cpu-39bit-iommu", "intel-4gpu-39bit"}.isdisjoint(members["mig-1100g"])
    assert members["quick"] == {"amd-epyc-two-gpus"}


def test_a_host_lacking_the_device_says_so(published: dict[str, dict]) -> None:
    entry = next(p for p in published["amd-4gpu-1100g"]["pools"] if p["name"] == "quick")
    assert not entry["member"]
    assert "cannot give the VM its device" in entry["reasons"][0] and "0000:29:00.0" in entry["reasons"][0]


def test_collisions_are_named(published: dict[str, dict]) -> None:
    entry = next(p for p in published["intel-4gpu-39bit"]["pools"] if p["name"] == "mig-1100g")
    assert any("'ram-node0'" in r and "0x8000000000-0xffffffffffffffff" in r
               for r in entry["reasons"]), entry


def test_host_facts(published: dict[str, dict]) -> None:
    amd = published["amd-epyc-two-gpus"]
    assert {"start": "0xfd00000000", "end": "0xffffffffff", "type": "reserved", "kind": "amd-ht",
            "groups": [27, 28]} in amd["holes"]
    assert amd["iommu_bits"] is None and amd["warnings"]  # no source says its width
    intel = published["intel-46bit-cpu-39bit-iommu"]
    assert intel["iommu_bits"] == 39 and intel["aperture_end"] == "0x7fffffffff"
    assert intel["cpu"] == {"vendor": "intel", "phys_bits": 46}
    assert [h["kind"] for h in intel["holes"]] == ["msi-window"]
    arm = published["arm-hisilicon-d05"]
    assert arm["arch"] == "aarch64" and {h["kind"] for h in arm["holes"]} == {"msi-doorbell"}
    rmrr = published["intel-dl388g8-rmrr"]
    assert {h["kind"] for h in rmrr["holes"]} == {"rmrr", "msi-window"}
    rmr = published["arm-lx2160a-rmr"]
    assert "rmr" in {h["kind"] for h in rmr["holes"]}
    for host, facts in published.items():  # the published usable ranges are probe's
        probe = json.loads(run_layoutd("probe", "--host", str(EXAMPLES / "hosts" / host),
                                       "--format", "json").stdout)
        assert facts["usable"] == probe["usable"], host


def test_traits_and_labels(published: dict[str, dict]) -> None:
    for host, facts in published.items():
        members = [p["name"] for p in facts["pools"] if p["member"]]
        pool_traits = [t for t in facts["nova_traits"] if t.startswith("CUSTOM_LAYOUTD_POOL_")]
        assert pool_traits == ["CUSTOM_LAYOUTD_POOL_" + m.upper().replace("-", "_").replace(".", "_")
                               for m in members]
        assert [k for k in facts["nfd_labels"] if "/pool-" in k] == [f"layoutd.io/pool-{m}"
                                                                     for m in members]
        ht = any(h["kind"] == "amd-ht" for h in facts["holes"])
        assert ("CUSTOM_LAYOUTD_HOLE_AMD_HT" in facts["nova_traits"]) == ht, host
        assert (facts["nfd_labels"].get("layoutd.io/hole-amd-ht") == "true") == ht, host
    assert published["amd-epyc-two-gpus"]["nfd_labels"]["layoutd.io/pool-big.amd"] == "true"
    assert "CUSTOM_LAYOUTD_POOL_BIG_AMD" in published["amd-epyc-two-gpus"]["nova_traits"]
    intel = published["intel-46bit-cpu-39bit-iommu"]
    assert [t for t in intel["nova_traits"] if "IOMMU" in t] == ["CUSTOM_LAYOUTD_IOMMU_MAPS_39BIT"]
    assert intel["nfd_labels"]["layoutd.io/iommu-bits"] == "39"
    assert "CUSTOM_LAYOUTD_HOLE_RMRR" in published["intel-dl388g8-rmrr"]["nova_traits"]
    # ARM RMRs here are direct-relaxable (mappable): no RMRR trait
    assert "CUSTOM_LAYOUTD_HOLE_RMRR" not in published["arm-lx2160a-rmr"]["nova_traits"]


def test_feature_file_lines_are_the_labels(pools: dict[str, Path], published: dict[str, dict]) -> None:
    for host in ("amd-epyc-two-gpus", "intel-4gpu-39bit", "arm-hisilicon-d05"):
        text = publish(host, pools, "nfd-features")
        lines = [line for line in text.splitlines() if line and not line.startswith("#")]
        assert dict(line.split("=", 1) for line in lines) == published[host]["nfd_labels"]


def test_pools_table_agrees_with_publish(pools: dict[str, Path], published: dict[str, dict]) -> None:
    hosts = ["amd-epyc-two-gpus", "intel-4gpu-39bit", "arm-kunpeng-pci-windows"]
    args = [a for h in hosts for a in ("--host", str(EXAMPLES / "hosts" / h))]
    result = run_layoutd("fleet", "pools", *args, *pool_args(pools), "--format", "json")
    assert result.returncode == 0, result.stderr
    table = json.loads(result.stdout)
    for name in pools:
        wanted = [f"sysfs:{EXAMPLES / 'hosts' / h}" for h in hosts
                  if next(p for p in published[h]["pools"] if p["name"] == name)["member"]]
        assert sorted(table["pools"][name]["members"]) == sorted(wanted), name
    text = run_layoutd("fleet", "pools", *args, *pool_args(pools))
    assert text.returncode == 0 and "pool quick" in text.stdout and "not member" in text.stdout


@pytest.mark.parametrize("content, field", [
    ("{", None),
    ('["not", "a", "plan"]', None),
    ('{"qemu_argv": [], "qemu_version": "10.0", "config": {"arch": "x86_64"}}', "qemu_argv"),
    ('{"qemu_argv": ["-m", "1G"], "qemu_version": "6.1", "config": {"arch": "x86_64"}}', "qemu_version"),
    ('{"qemu_argv": ["-m", "1G"], "qemu_version": "10.0", "config": {"arch": "riscv64"}}', "config.arch"),
    ('{"qemu_argv": ["-m", "1G"], "qemu_version": "10.0"}', "config"),
])
def test_broken_plan_is_exit_2_naming_file_and_field(tmp_path: Path, content: str, field: str | None) -> None:
    plan = tmp_path / "plan.json"
    plan.write_text(content)
    for fmt in ("json", "nova"):
        result = run_layoutd("fleet", "publish", "--host", str(EXAMPLES / "hosts" / HOSTS[0]),
                             "--pool", f"p1={plan}", "--format", fmt)
        assert_clean_failure(result, 2, str(plan), *([f": {field}:"] if field else []))
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr


@pytest.mark.parametrize("args, needle", [
    (["--pool", "GPU=x.json"], "pool name 'GPU'"),
    (["--pool", "gpu"], "give NAME=PLAN.json"),
    (["--pool", "gpu.=x.json"], "pool name 'gpu.'"),
    (["--pool", "p" * 59 + "=x.json"], "1-58 characters"),
    (["--pool", "gpu=/nonexistent/plan.json"], "/nonexistent/plan.json"),
    (["--format", "nodefeature"], "needs --node NODENAME"),
    (["--format", "nodefeature", "--node", "Node_1"], "--node 'Node_1'"),
    (["--format", "yaml"], "invalid choice"),
])
def test_bad_options_are_exit_2(args: list[str], needle: str) -> None:
    result = run_layoutd("fleet", "publish", "--host", str(EXAMPLES / "hosts" / HOSTS[0]), *args)
    assert_clean_failure(result, 2, needle)


def test_two_pools_with_one_trait_are_refused(pools: dict[str, Path]) -> None:
    result = run_layoutd("fleet", "publish", "--host", str(EXAMPLES / "hosts" / HOSTS[0]),
                         "--pool", f"a-b={pools['small']}", "--pool", f"a_b={pools['small']}")
    assert_clean_failure(result, 2, "CUSTOM_LAYOUTD_POOL_A_B")


def test_missing_host_is_exit_2(pools: dict[str, Path], tmp_path: Path) -> None:
    result = run_layoutd("fleet", "publish", "--host", str(tmp_path / "nohost"), *pool_args(pools))
    assert_clean_failure(result, 2, str(tmp_path / "nohost"))
    result = run_layoutd("fleet", "pools", "--host", str(EXAMPLES / "hosts" / HOSTS[0]),
                         "--host", str(tmp_path / "nohost"), *pool_args(pools), "--format", "json")
    assert_clean_failure(result, 2, str(tmp_path / "nohost"))
    assert json.loads(result.stdout)["error"]["file"] == str(tmp_path / "nohost")


def test_the_example_pool_is_the_plan_of_today(tmp_path: Path) -> None:
    """examples/fleet/mig-1100g.json (docs/fleet.md) is what `plan` writes now; regenerate with
    the command in its docs when an intended change moves it."""
    fresh = tmp_path / "pool.json"
    result = run_layoutd("plan", "examples/specs/migration.yaml",
                         "--host", "examples/hosts/amd-epyc-two-gpus", "--host",
                         "examples/hosts/intel-nic-msi-only", "--format", "json", "-o", str(fresh))
    assert result.returncode == 0, result.stderr
    shipped = json.loads((EXAMPLES / "fleet" / "mig-1100g.json").read_text())
    today = json.loads(fresh.read_text())
    for key in ("qemu_argv", "qemu_version", "layout", "bars"):  # what a pool means
        assert shipped[key] == today[key], key
    assert shipped["config"]["arch"] == today["config"]["arch"]


def test_facts_change_only_with_the_host(pools: dict[str, Path], tmp_path: Path) -> None:
    """The same host and pools give the same bytes, so a periodic publish rewrites nothing (and
    nova-compute need not restart) until the hardware or kernel changes; a changed host does."""
    host = "intel-nvme-rmrr"
    first = publish(host, pools, "nova")
    assert publish(host, pools, "nova") == first
    changed = tmp_path / "host"
    shutil.copytree(EXAMPLES / "hosts" / host, changed, symlinks=True)
    (regions,) = changed.glob("sys/kernel/iommu_groups/*/reserved_regions")
    regions.write_text(regions.read_text() + "0x0000000010000000 0x000000001fffffff direct\n")
    result = run_layoutd("fleet", "publish", "--host", str(changed), *pool_args(pools), "--format", "nova")
    assert result.returncode == 0, result.stderr
    assert "CUSTOM_LAYOUTD_POOL_SMALL" in first and "CUSTOM_LAYOUTD_POOL_SMALL" not in result.stdout


def test_output_file_is_replaced_whole(pools: dict[str, Path], tmp_path: Path) -> None:
    target = tmp_path / "features.d" / "layoutd"
    target.parent.mkdir()
    target.write_text("old\n")
    result = run_layoutd("fleet", "publish", "--host", str(EXAMPLES / "hosts" / "intel-4gpu-39bit"),
                         *pool_args(pools), "--format", "nfd-features", "-o", str(target))
    assert result.returncode == 0 and result.stdout == "", result.stderr
    assert target.read_text() == publish("intel-4gpu-39bit", pools, "nfd-features")
    assert [p.name for p in target.parent.iterdir()] == ["layoutd"]  # no dotfile left behind
    result = run_layoutd("fleet", "publish", "--host", str(EXAMPLES / "hosts" / "intel-4gpu-39bit"),
                         "--format", "nova", "-o", str(tmp_path / "missing" / "layoutd.yaml"))
    assert_clean_failure(result, 2, "cannot write")


def test_a_recorded_dump_publishes_as_its_host(pools: dict[str, Path], published: dict[str, dict],
                                               tmp_path: Path) -> None:
    """Fleets are published centrally from dumps (`probe --record` on each host): the same facts
    and memberships as the host itself."""
    for host in ("amd-epyc-two-gpus", "intel-46bit-cpu-39bit-iommu", "arm-kunpeng-pci-windows"):
        dump = tmp_path / f"{host}.json"
        assert run_layoutd("probe", "--host", str(EXAMPLES / "hosts" / host), "--record",
                           str(dump)).returncode == 0
        result = run_layoutd("fleet", "publish", "--host", str(dump), *pool_args(pools))
        assert result.returncode == 0, result.stderr
        facts = json.loads(result.stdout)
        assert facts["source"] == f"dump:{dump}"
        for key in ("usable", "holes", "iommu_bits", "pools", "nova_traits", "nfd_labels"):
            assert facts[key] == published[host][key], (host, key)


def test_pools_over_a_folder_of_dumps(pools: dict[str, Path], published: dict[str, dict],
                                      tmp_path: Path) -> None:
    hosts = ["amd-epyc-two-gpus", "intel-4gpu-39bit", "intel-dl388g8-rmrr"]
    for host in hosts:
        assert run_layoutd("probe", "--host", str(EXAMPLES / "hosts" / host), "--record",
                           str(tmp_path / f"{host}.json")).returncode == 0
    result = run_layoutd("fleet", "pools", "--host-dir", str(tmp_path), *pool_args(pools),
                         "--format", "json")
    assert result.returncode == 0, result.stderr
    table = json.loads(result.stdout)
    assert sorted(table["hosts"]) == [f"dump:{tmp_path / h}.json" for h in hosts]
    for host in hosts:
        members = [p["name"] for p in published[host]["pools"] if p["member"]]
        assert table["hosts"][f"dump:{tmp_path / host}.json"] == members
    empty = tmp_path / "empty"
    empty.mkdir()
    for folder in (empty, tmp_path / "missing"):
        result = run_layoutd("fleet", "pools", "--host-dir", str(folder), *pool_args(pools))
        assert_clean_failure(result, 2, str(folder))


def test_bars_nothing_placed_are_not_a_yes(pools: dict[str, Path], tmp_path: Path) -> None:
    """A plan whose firmware is nowhere: `check` exits 3 (not judged), and the host is not a
    member, saying which BARs and why."""
    plan = json.loads(pools["quick"].read_text())
    plan["qemu_argv"] += ["-bios", str(tmp_path / "no-such-firmware.bin")]
    path = tmp_path / "nofw.json"
    path.write_text(json.dumps(plan))
    assert check_exit(plan, "amd-epyc-two-gpus") == 3
    result = run_layoutd("fleet", "publish", "--host", str(EXAMPLES / "hosts" / "amd-epyc-two-gpus"),
                         "--pool", f"nofw={path}")
    assert result.returncode == 0, result.stderr
    (entry,) = json.loads(result.stdout)["pools"]
    assert not entry["member"]
    assert entry["reasons"][0].startswith("could not be judged: where 0000:29:00.0 BAR"), entry
    assert "no-such-firmware.bin" in entry["reasons"][0]
