"""Every layoutd command that README.md and docs/ show runs as shown, from the repository root,
and so does the README's first command, scripts/quickstart.sh."""

import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest

from tests.conftest import ROOT, run_layoutd

DOCUMENTED = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# What each command is documented to answer: `check` on the quick-start VM finds the HT hole.
EXPECTED = {"check": 1}
# Files the docs name as the user's own (their VM spec, their dump, their domain): a command
# that names one is a template for the reader, not something the repository can run.
USER_FILES = {"vm.yaml", "host-dump.json", "db01.xml", "db01-fixed.xml",
              # fleet.md: a pool's plan and the files publish writes on a compute node
              "/etc/layoutd/mig-1100g.json", "/etc/nova/provider_config/layoutd.yaml"}


def documented_commands(path: Path) -> list[list[str]]:
    """Indented code lines that run layoutd, joined across trailing backslashes."""
    commands: list[list[str]] = []
    pending = ""
    for line in path.read_text().splitlines():
        if pending:
            pending += " " + line.strip()
        elif re.match(r"^ {4}(sudo )?(\.venv/bin/)?layoutd [a-z-]+( |$)", line):
            pending = line.strip().removeprefix("sudo ")
        if pending and not pending.endswith("\\"):
            words = shlex.split(pending.replace("\\ ", " "))
            commands.append(words[1:])
            pending = ""
        elif pending:
            pending = pending[:-1]
    return commands


def is_template(words: list[str]) -> bool:
    """A synopsis ([options], UPPERCASE placeholders) or a command on the user's own files."""
    if any("[" in word or re.fullmatch(r"[A-Z][A-Z0-9_.,]*(\.yaml|\.xml)?", word) for word in words):
        return True
    # a file may follow NAME= (fleet's --pool NAME=PLAN.json)
    files = [word.rpartition("=")[2] for word in words if re.search(r"\.(yaml|xml|json)$", word)]
    missing = [word for word in files if not (ROOT / word).exists()]
    assert set(missing) <= USER_FILES, f"a documented command names a file the repository lacks: {missing}"
    return bool(missing)


ALL = [(path, words) for path in DOCUMENTED for words in documented_commands(path)]
CASES = [(path.name, words) for path, words in ALL if not is_template(words)]


def test_the_docs_show_commands() -> None:
    assert len(CASES) >= 7
    assert {doc for doc, _ in CASES} >= {"README.md", "guide.md"}


@pytest.mark.parametrize(("doc", "words"), CASES, ids=[f"{d}:{' '.join(w[:2])}" for d, w in CASES])
def test_documented_command_runs(doc: str, words: list[str]) -> None:
    result = run_layoutd(*words)
    assert "Traceback" not in result.stderr
    assert result.returncode == EXPECTED.get(words[0], 0), (doc, words, result.stderr)
    assert result.stdout.strip()


def test_quickstart_runs_as_shown() -> None:
    """The README's first command: install into ./.venv, then probe, check (a "no") and plan."""
    env = {k: v for k, v in os.environ.items() if k != "LAYOUTD_HOST"}
    result = subprocess.run(["scripts/quickstart.sh"], cwd=ROOT, capture_output=True, text=True,
                            timeout=600, env=env, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "Traceback" not in result.stdout + result.stderr
    out = result.stdout
    for command in ("$ layoutd probe", "$ layoutd check", "$ layoutd plan"):
        assert command in out, out
    assert "0xfd00000000" in out  # the HT hole, named by probe and by check's collision
    assert "-object memory-backend" in out or "memory-backend" in out  # plan's argv
