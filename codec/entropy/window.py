"""Symbols coded in a window around their distribution's peak (ARM
segments with the window flag, nc 0.26, docs/FORMAT.md §5 "Windows").

Why.  A logistic mixture puts nearly all its mass on a few dozen of the 256
pixel values, yet a 256-entry frequency row per symbol is what the range
coder's categorical model reads, and building and quantizing those rows
was two fifths of the ARM decoder's time (kodim21: 0.95 of 2.44 s).  So
each symbol is coded in two steps: first among the WIDTH values of a
window placed on its dominant
component's mean, plus one escape symbol holding the rest of the mass;
then, only for the symbols that escaped, which of the 256 - WIDTH values
outside the window it is, under the same frequencies.  The product of the
two probabilities is the symbol's probability in the full row (up to the
coder's rounding), so the bits stay the same while the rows are 33 entries
wide instead of 256.

Order in the stream.  A batch's window symbols come first, in order, then
the outside values of those that escaped, in order: the decoder decodes the
batch's window symbols in one call, sees which escaped, and decodes their
values in a second.
"""
from __future__ import annotations

import numpy as np

from .logistic import ALPHABET, LogisticMixtureTables, _outside_rows, _window_rows

WIDTH = 32      # values in a window; 2-7 % of a photograph's symbols escape it (held-out photographs)


def window_frequencies(tables: LogisticMixtureTables, means, levels, weights
                       ) -> tuple[np.ndarray, np.ndarray]:
    """(each symbol's window's first value (n,), rows (n, WIDTH + 1)
    holding exact integers: the window's frequencies, then the escape's,
    the mass outside the window).  A window holds the WIDTH values centred
    on the integer part of the dominant component's mean (the largest
    weight, the first on ties), moved inside 0 ... 255."""
    n = len(means)
    starts, rows = np.empty(n, np.int64), np.empty((n, WIDTH + 1))
    _window_rows(tables._pmf, tables.cdf, np.ascontiguousarray(means, np.int64),
                 np.ascontiguousarray(levels, np.int64), np.ascontiguousarray(weights, np.int64),
                 tables.mean_frac, tables.m_hi, WIDTH, starts, rows)
    return starts, rows


def outside_frequencies(tables: LogisticMixtureTables, means, levels, weights,
                        starts: np.ndarray) -> np.ndarray:
    """Rows (n, 256 - WIDTH): the full rows' frequencies of the values outside
    each window, in increasing order of value."""
    rows = np.empty((len(means), ALPHABET - WIDTH))
    _outside_rows(tables._pmf, tables.cdf, np.ascontiguousarray(means, np.int64),
                  np.ascontiguousarray(levels, np.int64), np.ascontiguousarray(weights, np.int64),
                  tables.mean_frac, tables.m_hi, WIDTH, np.ascontiguousarray(starts, np.int64), rows)
    return rows


def encode(encoder, symbols: np.ndarray, tables: LogisticMixtureTables, means, levels, weights) -> None:
    """Code ``symbols`` (n,) under the mixtures (means, levels, weights: (n, K))."""
    starts, rows = window_frequencies(tables, means, levels, weights)
    inside = symbols - starts
    escaped = (inside < 0) | (inside >= WIDTH)
    encoder.encode(np.where(escaped, WIDTH, inside), rows)
    if escaped.any():
        s, lo = symbols[escaped], starts[escaped]
        encoder.encode(np.where(s < lo, s, s - WIDTH),
                       outside_frequencies(tables, means[escaped], levels[escaped], weights[escaped], lo))


def decode(decoder, tables: LogisticMixtureTables, means, levels, weights) -> np.ndarray:
    """What ``encode`` wrote for mixtures (means, levels, weights): the symbols (n,)."""
    starts, rows = window_frequencies(tables, means, levels, weights)
    inside = decoder.decode(rows)
    symbols = starts + inside
    escaped = inside == WIDTH
    if escaped.any():
        lo = starts[escaped]
        outside = decoder.decode(outside_frequencies(tables, means[escaped], levels[escaped],
                                                     weights[escaped], lo))
        symbols[escaped] = np.where(outside < lo, outside, outside + WIDTH)
    return symbols
