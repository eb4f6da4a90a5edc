"""Integer logistic-mixture tables and the range coder."""
import numpy as np
import pytest

from codec.entropy import SymbolDecoder, SymbolEncoder
from codec.entropy.logistic import (
    CDF_TOTAL,
    LogisticMixtureTables,
    build_cdf_table,
    build_mix_weight_table,
)
from models.arm.spec import ARMSpec

SPEC = ARMSpec()


@pytest.fixture(scope="module")
def tables():
    s = SPEC
    cdf = build_cdf_table(s.log_scale_min, s.log_scale_frac, s.log_scale_levels, s.mean_frac,
                          s.mean_min, s.mean_max)
    return LogisticMixtureTables(cdf, build_mix_weight_table(s.logit_frac, s.logit_range),
                                 s.mean_frac, s.mean_max)


def drawn_symbols(tables, seed: int, n: int, max_level: int):
    """(symbols drawn from random mixtures of scale levels 20 ... max_level,
    their means, levels, weights and full frequency rows)."""
    rng = np.random.default_rng(seed)
    means, levels, logits = random_params(rng, n)
    levels = np.clip(levels, 20, max_level)
    w = tables.weights(logits)
    freqs = tables.frequencies(means, levels, w)
    symbols = np.array([rng.choice(256, p=row / row.sum()) for row in freqs])
    return symbols, means, levels, w, freqs


def random_params(rng, n, k=2):
    s = SPEC
    means = rng.integers(s.mean_min, s.mean_max + 1, (n, k))
    levels = rng.integers(0, s.log_scale_levels, (n, k))
    logits = rng.integers(-s.logit_range, s.logit_range + 1, (n, k))
    return means, levels, logits


@pytest.mark.parametrize("k", [1, 2, 3])
def test_compiled_rows_equal_the_numpy_definition(tables, k):
    """The compiled kernel is what the decoder runs; the NumPy form is the
    definition (and what files before the kernel were coded with)."""
    rng = np.random.default_rng(k)
    means, levels, logits = random_params(rng, 3000, k)
    means[0], means[1] = SPEC.mean_min, SPEC.mean_max
    levels[0], levels[1] = 0, SPEC.log_scale_levels - 1
    w = tables.weights(logits)
    np.testing.assert_array_equal(tables.frequencies(means, levels, w),
                                  tables.frequencies_reference(means, levels, w))
    # a wavefront's arrays are views of wider buffers
    np.testing.assert_array_equal(tables.frequencies(means[::2], levels[::2], w[::2]),
                                  tables.frequencies_reference(means[::2], levels[::2], w[::2]))


def test_every_symbol_has_nonzero_frequency_and_rows_sum_to_total(tables):
    rng = np.random.default_rng(1)
    means, levels, logits = random_params(rng, 4000)
    # include the extremes of every grid
    means[:4] = [[SPEC.mean_min, SPEC.mean_max]] * 4
    levels[:4] = [[0, SPEC.log_scale_levels - 1]] * 4
    w = tables.weights(logits)
    f = tables.frequencies(means, levels, w)
    assert f.shape == (4000, 256)
    assert f.min() >= 1
    np.testing.assert_array_equal(f.sum(axis=1), CDF_TOTAL * w.sum(axis=1))


def test_frequencies_follow_the_mean(tables):
    means = np.array([[100 * 16, 100 * 16]])
    levels = np.array([[0, 0]])
    w = tables.weights(np.array([[0, 0]]))
    f = tables.frequencies(means, levels, w)[0]
    assert f.argmax() == 100 and f[100] > 0.9 * f.sum()


def test_range_coder_round_trip_and_size_near_ideal(tables):
    symbols, means, levels, w, freqs = drawn_symbols(tables, 2, 20000, 40)
    enc = SymbolEncoder()
    for a in range(0, len(symbols), 3000):
        enc.encode(symbols[a:a + 3000], freqs[a:a + 3000])
    data = enc.finish()
    dec = SymbolDecoder(data)
    back = np.concatenate([dec.decode(freqs[a:a + 3000]) for a in range(0, len(symbols), 3000)])
    np.testing.assert_array_equal(back, symbols)
    ideal = -tables.log2_probabilities(symbols, means, levels, w).sum()
    assert 8 * len(data) <= ideal * 1.005 + 64


