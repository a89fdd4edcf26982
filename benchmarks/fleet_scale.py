"""Fleet scale: publishing and pool membership for 1,000 recorded hosts, and how the cost grows
as the hosts double (125 -> 250 -> 500 -> 1000 -> 2000).

The hosts are dumps (`layoutd probe --record`) of the example hosts with varied holes: each group
gets an extra RMRR below 4 GiB or a reserved range above 4 GiB at a random place, and the Intel
IOMMUs a 39- or 48-bit width (the MGAW field of their cap register). Three pools are planned on
example hosts with the real CLI. Every host is published in-process (`layoutd.fleet.publish`:
probe the dump, then `check`'s judgement of each pool's plan), then `fleet pools` runs once over
all 1,000 as a whole process. Run: .venv/bin/python benchmarks/fleet_scale.py
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from layoutd.fleet import load_pools, pool_table, publish

ROOT = Path(__file__).resolve().parent.parent
HOSTS = ROOT / "examples" / "hosts"
SIZES = (125, 250, 500, 1000, 2000)
GiB = 1 << 30

POOLS = {  # name -> (spec, hosts it is planned on)
    "small": ("name: small\ncpu: {model: Skylake-Server, vendor: intel, count: 4}\nmemory: {size: 64G}\n",
              ["intel-46bit-cpu-39bit-iommu"]),
    "mig-1100g": ((ROOT / "examples" / "specs" / "migration.yaml").read_text(),
                  ["amd-epyc-two-gpus", "intel-nic-msi-only"]),
    "arm": ((ROOT / "examples" / "specs" / "arm64.yaml").read_text(), ["arm-kunpeng-pci-windows"]),
}


def layoutd(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "layoutd.cli", *args], capture_output=True,
                          text=True, cwd=ROOT, check=False)


def plans(folder: Path) -> list[str]:
    options = []
    for name, (spec, hosts) in POOLS.items():
        (folder / f"{name}.yaml").write_text(spec)
        args = [a for h in hosts for a in ("--host", str(HOSTS / h))]
        result = layoutd("plan", str(folder / f"{name}.yaml"), *args, "--format", "json",
                         "-o", str(folder / f"{name}.json"))
        if result.returncode:
            raise SystemExit(result.stderr)
        options.append(f"{name}={folder / name}.json")
    return options


def with_mgaw(cap: str, bits: int) -> str:
    """An Intel cap register with MGAW (bits 16-21, width - 1) set to `bits`."""
    value = int(cap, 16) & ~(0x3F << 16) | (bits - 1) << 16
    return f"{value:x}"


def hosts(folder: Path, count: int) -> list[str]:
    """`count` dumps made from the example hosts' dumps, each with its own extra holes."""
    bases = []
    for tree in sorted(p for p in HOSTS.iterdir() if p.is_dir()):
        dump = folder / f"base-{tree.name}.json"
        if layoutd("probe", "--host", str(tree), "--record", str(dump)).returncode:
            raise SystemExit(f"cannot record {tree}")
        bases.append(json.loads(dump.read_text()))
    rng = random.Random(count)
    paths = []
    for index in range(count):
        dump = json.loads(json.dumps(bases[index % len(bases)]))
        for group in dump["facts"]["groups"]:
            if rng.random() < 0.5:  # an RMRR in low memory, 1 MiB aligned
                start = rng.randrange(0x70000000, 0xC0000000, 1 << 20)
                line = f"0x{start:016x} 0x{start + (1 << 20) - 1:016x} direct\n"
            else:  # a reserved range somewhere between 64 GiB and 2 TiB
                start = rng.randrange(64, 2048) * GiB
                line = f"0x{start:016x} 0x{start + GiB - 1:016x} reserved\n"
            group["reserved_regions"] += line
        for unit in dump["facts"]["iommus"]:
            if unit.get("cap"):
                unit["cap"] = with_mgaw(unit["cap"], rng.choice((39, 48)))
        path = folder / f"host-{index:04d}.json"
        path.write_text(json.dumps(dump))
        paths.append(str(path))
    return paths


def timed(sources: list[str], pool_options: list[str]) -> tuple[float, dict[str, int]]:
    pools = load_pools(pool_options)
    start = time.perf_counter()
    table = pool_table([publish(source, pools) for source in sources], pools)
    elapsed = time.perf_counter() - start
    return elapsed, {name: len(row["members"]) for name, row in table["pools"].items()}


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="layoutd-fleet-") as temp:
        folder = Path(temp)
        pool_options = plans(folder)
        every = hosts(folder, max(SIZES))
        print(f"{len(every)} recorded hosts, {len(pool_options)} pools ({', '.join(POOLS)})")
        previous = None
        for size in SIZES:
            elapsed, members = timed(every[:size], pool_options)
            ratio = f"{elapsed / previous:.2f}x the half" if previous else ""
            print(f"{size:5d} hosts: {elapsed:7.2f} s ({elapsed / size * 1000:.1f} ms a host) "
                  f"{ratio:>16}  members: {members}")
            previous = elapsed
        args = [a for source in every[:1000] for a in ("--host", source)]
        start = time.perf_counter()
        result = layoutd("fleet", "pools", *args, *[a for p in pool_options for a in ("--pool", p)],
                         "--format", "json")
        if result.returncode:
            raise SystemExit(result.stderr)
        print(f"`layoutd fleet pools` over 1000 hosts, whole process: "
              f"{time.perf_counter() - start:.2f} s")


if __name__ == "__main__":
    main()
