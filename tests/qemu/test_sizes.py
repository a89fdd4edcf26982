"""QEMU's size syntax, exactly (issue 16): what the real binaries refuse, layoutd refuses in the same
words; what they accept, layoutd reads as the same number of bytes."""

import re

import pytest

from layoutd.errors import QemuRefusal
from layoutd.qemu import predict
from tests.qemu.compare import HARNESS
from tests.support.qemu_runner import VERSIONS, Refused, qemu_binary, real_map

pytestmark = pytest.mark.qemu

SIZES = ["1536GiB", "1GB", "1G ", "1.5", "1.5e3M", "16E", "0x400", ".5G", "1.5G", "512", "+1G",
         "1g", "2048k"]
OTHERS = [["-m", "1G,maxmem=4GiB,slots=2"], ["-m", "1G", "-object", "memory-backend-ram,id=m0,size=1GiB"],
          ["-m", "1G", "-global", "q35-pcihost.pci-hole64-size=1GiB"]]


def _qemu_words(stderr: str) -> str:
    lines = [re.sub(r"^qemu-system-\w+: ", "", line).strip() for line in stderr.splitlines()]
    return " ".join(line for line in lines if line and "warning:" not in line)


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("args", [["-m", size] for size in SIZES] + OTHERS, ids=str)
def test_sizes_as_the_real_binary_reads_them(version: str, args: list[str]) -> None:
    base = ["-machine", "q35", *args]
    real = real_map(qemu_binary(version), base)
    if isinstance(real, Refused):
        with pytest.raises(QemuRefusal) as refusal:
            predict([*base, *HARNESS], version=version)
        assert refusal.value.message == _qemu_words(real.stderr)
        return
    guest = predict([*base, *HARNESS], version=version)
    assert [(r.start, r.end) for r in guest.layout] == [(e.start, e.end) for e in real.ram]
