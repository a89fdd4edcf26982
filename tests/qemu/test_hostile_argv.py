"""Hostile command lines: predict() answers or raises a typed LayoutdError, never anything else."""

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from layoutd.errors import LayoutdError
from layoutd.qemu import predict
from layoutd.qemu.versions import modelled

OPTIONS = ["-m", "-machine", "-M", "-cpu", "-smp", "-object", "-device", "-numa", "-global",
           "-accel", "-bios", "-name", "-enable-kvm", "-nodefaults", "-S", "--"]
PIECES = ["q35", "pc", "virt", "4G", "x", "", "slots=", "slots=x", "maxmem=", "maxmem=1T", "size=",
          "memory-backend-ram", "pc-dimm", "virtio-mem-pci", "nvdimm", "id=m", "memdev=m",
          "addr=0x", "addr=zz", "node=-1", "node=q", "phys-bits=", "phys-bits=99", "EPYC",
          "host-phys-bits=maybe", "memory-backend=m", "max-ram-below-4g=", "nodeid=z", "{",
          '{"qom-type": 5}', "q35-pcihost.pci-hole64-size=", "block-size=3", "requested-size=1G",
          "0x", "-1", "1e3G", "\x00", "é"]


@st.composite
def hostile_argv(draw: st.DrawFn) -> list[str]:
    # a valid start half the time, so that garbage reaches the deeper rules too
    argv = draw(st.sampled_from([[], ["-machine", "q35", "-m", "4G,slots=2,maxmem=8G",
                                      "-object", "memory-backend-ram,id=m,size=1G"]]))
    for _ in range(draw(st.integers(0, 8))):
        argv.append(draw(st.sampled_from(OPTIONS)))
        parts = draw(st.lists(st.sampled_from(PIECES), max_size=4))
        argv.append(",".join(parts))
    return argv


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(hostile_argv(), st.sampled_from([str(version) for version in modelled()]),
       st.sampled_from(["x86_64", "aarch64"]))
def test_garbage_is_a_typed_error(argv: list[str], version: str, arch: str) -> None:
    try:
        predict(argv, version=version, arch=arch)
    except LayoutdError as error:
        assert error.render()  # a message a person can read


def test_a_bad_number_names_the_option() -> None:
    try:
        predict(["-m", "4G,slots=x"], version="10.0")
    except LayoutdError as error:
        assert "slots" in error.render() and "'x'" in error.render()
    else:
        raise AssertionError("a non-numeric slots= was accepted")
