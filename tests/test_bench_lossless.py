"""`python -m bench lossless`: exact round trips through real files, and
whole `nc decode` processes timed against JPEG XL e9's encode, image by
image (a small image, so the test stays quick)."""
import json

import numpy as np
from click.testing import CliRunner
from PIL import Image

from bench.cli import main


def test_whole_decode_processes_are_timed_against_jpeg_xl_e9(tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    y, x = np.mgrid[0:24, 0:32]
    for i in range(2):
        pixels = np.stack([x * 4 + i, y * 5, (x + y) * 2], -1).astype(np.uint8)
        Image.fromarray(pixels).save(folder / f"ramp{i}.png")
    out = tmp_path / "r.json"
    result = CliRunner().invoke(main, ["lossless", str(folder), "--process-images", "1",
                                       "--json", str(out)])
    assert result.exit_code == 0, result.output
    figures = json.loads(out.read_text())
    rows = figures["per_image"]["nc arm"]
    assert all(r["exact"] for r in rows)
    assert "decode_process_s" in rows[0] and "decode_process_s" not in rows[1]
    arm = figures["summary"]["nc arm"]
    assert arm["decode_process_s"] > 0 and arm["decode_process_over_jxl_e9_encode_max"] > 0
    assert "image by image (1 images)" in result.output
