"""Lossless round trips through the library API: real photo crops, edge
sizes, every supported mode, and refusals of the others."""
import numpy as np
import pytest
from PIL import Image

import codec
from codec import UnsupportedImage
from codec.weights import DEFAULT_MODELS


def roundtrip(img: Image.Image) -> Image.Image:
    out = codec.decode(codec.encode(img))
    assert out.mode == img.mode
    assert out.size == img.size
    np.testing.assert_array_equal(np.asarray(out), np.asarray(img))
    return out


def test_photo_crop_round_trips_exactly(photo):
    roundtrip(photo)


def test_photo_compresses_below_raw_size(photo):
    r = codec.encode_image(photo)
    assert r.bpp < 24


def test_range_coded_stream_is_within_half_a_percent_of_the_ideal(photo):
    from codec.arm.codec import ARMPlaneCodec

    coded = ARMPlaneCodec(DEFAULT_MODELS["arm"]).encode(np.asarray(photo))
    stream_bits = 8 * (len(coded.data) - coded.side_bytes)
    assert stream_bits <= coded.ideal_bits * 1.005 + 64  # + the coder's final words


def test_every_arm_layout_round_trips(photo, photo_large):
    from codec.arm.codec import (
        CODED_TABLES,
        LAYOUT_CALIBRATION,
        LAYOUT_FEEDBACK,
        LAYOUT_SINGLE_OFFSET,
        LEARN,
        ONLINE,
        STEADY,
        WINDOWED,
        ARMPlaneCodec,
    )

    arm = ARMPlaneCodec(DEFAULT_MODELS["arm"])
    online_flags = ONLINE | LEARN | STEADY
    # the encoder's own choices: a single shift for a tiny crop, feedback,
    # its tables range-coded, the online bias and the online head for a photo
    assert arm.encode(np.asarray(photo)).data[1] & ~online_flags == LAYOUT_SINGLE_OFFSET | WINDOWED
    assert (arm.encode(np.asarray(photo_large)).data[1]
            == LAYOUT_FEEDBACK | WINDOWED | online_flags | CODED_TABLES)
    for img in (photo, photo_large, photo_large.convert("L")):
        pixels = np.asarray(img).reshape(img.height, img.width, -1)
        # every layout with neither online correction and with both; each
        # alone on the small crop
        pairs = ((False, False), (True, True)) + (((True, False), (False, True)) if img is photo else ())
        for layout in (LAYOUT_SINGLE_OFFSET, LAYOUT_CALIBRATION, LAYOUT_FEEDBACK):
            coded_tables = CODED_TABLES if layout != LAYOUT_SINGLE_OFFSET else 0
            for online, learn in pairs:
                coded = arm.encode(pixels, layout=layout, online=online, learn=learn)
                assert coded.data[1] & ~online_flags == layout | WINDOWED | coded_tables
                assert online or not coded.data[1] & ONLINE
                assert bool(coded.data[1] & LEARN) == learn
                np.testing.assert_array_equal(arm.decode(coded.data, *pixels.shape), pixels)


def test_online_bias_saves_bits_and_is_used_on_every_layout(photo_large):
    from codec.arm.codec import LAYOUT_CALIBRATION, LAYOUT_FEEDBACK, ONLINE, ARMPlaneCodec

    arm = ARMPlaneCodec(DEFAULT_MODELS["arm"])
    for img in (photo_large, photo_large.convert("L")):
        pixels = np.asarray(img).reshape(img.height, img.width, -1)
        for layout in (LAYOUT_CALIBRATION, LAYOUT_FEEDBACK):
            with_bias = arm.encode(pixels, layout=layout, learn=False)
            without = arm.encode(pixels, layout=layout, online=False, learn=False)
            assert with_bias.data[1] & ONLINE and not without.data[1] & ONLINE
            assert len(with_bias.data) < len(without.data)
            assert with_bias.ideal_bits < without.ideal_bits


def test_online_head_saves_bits_on_a_photo(photo_large):
    """The head learnt while coding (codec/arm/online_head.py) codes an RGB
    photo smaller than the shipped head, and the encoder sets the flag by
    itself there; on a grey one it sets it exactly where it saves bits (at
    nc 0.32's rates it cost bits on every grey plane; every layout with it
    forced round-trips, grey included: test_every_arm_layout_round_trips)."""
    from codec.arm.codec import LEARN, ARMPlaneCodec

    arm = ARMPlaneCodec(DEFAULT_MODELS["arm"])
    pixels = np.asarray(photo_large)
    learnt = arm.encode(pixels)
    static = arm.encode(pixels, learn=False)
    assert learnt.data[1] & LEARN and not static.data[1] & LEARN
    assert len(learnt.data) < len(static.data)
    assert learnt.ideal_bits < static.ideal_bits
    grey = np.asarray(photo_large.convert("L"))[..., None]
    forced, never = arm.encode(grey, learn=True), arm.encode(grey, learn=False)
    assert bool(arm.encode(grey).data[1] & LEARN) == (forced.ideal_bits < never.ideal_bits)


