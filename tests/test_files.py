"""codec/files.py: what reaches disk — formats that hold the image exactly,
metadata kept, 16-bit colour, permissions under the umask, no partial files,
one-line errors for images Pillow refuses."""
import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageCms

import codec
from codec import api, files
from codec.errors import NcError, UnsupportedImage
from codec.picture import Picture

ROOT = Path(__file__).resolve().parents[1]
ICC = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
XMP = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF/></x:xmpmeta>'


def exif_bytes() -> bytes:
    e = Image.Exif()
    e[0x010E] = "a description"    # ImageDescription
    e[0x0131] = "nc test"          # Software
    return e.tobytes()


def small(mode: str, seed: int = 0, size=(32, 24)) -> Image.Image:
    """A small image with smooth content and noise, in ``mode``."""
    rng = np.random.default_rng(seed)
    w, h = size
    y, x = np.mgrid[0:h, 0:w]
    base = (x * 5 + y * 3)[..., None] + rng.integers(0, 40, (h, w, 4))
    rgba = np.clip(base, 0, 255).astype(np.uint8)
    rgba[..., 3] = rng.integers(0, 256, (h, w))          # alpha that WebP cannot drop
    im = Image.fromarray(rgba, "RGBA")
    return im if mode == "RGBA" else im.convert(mode)


def strip_exif_header(b: bytes) -> bytes:
    return b[6:] if b.startswith(b"Exif\0\0") else b


@pytest.mark.parametrize("fmt,mode", [
    ("TIFF", "RGB"), ("TIFF", "RGBA"), ("TIFF", "L"), ("TIFF", "LA"), ("TIFF", "1"), ("TIFF", "P"),
    ("WEBP", "RGB"), ("WEBP", "RGBA"),
    ("PPM", "RGB"), ("PPM", "L"), ("PPM", "1"),
    ("BMP", "RGB"), ("BMP", "L"), ("BMP", "P"),
    ("PNG", "LA"), ("PNG", "P"),
])
def test_formats_round_trip_exactly(tmp_path, fmt, mode):
    pic = Picture.from_pil(small(mode))
    path = tmp_path / f"x{files.FORMAT_SUFFIX[fmt]}"
    files.write_picture(pic, path)
    back = files.read_picture(path)
    assert back.mode == pic.mode
    np.testing.assert_array_equal(back.samples, pic.samples)


@pytest.mark.parametrize("fmt,mode", [("PPM", "RGBA"), ("BMP", "RGBA"), ("BMP", "LA"),
                                      ("WEBP", "L"), ("WEBP", "P"), ("PPM", "P"), ("GIF", "P")])
def test_a_format_that_cannot_hold_the_mode_is_refused(tmp_path, fmt, mode):
    out = tmp_path / f"x.{fmt.lower()}"
    with pytest.raises(UnsupportedImage, match=f"{fmt} cannot hold a {mode} image"):
        files.write_picture(Picture.from_pil(small(mode)), out)
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_png_keeps_icc_exif_xmp_and_text_once(tmp_path):
    meta = {"icc_profile": ICC, "exif": exif_bytes(), "xmp": XMP,
            "text": {"Comment": "hello", "Title": "naïve ☃", files.XMP_PNG_KEY: XMP.decode()}}
    pic = Picture.from_array(np.asarray(small("RGB")), meta)
    path = tmp_path / "m.png"
    files.write_picture(pic, path)
    data = path.read_bytes()
    assert data.count(files.XMP_PNG_KEY.encode()) == 1           # XMP written once
    back = files.read_picture(path)
    assert back.metadata["icc_profile"] == ICC
    assert strip_exif_header(back.metadata["exif"]) == strip_exif_header(meta["exif"])
    assert back.metadata["xmp"] == XMP
    assert back.metadata["text"]["Comment"] == "hello"
    assert back.metadata["text"]["Title"] == "naïve ☃"


@pytest.mark.parametrize("fmt", ["TIFF", "WEBP"])
def test_tiff_and_webp_keep_icc_and_xmp(tmp_path, fmt):
    meta = {"icc_profile": ICC, "exif": exif_bytes(), "xmp": XMP}
    path = tmp_path / f"m{files.FORMAT_SUFFIX[fmt]}"
    files.write_picture(Picture.from_array(np.asarray(small("RGB")), meta), path)
    back = files.read_picture(path)
    assert back.metadata["icc_profile"] == ICC and back.metadata["xmp"] == XMP
    if fmt == "WEBP":
        assert strip_exif_header(back.metadata["exif"]) == strip_exif_header(meta["exif"])
    else:
        with Image.open(path) as im:     # TIFF holds EXIF as tags of its own
            assert im.getexif()[0x010E] == "a description"


@pytest.mark.parametrize("channels", [3, 4])
@pytest.mark.parametrize("fmt", ["PNG", "TIFF"])
def test_sixteen_bit_colour_round_trips(tmp_path, fmt, channels):
    rng = np.random.default_rng(channels)
    a = rng.integers(0, 65536, (24, 32, channels), dtype=np.uint16)
    pic = Picture.from_array(a, {"icc_profile": ICC, "text": {"Comment": "deep"}})
    path = tmp_path / f"d{files.FORMAT_SUFFIX[fmt]}"
    files.write_picture(pic, path)
    with Image.open(path) as im:        # what Pillow alone would have read: 8 bits
        assert im.mode in ("RGB", "RGBA")
    back = files.read_picture(path)
    assert back.mode == pic.mode and back.samples.dtype == np.uint16
    np.testing.assert_array_equal(back.samples, a)
    assert back.metadata["icc_profile"] == ICC
    if fmt == "PNG":
        assert back.metadata["text"]["Comment"] == "deep"


