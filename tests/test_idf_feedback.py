"""The IDF's per-image prior corrections (codec/idf_feedback.py) with the
shipped flow, and the refusals of malformed IDF segments."""
import numpy as np
import pytest

import codec
from codec import weights


def test_shipped_idf_codes_both_layouts_exactly_and_feedback_saves_bits(photo_large):
    from codec.idf_codec import FEEDBACK, PLAIN, IDFPlaneCodec

    idf = IDFPlaneCodec(weights.DEFAULT_MODELS["idf"])
    pixels = np.asarray(photo_large)
    sizes = {}
    for layout in (PLAIN, FEEDBACK):
        coded = idf.encode(pixels, layout=layout)
        assert coded.data[0] == layout
        np.testing.assert_array_equal(idf.decode(coded.data, *pixels.shape, codec_param=1), pixels)
        sizes[layout] = len(coded.data)
    assert sizes[FEEDBACK] < sizes[PLAIN]
    assert idf.encode(pixels).data[0] == FEEDBACK      # the encoder's own choice
    grey = pixels[:, :, :1]
    coded = idf.encode(grey, layout=FEEDBACK)
    np.testing.assert_array_equal(idf.decode(coded.data, *grey.shape, codec_param=1), grey)


def test_invalid_idf_segments_are_format_errors(photo_large):
    from codec.errors import FormatError
    from codec.idf_codec import FEEDBACK, IDFPlaneCodec
    from codec.idf_feedback import SCALE_SHIFTS, IDFFeedback

    idf = IDFPlaneCodec(weights.DEFAULT_MODELS["idf"])
    pixels = np.asarray(photo_large)[:64, :64]
    data = bytearray(idf.encode(pixels, layout=FEEDBACK).data)
    with pytest.raises(FormatError, match="layout"):
        idf.decode(bytes([7]) + bytes(data[1:]), *pixels.shape, codec_param=1)
    with pytest.raises(FormatError, match="feedback"):
        idf.decode(bytes(data[:1 + IDFFeedback.size(idf.z_channels) - 3]), *pixels.shape,
                   codec_param=1)
    bad = bytearray(data)
    bad[1] = SCALE_SHIFTS[-1] + 1                       # level 0's scale shift
    with pytest.raises(FormatError, match="feedback"):
        idf.decode(bytes(bad), *pixels.shape, codec_param=1)
    with pytest.raises(FormatError, match="parameter"):
        idf.decode(bytes(data), *pixels.shape, codec_param=2)


def test_a_codec_parameter_the_codec_does_not_use_is_refused(photo):
    from codec import container
    from codec.errors import FormatError

    c = container.unpack(codec.encode(photo, codec="arm"))
    c.header.codec_param = 1
    with pytest.raises(FormatError, match="parameter"):
        codec.decode(container.pack(c))
