"""The ARM head adapted to one image (codec/arm/adaptation.py): the change
travels ahead of the pixels in the segment's stream, the decoder applies it
exactly, it lowers the code length it was fitted on, and a malformed one is
a one-line FormatError."""
import numpy as np
import pytest

from codec.arm import adaptation
from codec.arm.codec import ARMPlaneCodec
from codec.errors import FormatError
from codec.weights import DEFAULT_MODELS


@pytest.fixture(scope="module")
def arm():
    return ARMPlaneCodec(DEFAULT_MODELS["arm"])


def _with_change(arm, pixels, change, layout=None):
    geo, buf, values = arm._layout(pixels)
    return arm._write(geo, values, 3, arm._plan(geo, buf, values, 3, layout, change)).data


def _random_change(arm, seed=0, size=6):
    shape = arm.net.layers[-1][0].shape
    return adaptation.HeadChange(np.random.default_rng(seed).integers(-size, size + 1, shape))


@pytest.mark.parametrize("layout", [None, 0])
def test_a_head_change_round_trips_exactly(arm, photo_large, layout):
    pixels = np.asarray(photo_large)
    data = _with_change(arm, pixels, _random_change(arm), layout)
    assert data[2] > 0                    # the prefix names the change's table
    np.testing.assert_array_equal(arm.decode(data, *pixels.shape), pixels)


def test_the_decoder_runs_the_changed_network(arm, photo_large):
    """Read without its change (prefix byte cleared), the stream no longer
    gives the image: the change is really applied."""
    pixels = np.asarray(photo_large)
    data = bytearray(_with_change(arm, pixels, _random_change(arm, size=40)))
    data[2] = 0
    try:
        out = arm.decode(bytes(data), *pixels.shape)
    except Exception:         # the range decoder may fail outright (the pipeline reports it)
        return
    assert not np.array_equal(out, pixels)


def test_the_fit_lowers_the_code_length_it_was_fitted_on(arm, photo_large):
    pixels = np.asarray(photo_large)
    geo, buf, values = arm._layout(pixels)
    change, = adaptation.fit(arm.net, geo.context(buf, geo.flat), values, (60,), 10**9)
    assert change.weights.any()
    before = arm._estimated_bits(geo, buf, values, 3, arm.net, 1)
    after = arm._estimated_bits(geo, buf, values, 3, change.apply(arm.net), 1)
    assert after < 0.99 * before


@pytest.mark.parametrize("min_pixels", [None, 0])
def test_small_images_keep_the_shipped_head(arm, photo, monkeypatch, min_pixels):
    """On 48x40 pixels no change pays for its bytes: the file is the one
    effort 6 writes, whether or not the encoder tries one (min_pixels 0)."""
    if min_pixels is not None:
        monkeypatch.setattr(adaptation, "MIN_PIXELS", min_pixels)
    pixels = np.asarray(photo)
    assert arm.encode(pixels, effort=9).data == arm.encode(pixels, effort=6).data


@pytest.mark.parametrize("byte", [65, 255])
def test_an_invalid_head_level_is_a_format_error(arm, photo_large, byte):
    pixels = np.asarray(photo_large)
    data = bytearray(_with_change(arm, pixels, _random_change(arm)))
    data[2] = byte
    with pytest.raises(FormatError, match="prefix"):
        arm.decode(bytes(data), *pixels.shape)


def test_a_head_change_on_a_grey_plane_is_a_format_error(arm, photo_large):
    grey = np.asarray(photo_large.convert("L"))[..., None]
    data = bytearray(arm.encode(grey).data)
    data[2] = 10
    with pytest.raises(FormatError, match="prefix"):
        arm.decode(bytes(data), *grey.shape)


def test_a_change_beyond_the_exact_range_is_a_format_error(arm, photo_large, monkeypatch):
    pixels = np.asarray(photo_large)
    data = _with_change(arm, pixels, _random_change(arm))

    def too_large(self, delta):
        raise ValueError("weights too large for exact float64 evaluation")
    monkeypatch.setattr(type(arm.net), "with_head_change", too_large)
    with pytest.raises(FormatError, match="head change"):
        arm.decode(data, *pixels.shape)