@pytest.mark.parametrize("k", [1, 2, 3])
def test_window_rows_are_the_full_rows_cut_in_two(tables, k):
    """The window's entries are the full row's at its values, the escape
    holds the rest, and the outside rows are the rest in order: the two
    steps give each symbol its full-row probability."""
    from codec.entropy import window

    rng = np.random.default_rng(10 + k)
    means, levels, logits = random_params(rng, 5000, k)
    means[0], means[1] = SPEC.mean_min, SPEC.mean_max   # windows against both ends
    w = tables.weights(logits)
    full = tables.frequencies(means, levels, w)
    starts, rows = tables.window_frequencies(means, levels, w, window.WIDTH)
    dominant = np.argmax(w, axis=1)                  # the first on ties
    centre = means[np.arange(len(means)), dominant] >> SPEC.mean_frac
    np.testing.assert_array_equal(starts, np.clip(centre - (window.WIDTH // 2 - 1), 0,
                                                  256 - window.WIDTH))
    assert starts[0] == 0 and starts[1] == 256 - window.WIDTH
    inside = starts[:, None] + np.arange(window.WIDTH)
    np.testing.assert_array_equal(rows[:, :-1], np.take_along_axis(full, inside, axis=1))
    np.testing.assert_array_equal(rows[:, -1], full.sum(axis=1) - rows[:, :-1].sum(axis=1))
    outside = tables.outside_frequencies(means, levels, w, starts, window.WIDTH)
    keep = np.ones_like(full, bool)
    np.put_along_axis(keep, inside, False, axis=1)
    np.testing.assert_array_equal(outside, full[keep].reshape(len(full), -1))


def test_windowed_symbols_round_trip_at_the_full_rows_size(tables):
    """Symbols drawn from their mixtures (a few escape) and symbols far from
    them (all escape, at 0 and 255 too) come back in order, batch by batch;
    the file is as small as full rows make it."""
    from codec.entropy import window

    symbols, means, levels, w, freqs = drawn_symbols(tables, 4, 20000, 48)
    symbols[:500] = np.random.default_rng(5).choice([0, 255], 500)
    starts, _ = tables.window_frequencies(means, levels, w, window.WIDTH)
    escaped = (symbols < starts) | (symbols >= starts + window.WIDTH)
    assert 0.02 < escaped[500:].mean() < 0.5 and escaped[:500].mean() > 0.5
    batches = range(0, len(symbols), 700)
    enc, full = SymbolEncoder(), SymbolEncoder()
    for a in batches:
        part = slice(a, a + 700)
        window.encode(enc, symbols[part], tables, means[part], levels[part], w[part])
        full.encode(symbols[part], freqs[part])
    data = enc.finish()
    dec = SymbolDecoder(data)
    back = np.concatenate([window.decode(dec, tables, means[a:a + 700], levels[a:a + 700], w[a:a + 700])
                           for a in batches])
    np.testing.assert_array_equal(back, symbols)
    assert abs(len(data) - len(full.finish())) <= 0.002 * len(data)


def test_log2_probabilities_match_rows(tables):
    rng = np.random.default_rng(3)
    means, levels, logits = random_params(rng, 500)
    w = tables.weights(logits)
    f = tables.frequencies(means, levels, w)
    sym = rng.integers(0, 256, 500)
    expect = np.log2(f[np.arange(500), sym] / f.sum(axis=1))
    np.testing.assert_allclose(tables.log2_probabilities(sym, means, levels, w), expect, rtol=1e-12)


# -- residuals coded by group (IDF, lossy) -----------------------------------------------
def _residual_coder():
    """A coder with more groups than the decoder takes at once, as the IDF's has
    (a scale level and a mean fraction per group)."""
    from codec.entropy import ResidualCoder
    from codec.entropy.residual import SPECULATIVE_GROUPS, build_logistic_tables

    coder = ResidualCoder(build_logistic_tables(np.geomspace(0.3, 20, 48), 4))
    assert coder.groups > 2 * SPECULATIVE_GROUPS
    return coder


@pytest.mark.parametrize("escapes", [0, 1, 40])
def test_residuals_round_trip_across_speculative_chunks(escapes):
    """Several times as many groups as the decoder takes at once
    (``SPECULATIVE_GROUPS``), with escapes (both signs) in some chunks and none
    in others; the stream's next symbols must decode after them, from the
    same decoder."""
    from codec.entropy import range_decoder, range_encoder, stream_bytes
    from codec.entropy.residual import SPECULATIVE_GROUPS

    coder = _residual_coder()
    rng = np.random.default_rng(escapes)
    groups = rng.integers(0, coder.groups, 20 * SPECULATIVE_GROUPS)
    scale = np.geomspace(0.3, 20, 48)[groups >> 4]
    residuals = np.round(rng.logistic(0, scale)).astype(np.int64)
    where = rng.choice(len(residuals), escapes, replace=False)
    residuals[where] = rng.choice([-1, 1], escapes) * rng.integers(100, 5000, escapes)
    # the first group's symbols end up first in the stream: an escape there too
    if escapes:
        residuals[np.flatnonzero(groups == groups.min())[0]] = -700
    after = rng.integers(0, 2**20, 50)
    enc = range_encoder()
    coder.encode(enc, residuals, groups)
    enc.encode(after.astype(np.int32), coder._excess)
    dec = range_decoder(stream_bytes(enc))
    assert np.array_equal(coder.decode(dec, groups), residuals)
    assert np.array_equal(dec.decode(coder._excess, len(after)), after)


def test_residuals_of_no_groups_decode_to_nothing():
    from codec.entropy import range_decoder

    coder = _residual_coder()
    out = coder.decode(range_decoder(b"\0" * 8), np.zeros((0, 3), np.int64))
    assert out.shape == (0, 3)
