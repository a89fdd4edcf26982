"""The CLI edge: usage errors and unexpected failures never show a traceback."""

import argparse
from pathlib import Path

import pytest

from layoutd import cli
from layoutd.errors import HostUnavailable, InputError, NoAnswer
from tests.conftest import EXAMPLES, assert_clean_failure, run_layoutd


def test_no_command_is_usage_error() -> None:
    assert_clean_failure(run_layoutd(), 2, "usage: layoutd COMMAND")


def test_unknown_command() -> None:
    assert_clean_failure(run_layoutd("frobnicate"), 2, "unknown command 'frobnicate'")


def test_help_lists_every_command() -> None:
    result = run_layoutd("--help")
    assert result.returncode == 0
    for name in cli.COMMANDS:
        assert name in result.stdout


@pytest.mark.parametrize(("error", "code"), [(InputError("x"), 2), (NoAnswer("x"), 1),
                                             (HostUnavailable("x"), 3)])
def test_typed_errors_map_to_exit_codes(error: Exception, code: int,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    def run(_: argparse.Namespace) -> int:
        raise error

    assert cli.run_reporting_errors("probe", run, argparse.Namespace()) == code
    assert capsys.readouterr().err.startswith("layoutd probe: x")


def test_unexpected_error_is_a_message(capsys: pytest.CaptureFixture[str],
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LAYOUTD_DEBUG", raising=False)

    def run(_: argparse.Namespace) -> int:
        raise ZeroDivisionError("boom")

    assert cli.run_reporting_errors("plan", run, argparse.Namespace()) == 2
    err = capsys.readouterr().err
    assert "internal error: ZeroDivisionError: boom" in err and "Traceback" not in err


def test_error_names_file_and_field() -> None:
    error = InputError("must be a size", file="vm.yaml", field="memory.size")
    assert error.render() == "vm.yaml: memory.size: must be a size"


AMD_HOST = "examples/hosts/amd-epyc-two-gpus"


@pytest.mark.parametrize(("argv", "code"), [
    (["-m", "8GiB"], 2),  # bad input: the JSON error document
    (["-accel", "kvm", "-machine", "pc-q35-6.2", "-cpu", "host", "-m", "1100G",
      "-device", "vfio-pci,host=0000:29:00.0"], 1),  # a collision: the JSON map
])
def test_json_outcome_survives_a_closed_pipe(argv: list[str], code: int) -> None:
    """`check --format json ... | head -1`: the reader has gone before layoutd writes; the exit
    status is still the outcome's, and no traceback."""
    import os
    import subprocess
    import sys

    from tests.conftest import ROOT

    read, write = os.pipe()
    os.close(read)  # a reader that stopped: every write now fails with EPIPE
    env = {k: v for k, v in os.environ.items() if k != "LAYOUTD_HOST"}
    result = subprocess.run(
        [sys.executable, "-m", "layoutd.cli", "check", "--format", "json", "--host", AMD_HOST,
         "--qemu-version", "7.2", "--", "qemu-system-x86_64", *argv],
        stdout=write, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env, timeout=120)
    os.close(write)
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr and "BrokenPipe" not in result.stderr, result.stderr


def test_layoutd_debug_shows_the_cause_an_error_kept(tmp_path: Path) -> None:
    """The message stays one paragraph; LAYOUTD_DEBUG adds the traceback with its cause."""
    missing = str(tmp_path / "missing.xml")
    plain = run_layoutd("check", "--libvirt", missing, "--host", str(EXAMPLES / "hosts/amd-4gpu-1100g"),
                        env={"LAYOUTD_DEBUG": ""})
    assert_clean_failure(plain, 2, "cannot read")
    debug = run_layoutd("check", "--libvirt", missing, "--host", str(EXAMPLES / "hosts/amd-4gpu-1100g"),
                        env={"LAYOUTD_DEBUG": "1"})
    assert debug.returncode == 2
    assert "FileNotFoundError" in debug.stderr and "The above exception was the direct cause" \
        in debug.stderr, debug.stderr
    assert debug.stderr.rstrip().splitlines()[-1] == plain.stderr.rstrip().splitlines()[-1]