def test_online_head_keeps_its_arithmetic_exact():
    """Its largest product, h_aug @ D, stays an exact float64 integer, and
    its Adam step is the integer one FORMAT.md §5.5 gives."""
    from codec.arm import online_head as oh
    from models.arm.spec import ARMSpec

    spec = ARMSpec()
    assert (spec.hidden + 1) * spec.act_max * oh.D_MAX < 2**53
    change = np.zeros((1, 2), np.int64)
    moment, second = np.zeros_like(change), np.zeros_like(change)
    lr = np.array([4, 4], np.int64)
    oh.adam_step(np.array([[30.0, -30.0]]), 3, True, moment, second, change, lr, 2, 8)
    # g = 10 and floor(-30 / 3) = -10: M = g, V = g^2, D -= (4 M) // (isqrt(V) + 1)
    assert moment.tolist() == [[10, -10]] and second.tolist() == [[100, 100]]
    assert change.tolist() == [[-3, 4]]
    oh.adam_step(np.array([[-30.0, -30.0]]), 3, False, moment, second, change, lr, 2, 8)
    # M += (g - M) >> 2: 10 + (-20 >> 2) = 5, -10 + 0; V unchanged (g^2 = V)
    assert moment.tolist() == [[5, -10]] and second.tolist() == [[100, 100]]
    assert change.tolist() == [[-4, 8]]


def test_error_feedback_saves_bits_on_a_photo(photo_large):
    from codec.arm.codec import LAYOUT_CALIBRATION, ARMPlaneCodec

    arm = ARMPlaneCodec(DEFAULT_MODELS["arm"])
    pixels = np.asarray(photo_large)
    assert len(arm.encode(pixels).data) < len(arm.encode(pixels, layout=LAYOUT_CALIBRATION).data)


def test_encoder_chooses_a_model_and_either_model_decodes(photo_large):
    from codec.weights import CANDIDATE_MODELS

    chosen = codec.info(codec.encode(photo_large))["model"]
    assert chosen in CANDIDATE_MODELS["arm"]
    for model_id in CANDIDATE_MODELS["arm"]:
        data = codec.encode(photo_large, model=model_id)
        assert codec.info(data)["model"] == model_id
        np.testing.assert_array_equal(np.asarray(codec.decode(data)), np.asarray(photo_large))


def test_sampled_estimate_is_close_to_the_coded_size(photo_large):
    """(The estimate leaves out error feedback: it ranks models, at 1/8 of the cost.)"""
    from codec.arm.codec import LAYOUT_CALIBRATION, ARMPlaneCodec

    arm = ARMPlaneCodec(DEFAULT_MODELS["arm"])
    pixels = np.asarray(photo_large)
    actual = 8 * len(arm.encode(pixels, layout=LAYOUT_CALIBRATION, learn=False).data)
    assert abs(arm.estimate_bits(pixels) / actual - 1) < 0.03


def test_arm_segments_say_how_their_symbols_are_coded(photo_large):
    """Segments this version writes code symbols in windows (layout byte
    flag WINDOWED); without the flag (nc 0.25 and before: the pinned files)
    full rows are read, so the same stream then decodes to other pixels or
    fails, never silently to the right ones by chance."""
    from codec.arm.codec import WINDOWED, ARMPlaneCodec
    from codec.errors import FormatError

    arm = ARMPlaneCodec(DEFAULT_MODELS["arm"])
    pixels = np.asarray(photo_large)
    data = bytearray(arm.encode(pixels).data)
    assert data[1] & WINDOWED
    np.testing.assert_array_equal(arm.decode(bytes(data), *pixels.shape), pixels)
    data[1] &= ~WINDOWED
    try:
        wrong = arm.decode(bytes(data), *pixels.shape)
    except (FormatError, ValueError, AssertionError):
        return
    assert not np.array_equal(wrong, pixels)


def _pinned_segment(name: str) -> tuple[bytes, tuple[int, int, int]]:
    """The colour segment of tests/data/NAME.nc and its pixels' shape."""
    from pathlib import Path

    from codec.format.container import SegmentKind, unpack

    path = Path(__file__).parent / "data" / f"{name}.nc"
    with Image.open(path.with_suffix(".png")) as png:
        shape = (png.height, png.width, 3)
    return unpack(path.read_bytes()).segment(SegmentKind.COLOUR), shape


