"""Golden files for what users copy: every example spec planned on every example host, in every
format (argv, QMP, libvirt XML, JSON, text, SVG), and every example host probed (JSON, text).
Guest addresses are interface: a change shows as a diff of these files, reviewed like code.

Regenerate after an intended change:  LAYOUTD_REGEN_GOLDEN=1 .venv/bin/python -m pytest tests/golden
"""

import json
import os
from pathlib import Path

import pytest

from layoutd.emit.plan import FORMATS, render
from layoutd.emit.probe import render_json, render_text
from layoutd.errors import LayoutdError
from layoutd.host import probe_host
from layoutd.planning import make_plan
from layoutd.specfile import load_spec
from tests.conftest import EXAMPLES, ROOT, need

GOLDEN = Path(__file__).parent
REGEN = os.environ.get("LAYOUTD_REGEN_GOLDEN") == "1"
SPECS = sorted(path.stem for path in (EXAMPLES / "specs").glob("*.yaml"))
HOSTS = sorted(path.name for path in (EXAMPLES / "hosts").iterdir() if path.is_dir())
SUFFIX = {"text": "txt", "json": "json", "argv": "sh", "qmp": "qmp.jsonl", "libvirt": "xml",
          "svg": "svg"}
PAIRS = {"migration": [("amd-epyc-two-gpus", "intel-nic-msi-only")]}  # as docs/guide.md runs it


def _compare(path: Path, text: str) -> None:
    if REGEN:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return
    assert path.is_file(), f"{path.relative_to(ROOT)} missing: regenerate with LAYOUTD_REGEN_GOLDEN=1"
    assert text == path.read_text(), f"{path.relative_to(ROOT)} differs (review, then regenerate)"


@pytest.fixture(autouse=True)
def _from_the_root(monkeypatch: pytest.MonkeyPatch) -> None:
    """Host sources as the docs give them, relative to the repository (they appear in outputs)."""
    monkeypatch.chdir(ROOT)
    monkeypatch.delenv("LAYOUTD_HOST", raising=False)


@pytest.mark.parametrize("spec", SPECS)
def test_plans(spec: str) -> None:
    outcomes: dict[str, object] = {}
    groups = [(host,) for host in HOSTS] + PAIRS.get(spec, [])
    for hosts in groups:
        name = "+".join(hosts)
        try:
            plan = make_plan(load_spec(f"examples/specs/{spec}.yaml"),
                             [f"examples/hosts/{host}" for host in hosts], "10.0")
        except LayoutdError as error:
            outcomes[name] = {"exit_code": error.exit_code, "error": error.render()}
            continue
        outcomes[name] = {"exit_code": 0}
        firmware = plan.config.firmware  # identified by its sha256: the BARs depend on it
        need(firmware is None or Path(firmware).exists(), f"the firmware {firmware}")
        for kind in FORMATS:
            _compare(GOLDEN / "plan" / spec / f"{name}.{SUFFIX[kind]}", render(plan, kind))
    _compare(GOLDEN / "plan" / spec / "outcomes.json", json.dumps(outcomes, indent=2) + "\n")


@pytest.mark.parametrize("host", HOSTS)
def test_probes(host: str) -> None:
    view = probe_host(f"examples/hosts/{host}", None)
    _compare(GOLDEN / "probe" / f"{host}.json", render_json(view) + "\n")
    _compare(GOLDEN / "probe" / f"{host}.txt", render_text(view) + "\n")