def test_sixteen_bit_colour_in_other_formats_is_refused(tmp_path):
    pic = Picture.from_array(np.zeros((4, 4, 3), np.uint16))
    for name in ("d.webp", "d.bmp"):
        with pytest.raises(UnsupportedImage, match="cannot hold a RGB;16 image"):
            files.write_picture(pic, tmp_path / name)
    with pytest.raises(UnsupportedImage, match="JPEG cannot hold 16-bit colour"):
        files.write_picture(pic, tmp_path / "d.jpg")
    assert list(tmp_path.iterdir()) == []


def test_sixteen_bit_grey_with_alpha_is_refused_not_narrowed(tmp_path):
    import imagecodecs

    path = tmp_path / "la16.png"
    path.write_bytes(imagecodecs.png_encode(np.full((4, 4, 2), 300, np.uint16)))
    with pytest.raises(UnsupportedImage, match="16-bit LA"):
        files.read_picture(path)


def test_pillow_decompression_bomb_is_one_line_error(tmp_path, monkeypatch):
    path = tmp_path / "big.png"
    small("RGB").save(path)                                  # 768 pixels
    for limit in (100, 500):          # above 2x the limit: Pillow's error; above 1x: its warning
        monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", limit)
        with pytest.raises(UnsupportedImage) as e:
            files.read_picture(path)
        assert "too large" in str(e.value) and "\n" not in str(e.value)


def test_animated_images_are_refused(tmp_path):
    path = tmp_path / "anim.gif"
    small("P").save(path, save_all=True, append_images=[small("P", seed=1)])
    with pytest.raises(UnsupportedImage, match="2 frames"):
        files.read_picture(path)


def test_truncated_image_is_one_line_error(tmp_path):
    path = tmp_path / "cut.png"
    small("RGB").save(path)
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(UnsupportedImage, match="cut.png"):
        files.read_picture(path)


def test_decode_file_writes_the_pictures_metadata(tmp_path, monkeypatch):
    """decode_file hands the decoded picture's metadata to the PNG it writes
    (the codec's decode_picture is replaced, so this checks only the file side)."""
    meta = {"icc_profile": ICC, "exif": exif_bytes(), "text": {"Comment": "kept"}}
    pic = Picture.from_array(np.asarray(small("RGB")), meta)
    monkeypatch.setattr(api, "decode_picture", lambda data, jobs=1: pic)
    src = tmp_path / "x.nc"
    src.write_bytes(b"stand-in")
    files.decode_file(src, tmp_path / "x.png")
    back = files.read_picture(tmp_path / "x.png")
    assert back.metadata["icc_profile"] == ICC and back.metadata["text"] == {"Comment": "kept"}


def test_metadata_survives_encode_and_decode(tmp_path):
    src = tmp_path / "m.png"
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "through the codec")
    small("RGB").save(src, pnginfo=info, icc_profile=ICC, exif=exif_bytes())
    codec.encode_file(src, tmp_path / "m.nc")
    codec.decode_file(tmp_path / "m.nc", tmp_path / "back.png")
    back = files.read_picture(tmp_path / "back.png")
    assert back.metadata.get("icc_profile") == ICC
    assert back.metadata.get("text", {}).get("Comment") == "through the codec"


def test_api_keeps_the_file_helpers():
    for name in ("read_image", "read_bytes", "write_atomic", "encode_file", "decode_file"):
        assert getattr(api, name) is getattr(files, name)
    assert codec.encode_file is files.encode_file and codec.decode_file is files.decode_file


def test_write_atomic_leaves_nothing_when_writing_fails(tmp_path):
    def fail(tmp):
        Path(tmp).write_bytes(b"half")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        files.write_atomic(tmp_path / "out.bin", fail)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(NcError, match="does not exist"):
        files.write_atomic(tmp_path / "no" / "out.bin", lambda tmp: None)


@pytest.mark.parametrize("umask,expected", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_outputs_honour_the_umask(tmp_path, umask, expected):
    src = tmp_path / "u.png"
    small("RGB").save(src)
    script = (f"import os, sys; os.umask({umask}); from codec import files; "
              f"files.write_atomic(sys.argv[1], lambda t: open(t, 'wb').write(b'x'))")
    out = tmp_path / "out.bin"
    subprocess.run([sys.executable, "-c", script, str(out)], check=True, cwd=ROOT)
    assert out.stat().st_mode & 0o777 == expected


def test_image_format_names(tmp_path):
    assert files.image_format("x.PNG") == ("PNG", ".png")
    assert files.image_format("x.pgm") == ("PPM", ".pgm")
    assert files.image_format("-") == ("PNG", ".png")
    assert files.image_format("x.png", "tiff") == ("TIFF", ".tiff")
    assert files.image_format("-", "pgm") == ("PPM", ".pgm")
    for bad in ("x.nc", "x.unknownext", "noext"):
        with pytest.raises(NcError, match="cannot tell the image format"):
            files.image_format(bad)
    with pytest.raises(NcError, match="unknown output format"):
        files.image_format("-", "nosuch")


def test_write_picture_to_a_file_object():
    buf = io.BytesIO()
    files.write_picture(Picture.from_pil(small("L")), buf, "PNG")
    assert Image.open(io.BytesIO(buf.getvalue())).mode == "L"


def test_read_bytes_errors(tmp_path):
    with pytest.raises(NcError, match="no such file"):
        files.read_bytes(tmp_path / "nope.nc")
    with pytest.raises(NcError, match="is a directory"):
        files.read_bytes(tmp_path)
    assert os.path.isdir(tmp_path)
