"""Where the model cannot answer, `check --libvirt` answers with the domain's own emulator (a dry
run), as the hook does: an i686 domain (qemu-system-i386) and a machine type older than the model
(pc-q35-2.4, which QEMU 7.2 and 10.0 still start). The <hostdev>'s BARs are judged as check's
are: placed by the firmware's model for x86_64 (exit 0), never judged clear for i686, whose
firmware no model covers (exit 3, `not_judged`)."""

import json
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES, need_binary, run_layoutd

pytestmark = pytest.mark.qemu

AMD = str(EXAMPLES / "hosts" / "amd-epyc-two-gpus")
DOMAIN = """<domain type='qemu'><name>old</name><memory unit='MiB'>3072</memory><vcpu>1</vcpu>
<os><type arch='{arch}' machine='{machine}'>hvm</type></os><features><acpi/></features>
<devices><emulator>/usr/bin/qemu-system-{binary}</emulator>
<hostdev mode='subsystem' type='pci' managed='yes'><source><address domain='0x0000' bus='0x2a'
 slot='0x00' function='0x0'/></source></hostdev></devices></domain>
"""


@pytest.mark.parametrize(("arch", "machine", "binary", "why", "ranges", "code"), [
    ("i686", "pc", "i386", "architecture i686 is not modelled",
     ["0x0-0xbffff", "0x100000-0xbfffffff"], 3),
    ("x86_64", "pc-q35-2.4", "x86_64", "machine types older than 2.5 are not modelled",
     ["0x0-0xbffff", "0x100000-0x7fffffff", "0x100000000-0x13fffffff"], 0),
])
def test_check_answers_by_a_dry_run_where_the_model_cannot(tmp_path: Path, arch: str, machine: str,
                                                          binary: str, why: str,
                                                          ranges: list[str], code: int) -> None:
    need_binary(f"qemu-system-{binary}")
    domain = tmp_path / "old.xml"
    domain.write_text(DOMAIN.format(arch=arch, machine=machine, binary=binary))
    result = run_layoutd("check", "--libvirt", str(domain), "--host", AMD)
    assert result.returncode == code, result.stdout + result.stderr
    assert ("no collision" in result.stdout) == (code == 0)
    data = json.loads(run_layoutd("check", "--libvirt", str(domain), "--host", AMD, "--format",
                                  "json").stdout)
    assert data["how_known"]["layout"] == "dry-run"
    judged = [item["what"] for item in data["not_judged"]]
    placed = [(bar["device"], bar["bar"]) for bar in data["bars"]]
    bars = [("0000:2a:00.0", 1), ("0000:2a:00.0", 3)]  # the GPU's 64-bit BARs in the host dump
    assert (judged, placed) == (([f"{d} BAR{b}" for d, b in bars], []) if code else ([], bars))
    assert why in result.stdout and f"dry run of /usr/bin/qemu-system-{binary}" in result.stdout
    assert [line.split()[4] for line in result.stdout.splitlines() if line.startswith("pc.ram")] == ranges
