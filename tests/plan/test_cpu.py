"""The solver takes the guest CPU from the QEMU model: vendor (the AMD 1 TiB rule), default
phys-bits, and the spec's cpu.vendor through QEMU's `vendor=` property.

Every plan here is also checked by the model on its own argv (`assemble`), so a solver that
disagreed with the model about the CPU would end in an "internal disagreement".
"""

import pytest

from layoutd.errors import InputError
from layoutd.qemu import predict
from layoutd.qemu.versions import modelled
from layoutd.solver.problem import problem_for
from tests.plan.support import plan_of

HT_START = 0xFD00000000
TIB = 1 << 40
MODELS = ["host", "qemu64", "max", "kvm64", "EPYC", "EPYC-Rome", "Dhyana", "Skylake-Server",
          "Cascadelake-Server"]


VERSIONS = [str(version) for version in modelled()]


def _spec(model: str, vendor: str | None, accel: str = "kvm") -> str:
    declared = f", vendor: {vendor}" if vendor else ""
    return (f"name: c\naccel: {accel}\ncpu: {{model: {model}{declared}, count: 2, phys_bits: 48}}\n"
            "memory: {size: 1100G}\n")


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("vendor", [None, "amd", "intel"])
@pytest.mark.parametrize(("model", "accel"), [(m, a) for m in MODELS for a in ("kvm", "tcg")
                                              if (m, a) != ("host", "tcg")])  # host needs KVM
@pytest.mark.parametrize("host", ["intel-ht", "amd-ht"])
def test_solver_and_model_agree_on_the_guest_cpu(
    model: str, vendor: str | None, host: str, version: str, accel: str
) -> None:
    spec, goal, plan = plan_of(_spec(model, vendor, accel), [host], version)
    assert ("-accel" in plan.qemu_argv) == (accel == "kvm")
    guest = predict(plan.qemu_argv, version=version, host_cpu=plan.host_cpu)
    assert problem_for(spec, goal, version).vendor == guest.cpu_vendor
    if vendor:
        assert guest.cpu_vendor == vendor
    high = [r for r in plan.layout if r.start >= 1 << 32]
    relocated = high[0].start == TIB
    assert relocated == (guest.cpu_vendor == "amd")
    assert all(r.end < HT_START or r.start > 0xFFFFFFFFFF for r in plan.layout)
    if model in ("host", "max") and accel == "kvm" and not vendor:
        assert guest.cpu_vendor == ("amd" if host == "amd-ht" else "intel")  # the host's
    alone = predict(["-accel", accel, "-cpu", model], version=version, host_cpu=plan.host_cpu)
    if vendor and vendor != alone.cpu_vendor:
        wanted = "AuthenticAMD" if vendor == "amd" else "GenuineIntel"
        assert plan.config.cpu_vendor == wanted
        assert f"{model},vendor={wanted}" in plan.qemu_argv[plan.qemu_argv.index("-cpu") + 1]
    else:
        assert plan.config.cpu_vendor is None


def test_a_vendor_qemu_cannot_give_is_bad_input() -> None:
    with pytest.raises(InputError) as caught:
        plan_of("name: c\ncpu: {model: Skylake-Server, vendor: arm}\nmemory: {size: 4G}\n", ["intel-ht"])
    assert caught.value.field == "cpu.vendor"
    with pytest.raises(InputError) as caught:
        arm = "name: c\narch: aarch64\ncpu: {model: max, vendor: amd}\nmemory: {size: 4G}\n"
        plan_of(arm, ["arm-windows"])
    assert caught.value.field == "cpu.vendor"


def test_host_model_needs_kvm() -> None:
    with pytest.raises(InputError) as caught:
        plan_of("name: c\naccel: tcg\ncpu: {model: host}\nmemory: {size: 4G}\n", ["intel-ht"])
    assert caught.value.field == "cpu.model" and "requires KVM" in caught.value.message


def test_kvm_on_aarch64_is_refused_by_name() -> None:
    with pytest.raises(InputError) as caught:
        plan_of("name: c\narch: aarch64\naccel: kvm\nmemory: {size: 4G}\n", ["arm-windows"])
    assert "accel" in (caught.value.field or "") + caught.value.message


