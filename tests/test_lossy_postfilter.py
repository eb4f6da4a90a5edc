"""The lossy decoder's post-filter (codec/lossy/postfilter.py): its
statistics, its choice, its bytes, and its place in files."""

import numpy as np
import pytest

import codec
from codec import api
from codec.format import container
from codec.lossy.postfilter import FilterFit, PostFilter, features_per_channel, offsets, radius_for_effort
from codec.pipeline import lossy

# The filter's mechanics are tested on lossy-v11, whose bare synthesis a
# filter pays on even for these small crops; after lossy-v12's enhancer it
# seldom does there (the last windows test checks the two together).
MODEL = "lossy-v11"
rng = np.random.default_rng(7)


def coder():
    return lossy.lossy_codec(MODEL).coder


def random_filter(radius, symmetric, shift=8, scale=20, boundaries=()):
    n = features_per_channel(radius, symmetric)
    return PostFilter(radius, symmetric, shift,
                      rng.integers(-scale, scale + 1, (len(boundaries) + 1, 3, n)), boundaries)


def by_definition(f: PostFilter, pixels: np.ndarray) -> np.ndarray:
    """The filter as docs/FORMAT.md §7.1 writes it, term by term, class by
    class (``pixels`` with the filter's border)."""
    b = f.border
    h, w = pixels.shape[1] - 2 * b, pixels.shape[2] - 2 * b
    x = pixels[:, b:b + h, b:b + w]
    at = lambda dy, dx: pixels[:, b + dy:b + dy + h, b + dx:b + dx + w]   # noqa: E731
    if f.classes == 1:
        return one_class(f, 0, x, at)
    rounded = np.clip(np.rint(pixels), 0, 255).astype(int)
    lap = np.abs(4 * rounded[:, 1:-1, 1:-1] - rounded[:, :-2, 1:-1] - rounded[:, 2:, 1:-1]
                 - rounded[:, 1:-1, :-2] - rounded[:, 1:-1, 2:]).sum(0)
    activity = np.zeros((h, w), int)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            activity += lap[b - 1 + dy:b - 1 + dy + h, b - 1 + dx:b - 1 + dx + w]
    bins = np.minimum(np.array([int(a).bit_length() for a in activity.ravel()]).reshape(h, w), 15)
    classes = np.searchsorted(np.array(f.boundaries, int), bins, side="right")
    return np.choose(classes[None], [one_class(f, k, x, at) for k in range(f.classes)])


def one_class(f: PostFilter, k: int, x, at) -> np.ndarray:
    r = f.radius
    coef = f.coefficients[k] / 2**f.shift
    out = x.copy()
    for j, (dy, dx) in enumerate(offsets(r, f.symmetric)):
        diff = at(dy, dx) - x
        if f.symmetric:
            diff = diff + at(-dy, -dx) - x
        for c in range(3):
            for src in range(3):
                out[c] += coef[c, 3 * j + src] * diff[src]
    for c in range(3):
        out[c] += coef[c, -3] * (x[1] - x[0]) + coef[c, -2] * (x[2] - x[0]) + coef[c, -1]
    return out


@pytest.mark.parametrize("radius,symmetric,boundaries", [(1, True, ()), (2, False, ()), (3, True, ()),
                                                        (1, False, (9,)), (2, True, (5, 8, 10))])
def test_the_convolution_is_the_filter_as_defined(radius, symmetric, boundaries):
    f = random_filter(radius, symmetric, boundaries=boundaries)
    b = f.border
    # a smooth gradient with noise of varied strength: every activity class occurs
    ramp = np.linspace(0, 200, 36 + 2 * b)[None, None, :] + np.zeros((3, 20 + 2 * b, 1))
    strength = np.repeat([0.0, 0.5, 2, 8, 40], 10)[:ramp.shape[2]]     # by column band
    pixels = ramp + rng.normal(0, 1, ramp.shape) * strength
    expected = by_definition(f, pixels)
    np.testing.assert_allclose(f.apply(pixels), expected, atol=2e-3)   # float32 convolutions
    if boundaries:
        assert len(np.unique(f.classes_of(pixels))) == f.classes