def test_raw_tables_out_of_range_are_format_errors():
    """Segments of layouts 1 and 2 before nc 0.34 carry their tables as raw
    bytes after the prefix (tests/data/rgb-arm-feedback.nc, nc 0.33)."""
    from codec.arm.codec import (
        CALIBRATION_OFFSETS,
        LAYOUT_FEEDBACK,
        SEGMENT_PREFIX,
        WINDOWED,
        ARMPlaneCodec,
    )
    from codec.arm.feedback import SHIFT_RANGE, ErrorFeedback
    from codec.errors import FormatError

    data, shape = _pinned_segment("rgb-arm-feedback")
    arm = ARMPlaneCodec("arm-v3")
    assert data[1] & 3 == LAYOUT_FEEDBACK and data[1] & WINDOWED
    bad = bytearray(data)
    bad[SEGMENT_PREFIX + 5] = CALIBRATION_OFFSETS[-1] + 1
    with pytest.raises(FormatError, match="calibration"):
        arm.decode(bytes(bad), *shape)
    with pytest.raises(FormatError):  # the table cut short
        arm.decode(data[:SEGMENT_PREFIX + 10], *shape)
    end = SEGMENT_PREFIX + 3 * arm.bands + ErrorFeedback.size(3)
    bad = bytearray(data)
    bad[end - 1] = SHIFT_RANGE[1] + 1          # the last context shift
    with pytest.raises(FormatError, match="feedback"):
        arm.decode(bytes(bad), *shape)
    with pytest.raises(FormatError, match="feedback"):
        arm.decode(data[:end - 7], *shape)


@pytest.mark.parametrize("table", ["calibration", "feedback"])
def test_coded_tables_out_of_range_are_format_errors(photo_large, table):
    """Since nc 0.34 the tables open the range-coded stream: values out of
    range there are refused as the raw bytes were."""
    from codec.arm import side_tables
    from codec.arm.codec import (
        CALIBRATION_OFFSETS,
        CODED_TABLES,
        LAYOUT_FEEDBACK,
        WINDOWED,
        ARMPlaneCodec,
    )
    from codec.arm.feedback import SHIFT_RANGE, ErrorFeedback
    from codec.entropy import SymbolEncoder
    from codec.errors import FormatError

    arm = ARMPlaneCodec(DEFAULT_MODELS["arm"])
    pixels = np.asarray(photo_large)
    prefix = bytes([0, LAYOUT_FEEDBACK | WINDOWED | CODED_TABLES, 0, 0])
    calibration = np.zeros((3, arm.bands), np.int64)
    feedback = ErrorFeedback.zero(3)
    if table == "calibration":
        calibration[1, 7] = CALIBRATION_OFFSETS[-1] + 1
    else:
        feedback.context_shift[2, -1] = SHIFT_RANGE[0] - 1
    enc = SymbolEncoder()
    side_tables.encode(enc, arm.tables, calibration, feedback)
    with pytest.raises(FormatError, match=table):
        arm.decode(prefix + enc.finish(), *pixels.shape)


def test_coded_tables_are_smaller_than_raw_ones():
    """The crop nc 0.33 wrote with raw tables (tests/data/rgb-arm-feedback.nc),
    coded now: the same layout, its tables range-coded, 150 bytes smaller."""
    from pathlib import Path

    from codec.arm.codec import CODED_TABLES
    from codec.format.container import SegmentKind, unpack

    old, _ = _pinned_segment("rgb-arm-feedback")
    image = Image.open(Path(__file__).parent / "data" / "rgb-arm-feedback.png")
    new = codec.encode(image)
    assert codec.decode(new).tobytes() == image.tobytes()
    segment = unpack(new).segment(SegmentKind.COLOUR)
    assert segment[1] == old[1] | CODED_TABLES
    assert len(segment) < len(old) - 150


def test_online_scale_tables_are_far_from_rounding_ties():
    """The online bias's tables come from exp() in float64 too (codec/arm/online.py)."""
    from codec import weights
    from codec.arm.online import rounding_margin
    from codec.weights import CANDIDATE_MODELS
    from models.arm.spec import ARMSpec

    for model_id in CANDIDATE_MODELS["arm"]:
        assert rounding_margin(ARMSpec.from_dict(weights.load(model_id, "arm").spec)) > 1e-6