def test_pc_split_follows_qemu_above_3g() -> None:
    """pc, 3456M, a hole at 3.25-3.5 GiB: max-ram-below-4g between 3 and 3.5 GiB still gives
    a 3 GiB low part, as QEMU's gigabyte alignment does (the old copy of the rule said 3.25)."""
    _, _, plan = plan_of("name: p\nmachine: pc\ncpu: {model: Skylake-Server}\nmemory: {size: 3456M}\n",
                            ["pc-hole-3g25"])
    low = [r for r in plan.layout if r.end < 1 << 32]
    assert max(r.end for r in low) < 0xD0000000
    assert sum(r.size for r in plan.layout) + 0x60000 == 3456 << 20


@pytest.mark.parametrize(("model", "vendor", "host", "expected"), [
    ("Skylake-Server", "amd", "intel-ht", "amd"),  # <model vendor_id=...>
    ("host", None, "amd-ht", "amd"),  # host-passthrough under <domain type='kvm'>
    ("host", None, "intel-ht", "intel"),
])
def test_libvirt_xml_carries_the_vendor_back_to_qemu(model: str, vendor: str | None, host: str,
                                                      expected: str) -> None:
    """<model vendor_id=...> is what libvirt turns into -cpu MODEL,vendor=...; host-passthrough
    in a kvm domain is -accel kvm -cpu host. The emitted domain, read back as the hook reads it,
    builds the plan's map (relocated for an AMD guest)."""
    from layoutd.emit.libvirt import emit_domain
    from layoutd.libvirt.argv import translate_xml

    _, _, plan = plan_of(_spec(model, vendor), [host])
    xml = emit_domain(plan)
    assert 'type="kvm"' in xml.splitlines()[0]
    if vendor:
        assert 'vendor_id="AuthenticAMD"' in xml
    translation = translate_xml(xml)
    guest = predict(translation.argv, version=plan.qemu_version, host_cpu=plan.host_cpu)
    assert guest.cpu_vendor == expected
    above = [(r.start, r.end) for r in guest.layout if r.start > 0xFFFFF]
    assert above == [(r.start, r.end) for r in plan.layout if r.start > 0xFFFFF]


def _solve_unknown_cpu(text: str) -> tuple[str, ...]:
    """Plan against a host whose CPU no source describes (a tree without proc/cpuinfo)."""
    from layoutd.planning import assemble
    from layoutd.solver import solve_spec
    from layoutd.specfile import parse_spec
    from tests.plan.hosts import MSI, target, view

    spec = parse_spec(text)
    goal = target(view("nocpu", [MSI], bits=46, vendor="unknown"))
    return assemble(spec, goal, solve_spec(spec, goal, "10.0"), "10.0").qemu_argv


def test_kvm_with_an_unknown_host_cpu_says_what_to_set() -> None:
    with pytest.raises(InputError) as caught:
        _solve_unknown_cpu("name: c\nmemory: {size: 4G}\n")
    assert caught.value.field == "cpu.model"
    assert "cpu.vendor" in caught.value.message and "accel: tcg" in caught.value.message


@pytest.mark.parametrize(("cpu", "expected"), [
    ("{vendor: amd}", "qemu64,vendor=AuthenticAMD"),
    ("{model: host, vendor: intel, phys_bits: 46}",
     "host,vendor=GenuineIntel,host-phys-bits=off,phys-bits=46"),
])
def test_kvm_with_an_unknown_host_cpu_plans_once_the_spec_says(cpu: str, expected: str) -> None:
    argv = _solve_unknown_cpu(f"name: c\ncpu: {cpu}\nmemory: {{size: 4G}}\n")
    assert argv[argv.index("-cpu") + 1] == expected
    assert argv[:2] == ("-accel", "kvm")


def test_a_pci_window_above_the_iommu_top_is_said() -> None:
    """arm virt puts its 512 GiB high PCIe MMIO window above 256 GiB, whatever the IOMMU maps:
    with a 39-bit IOMMU the plan's RAM is fine, and a warning says where BARs cannot be reached."""
    from layoutd.planning import assemble
    from layoutd.solver import solve_spec
    from layoutd.specfile import parse_spec
    from tests.plan.hosts import target, view

    spec = parse_spec("name: a\narch: aarch64\naccel: tcg\nmemory: {size: 4G}\n")
    for top_bits, warned in ((39, True), (48, False)):
        goal = target(view("arm39", [(0x8000000, 0x80FFFFF, "msi")], bits=48, vendor="arm",
                           top_bits=top_bits))
        plan = assemble(spec, goal, solve_spec(spec, goal, "10.0"), "10.0")
        said = [w for w in plan.warnings if "high-pcie-mmio" in w]
        assert bool(said) == warned, plan.warnings
        assert all(region.end < 1 << top_bits for region in plan.layout)
