"""Where the model cannot answer, `check --libvirt` answers with the domain's own emulator (a dry
run), as the hook does: an i686 domain (qemu-system-i386) and a machine type older than the model
(pc-q35-2.4, which QEMU 7.2 and 10.0 still start)."""

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


@pytest.mark.parametrize(("arch", "machine", "binary", "why", "ranges"), [
    ("i686", "pc", "i386", "architecture i686 is not modelled",
     ["0x0-0xbffff", "0x100000-0xbfffffff"]),
    ("x86_64", "pc-q35-2.4", "x86_64", "machine types older than 2.5 are not modelled",
     ["0x0-0xbffff", "0x100000-0x7fffffff", "0x100000000-0x13fffffff"]),
])
def test_check_answers_by_a_dry_run_where_the_model_cannot(tmp_path: Path, arch: str, machine: str,
                                                          binary: str, why: str,
                                                          ranges: list[str]) -> None:
    need_binary(f"qemu-system-{binary}")
    domain = tmp_path / "old.xml"
    domain.write_text(DOMAIN.format(arch=arch, machine=machine, binary=binary))
    result = run_layoutd("check", "--libvirt", str(domain), "--host", AMD)
    assert result.returncode == 0, result.stderr
    assert why in result.stdout and f"dry run of /usr/bin/qemu-system-{binary}" in result.stdout
    assert [line.split()[4] for line in result.stdout.splitlines() if line.startswith("pc.ram")] == ranges
