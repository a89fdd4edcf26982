"""Run one of layoutd's live readers by name, in the guest, and print what `probe --format json`
would print had that reader answered: `probe --host live` takes iommufd first, so this is how the
type1 reader is asked on a kernel that offers both.

    reader.py iommufd|vfio-type1 BDF...

A reader that cannot ask prints its message on standard error and exits 3 (as layoutd would).
"""

from __future__ import annotations

import sys

from layoutd.emit.probe import render_json
from layoutd.errors import HostUnavailable
from layoutd.host import iommufd, type1
from layoutd.host.sysfs import read_tree
from layoutd.host.view import build_view


def main() -> int:
    name, devices = sys.argv[1], sys.argv[2:]
    facts = read_tree("/", live=True)
    groups = sorted({d.group for d in facts.devices if d.address in devices and d.group is not None})
    try:
        reply = iommufd.query(devices, groups) if name == "iommufd" else type1.query(groups, devices=devices)
    except HostUnavailable as error:
        print(error.message, file=sys.stderr)
        return error.exit_code
    print(render_json(build_view(facts, devices, reply.reader, reply=reply)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
