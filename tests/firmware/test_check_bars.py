"""`layoutd check` places the assigned devices' 64-bit BARs as the named firmware does and
refuses a BAR the host IOMMU cannot map (the r/VFIO case: 39-bit IOMMU, 46-bit CPU, OVMF)."""

import json
from pathlib import Path

from tests.conftest import EXAMPLES, assert_clean_failure, need, run_layoutd
from tests.plan.support import apply_change
from tests.support.firmware_runner import TRIXIE_ROOT

HOST = str(EXAMPLES / "hosts/intel-46bit-cpu-39bit-iommu")
OVMF = "if=pflash,format=raw,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd"
SEABIOS = "/usr/share/seabios/bios-256k.bin"
GPU = ["-device", "vfio-pci,host=0000:01:00.0", "-device", "vfio-pci,host=0000:01:00.1"]


def check(*args: str) -> tuple[int, dict[str, object]]:
    for path in ("/usr/share/OVMF/OVMF_CODE_4M.fd", SEABIOS):
        need(Path(path).exists(), f"{path} (Debian packages ovmf and seabios)")
    result = run_layoutd("check", "--host", HOST, "--qemu-version", "7.2", "--format", "json",
                         "--", "qemu-system-x86_64", *args)
    assert "Traceback" not in result.stderr
    return result.returncode, json.loads(result.stdout)


def test_ovmf_with_cpu_host_puts_the_bar_above_the_iommu() -> None:
    code, data = check("-accel", "kvm", "-machine", "q35", "-cpu", "host", "-m", "16G",
                       "-drive", OVMF, *GPU)
    assert code == 1
    assert data["firmware"] == "OVMF edk2 2022.11 (Debian 12)"
    assert data["bars"] == [
        {"device": "0000:01:00.0", "bar": 1, "start": "0x380000000000", "end": "0x3803ffffffff"},
        {"device": "0000:01:00.0", "bar": 3, "start": "0x380400000000", "end": "0x380401ffffff"}]
    bar1 = data["collisions"][0]
    assert bar1["kind"] == "bar" and bar1["id"] == "0000:01:00.0 BAR1"
    assert bar1["hole"]["type"] == "aperture" and bar1["hole"]["start"] == "0x8000000000"


def test_phys_bits_limit_brings_the_window_under_the_iommu_top() -> None:
    code, data = check("-accel", "kvm", "-machine", "q35", "-cpu",
                       "host,host-phys-bits-limit=39", "-m", "16G", "-drive", OVMF, *GPU)
    assert code == 0, data["collisions"]
    assert data["bars"][0]["start"] == "0x7000000000"


def test_seabios_places_below_and_text_names_the_bar() -> None:
    code, data = check("-accel", "kvm", "-machine", "q35", "-cpu", "host", "-m", "16G",
                       "-bios", SEABIOS, *GPU)
    assert code == 0 and data["firmware"] == "SeaBIOS 1.16.2 (Debian 12)"
    assert data["bars"][0]["start"] == "0x800000000"
    text = run_layoutd("check", "--host", HOST, "--qemu-version", "7.2", "--", "qemu-system-x86_64",
                       "-accel", "kvm", "-machine", "q35", "-cpu", "host", "-m", "16G",
                       "-drive", OVMF, *GPU).stdout
    assert "BAR1 0000:01:00.0" in text
    assert ("bar '0000:01:00.0 BAR1' 0x380000000000-0x3803ffffffff lies in the space above the "
            "IOMMU's top") in text


def test_unassigned_bar_is_a_no() -> None:
    code, data = check("-machine", "q35", "-cpu", "qemu64,phys-bits=39", "-m", "2G",
                       "-drive", OVMF, *GPU, "-device", "pci-testdev,membar=64G")
    assert code == 1
    assert data["bars"][0] == {"device": "0000:01:00.0", "bar": 1, "start": None, "end": None}
    assert data["collisions"][0]["hole"]["type"] == "unassigned"


def test_unknown_firmware_that_does_not_boot_is_not_judged(tmp_path: object) -> None:
    """A file layoutd has no row for is booted; one QEMU cannot boot leaves the BARs not judged:
    no "no collision", exit 3, and the JSON lists them."""
    code, data = check("-machine", "q35", "-m", "2G", "-bios", "/bin/true", *GPU)
    assert code == 3 and data["bars"] == [] and data["how_known"]["bars"] == "unknown"
    assert [item["what"] for item in data["not_judged"]] == ["0000:01:00.0 BAR1", "0000:01:00.0 BAR3"]
    assert any("not a build layoutd knows" in w for w in data["warnings"])
    assert any("booting it to see where it puts the BARs failed" in w for w in data["warnings"])
    text = run_layoutd("check", "--host", HOST, "--qemu-version", "7.2", "--", "qemu-system-x86_64",
                       "-machine", "q35", "-m", "2G", "-bios", "/bin/true", *GPU)
    assert text.returncode == 3 and "no collision" not in text.stdout
    assert "not judged: 0000:01:00.0 BAR1, 0000:01:00.0 BAR3" in text.stdout


