"""The SVG picture in a real browser (issue 16): headless Chromium renders it, and the screenshot
shows the collision as a red band exactly where the SVG puts it, RAM green beside it, and a plan
(which avoids every hole) without any."""

import re
import subprocess
from pathlib import Path

from tests.conftest import EXAMPLES, need_binary, run_layoutd
from tests.support.png import Image, read_png

AMD = str(EXAMPLES / "hosts" / "amd-epyc-two-gpus")
COLLIDING = ["--host", AMD, "--qemu-version", "7.2", "--", "qemu-system-x86_64", "-accel", "kvm",
             "-machine", "pc-q35-6.2", "-cpu", "host", "-m", "1100G",
             "-device", "vfio-pci,host=0000:29:00.0"]
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
         "--force-device-scale-factor=1"]


def screenshot(svg: str, tmp_path: Path) -> Image:
    chromium = need_binary("chromium")
    size = re.search(r'width="(\d+)" height="(\d+)"', svg)
    assert size is not None
    width, height = int(size.group(1)), int(size.group(2))
    (tmp_path / "map.svg").write_text(svg)
    shot = tmp_path / "map.png"
    subprocess.run([chromium, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}",
                    f"--screenshot={shot}", f"--window-size={width},{height}",
                    (tmp_path / "map.svg").as_uri()], capture_output=True, timeout=120, check=False)
    assert shot.exists(), "chromium wrote no screenshot"
    image = read_png(shot.read_bytes())
    assert (image.width, image.height) == (width, height)
    return image


def red(pixel: tuple[int, int, int]) -> bool:
    r, g, b = pixel
    return r > 170 and g < 60 and b < 60  # the collision red, not the orange of a hole


def green(pixel: tuple[int, int, int]) -> bool:
    r, g, b = pixel
    return g > r + 40 and g > b + 40


def test_the_collision_is_red_where_the_svg_draws_it(tmp_path: Path) -> None:
    result = run_layoutd("check", "--format", "svg", *COLLIDING)
    assert result.returncode == 1, result.stderr
    svg = result.stdout
    band = re.search(r'<rect id="collision-0" x="([\d.]+)" y="(\d+)" width="([\d.]+)" '
                     r'height="(\d+)"', svg)
    assert band and "COLLISION 0xfd00000000-0xffffffffff" in svg, svg[:2000]
    x, y, width, height = (float(v) for v in band.groups())
    image = screenshot(svg, tmp_path)
    middle = int(x + width / 2)
    column = [image.pixel(middle, int(y + height * share)) for share in (0.1, 0.3, 0.5, 0.7, 0.9)]
    assert all(red(p) for p in column), column
    ram = re.search(r'<rect x="([\d.]+)" y="(\d+)" width="([\d.]+)" height="\d+" fill="#43a047"', svg)
    assert ram is not None
    left, top, span = float(ram.group(1)), int(ram.group(2)), float(ram.group(3))
    assert left + span / 2 < x or left > x + width  # a RAM block away from the band
    assert green(image.pixel(int(left + span / 2), top + 10))
    assert not any(red(image.pixel(px, int(y + height / 2))) for px in range(0, int(x) - 2, 5))


def test_a_plan_draws_no_collision_and_every_lane(tmp_path: Path) -> None:
    spec = str(EXAMPLES / "specs" / "quickstart.yaml")
    result = run_layoutd("plan", spec, "--host", AMD, "--format", "svg")
    assert result.returncode == 0, result.stderr
    assert "collision-0" not in result.stdout and "BAR1 0000:29:00.0" in result.stdout
    image = screenshot(result.stdout, tmp_path)
    above_legend = image.height - 50  # the legend shows the collision colour
    pixels = [image.pixel(x, y) for y in range(0, above_legend, 4) for x in range(0, image.width, 4)]
    assert not any(red(p) for p in pixels)
    assert sum(green(p) for p in pixels) > 200 and sum(p != (255, 255, 255) for p in pixels) > 2000
