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
    from codec.idf.codec import FEEDBACK, PLAIN, IDFPlaneCodec

    idf = IDFPlaneCodec(model_id)
    pixels = np.asarray(photo_large)
    sizes = {}
    for layout in (PLAIN, FEEDBACK):
        coded = idf.encode(pixels, layout=layout)
        assert coded.data[0] == layout
        np.testing.assert_array_equal(idf.decode(coded.data, *pixels.shape, codec_param=1), pixels)
        sizes[layout] = len(coded.data)
    if model_id == "idf-v2":
        assert sizes[FEEDBACK] < sizes[PLAIN]
    assert len(idf.encode(pixels).data) == min(sizes.values())     # the encoder's own choice
    grey = pixels[:, :, :1]
    coded = idf.encode(grey, layout=FEEDBACK)
    np.testing.assert_array_equal(idf.decode(coded.data, *grey.shape, codec_param=1), grey)


def test_invalid_idf_segments_are_format_errors(photo_large):
    from codec.errors import FormatError
    from codec.idf.codec import FEEDBACK, IDFPlaneCodec
    from codec.idf.feedback import SCALE_SHIFTS, IDFFeedback

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