def test_all_zero_coefficients_leave_the_synthesis_as_it_is():
    f = PostFilter(2, False, 8, np.zeros((1, 3, features_per_channel(2, False)), np.int64))
    pixels = rng.uniform(0, 255, (3, 14, 15))
    np.testing.assert_allclose(f.apply(pixels), pixels[:, 2:-2, 2:-2], atol=1e-4)


@pytest.mark.parametrize("radius,symmetric,scale,boundaries",
                         [(1, False, 3, ()), (2, True, 200, (4, 15)), (3, False, 5000, (1, 2, 3))])
def test_filters_come_back_from_their_bytes(radius, symmetric, scale, boundaries):
    f = random_filter(radius, symmetric, shift=11, scale=scale, boundaries=boundaries)
    g = PostFilter.unpack(f.pack(coder()), coder())
    assert (g.radius, g.symmetric, g.shift, g.boundaries) == (radius, symmetric, 11, boundaries)
    np.testing.assert_array_equal(g.coefficients, f.coefficients)


@pytest.mark.parametrize("data", [b"", b"\x04\x00\x08\x00\x00\x01", b"\x01\x02\x08\x00\x00\x01",
                                  b"\x01\x00\x08\x40\x00\x01", b"\x01\x00\x08\x00\x00\x05",
                                  b"\x01\x00\x08\x00\x00\x03\x05\x05", b"\x01\x00\x08\x00\x00\x02\x10",
                                  b"\x01\x00\x08\x00\x00\x01\x01\x02"])
def test_a_malformed_filter_segment_is_a_format_error(data):
    with pytest.raises(codec.FormatError):
        PostFilter.unpack(data, coder())


def test_the_fit_recovers_a_filter_and_pays_only_when_it_helps():
    """A target made by a known filter is found again (to its quantization),
    statistics gathered in two parts sum to those of the whole, and a
    target the synthesis already matches gets no filter."""
    truth = random_filter(1, False, shift=6, scale=4)
    pixels = rng.uniform(0, 255, (3, 64 + 4, 48 + 4))
    target = truth.apply(pixels[:, 1:-1, 1:-1]).astype(np.float64).transpose(1, 2, 0)
    whole, top, bottom = FilterFit(2), FilterFit(2), FilterFit(2)
    whole.add(pixels, target)
    top.add(pixels[:, :34 + 4], target[:34])
    bottom.add(pixels[:, 34:], target[34:])
    both = top + bottom
    np.testing.assert_allclose(both.gram, whole.gram, rtol=1e-9)
    np.testing.assert_allclose(both.cross, whole.cross, rtol=1e-9, atol=1e-6)
    found = whole.choose(lam=0.01, coder=coder())
    assert found is not None and found.radius == 1 and not found.symmetric and found.classes == 1
    np.testing.assert_allclose(found.coefficients[0] / 2**found.shift, truth.coefficients[0] / 2**truth.shift,
                               atol=2**-found.shift)
    same = FilterFit(2)
    same.add(pixels, pixels[:, 2:-2, 2:-2].transpose(1, 2, 0))
    assert same.choose(lam=0.01, coder=coder()) is None


def test_efforts_one_and_two_fit_no_filter_and_eight_up_the_widest():
    assert [radius_for_effort(e) for e in range(1, 10)] == [0, 0, 2, 2, 2, 2, 2, 3, 3]


def filter_segments(data: bytes):
    return [s for s in container.unpack(data).segments if s.kind == container.SegmentKind.FILTER]


@pytest.fixture(scope="module")
def crop(photo_large) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(photo_large)[:96, :160])


def test_a_filtered_file_decodes_to_the_filtered_synthesis_and_costs_less(crop):
    """The encoder sends a filter when it lowers bits + lambda x distortion
    on the decoded file; efforts below 3 send none and decode as before."""
    quality = 6.0
    plain = codec.encode(crop, "lossy", quality=quality, effort=2, model=MODEL)
    filtered = codec.encode(crop, "lossy", quality=quality, effort=4, model=MODEL)
    assert not filter_segments(plain) and len(filter_segments(filtered)) == 1

    def cost(data):
        back = np.asarray(codec.decode(data)).astype(np.float64)
        mse = ((back - crop) ** 2).mean()
        return 8 * len(data) + lossy.lossy_codec(MODEL).spec.lam(quality) * mse * crop[..., 0].size

    assert cost(filtered) < cost(plain)
    assert "post_filter" not in codec.info(plain)
    assert codec.info(filtered)["post_filter"].endswith(f"{len(filter_segments(filtered)[0].data)} bytes")


