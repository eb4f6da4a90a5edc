"""Symbols coded in a window around their distribution's peak (ARM
segments with the window flag, nc 0.26, docs/FORMAT.md §5 "Windows").

Why.  A logistic mixture puts nearly all its mass on a few dozen of the 256
pixel values, yet a 256-entry frequency row per symbol is what the range
coder's categorical model reads, and building and quantizing those rows
was two fifths of the ARM decoder's time (kodim21: 0.95 of 2.44 s).  So
each symbol is coded in two steps: first among the WIDTH values of a
window placed on its dominant component's mean, plus one escape symbol
holding the rest of the mass; then, only for the symbols that escaped,
which of the 256 - WIDTH values outside the window it is, under the same
frequencies.  The product of the
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

from .logistic import LogisticMixtureTables

WIDTH = 32      # values in a window; 2-7 % of a photograph's symbols escape it (held-out photographs)


def encode(encoder, symbols: np.ndarray, tables: LogisticMixtureTables, means, levels, weights) -> None:
    """Code ``symbols`` (n,) under the mixtures (means, levels, weights: (n, K))."""
    starts, rows = tables.window_frequencies(means, levels, weights, WIDTH)
    inside = symbols - starts
    escaped = (inside < 0) | (inside >= WIDTH)
    encoder.encode(np.where(escaped, WIDTH, inside), rows)
    if escaped.any():
        s, lo = symbols[escaped], starts[escaped]
        encoder.encode(np.where(s < lo, s, s - WIDTH),
                       tables.outside_frequencies(means[escaped], levels[escaped], weights[escaped], lo, WIDTH))


def decode(decoder, tables: LogisticMixtureTables, means, levels, weights) -> np.ndarray:
    """What ``encode`` wrote for mixtures (means, levels, weights): the symbols (n,)."""
    starts, rows = tables.window_frequencies(means, levels, weights, WIDTH)
    inside = decoder.decode(rows)
    symbols = starts + inside
    escaped = inside == WIDTH
    if escaped.any():
        lo = starts[escaped]
        outside = decoder.decode(tables.outside_frequencies(means[escaped], levels[escaped],
                                                            weights[escaped], lo, WIDTH))
        symbols[escaped] = np.where(outside < lo, outside, outside + WIDTH)
    return symbols
