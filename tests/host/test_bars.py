"""Device BARs from sysfs `resource`: parsed, recorded in dumps, shown by probe."""

import json
import shutil
from pathlib import Path

from layoutd.host.sysfs import parse_resource
from tests.conftest import EXAMPLES, assert_clean_failure, run_layoutd

TWO_GPUS = EXAMPLES / "hosts/amd-epyc-two-gpus"
GPU = "0000:29:00.0"


def test_resource_lines() -> None:
    text = (TWO_GPUS / "sys/bus/pci/devices" / GPU / "resource").read_text()
    bars = {bar.index: bar for bar in parse_resource(text, "resource")}
    assert sorted(bars) == [0, 1, 3, 5, 6]
    assert (bars[0].kind(), bars[0].size) == ("mem32", 16 << 20)
    assert (bars[1].kind(), bars[1].size, bars[1].start) == ("mem64 pref", 32 << 30, 0x30000000000)
    assert bars[1].is_64 and bars[1].prefetchable and not bars[1].is_rom
    assert bars[5].kind() == "io" and not bars[5].is_64
    assert bars[6].is_rom and bars[6].kind() == "rom"


def test_lines_after_the_rom_are_not_bars() -> None:
    lines = ["0x0000000000000000 0x0000000000000000 0x0000000000000000"] * 7
    lines.append("0x000000f000000000 0x000000f0ffffffff 0x000000000014220c")  # an SR-IOV BAR
    assert parse_resource("\n".join(lines), "resource") == []


def test_probe_shows_and_records_bars(tmp_path: Path) -> None:
    dump = tmp_path / "host.json"
    text = run_layoutd("probe", "--host", str(TWO_GPUS))
    assert text.returncode == 0, text.stderr
    assert "BARs (sysfs resource):" in text.stdout
    assert "0000:29:00.0  1    mem64 pref  32G   0x30000000000-0x307ffffffff" in text.stdout
    first = run_layoutd("probe", "--host", str(TWO_GPUS), "--format", "json", "--record", str(dump))
    again = run_layoutd("probe", "--host", str(dump), "--format", "json")
    devices = {d["address"]: d for d in json.loads(again.stdout)["devices"]}
    assert devices == {d["address"]: d for d in json.loads(first.stdout)["devices"]}
    assert {"index": 1, "start": "0x30000000000", "end": "0x307ffffffff",
            "flags": "0x14220c"} in devices[GPU]["bars"]


def test_garbled_resource_line(tmp_path: Path) -> None:
    tree = tmp_path / "host"
    shutil.copytree(TWO_GPUS, tree)
    resource = tree / "sys/bus/pci/devices" / GPU / "resource"
    resource.write_text("0x00000000f2000000 0x00000000f2ffffff 0x0000000000040200\nBAR1 32G\n")
    assert_clean_failure(run_layoutd("probe", "--host", str(tree)), 2, str(resource), "line 2")
