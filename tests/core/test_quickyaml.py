"""models/quickyaml.py against PyYAML with the spec loader: whatever it reads, PyYAML reads too
and gives the same value (same types); whatever else it leaves to PyYAML (Unsupported)."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from layoutd.models.quickyaml import Unsupported, load
from layoutd.models.spec import _loader as spec_loader
from layoutd.models.spec import parse_spec
from tests.conftest import EXAMPLES

TEXTS = [path.read_text() for path in sorted((EXAMPLES / "specs").glob("*.yaml"))]
TEXTS += [
    "name: vm\nmemory:\n  size: 8G\n  hotplug: {slots: 2, max: 16G}\nnuma:\n- size: 4G\n  cpus: 0-1\n"
    "- {size: 4G, cpus: '2'}\ndevices:\n  - 0000:41:00.0   # a GPU\n  - \"41:00.1\"\nshare: yes\n",
    "a: ~\nb:\nc: [1, -2, +3, 0x1f, 1.5, .5, 1e5, true, Off, null, 'it''s', \"q\"]\nd: {}\ne: []\n",
    "x:\n  -\n    - 1\n    - 2\n  -\n  - k: v\n    j: [a, {b: c}]\n",
]

SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-10**6, 10**12), st.floats(allow_nan=False, allow_infinity=False),
    st.text(alphabet="abz019 :-#_.,'\"[]{}?&*!|>%@`~x", max_size=8),
    st.sampled_from(["yes", "No", "ON", "null", "~", "0x1F", "0o7", "0755", "2024-01-02", "<<", "=", "1_000",
                     "8G", "0000:41:00.0", "0-3,5", "-", "- a", "a: b", "#c", "a #c", "1.", "+.5", "-0"]),
)
DOCS = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(SCALARS, inner, max_size=3),
    max_leaves=12,
)
NOISE = st.sampled_from([*": -#[]{},'\"\n 0aG!&*|>~?\t\\", "\n  ", ": ", "- ", "  ", "\r\n", "é"])


def _canon(value: Any) -> Any:
    if isinstance(value, dict):
        return ("dict", [(_canon(k), _canon(v)) for k, v in value.items()])
    if isinstance(value, list):
        return ("list", [_canon(item) for item in value])
    return (type(value).__name__, value)


def _agree(text: str) -> None:
    try:
        quick = load(text)
    except Unsupported:
        return
    slow = yaml.load(text, Loader=spec_loader())  # must not fail where the quick reader did not
    assert _canon(quick) == _canon(slow), text


@st.composite
def texts(draw: st.DrawFn) -> str:
    if draw(st.booleans()):
        text = draw(st.sampled_from(TEXTS))
    else:
        doc = draw(DOCS)
        text = yaml.safe_dump(doc, default_flow_style=draw(st.sampled_from([False, None, True])),
                              indent=draw(st.sampled_from([2, 4])), sort_keys=False,
                              width=draw(st.sampled_from([20, 80])))
    for _ in range(draw(st.integers(0, 4))):
        at = draw(st.integers(0, len(text)))
        if draw(st.booleans()):
            text = text[:at] + draw(NOISE) + text[at:]
        else:
            text = text[:at] + text[at + draw(st.integers(1, 3)):]
    return text


@settings(max_examples=1500, deadline=None)
@given(texts())
def test_the_quick_reader_agrees_with_pyyaml(text: str) -> None:
    _agree(text)


@pytest.mark.parametrize("text", TEXTS)
def test_plain_specs_are_read_without_pyyaml(text: str) -> None:
    assert _canon(load(text)) == _canon(yaml.load(text, Loader=spec_loader()))


@pytest.mark.parametrize("text", [
    "a: &x 1\nb: *x\n", "a: !!str 1\n", "a: |\n  text\n", "a: b\n  c\n", "a: 1\na: 2\n", "a: 2024-01-02\n",
    "a: 010\n", "a: \"\\n\"\n", "---\na: 1\n", "a: [1,\n  2]\n", "a:\tb\n", "? a\n: b\n", "", "# only\n",
])
def test_everything_else_is_left_to_pyyaml(text: str) -> None:
    with pytest.raises(Unsupported):
        load(text)


def test_a_spec_with_a_problem_is_reported_as_before() -> None:
    """The quick path never reports: errors come from the PyYAML reading, with their lines."""
    with pytest.raises(Exception, match="line 3"):
        parse_spec("name: vm\nmemory: {size: 8G}\nmachine: pc-foo\n", file="vm.yaml")
