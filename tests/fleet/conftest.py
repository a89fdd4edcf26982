"""Fleet tests: layout pools planned by the real CLI on the example hosts, published per host."""

import json
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES, run_layoutd

HOSTS = sorted(p.name for p in (EXAMPLES / "hosts").iterdir() if p.is_dir())

# pool name -> (spec text, the hosts the plan is made on)
POOL_SPECS = {
    # 64G on the Intel host whose IOMMU maps 39 bits: fits most x86 hosts, not an RMRR at 0
    "small": ("name: small\ncpu: {model: Skylake-Server, vendor: intel, count: 4}\n"
              "memory: {size: 64G}\n", ["intel-46bit-cpu-39bit-iommu"]),
    # 1100G across the AMD HT host and an Intel host (examples/specs/migration.yaml)
    "mig-1100g": ((EXAMPLES / "specs" / "migration.yaml").read_text(),
                  ["amd-epyc-two-gpus", "intel-nic-msi-only"]),
    # 1100G on an AMD guest, QEMU's own relocation past the HT hole
    "big.amd": ("name: big\ncpu: {model: EPYC, vendor: amd, count: 4, phys_bits: 48}\n"
                "memory: {size: 1100G}\n", ["amd-epyc-two-gpus"]),
    # the quick start's GPU VM: only a host with 0000:29:00.0 can run it
    "quick": ((EXAMPLES / "specs" / "quickstart.yaml").read_text(), ["amd-epyc-two-gpus"]),
    # an arm64 guest with a NIC
    "arm": ((EXAMPLES / "specs" / "arm64.yaml").read_text(), ["arm-kunpeng-pci-windows"]),
}


@pytest.fixture(scope="session")
def pools(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every pool's plan JSON, written by `layoutd plan ... --format json`."""
    folder = tmp_path_factory.mktemp("pools")
    found = {}
    for name, (spec, hosts) in POOL_SPECS.items():
        (folder / f"{name}.yaml").write_text(spec)
        args = [a for h in hosts for a in ("--host", str(EXAMPLES / "hosts" / h))]
        result = run_layoutd("plan", str(folder / f"{name}.yaml"), *args, "--format", "json",
                             "-o", str(folder / f"{name}.json"))
        assert result.returncode == 0, result.stderr
        found[name] = folder / f"{name}.json"
    return found


def pool_args(pools: dict[str, Path]) -> list[str]:
    return [a for name, path in pools.items() for a in ("--pool", f"{name}={path}")]


def publish(host: str, pools: dict[str, Path], fmt: str = "json", *extra: str) -> str:
    result = run_layoutd("fleet", "publish", "--host", str(EXAMPLES / "hosts" / host),
                         *pool_args(pools), "--format", fmt, *extra)
    assert result.returncode == 0, result.stderr
    return result.stdout


def check_exit(plan: dict, host: str) -> int:
    """`layoutd check` of the plan's own command line on the host: its exit status."""
    binary = f"qemu-system-{plan['config']['arch']}"
    result = run_layoutd("check", "--host", str(EXAMPLES / "hosts" / host), "--qemu-version",
                         plan["qemu_version"], "--format", "json", "--", binary, *plan["qemu_argv"])
    assert "Traceback" not in result.stderr, result.stderr
    return result.returncode


ARCH = {"arm-hisilicon-d05": "aarch64", "arm-kunpeng-pci-windows": "aarch64",
        "arm-lx2160a-rmr": "aarch64"}


@pytest.fixture(scope="session")
def check_codes(pools: dict[str, Path]) -> dict[tuple[str, str], int | None]:
    """(pool, host) -> `layoutd check`'s exit status for the pool's plan on the host; None where
    the plan is for another architecture."""
    codes: dict[tuple[str, str], int | None] = {}
    for name, path in pools.items():
        plan = json.loads(path.read_text())
        for host in HOSTS:
            same = ARCH.get(host, "x86_64") == plan["config"]["arch"]
            codes[name, host] = check_exit(plan, host) if same else None
    return codes


@pytest.fixture(scope="session")
def published(pools: dict[str, Path]) -> dict[str, dict]:
    """Every example host's `fleet publish --format json`."""
    return {host: json.loads(publish(host, pools)) for host in HOSTS}
