"""`python -m bench lossy`: which classic codecs it measures, through real
files (a small image, so the test stays quick)."""
import json

import numpy as np
from click.testing import CliRunner
from PIL import Image

import codec
from bench.cli import main


def _folder(tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    y, x = np.mgrid[0:48, 0:64]
    pixels = np.stack([x * 4, y * 5, (x + y) * 2], -1).astype(np.uint8)
    Image.fromarray(pixels).save(folder / "ramp.png")
    return folder


def test_reference_limits_the_classic_codecs_and_keeps_jpeg_as_anchor(tmp_path):
    out = tmp_path / "r.json"
    result = CliRunner().invoke(main, ["lossy", str(_folder(tmp_path)), "--no-nc", "--reference", "WebP",
                                       "--json", str(out), "--plot", str(tmp_path / "r.png")])
    assert result.exit_code == 0, result.output
    figures = json.loads(out.read_text())
    assert set(figures["curves"]) == {"JPEG", "WebP"}
    assert figures["summary"]["JPEG"]["bd_rate_vs_jpeg_pct"] == 0.0
    assert all(c["bpp"] > 0 for c in figures["curves"]["WebP"])
    assert figures["nc_version"] == codec.__version__   # which nc the figures belong to


def test_reference_and_no_reference_exclude_each_other(tmp_path):
    result = CliRunner().invoke(main, ["lossy", str(_folder(tmp_path)), "--no-reference",
                                       "--reference", "AVIF"])
    assert result.exit_code == 2
    assert "exclude each other" in result.output


def test_each_effort_is_its_own_curve_on_every_nth_image(tmp_path):
    folder = _folder(tmp_path)
    Image.open(folder / "ramp.png").transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(folder / "sramp.png")
    out = tmp_path / "e.json"
    result = CliRunner().invoke(main, ["lossy", str(folder), "--no-reference", "--effort", "4",
                                       "--effort", "5", "--every", "2", "--process-images", "0",
                                       "--json", str(out), "--plot", str(tmp_path / "e.png")])
    assert result.exit_code == 0, result.output
    figures = json.loads(out.read_text())
    assert figures["images"] == ["ramp.png"]
    assert set(figures["curves"]) == {"nc e4", "nc e5"}
    assert "process" not in figures["summary"]["nc e4"]
