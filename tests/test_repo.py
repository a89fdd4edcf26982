"""The repository stands alone: a clone into an empty folder has everything its tests, scripts
and docs use (nothing outside it, such as a ../shared folder beside the clone)."""

import re

from tests.conftest import ROOT

OUTSIDE = re.compile(r"\.\./shared\b|parent\s*/\s*[\"']shared[\"']|/work/shared")
KINDS = ("*.py", "*.sh", "*.md", "*.toml", "*.yaml", "run")


def test_nothing_reads_outside_the_repository() -> None:
    found = []
    for pattern in KINDS:
        for path in ROOT.rglob(pattern):
            parts = set(path.relative_to(ROOT).parts)
            if parts & {".venv", ".git", "build", ".hypothesis"} or path == ROOT / "tests/test_repo.py":
                continue
            for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
                if OUTSIDE.search(line):
                    found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert found == []


def test_the_install_prints_no_build_warnings() -> None:
    """The quick start's install is quiet: `project.license` is an SPDX string (a TOML table
    makes setuptools >= 77 warn three times), with the setuptools that reads it, and pip is
    asked to say only errors (an editable install otherwise prints setuptools' notice)."""
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert isinstance(project["project"]["license"], str)
    assert "setuptools>=77" in project["build-system"]["requires"]
    installs = [line for line in (ROOT / "scripts/install.sh").read_text().splitlines()
                if "pip install" in line]
    assert installs and all("pip install -qq" in line for line in installs)


def test_no_merge_conflict_markers() -> None:
    """A merge resolved in a hurry once left `<<<<<<< HEAD` in README.md and docs/contract.md."""
    marker = re.compile(r"^(<{7} |={7}$|>{7} )")
    found = []
    for pattern in (*KINDS, "*.json", "*.xml"):
        for path in ROOT.rglob(pattern):
            parts = set(path.relative_to(ROOT).parts)
            if parts & {".venv", ".git", "build", ".hypothesis"} or not path.is_file():
                continue
            for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
                if marker.match(line):
                    found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert found == []
