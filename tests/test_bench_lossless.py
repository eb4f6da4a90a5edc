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


def test_timing_repeats_time_each_decode_that_many_times_and_keep_the_least(tmp_path, monkeypatch):
    import bench.lossless as lossless

    folder = tmp_path / "imgs"
    folder.mkdir()
    y, x = np.mgrid[0:16, 0:16]
    Image.fromarray(np.stack([x * 9, y * 7, x + y], -1).astype(np.uint8)).save(folder / "a.png")
    process_times = iter([3.0, 1.0, 2.0])
    calls = {"decode": 0}
    real_decode = lossless.api.decode_file

    def counted_decode(*args, **kwargs):
        calls["decode"] += 1
        return real_decode(*args, **kwargs)

    monkeypatch.setattr(lossless, "timed_command", lambda args: (next(process_times), 1.0))
    monkeypatch.setattr(lossless.api, "decode_file", counted_decode)
    out = tmp_path / "r.json"
    result = CliRunner().invoke(main, ["lossless", str(folder), "--no-reference", "--process-images",
                                       "1", "--timing-repeats", "3", "--json", str(out)])
    assert result.exit_code == 0, result.output
    figures = json.loads(out.read_text())
    assert calls["decode"] == 3 and figures["timing_repeats"] == 3
    assert figures["per_image"]["nc arm"][0]["decode_process_s"] == 1.0