def test_debian_13_ovmf_is_known_by_its_file() -> None:
    """Debian 13's OVMF (edk2 2025.02, from the trixie root): on a TCG EPYC guest (40 trusted
    phys-bits) its window moves below QEMU's HyperTransport reservation, to 0xc000000000; its
    X-PciMmio64Mb is taken as it is, so a 32 GiB window at the end of RAM clears the IOMMU."""
    code_file = TRIXIE_ROOT / "usr/share/OVMF/OVMF_CODE_4M.fd"
    need(code_file.exists(), f"{code_file} (scripts/trixie-root.sh)")
    args = ["-machine", "q35", "-cpu", "EPYC", "-m", "8G",
            "-drive", f"if=pflash,format=raw,readonly=on,file={code_file}", *GPU]
    code, data = check(*args)
    assert code == 1 and data["firmware"] == "OVMF edk2 2025.02 (Debian 13)"
    assert data["bars"][0]["start"] == "0xc000000000"  # type: ignore[index]
    window = {"-fw_cfg": "name=opt/ovmf/X-PciMmio64Mb,string=32768"}
    assert window in [idea["change"] for idea in data["would_work"]]  # type: ignore[union-attr]
    code, data = check(*args, "-fw_cfg", window["-fw_cfg"])
    assert code == 0 and data["bars"][0]["start"] == "0x800000000"  # type: ignore[index]


def test_libvirt_domain_root_ports_and_the_passthrough_limit(tmp_path: Path) -> None:
    """<os firmware='efi'>, the GPU and its audio function behind two pcie-root-ports: refused;
    <maxphysaddr mode='passthrough' limit='39'/> (the r/VFIO user's fix) clears it on libvirt 9.3
    and later; 9.0 drops it, so there host-model with mode='emulate' is suggested."""
    need(Path("/usr/share/OVMF/OVMF_CODE_4M.fd").exists(), "OVMF (Debian package ovmf)")
    domain = Path(__file__).parent / "data/rvfio.xml"
    result = run_layoutd("check", "--libvirt", str(domain), "--host", HOST, "--format", "json")
    data = json.loads(result.stdout)
    assert result.returncode == 1 and data["bars"][0]["start"] == "0x380000000000"
    assert data["collisions"][0]["id"] == "0000:01:00.0 BAR1"
    fixed = tmp_path / "fixed.xml"
    fixed.write_text(domain.read_text().replace(
        "<cpu mode='host-passthrough' check='none'/>",
        "<cpu mode='host-passthrough' check='none'><maxphysaddr mode='passthrough' limit='39'/></cpu>"))
    result = run_layoutd("check", "--libvirt", str(fixed), "--host", HOST, "--format", "json",
                         "--libvirt-version", "9.3")
    data = json.loads(result.stdout)
    assert result.returncode == 0, data["collisions"]
    assert data["bars"][0]["start"] == "0x7000000000"
    # libvirt 9.0 drops the limit (its schema refuses it): still refused, and what 9.0 can say
    result = run_layoutd("check", "--libvirt", str(fixed), "--host", HOST, "--format", "json",
                         "--libvirt-version", "9.0")
    data = json.loads(result.stdout)
    assert result.returncode == 1
    assert any("<cpu mode='host-model'><maxphysaddr mode='emulate' bits='39'/></cpu>" in idea["text"]
               for idea in data["would_work"])
    text = run_layoutd("check", "--libvirt", str(fixed), "--host", HOST, "--libvirt-version", "9.0")
    assert text.stdout.splitlines()[-1] == "note: the XML above is for libvirt 9.0 (as asked)"


