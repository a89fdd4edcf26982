"""pydantic proves the fast validator: the same documents (valid and broken specs and host dumps)
go to layoutd/models/validate.py and to the models' pydantic view (layoutd/models/reference.py);
both must accept and refuse alike, at the same field, and build equal records."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from layoutd.host import probe_host, record_host
from layoutd.models import reference
from layoutd.models.fields import FieldError
from layoutd.models.host import HostDump, HostView
from layoutd.models.plan import Plan
from layoutd.models.spec import VmSpec
from layoutd.models.validate import Invalid, to_json, validate
from layoutd.planning import make_plan
from layoutd.record import Record, asdict
from layoutd.specfile import Loader as SpecLoader
from tests.conftest import EXAMPLES

SPECS = [yaml.load(path.read_text(), Loader=SpecLoader)
         for path in sorted((EXAMPLES / "specs").glob("*.yaml"))]
SPECS += [
    {"name": "n", "memory": {"size": "8G", "hotplug": {"slots": 2, "max": "16G"}, "hugepages": "1G"},
     "numa": [{"size": "4G", "cpus": "0"}, {"size": "4G", "cpus": [1]}], "cpu": {"count": 2}},
    {"name": "f", "memory": {"size": "2G", "backend": "file", "path": "/dev/hugepages/x"},
     "machine": "pc-i440fx-7.2", "pci_hole64": "32G", "accel": "tcg", "firmware": "seabios"},
]

VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 1 << 40), st.sampled_from([1, 2, 32, 64, 256, 1024, 2000]),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=6),
    st.sampled_from(["4G", "1G", "3M", "512", "0x1000", "0xfee00000", "zz", "0-3", "0,2", "q35", "virt",
                     "pc", "amd", "intel", "ram", "file", "intel", "virtio", "kvm", "tcg", "aarch64",
                     "0000:41:00.0", "41:00.0", "vm\n", "abcd", "DMA", "iommufd", "vfio-type1"]),
    st.lists(st.sampled_from([0, "0000:41:00.0", "x", 3]), max_size=2),
    st.dictionaries(st.sampled_from(["size", "cpus", "start", "end", "x"]), st.sampled_from(["4G", 0, "0"]),
                    max_size=2),
)


def _paths(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(doc, dict):
        for key, value in doc.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(doc, list):
        for index, value in enumerate(doc):
            found += _paths(value, (*prefix, index))
    return found


@st.composite
def broken(draw: st.DrawFn, docs: list[dict[str, Any]]) -> Any:
    """A document, then a few changes: a value replaced, a key dropped or added."""
    doc = copy.deepcopy(draw(st.sampled_from(docs)))
    for _ in range(draw(st.integers(0, 3))):
        path = draw(st.sampled_from(_paths(doc)))
        if not path:
            continue
        *parents, last = path
        where = doc
        for part in parents:
            where = where[part]
        action = draw(st.sampled_from(["set", "set", "drop", "add"]))
        if action == "set":
            where[last] = draw(VALUES)
        elif action == "drop" and isinstance(where, dict):
            del where[last]
        elif action == "add" and isinstance(where, dict):
            where[draw(st.sampled_from(["extra", "slots", "max", "kvm_smm", "node"]))] = draw(VALUES)
    return doc


def _ours(cls: type[Record], doc: Any) -> tuple[str, Any]:
    try:
        return "ok", asdict(validate(cls, doc))
    except Invalid as error:
        return "refused", error.path


def _pydantic(cls: type[Record], doc: Any) -> tuple[str, Any]:
    try:
        return "ok", asdict(reference.validate(cls, doc))
    except ValidationError as error:
        first = error.errors()[0]
        cause = (first.get("ctx") or {}).get("error")
        return "refused", tuple(first["loc"]) + (cause.path if isinstance(cause, FieldError) else ())


@pytest.fixture(scope="module")
def dumps(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    folder = tmp_path_factory.mktemp("dumps")
    found = []
    for tree in sorted((EXAMPLES / "hosts").glob("*"))[:4]:
        path = folder / f"{tree.name}.json"
        record_host(str(path), str(tree))
        found.append(json.loads(path.read_text()))
    with_reply = copy.deepcopy(found[0])
    with_reply["ioctl"] = {"reader": "iommufd", "groups": [1, 2], "devices": ["vfio0"], "reply": "00ff",
                           "num_iovas": 1, "iova_alignment": 4096}
    with_reply["facts"]["platform"] = {"arch": "x86_64", "hugepage_size": "0x200000",
                                       "hugepage_sizes": ["0x200000", "0x40000000"],
                                       "hugetlbfs": [{"path": "/dev/hugepages", "page_size": "0x200000"}]}
    return [*found, with_reply]


@settings(max_examples=400, deadline=None)
@given(broken(SPECS))
def test_specs_are_judged_as_pydantic_judges_them(doc: Any) -> None:
    assert _ours(VmSpec, doc) == _pydantic(VmSpec, doc)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_host_dumps_are_judged_as_pydantic_judges_them(dumps: list[dict[str, Any]],
                                                       data: st.DataObject) -> None:
    doc = data.draw(broken(dumps))
    assert _ours(HostDump, doc) == _pydantic(HostDump, doc)


def test_every_example_is_accepted_by_both() -> None:
    for doc in SPECS:
        assert _ours(VmSpec, doc)[0] == "ok", doc
        assert _ours(VmSpec, doc) == _pydantic(VmSpec, doc)


def test_json_output_is_what_pydantic_writes() -> None:
    """to_json against the pydantic view's model_dump(mode="json") of the same plan and view."""
    plan: Plan = make_plan(validate(VmSpec, SPECS[0]), [str(EXAMPLES / "hosts/amd-4gpu-1100g")], "10.0")
    view: HostView = probe_host(str(EXAMPLES / "hosts/amd-4gpu-1100g"))
    for record in (plan, view, plan.config, validate(VmSpec, SPECS[1])):
        pydantic_view = reference.model(type(record)).model_validate(asdict(record))
        assert to_json(record) == pydantic_view.model_dump(mode="json")
