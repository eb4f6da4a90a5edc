"""Every image kind nc takes comes back exact, in its own mode: palette
images (with their palette and transparency), 16-bit grey and 16-bit
colour, bilevel; and images too small for a model stay small."""
import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import codec
from codec.picture import Picture

SAMPLE = Path(__file__).resolve().parents[1] / "docs" / "sample.png"


@pytest.fixture(scope="module")
def crop() -> Image.Image:
    with Image.open(SAMPLE) as im:
        return im.convert("RGB").crop((40, 30, 88, 70))


@pytest.mark.parametrize("name", ["arm", "idf"])
def test_palette_image_keeps_indices_palette_and_transparency(crop, name):
    p = crop.quantize(colors=37)
    p.info["transparency"] = 5
    back = codec.decode(codec.encode(p, name))
    assert back.mode == "P"
    assert np.array_equal(np.asarray(back), np.asarray(p))
    assert back.getpalette() == p.getpalette()
    assert back.info["transparency"] == 5
    assert np.array_equal(np.asarray(back.convert("RGBA")), np.asarray(p.convert("RGBA")))


def test_rgba_palette_survives(crop):
    p = crop.quantize(colors=16)
    entries = bytes(v for i in range(16) for v in (i * 16, 255 - i * 16, i, 40 + i * 10))
    p.putpalette(entries, "RGBA")
    back = codec.decode(codec.encode(p))
    assert back.palette.mode == "RGBA"
    assert np.array_equal(np.asarray(back.convert("RGBA")), np.asarray(p.convert("RGBA")))


def _sixteen_bit(crop, channels: int) -> np.ndarray:
    """A 16-bit image with photographic high bytes and noisy low bytes."""
    rng = np.random.default_rng(0)
    a = np.asarray(crop.convert("RGBA")).astype(np.uint16)[:, :, :channels]
    return (a << 8) | rng.integers(0, 256, a.shape, dtype=np.uint16)


@pytest.mark.parametrize("name", ["arm", "idf"])
def test_sixteen_bit_grey_is_exact_as_a_pillow_image(crop, name):
    a = _sixteen_bit(crop, 1)[:, :, 0]
    img = Image.frombytes("I;16", (a.shape[1], a.shape[0]), a.astype("<u2").tobytes())
    data = codec.encode(img, name)
    back = codec.decode(data)
    assert back.mode == "I;16" and codec.info(data)["bit_depth"] == 16
    assert np.array_equal(np.asarray(back), a)


@pytest.mark.parametrize("channels", [3, 4])
def test_sixteen_bit_colour_is_exact_as_an_array(crop, channels):
    a = _sixteen_bit(crop, channels)
    data = codec.encode(a)
    pic = codec.decode_picture(data)
    assert pic.mode == ("RGB;16" if channels == 3 else "RGBA;16")
    assert pic.samples.dtype == np.uint16 and np.array_equal(pic.samples, a)
    with pytest.raises(codec.NcError, match="no mode"):
        codec.decode(data)        # Pillow has no 16-bit colour mode


def test_low_bytes_that_are_noise_fall_back_to_deflate(crop):
    data = codec.encode(_sixteen_bit(crop, 3))
    from codec.format import container
    methods = {s.kind.name: s.method.name for s in container.unpack(data).segments}
    assert methods["COLOUR"] == "MODEL"
    assert methods["COLOUR_LOW"].startswith("DEFLATE")


def test_sixteen_bit_images_are_refused_by_the_lossy_codec(crop):
    with pytest.raises(codec.UnsupportedImage, match="losslessly only"):
        codec.encode(_sixteen_bit(crop, 3), quality=4)


def _png_size(img: Image.Image) -> int:
    buf = io.BytesIO()
    img.save(buf, "PNG", optimize=True)
    return len(buf.getvalue())


@pytest.mark.parametrize("make", [
    lambda c: Image.new("RGB", (1, 1), (200, 10, 30)),
    lambda c: Image.new("L", (1, 1), 7),
    lambda c: c.resize((16, 16)).convert("RGBA"),                   # an icon
    lambda c: c.convert("1"),                                         # bilevel
    lambda c: c.resize((96, 64)).convert("RGBA"),
    lambda c: c.quantize(colors=4).resize((32, 32)),
], ids=["1x1-rgb", "1x1-grey", "icon-rgba", "bilevel", "96x64-rgba", "palette-icon"])
@pytest.mark.parametrize("name", ["arm", "idf"])
def test_small_images_cost_at_most_their_png_plus_four_dozen_bytes(crop, make, name):
    img = make(crop)
    data = codec.encode(img, name)
    assert len(data) <= _png_size(img) + 48, (len(data), _png_size(img))   # measured: at most +43
    assert np.array_equal(np.asarray(codec.decode(data)), np.asarray(img))


def test_picture_from_array_refuses_what_it_cannot_code():
    with pytest.raises(codec.UnsupportedImage):
        Picture.from_array(np.zeros((4, 4, 2), np.uint16))
    with pytest.raises(codec.UnsupportedImage):
        Picture.from_array(np.zeros((4, 4), np.float32))
