"""Issue 22's messages, as a user reads them from the real CLI."""

import json
from pathlib import Path

from tests.conftest import EXAMPLES, assert_clean_failure, run_layoutd

AMD = str(EXAMPLES / "hosts/amd-epyc-two-gpus")
INTEL_39 = str(EXAMPLES / "hosts/intel-46bit-cpu-39bit-iommu")
QEMU = "qemu-system-x86_64"


def check(host: str, *argv: str, version: str = "7.2", fmt: str = "text"):  # type: ignore[no-untyped-def]
    return run_layoutd("check", "--host", host, "--qemu-version", version, "--format", fmt, "--",
                       QEMU, *argv)


def test_qemus_refusal_is_said_as_qemus_with_a_fix_that_check_then_passes() -> None:
    argv = ["-accel", "kvm", "-machine", "q35", "-cpu", "EPYC,phys-bits=40", "-m", "1000G",
            "-device", "vfio-pci,host=0000:29:00.0"]
    refused = check(AMD, *argv)
    assert_clean_failure(refused, 2, "QEMU would refuse this: Address space limit",
                         "phys-bits too low (40)", "would work: -cpu EPYC,phys-bits=")
    document = json.loads(check(AMD, *argv, fmt="json").stdout)
    assert document["error"]["kind"] == "qemu-refusal"
    fixes = [fix["change"] for fix in document["would_work"]]
    assert fixes and {"-cpu", "-m"} == {key for fix in fixes for key in fix}
    for fix in fixes:  # each one, applied, is taken by QEMU and clear of every hole
        ((flag, value),) = fix.items()
        changed = [value if argv[i - 1] == flag else word for i, word in enumerate(argv)]
        assert changed != argv
        result = check(AMD, *changed)
        assert result.returncode == 0, (fix, result.stdout, result.stderr)


def test_sizes_and_slots_say_what_to_write() -> None:
    assert_clean_failure(check(AMD, "-m", "8GiB"), 2, "QEMU would refuse this: -m 8GiB",
                         "would work: write 8G")
    assert_clean_failure(check(AMD, "-m", "8G,slots=2"), 2, "slots specified but no max-size",
                         "maxmem")


def test_the_success_line_names_the_bars_when_they_were_checked() -> None:
    with_bars = check(AMD, "-accel", "kvm", "-cpu", "EPYC", "-m", "8G",
                      "-device", "vfio-pci,host=0000:29:00.0")
    assert with_bars.returncode == 0, with_bars.stderr
    assert "no collision: all guest RAM and the 2 assigned 64-bit BAR(s) are clear" in with_bars.stdout
    ram_only = check(AMD, "-accel", "kvm", "-cpu", "EPYC", "-m", "8G")
    assert "no collision: all guest RAM is clear of the host's holes" in ram_only.stdout


def test_each_warning_once_and_facts_as_notes() -> None:
    result = check(AMD, "-accel", "kvm", "-cpu", "EPYC", "-m", "8G",
                   "-device", "vfio-pci,host=0000:29:00.0")
    warnings = [line for line in result.stdout.splitlines() if line.startswith("warning: ")]
    assert warnings and len(warnings) == len(set(warnings))
    assert "note: BARs placed as SeaBIOS 1.16.2" in result.stdout
    assert not any("BARs placed as" in line for line in warnings)


def test_the_iommu_top_is_said_in_bits() -> None:
    result = check(INTEL_39, "-accel", "kvm", "-cpu", "host", "-m", "8G",
                   "-device", "vfio-pci,host=0000:01:00.0", version="10.0")
    assert result.returncode == 1
    assert "(the IOMMU maps 39 bits, up to 0x7fffffffff)" in result.stdout
    assert "aperture hole" not in result.stdout


def test_the_drawn_pci_hole64_contains_the_bars() -> None:
    result = check(AMD, "-accel", "kvm", "-cpu", "EPYC", "-m", "8G",
                   "-device", "vfio-pci,host=0000:29:00.0")
    hole = next(line for line in result.stdout.splitlines() if line.startswith("pci-hole64"))
    start, end = (int(x, 16) for x in hole.split()[3].split("-"))
    bars = [line.split()[4] for line in result.stdout.splitlines() if line.startswith("BAR")]
    assert bars and all(start <= int(b.split("-")[0], 16) and int(b.split("-")[1], 16) <= end
                        for b in bars)


def test_a_misspelt_spec_key_gets_did_you_mean(tmp_path: Path) -> None:
    spec = tmp_path / "vm.yaml"
    spec.write_text("name: x\nmemory: {size: 4G, hotplg: {max: 8G}}\n")
    assert_clean_failure(run_layoutd("plan", str(spec), "--host", AMD), 2,
                         "memory.hotplg (line 2): unknown field; did you mean hotplug?")
    spec.write_text("name: x\nmemroy: {size: 4G}\n")
    assert_clean_failure(run_layoutd("plan", str(spec), "--host", AMD), 2,
                         "required field is missing (the spec has memroy: a misspelling?)")
