"""The firmware model's table of CPU models with 1 GiB pages (OVMF caps phys-bits at 40 without
them) against QEMU's own answer, query-cpu-model-expansion, for every named x86 model."""

import json
import subprocess

import pytest

from layoutd.firmware.guest import page_1g
from tests.support.qemu_runner import qemu_binary

pytestmark = pytest.mark.qemu  # starts real QEMU or firmware: not in -m "not qemu"


@pytest.mark.parametrize("version", ["7.2", "10.0"])
def test_pdpe1gb_of_every_model(version: str) -> None:
    binary = qemu_binary(version)
    base = [*binary.argv(["-machine", "none", "-accel", "tcg", "-nodefaults", "-display", "none",
                          "-S", "-qmp", "stdio"])]
    ask = [{"execute": "qmp_capabilities"}, {"execute": "query-cpu-definitions"}]
    names = [model["name"] for model in _replies(base, ask)[1]
             if not model.get("deprecated") and model.get("static") is False]
    ask = [{"execute": "qmp_capabilities"}] + [
        {"execute": "query-cpu-model-expansion", "arguments": {"type": "full", "model": {"name": n}}}
        for n in names]
    wrong = []
    for name, reply in zip(names, _replies(base, ask)[1:], strict=True):
        if not isinstance(reply, dict) or "pdpe1gb" not in reply["model"]["props"]:
            continue
        if name.startswith(("qemu32", "kvm32", "486", "pentium", "athlon", "n270", "coreduo", "base")):
            continue
        if bool(reply["model"]["props"]["pdpe1gb"]) != page_1g(name, {}):
            wrong.append(name)
    assert wrong == []


def _replies(argv: list[str], commands: list[dict[str, object]]) -> list[object]:
    text = "\n".join(json.dumps(command) for command in [*commands, {"execute": "quit"}]) + "\n"
    out = subprocess.run(argv, input=text, capture_output=True, text=True, timeout=120).stdout
    replies = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    return [reply.get("return") for reply in replies if "return" in reply][: len(commands)]