def test_would_work_for_bars_are_checked_again() -> None:
    """The r/VFIO refusal suggests host-phys-bits-limit=39; a TCG EPYC guest also OVMF's window;
    each suggested command line is clear when checked."""
    base = ["-machine", "q35", "-m", "8G", "-drive", OVMF, "-device", "vfio-pci,host=0000:01:00.0"]
    for cpu, expected in ((["-accel", "kvm", "-cpu", "host"], [{"-cpu": "host,host-phys-bits-limit=39"}]),
                          (["-cpu", "EPYC"], [{"-cpu": "EPYC,phys-bits=39"},
                                              {"-fw_cfg": "name=opt/ovmf/X-PciMmio64Mb,string=131072"}])):
        code, data = check(*cpu, *base)
        assert code == 1
        changes = [idea["change"] for idea in data["would_work"]]  # type: ignore[index]
        assert changes == expected
        for change in changes:
            (option, value), = change.items()
            args = [*cpu, *base]
            if option in args:
                args[args.index(option) + 1] = value
            else:
                args += [option, value]
            assert check(*args)[0] == 0, change


def test_plan_no_names_the_bars_and_every_would_work_plans(tmp_path: Path) -> None:
    spec = (EXAMPLES / "specs/rvfio-ovmf.yaml").read_text().replace(
        "cpu: {model: host, count: 8}", "cpu: {model: host, count: 8, phys_bits: 46}")
    path = tmp_path / "vm.yaml"
    path.write_text(spec)
    result = run_layoutd("plan", str(path), "--host", HOST, "--format", "json")
    data = json.loads(result.stdout)
    assert result.returncode == 1 and "0000:01:00.0 BAR1" in data["error"]["message"]
    assert data["blocked_by"][0]["type"] == "bar"
    changes = [idea["change"] for idea in data["would_work"]]
    assert changes[0] == {"cpu.phys_bits": 39} and {"firmware": "seabios"} in changes
    for change in changes:
        path.write_text(apply_change(spec, change))
        assert run_layoutd("plan", str(path), "--host", HOST).returncode == 0, change


def test_seabios_bar_across_the_amd_ht_hole() -> None:
    """RAM ending at 962G: SeaBIOS 1.16.2 aligns the 32 GiB BAR up to 992G, across AMD's
    HyperTransport hole 0xfd00000000-0xffffffffff (cloud-hypervisor #8896's shape)."""
    need(Path(SEABIOS).exists(), f"{SEABIOS} (Debian package seabios)")
    result = run_layoutd("check", "--host", str(EXAMPLES / "hosts/amd-epyc-two-gpus"),
                         "--qemu-version", "7.2", "--format", "json", "--", "qemu-system-x86_64",
                         "-accel", "kvm", "-machine", "pc-q35-6.2", "-cpu", "host", "-m", "960G",
                         "-bios", SEABIOS, "-device", "vfio-pci,host=0000:29:00.0")
    data = json.loads(result.stdout)
    assert result.returncode == 1
    assert data["bars"][0] == {"device": "0000:29:00.0", "bar": 1, "start": "0xf800000000",
                               "end": "0xffffffffff"}
    hole = data["collisions"][0]["hole"]
    assert (hole["start"], hole["type"], hole["group"]) == ("0xfd00000000", "reserved", 28)


AMD_SPEC = """name: ht
machine: q35
cpu: {model: host, count: 8}
memory: {size: 960G}
firmware: seabios
devices: [0000:29:00.0]
"""
HT = (0xFD00000000, 0xFFFFFFFFFF)


def plan_amd(tmp_path: Path, extra: str = "", firmware: str = "seabios"
             ) -> tuple[int, dict[str, object]]:
    need(Path(SEABIOS).exists(), f"{SEABIOS} (Debian package seabios)")
    path = tmp_path / "vm.yaml"
    path.write_text(AMD_SPEC.replace("seabios", firmware) + extra)
    result = run_layoutd("plan", str(path), "--host", str(EXAMPLES / "hosts/amd-epyc-two-gpus"),
                         "--qemu-version", "7.2", "--format", "json")
    assert "Traceback" not in result.stderr
    return result.returncode, json.loads(result.stdout)


def test_plan_moves_the_seabios_window_past_the_ht_hole(tmp_path: Path) -> None:
    """With QEMU's 32 GiB hole, RAM ends at 962G and SeaBIOS puts BAR1 across the HT hole; a
    51 GiB hole (962G + 51G) reaches the HT range, so QEMU moves RAM to 1 TiB and the window follows."""
    code, plan = plan_amd(tmp_path)
    assert code == 0, plan
    assert "-global" in plan["qemu_argv"]
    assert "q35-pcihost.pci-hole64-size=51G" in plan["qemu_argv"]
    bars = [(int(b["start"], 16), int(b["end"], 16)) for b in plan["bars"]]  # type: ignore[union-attr]
    assert bars[0] == (0x1F000000000, 0x1F7FFFFFFFF)
    assert all(end < HT[0] or start > HT[1] for start, end in bars)


