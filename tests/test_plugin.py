"""The Pillow plugin: Image.open / Image.save after ``import codec``, with
the command line's options, and refusals for options that would be dropped."""
import io

import numpy as np
import pytest
from PIL import Image

import codec
from codec import api


def small(mode="RGB", seed=0) -> Image.Image:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:24, 0:32]
    a = np.clip((x * 5 + y * 3)[..., None] + rng.integers(0, 40, (24, 32, 4)), 0, 255)
    im = Image.fromarray(a.astype(np.uint8), "RGBA")
    return im if mode == "RGBA" else im.convert(mode)


def saved(im: Image.Image, **options) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format="NC", **options)
    return buf.getvalue()


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "1"])
def test_save_and_open_round_trip(tmp_path, mode):
    im = small(mode)
    path = tmp_path / "x.nc"
    im.save(path)                                   # by suffix
    with Image.open(path) as back:
        assert back.format == "NC" and back.mode == mode and back.size == im.size
        np.testing.assert_array_equal(np.asarray(back), np.asarray(im))
    assert codec.info(path.read_bytes())["codec"] == "arm"


def test_save_with_quality_writes_a_lossy_file():
    facts = codec.info(saved(small(), quality=3))
    assert facts["codec"] == "lossy" and facts["quality"] == pytest.approx(3)


def test_save_with_target_bpp_and_codec():
    facts = codec.info(saved(small(), target_bpp=2.0, effort=1))
    assert facts["codec"] == "lossy" and facts["bpp"] <= 2.0
    assert codec.info(saved(small(), codec="idf"))["codec"] == "idf"


@pytest.mark.parametrize("options,message", [
    ({"codec": "idf", "quality": 3}, "lossless"),
    ({"codec": "arm", "target_bpp": 1.0}, "lossless"),
    ({"quality": 3, "target_bpp": 1.0}, "exclude each other"),
    ({"quality": 9}, "quality must be"),
    ({"effort": 0}, "effort"),
    ({"effort": 2.5}, "effort"),
    ({"jobs": 0}, "jobs"),
    ({"codec": "nosuch"}, "unknown codec"),
    ({"optimize": True}, "does not take the save option"),
])
def test_conflicting_or_unknown_options_raise(options, message):
    with pytest.raises(ValueError, match=message):
        saved(small(), **options)


def test_every_cli_option_reaches_the_codec(monkeypatch):
    seen = {}
    real = api.encode

    def recording(image, codec="arm", **kwargs):
        seen.update(kwargs, codec=codec)
        return real(image, codec, model=kwargs.get("model"))

    monkeypatch.setattr(api, "encode", recording)
    saved(small(), codec="arm", model="arm-v3", effort=2, jobs=3, strip=True)
    assert seen == {"codec": "arm", "model": "arm-v3", "effort": 2, "jobs": 3, "strip": True,
                    "quality": None, "target_bpp": None}


def test_open_reads_the_header_before_decoding():
    data = saved(small("LA"))
    im = Image.open(io.BytesIO(data))
    assert (im.mode, im.size) == ("LA", (32, 24))
