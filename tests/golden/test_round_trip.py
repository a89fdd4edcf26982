"""plan and check agree: every golden plan's command line, checked by `check` against the same
QEMU and firmware, has no collision (RAM and BARs); and by default (no --qemu-version) plan
makes its plan for the QEMU on PATH and the firmware that binary loads, exactly what `check`
asks when given that command line, so the round trip passes there too (or plan says no)."""

import shutil

import pytest

from layoutd.checking import check_command_line
from layoutd.collisions import check
from layoutd.errors import LayoutdError
from layoutd.planning import make_plan, qemu_target
from layoutd.specfile import load_spec
from tests.conftest import need
from tests.golden.test_golden import HOSTS, PAIRS, SPECS

GROUPS = [(spec, hosts) for spec in SPECS for hosts in [(h,) for h in HOSTS] + PAIRS.get(spec, [])]


def _round_trip(spec: str, hosts: tuple[str, ...], version: str | None) -> str:
    """Plan (for `version`, else for the QEMU on PATH), then check the command line on every
    host as `check` does; 'no' when plan refused, else the firmware both used."""
    loaded = load_spec(f"examples/specs/{spec}.yaml")
    binary = f"qemu-system-{loaded.arch}"
    if version is None:
        need(shutil.which(binary) is not None, f"{binary} (Debian package qemu-system-x86 / -arm)")
    try:
        plan = make_plan(loaded, [f"examples/hosts/{h}" for h in hosts],
                         qemu_target(version, None, loaded.arch))
    except LayoutdError as error:  # a "no", or a device this host lacks: plan printed nothing
        assert error.exit_code in (1, 2), error.render()
        return "no"
    assert plan.planned_for.startswith(f"QEMU {plan.qemu_version} ")
    for host in hosts:
        checked = check_command_line([binary, *plan.qemu_argv], host_source=f"examples/hosts/{host}",
                                     version=version)
        assert checked.guest.qemu_version == plan.qemu_version
        assert not check(checked.guest.layout, checked.host), (spec, host, plan.qemu_argv)
        if checked.bars is not None:
            assert checked.bars.firmware == plan.firmware, (spec, host)
            assert not checked.bars.collisions, (spec, host, [c.describe() for c in
                                                               checked.bars.collisions])
            assert [(b["device"], b["bar"], b["start"]) for b in checked.bars.bars] == [
                (b.device, b.bar, None if b.start is None else f"{b.start:#x}") for b in plan.bars]
    return plan.firmware or "none"


@pytest.mark.parametrize(("spec", "hosts"), GROUPS, ids=["+".join((s, *h)) for s, h in GROUPS])
def test_golden_plan_checks_clean_on_the_same_qemu(spec: str, hosts: tuple[str, ...],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.conftest import ROOT

    monkeypatch.chdir(ROOT)
    _round_trip(spec, hosts, "10.0")


@pytest.mark.parametrize(("spec", "hosts"), GROUPS, ids=["+".join((s, *h)) for s, h in GROUPS])
def test_default_plan_is_for_the_qemu_check_asks(spec: str, hosts: tuple[str, ...],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.conftest import ROOT

    monkeypatch.chdir(ROOT)
    _round_trip(spec, hosts, None)
