"""The IDF's per-image prior corrections (codec/idf/feedback.py) with the
shipped flow, and the refusals of malformed IDF segments."""
import numpy as np
import pytest

import codec
from codec import weights


@pytest.mark.parametrize("model_id", ["idf-v2", weights.DEFAULT_MODELS["idf"]])
def test_shipped_idf_codes_both_layouts_exactly_and_the_encoder_keeps_the_smaller(
        photo_large, model_id):
    """Both segment layouts decode exactly and the encoder writes the smaller.
    The correction's linear fits on earlier channels find most with idf-v2,
    whose prior codes the channels of a level independently; the default's
    prior already sees the earlier channel groups, so on a small image the
    correction's side information can cost more than it saves."""
    from codec.idf.codec import CODED_TABLES, FEEDBACK, PLAIN, IDFPlaneCodec

    idf = IDFPlaneCodec(model_id)
    pixels = np.asarray(photo_large)
    sizes = {}
    for layout in (PLAIN, FEEDBACK):
        coded = idf.encode(pixels, layout=layout)
        assert coded.data[0] == (layout | CODED_TABLES if layout else PLAIN)
        np.testing.assert_array_equal(idf.decode(coded.data, *pixels.shape, codec_param=1), pixels)
        sizes[layout] = len(coded.data)
    if model_id == "idf-v2":
        assert sizes[FEEDBACK] < sizes[PLAIN]
    assert len(idf.encode(pixels).data) == min(sizes.values())     # the encoder's own choice
    grey = pixels[:, :, :1]
    coded = idf.encode(grey, layout=FEEDBACK)
    np.testing.assert_array_equal(idf.decode(coded.data, *grey.shape, codec_param=1), grey)


def test_invalid_idf_segments_are_format_errors(photo_large):
    from codec.entropy import range_encoder, stream_bytes
    from codec.errors import FormatError
    from codec.idf import side_tables
    from codec.idf.codec import CODED_TABLES, FEEDBACK, IDFPlaneCodec
    from codec.idf.feedback import SCALE_SHIFTS, IDFFeedback

    idf = IDFPlaneCodec(weights.DEFAULT_MODELS["idf"])
    pixels = np.asarray(photo_large)[:64, :64]
    data = bytearray(idf.encode(pixels, layout=FEEDBACK).data)
    for layout in (8, CODED_TABLES):      # an unknown bit; coded tables with no table
        with pytest.raises(FormatError, match="layout"):
            idf.decode(bytes([layout]) + bytes(data[1:]), *pixels.shape, codec_param=1)
    # the raw table of nc 0.34 and before: truncated, a scale shift out of range
    size = IDFFeedback.size(idf.z_channels)
    with pytest.raises(FormatError, match="feedback"):
        idf.decode(bytes([FEEDBACK]) + bytes(size - 3), *pixels.shape, codec_param=1)
    with pytest.raises(FormatError, match="feedback"):
        idf.decode(bytes([FEEDBACK, SCALE_SHIFTS[-1] + 1]) + bytes(size - 1 + 8), *pixels.shape,
                   codec_param=1)
    # the coded table: a scale shift, a coefficient out of range
    shifts, coeffs = idf._plan(idf.flow, idf.flow.forward(pixels.astype(np.float32).transpose(2, 0, 1)),
                               FEEDBACK).feedback.values()
    for bad_shifts, bad_coeffs in [(np.r_[SCALE_SHIFTS[-1] + 1, shifts[1:]], coeffs), (shifts, np.r_[200, coeffs[1:]])]:
        enc = range_encoder()
        side_tables.encode(enc, idf.rows, _Raw(bad_shifts, bad_coeffs), None)
        with pytest.raises(FormatError, match="feedback"):
            idf.decode(bytes([FEEDBACK | CODED_TABLES]) + stream_bytes(enc), *pixels.shape, codec_param=1)
    with pytest.raises(FormatError, match="parameter"):
        idf.decode(bytes(data), *pixels.shape, codec_param=2)


class _Raw:
    """A feedback table's values as given, ranges unchecked (what a damaged file may hold)."""

    def __init__(self, shifts, coeffs):
        self._values = shifts, coeffs

    def values(self):
        return self._values


def test_a_codec_parameter_the_codec_does_not_use_is_refused(photo):
    from codec.errors import FormatError
    from codec.format import container

    c = container.unpack(codec.encode(photo, codec="arm"))
    c.header.codec_param = 1
    with pytest.raises(FormatError, match="parameter"):
        codec.decode(container.pack(c))


def test_feedback_layout_decodes_in_another_process_configuration(photo_large, tmp_path):
    """Encode with the corrections under the default configuration, decode
    under the narrow one (and the reverse): the corrections are integers."""
    import os
    import subprocess
    import sys

    from test_cross_config import NARROW_ENV, ROOT

    pixels = np.asarray(photo_large)[:96, :128]
    np.save(tmp_path / "in.npy", pixels)
    script = """
import sys, numpy as np
from codec import weights
from codec.idf.codec import FEEDBACK, IDFPlaneCodec
idf = IDFPlaneCodec(weights.DEFAULT_MODELS["idf"])
op, a, b = sys.argv[1:4]
if op == "encode":
    open(b, "wb").write(idf.encode(np.load(a), layout=FEEDBACK).data)
else:
    np.save(b, idf.decode(open(a, "rb").read(), 96, 128, 3, codec_param=1))
"""
    for i, (enc_env, dec_env) in enumerate([({}, NARROW_ENV), (NARROW_ENV, {})]):
        for op, env_extra, src, dst in [("encode", enc_env, "in.npy", f"{i}.seg"),
                                        ("decode", dec_env, f"{i}.seg", f"{i}.npy")]:
            env = {k: v for k, v in os.environ.items() if k not in NARROW_ENV}
            env.update(env_extra)
            subprocess.run([sys.executable, "-c", script, op, str(tmp_path / src), str(tmp_path / dst)],
                           env=env, check=True, cwd=ROOT, timeout=300)
        np.testing.assert_array_equal(np.load(tmp_path / f"{i}.npy"), pixels)