def test_the_filter_reads_across_windows_and_tiles_as_one_synthesis(crop, monkeypatch):
    """The filter reads its neighbours across window and tile borders from
    the one synthesis of the whole image: smaller windows or tiles change
    no pixel by more than float rounding."""
    data = api.encode_image(crop, quality=6.0, effort=4, model=MODEL).data
    assert filter_segments(data)
    whole = np.asarray(codec.decode(data, jobs=1)).astype(int)
    monkeypatch.setattr(lossy, "WINDOW", 64)
    windowed = np.asarray(codec.decode(data, jobs=1)).astype(int)
    assert np.abs(windowed - whole).max() <= 1 and np.mean(windowed == whole) > 0.999
    tiled = api.encode_image(crop, quality=6.0, effort=4, tile_size=64, model=MODEL).data
    assert filter_segments(tiled)[0].data == filter_segments(api.encode_image(
        crop, quality=6.0, effort=4, model=MODEL).data)[0].data


def test_the_enhancer_and_filter_read_across_windows_and_tiles_as_one_synthesis(photo_large, monkeypatch):
    """The default model's enhancer, and the filter after it, read their
    neighbours across window and tile borders from the one synthesis of the
    whole image (a filter pays on the whole 256 x 192 photo, not the crop)."""
    image = np.asarray(photo_large)
    data = api.encode_image(image, quality=6.0, effort=4).data
    assert filter_segments(data)
    whole = np.asarray(codec.decode(data, jobs=1)).astype(int)
    monkeypatch.setattr(lossy, "WINDOW", 64)
    windowed = np.asarray(codec.decode(data, jobs=1)).astype(int)
    assert np.abs(windowed - whole).max() <= 1 and np.mean(windowed == whole) > 0.999
    monkeypatch.undo()
    tiled = api.encode_image(image, quality=6.0, effort=4, tile_size=64).data
    from_tiles = np.asarray(codec.decode(tiled, jobs=1)).astype(int)
    assert np.abs(from_tiles - whole).max() <= 1 and np.mean(from_tiles == whole) > 0.999


def test_a_filter_segment_outside_a_lossy_file_or_twice_is_refused(crop, photo):
    lossless = bytearray(codec.encode(photo))
    lossy_file = codec.encode(crop, "lossy", quality=6.0, effort=4, model=MODEL)
    segment = filter_segments(lossy_file)[0]
    for c in (container.unpack(bytes(lossless)), container.unpack(lossy_file)):
        c.segments.insert(0, segment)
        with pytest.raises(codec.FormatError, match="filter segment"):
            codec.decode(container.pack(c))


def test_flat_and_busy_areas_wanting_different_filters_get_classes():
    """Where the flat half of an image wants one correction and the busy
    half another, the fit splits the pixels by activity and codes both."""
    flat = 100 + rng.normal(0, 0.3, (3, 68, 36))
    busy = rng.uniform(0, 255, (3, 68, 36))
    pixels = np.concatenate([flat, busy], 2)
    sharp = random_filter(1, False, shift=5, scale=3)
    lifted = np.zeros_like(sharp.coefficients)
    lifted[..., -1] = 10 * 2**5                  # the flat half wants a brighter level instead
    soft = PostFilter(1, False, 5, lifted)
    target = np.concatenate([soft.apply(pixels[:, 1:-1, 1:37]), sharp.apply(pixels[:, 1:-1, 35:-1])], 2)
    fit = FilterFit(2)
    fit.add(pixels, target.astype(np.float64).transpose(1, 2, 0)[:, :68])
    found = fit.choose(lam=0.01, coder=coder())
    assert found is not None and found.classes >= 2
    assert fit.choose(lam=0.01, coder=coder(), max_classes=1).classes == 1