def test_a_layout_flag_out_of_place_is_a_format_error(photo, photo_large):
    """Bit 2 (CODED_TABLES) only with layouts 1 and 2; bit 3 (STEADY) only
    beside LEARN; layout 3 means nothing."""
    from codec.arm.codec import CODED_TABLES, LEARN, STEADY, ARMPlaneCodec
    from codec.errors import FormatError

    arm = ARMPlaneCodec(DEFAULT_MODELS["arm"])
    coded = {id(img): arm.encode(np.asarray(img)).data for img in (photo, photo_large)}
    for img, damage in ((photo, lambda b: b | CODED_TABLES), (photo_large, lambda b: b & ~LEARN),
                        (photo_large, lambda b: b | 3)):
        pixels = np.asarray(img)
        data = coded[id(img)]
        assert data[1] & LEARN and data[1] & STEADY
        damaged = bytearray(data)
        damaged[1] = damage(damaged[1])
        assert damaged != data
        with pytest.raises(FormatError):
            arm.decode(bytes(damaged), *pixels.shape)


def test_surprise_thresholds_are_far_from_rounding_boundaries():
    """The thresholds come from exp() in float64; they are the same on every
    machine only if no exact value lies near an integer (see arm_feedback)."""
    from codec import weights
    from codec.arm.feedback import SURPRISE_EDGES
    from models.arm.spec import ARMSpec

    for model_id in weights.CANDIDATE_MODELS["arm"]:
        spec = ARMSpec.from_dict(weights.load(model_id, "arm").spec)
        levels = np.arange(spec.log_scale_levels)
        x = 16 * np.exp(spec.log_scale_min + levels / 2**spec.log_scale_frac)[:, None] \
            * np.asarray(SURPRISE_EDGES)
        distance = np.abs(x - np.round(x))
        assert np.all((distance > 1e-6) | (distance == 0))


@pytest.mark.parametrize("size", [(1, 1), (1, 9), (9, 1), (2, 3), (5, 2), (17, 5), (33, 31)])
def test_edge_sizes(photo, size):
    roundtrip(photo.crop((0, 0) + size))


@pytest.mark.parametrize("mode", ["L", "LA", "RGBA", "1"])
def test_modes_come_back_in_their_own_mode(photo, mode):
    img = photo.convert(mode)
    if mode in ("LA", "RGBA"):  # a real, varying alpha
        a = np.asarray(img).copy()
        a[..., -1] = (np.arange(a.shape[1]) * 5 % 256)[None, :]
        img = Image.fromarray(a, mode)
    roundtrip(img)


def test_synthetic_extremes(photo):
    rng = np.random.default_rng(0)
    for a in (np.zeros((7, 9, 3), np.uint8), np.full((7, 9, 3), 255, np.uint8),
              rng.integers(0, 256, (11, 13, 3)).astype(np.uint8)):
        roundtrip(Image.fromarray(a, "RGB"))


@pytest.mark.parametrize("mode", ["CMYK", "F", "I", "YCbCr", "HSV"])
def test_other_modes_are_refused_by_name(photo, mode):
    img = photo.convert(mode) if mode != "I;16" else Image.new("I;16", (4, 4))
    with pytest.raises(UnsupportedImage, match=f"mode {mode}"):
        codec.encode(img)


def test_unknown_codec_is_refused(photo):
    with pytest.raises(codec.NcError, match="unknown codec"):
        codec.encode(photo, codec="nope")


def test_weights_mismatch_is_refused(photo):
    data = bytearray(codec.encode(photo.crop((0, 0, 4, 4))))
    from codec.format import container
    c = container.unpack(bytes(data))
    c.header.weights_digest = b"\0" * 8
    with pytest.raises(codec.WeightsMismatch):
        codec.decode(container.pack(c))


def test_info_reports_header_facts(photo):
    data = codec.encode(photo)
    facts = codec.info(data)
    assert facts["codec"] == "arm" and facts["mode"] == "RGB"
    assert (facts["width"], facts["height"]) == photo.size
    assert facts["bytes"] == len(data)


def test_pillow_plugin_opens_and_saves_nc(photo, tmp_path):
    path = tmp_path / "p.nc"
    photo.save(path)
    with Image.open(path) as im:
        assert im.format == "NC" and im.mode == "RGB" and im.size == photo.size
        np.testing.assert_array_equal(np.asarray(im), np.asarray(photo))


def test_images_beyond_the_size_limit_are_refused_before_coding():
    from codec.format import container
    img = Image.new("L", (container.MAX_DIMENSION + 1, 1))
    with pytest.raises(UnsupportedImage, match="outside"):
        codec.encode(img)
