"""The nc command line: exit codes, one-line errors, no partial or clobbered files."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def nc(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "codec.cli", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd or ROOT, timeout=300)


@pytest.fixture()
def png(tmp_path, photo):
    p = tmp_path / "photo.png"
    photo.crop((0, 0, 24, 20)).save(p)
    return p


def assert_one_line_error(r):
    assert r.returncode == 1, r.stderr
    assert r.stderr.startswith("error: ") and r.stderr.count("\n") == 1, r.stderr
    assert "Traceback" not in r.stderr


def test_encode_decode_info(png, tmp_path):
    out, back = tmp_path / "x.nc", tmp_path / "back.png"
    r = nc("encode", png, "-o", out, "-v")
    assert r.returncode == 0, r.stderr
    assert "bpp" in r.stdout
    r = nc("decode", out, "-o", back)
    assert r.returncode == 0, r.stderr
    np.testing.assert_array_equal(np.asarray(Image.open(back)), np.asarray(Image.open(png)))
    r = nc("info", out, "--json")
    facts = json.loads(r.stdout)
    assert facts["codec"] == "arm" and facts["width"] == 24 and facts["height"] == 20
    assert "24x20" in nc("info", out).stdout


def test_default_output_names(png):
    assert nc("encode", png).returncode == 0
    assert png.with_suffix(".nc").exists()


def test_existing_output_is_not_overwritten_without_force(png, tmp_path):
    out = tmp_path / "x.nc"
    out.write_bytes(b"keep me")
    assert_one_line_error(nc("encode", png, "-o", out))
    assert out.read_bytes() == b"keep me"
    assert nc("encode", png, "-o", out, "--force").returncode == 0
    assert out.read_bytes() != b"keep me"


@pytest.mark.parametrize("content", [b"", b"not an nc file at all", b"\x89NC\r\n\x1a\n\x00" + b"\0" * 10])
def test_bad_nc_files_are_refused_without_output(tmp_path, content):
    bad, out = tmp_path / "bad.nc", tmp_path / "out.png"
    bad.write_bytes(content)
    assert_one_line_error(nc("decode", bad, "-o", out))
    assert not out.exists()
    assert list(tmp_path.iterdir()) == [bad]  # no temporary file left behind either


def test_corrupt_payload_is_refused(png, tmp_path):
    out = tmp_path / "x.nc"
    nc("encode", png, "-o", out)
    data = bytearray(out.read_bytes())
    data[-8] ^= 0x40
    out.write_bytes(bytes(data))
    r = nc("decode", out, "-o", tmp_path / "y.png")
    assert_one_line_error(r)
    assert "CRC" in r.stderr


def test_missing_input_and_non_image(tmp_path):
    assert_one_line_error(nc("encode", tmp_path / "nope.png", "-o", tmp_path / "a.nc"))
    txt = tmp_path / "a.txt"
    txt.write_text("hello")
    assert_one_line_error(nc("encode", txt, "-o", tmp_path / "a.nc"))
    assert not (tmp_path / "a.nc").exists()


def test_unsupported_mode_names_the_mode(tmp_path):
    p = tmp_path / "cmyk.tiff"
    Image.new("CMYK", (4, 4)).save(p)
    r = nc("encode", p, "-o", tmp_path / "a.nc")
    assert_one_line_error(r)
    assert "CMYK" in r.stderr


def test_unknown_output_suffix_is_refused(png, tmp_path):
    out = tmp_path / "x.nc"
    nc("encode", png, "-o", out)
    assert_one_line_error(nc("decode", out, "-o", tmp_path / "y.unknownext"))


def test_usage_errors_exit_2_and_help_works():
    assert nc("encode").returncode == 2
    for cmd in ([], ["encode"], ["decode"], ["info"]):
        r = nc(*cmd, "--help")
        assert r.returncode == 0 and "Usage" in r.stdout
