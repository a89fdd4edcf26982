"""layoutd/qemu/cpu_models.py is what each real binary says (query-cpu-definitions), and every x86
model there has a vendor in the model."""

import pytest

from layoutd.qemu.cpu_models import CPU_MODELS
from layoutd.qemu.cpus import x86_cpu
from layoutd.qemu.versions import row
from tests.support.qemu_runner import VERSIONS, qemu_binary, started

pytestmark = pytest.mark.qemu


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("arch", ["x86_64", "aarch64"])
def test_cpu_models_are_the_binarys(arch: str, version: str) -> None:
    with started(qemu_binary(version, arch), ["-machine", "none"]) as qemu:
        assert not isinstance(qemu, type(None))
        names = frozenset(d["name"] for d in qemu.qmp("query-cpu-definitions"))  # type: ignore[union-attr]
    assert CPU_MODELS[(arch, row(version).cpu_models)] == names


@pytest.mark.parametrize("version", VERSIONS)
def test_every_x86_model_has_a_vendor(version: str) -> None:
    for name in CPU_MODELS[("x86_64", row(version).cpu_models)] - {"host"}:
        assert x86_cpu(name, {}, "tcg", row(version), None).vendor in ("amd", "intel", "other")