def test_plan_with_the_hole_fixed_says_no_and_each_would_work_plans(tmp_path: Path) -> None:
    code, data = plan_amd(tmp_path, "pci_hole64: 32G\n")
    assert code == 1 and "0000:29:00.0 BAR1" in data["error"]["message"]  # type: ignore[index]
    changes = [idea["change"] for idea in data["would_work"]]  # type: ignore[union-attr]
    assert changes[0] == {"pci_hole64": "51G"} and {"firmware": "ovmf"} in changes
    for change in changes:
        need(Path(SEABIOS).exists(), f"{SEABIOS} (Debian package seabios)")
        path = tmp_path / "again.yaml"
        path.write_text(apply_change(AMD_SPEC + "pci_hole64: 32G\n", change))
        result = run_layoutd("plan", str(path), "--host", str(EXAMPLES / "hosts/amd-epyc-two-gpus"),
                             "--qemu-version", "7.2", "--format", "json")
        assert result.returncode == 0, (change, result.stdout[-500:])


def test_a_64_bit_non_prefetchable_bar_behind_a_root_port_is_checked_below_4g() -> None:
    """An NVMe drive's 64-bit non-prefetchable BAR behind a pcie-root-port (as libvirt puts every
    <hostdev>) goes in OVMF's 32-bit window: Debian 12's starts it at 0xc0000000, where this
    host's RMRR lies (examples/hosts/intel-nvme-rmrr); Debian 13's at 0x80000000 (2 GiB of RAM)."""
    nvme_host = str(EXAMPLES / "hosts/intel-nvme-rmrr")
    code_13 = TRIXIE_ROOT / "usr/share/OVMF/OVMF_CODE_4M.fd"
    need(code_13.exists(), f"{code_13} (scripts/trixie-root.sh)")
    found = []
    for code_file in ("/usr/share/OVMF/OVMF_CODE_4M.fd", code_13):
        need(Path(code_file).exists(), f"{code_file} (Debian package ovmf)")
        result = run_layoutd("check", "--host", nvme_host, "--qemu-version", "10.0", "--format", "json",
                             "--", "qemu-system-x86_64", "-machine", "q35", "-cpu", "qemu64", "-m", "2G",
                             "-nodefaults", "-drive", f"if=pflash,format=raw,readonly=on,file={code_file}",
                             "-device", "pcie-root-port,id=rp1,chassis=1",
                             "-device", "vfio-pci,host=0000:3b:00.0,bus=rp1")
        found.append((result.returncode, json.loads(result.stdout)))
    (code_12, data_12), (code_13_, data_13) = found
    assert code_12 == 1 and data_12["bars"] == [
        {"device": "0000:3b:00.0", "bar": 0, "start": "0xc0000000", "end": "0xc0003fff"}]
    collision = data_12["collisions"][0]
    assert collision["id"] == "0000:3b:00.0 BAR0" and collision["hole"]["type"] == "direct"
    assert code_13_ == 0 and data_13["bars"][0]["start"] == "0x80000000"


def test_a_garbled_pci_number_in_a_domain_is_named_not_a_crash(tmp_path: Path) -> None:
    """A controller index or a device's bus that is not a number: exit 2 naming the file and the
    attribute, never an internal error; libvirt's own spellings (decimal, 0x hex) still read."""
    domain = (Path(__file__).parent / "data/nvme-rmrr.xml").read_text()
    host = str(EXAMPLES / "hosts/intel-nvme-rmrr")
    cases = {
        "index='1'": ("index='x1'", "<controller type='pci'> index: 'x1' is not a number"),
        "bus='0x01' slot": ("bus='zz' slot", "<hostdev><address> bus: 'zz' is not a number"),
    }
    for good, (bad, said) in cases.items():
        assert good in domain
        path = tmp_path / "domain.xml"
        path.write_text(domain.replace(good, bad, 1))
        result = run_layoutd("check", "--libvirt", str(path), "--host", host, "--qemu-version", "10.0")
        assert_clean_failure(result, 2, f"{path}: {said}")
    path.write_text(domain.replace("bus='0x01' slot", "bus='1' slot", 1))
    decimal = run_layoutd("check", "--libvirt", str(path), "--host", host, "--qemu-version", "10.0",
                          "--format", "json")
    assert "bars" in json.loads(decimal.stdout), decimal.stderr
