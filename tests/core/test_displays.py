"""What people read (issue 16): rows that follow the machine type, exact sizes, probe's notes
apart from warnings that say what to do, and one help style with exit codes in every command."""

import re

from layoutd.cli import COMMANDS
from tests.conftest import EXAMPLES, run_layoutd

AMD = str(EXAMPLES / "hosts" / "amd-epyc-two-gpus")
CHECK = ["check", "--host", AMD, "--qemu-version", "7.2", "--", "qemu-system-x86_64", "-accel", "kvm",
         "-cpu", "host", "-m", "1100G", "-device", "vfio-pci,host=0000:29:00.0", "-machine"]


def test_the_ht_row_follows_the_machine_type() -> None:
    """pc-q35-6.2 predates QEMU's AMD rule: pc.ram covers 0xfd00000000, no HT reservation."""
    old = run_layoutd(*CHECK, "pc-q35-6.2")
    assert old.returncode == 1 and "amd-ht-reserved" not in old.stdout, old.stdout
    assert "2047M" in old.stdout and "1098G" in old.stdout  # exact, not 2G and 1.07T
    new = run_layoutd(*CHECK, "pc-q35-7.2")
    assert new.returncode == 0 and "amd-ht-reserved" in new.stdout, new.stdout + new.stderr


def test_probe_separates_notes_from_warnings_that_say_what_to_do() -> None:
    intel = run_layoutd("probe", "--host", str(EXAMPLES / "hosts" / "intel-4gpu-39bit"))
    notes, warnings = intel.stdout.split("\nnotes:\n")[1].split("\nwarnings (each says what to do):\n")
    assert "aperture top 0x7fffffffff" in notes and "aperture top" not in warnings
    amd = run_layoutd("probe", "--host", AMD)
    said = [line for line in amd.stdout.splitlines() if "address width is unknown" in line]
    assert len(said) == 1 and "layoutd probe --host live --record host.json" in said[0]
    assert "the CPU's 48 address bits bound it" in said[0]


def test_help_shows_version_exit_codes_and_one_placeholder_style() -> None:
    top = run_layoutd("--help")
    assert "--version" in top.stdout and "exit status" in top.stdout
    for name in COMMANDS:
        shown = run_layoutd(name, "--help").stdout
        assert "exit status" in shown, name
        placeholders = re.findall(r"--(host|devices) ([A-Z][A-Z.,]*)", shown)
        assert set(placeholders) <= {("host", "SRC"), ("devices", "BDF,...")}, (name, placeholders)


def test_the_guide_says_which_qemu_each_command_models() -> None:
    guide = (EXAMPLES.parent / "docs" / "guide.md").read_text()
    assert "`plan` plans for the QEMU and firmware this machine has, as `check` asks them" in guide
    assert "`--qemu-version 7.2` plans for another" in guide


def test_equal_bars_draw_alike_on_the_svg_scale() -> None:
    """Issue 22: two 32 GiB BARs, one across the HT hole (cut by its edges and QEMU's e820
    entry there), drew at different widths; each is its own log width now."""
    import re

    result = run_layoutd("check", "--format", "svg", "--host", AMD, "--qemu-version", "7.2", "--",
                         "qemu-system-x86_64", "-machine", "q35", "-cpu", "EPYC", "-m", "960G",
                         "-device", "vfio-pci,host=0000:29:00.0", "-device", "vfio-pci,host=0000:2a:00.0")
    assert result.returncode == 1, result.stderr  # the BAR across the hole is a collision
    widths = re.findall(r"<title>BAR1 [^<]*\(32G\)</title><rect [^>]*width=\"([0-9.]+)\"", result.stdout)
    assert len(widths) == 2 and widths[0] == widths[1], widths
