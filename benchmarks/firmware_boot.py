"""What a firmware without a row costs `layoutd check`: the boot (layoutd.boot) under TCG, and
under KVM where it runs, next to the answer from the boot cache and a check whose firmware is
modelled.

The VM: q35, EPYC with 46 phys-bits, 2G, the GPU of the 46-bit CPU / 39-bit IOMMU example host.
The firmware: Debian 12's SeaBIOS and OVMF with one byte of padding changed (no row in layoutd),
written into a scratch folder; each boot gets an empty cache folder, the cached runs share one.
Limit: a cached answer within 1.5x the modelled check (the boot itself is reported, not limited:
it is the price of a firmware layoutd does not know). Run:
.venv/bin/python benchmarks/firmware_boot.py [RUNS] [--ovmf]; exit 1 when the cache is slower.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from timing import EXAMPLES, layoutd, regular_python

SEABIOS = Path("/usr/share/seabios/bios-256k.bin")
OVMF = Path("/usr/share/OVMF/OVMF_CODE_4M.fd")
LIMIT = 1.5


def changed(original: Path, offset: int, folder: Path) -> Path:
    data = bytearray(original.read_bytes())
    data[offset] ^= 0x01
    target = folder / original.name
    target.write_bytes(bytes(data))
    return target


def run_s(argv: list[str], cache: str) -> float:
    start = time.perf_counter()
    result = subprocess.run(argv, capture_output=True, text=True, check=False,
                            env={**os.environ, "LAYOUTD_BOOT_CACHE": cache}, cwd="/")
    if result.returncode not in (0, 1) or "Traceback" in result.stderr:
        raise SystemExit(f"{' '.join(argv)}: exit {result.returncode}\n{result.stderr}")
    return time.perf_counter() - start


def main() -> int:
    runs = int(next((a for a in sys.argv[1:] if a.isdigit()), "5"))
    python = regular_python()
    folder = Path(tempfile.mkdtemp(prefix="layoutd-bench-"))
    firmware = {"SeaBIOS": ["-bios", str(changed(SEABIOS, 0x100, folder))]}
    if "--ovmf" in sys.argv:
        code = changed(OVMF, 0x200000, folder)
        (folder / "OVMF_VARS_4M.fd").write_bytes(Path("/usr/share/OVMF/OVMF_VARS_4M.fd").read_bytes())
        firmware["OVMF"] = ["-drive", f"if=pflash,format=raw,readonly=on,file={code}"]
    host = str(EXAMPLES / "hosts" / "intel-46bit-cpu-39bit-iommu")
    base = ["-machine", "q35", "-cpu", "EPYC,phys-bits=46", "-m", "2G",
            "-device", "vfio-pci,host=0000:01:00.0", "-device", "vfio-pci,host=0000:01:00.1"]
    accels = ["tcg"] + (["kvm"] if os.access("/dev/kvm", os.R_OK | os.W_OK) else [])
    worst = 0
    for name, boot in firmware.items():
        shared = tempfile.mkdtemp(prefix="boots-", dir=folder)
        for accel in accels:
            argv = layoutd(python, "check", "--host", host, "--qemu-version", "7.2", "--format",
                           "json", "--", "qemu-system-x86_64", "-accel", accel, *base, *boot)
            booted = sorted(run_s(argv, tempfile.mkdtemp(prefix="boots-", dir=folder))
                            for _ in range(runs))
            print(f"{name} boot under {accel.upper()} (KVM falls back to TCG where it cannot run "
                  f"it): median {booted[len(booted) // 2]:.2f} s")
        argv = layoutd(python, "check", "--host", host, "--qemu-version", "7.2", "--format", "json",
                       "--", "qemu-system-x86_64", "-accel", "tcg", *base, *boot)
        run_s(argv, shared)  # fills the cache
        modelled = layoutd(python, "check", "--host", host, "--qemu-version", "7.2", "--format",
                           "json", "--", "qemu-system-x86_64", "-accel", "tcg", *base,
                           *(["-bios", str(SEABIOS)] if name == "SeaBIOS" else
                             ["-drive", f"if=pflash,format=raw,readonly=on,file={OVMF}"]))
        cached, model = [], []
        for _ in range(runs * 4):
            cached.append(run_s(argv, shared))
            model.append(run_s(modelled, shared))
        cached_s, model_s = sorted(cached)[len(cached) // 2], sorted(model)[len(model) // 2]
        over = cached_s / model_s > LIMIT
        worst |= over
        print(f"{name} answer from the cache: {cached_s * 1000:.0f} ms; modelled build: "
              f"{model_s * 1000:.0f} ms; ratio {cached_s / model_s:.2f}x (limit {LIMIT:g}x"
              f"{', OVER' if over else ''})")
    return 1 if worst else 0


if __name__ == "__main__":
    sys.exit(main())
