"""Start QEMU with the arguments `layoutd plan --format json` chose (its `qemu_argv`), paused,
then over QMP (standard input) plug a DIMM at the start of the plan's hotplug room, so the
nested VFIO really maps RAM that layoutd placed.

    run_planned.py PLAN.json DIMM_SIZE [--iommufd ID] QEMU [BASE_ARG...] -- [EXTRA_ARG...]

With --iommufd, the planned vfio-pci devices are given through iommufd as its users write them:
`-object iommufd,id=ID` and `,iommufd=ID` on each `-device vfio-pci,...` (the layout is the same).
Prints QMP's replies; exits with QEMU's status.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def main() -> int:
    plan = json.loads(Path(sys.argv[1]).read_text())
    size = int(sys.argv[2], 0)
    rest = sys.argv[3:]
    planned = list(plan["qemu_argv"])
    if rest[0] == "--iommufd":
        backend, rest = rest[1], rest[2:]
        planned = [f"{a},iommufd={backend}" if a.startswith("vfio-pci,") else a for a in planned]
        planned = ["-object", f"iommufd,id={backend}", *planned]
    cut = rest.index("--") if "--" in rest else len(rest)
    binary, base, extra = rest[0], rest[1:cut], rest[cut + 1:]
    argv = [binary, *base, *planned, *extra]
    print("planned:", " ".join(argv), file=sys.stderr, flush=True)
    commands: list[dict[str, object]] = [{"execute": "qmp_capabilities"}]
    room = plan.get("hotplug_room") or []
    if room:
        addr = int(room[0]["start"], 16)
        print(f"plugging a {size:#x}-byte DIMM at {addr:#x}", file=sys.stderr, flush=True)
        commands += [
            {"execute": "object-add",
             "arguments": {"qom-type": "memory-backend-ram", "id": "d0", "size": size}},
            {"execute": "device_add",
             "arguments": {"driver": "pc-dimm", "id": "dimm0", "memdev": "d0", "addr": addr}},
            {"execute": "query-memory-devices"},
        ]
    commands += [{"execute": "query-status"}, {"execute": "quit"}]
    qmp = "".join(json.dumps(c) + "\n" for c in commands)
    return subprocess.run(argv, input=qmp, text=True, timeout=120, check=False).returncode


if __name__ == "__main__":
    sys.exit(main())
