"""Columns of small integers range-coded under the ARM's own logistic tables.

Why.  What an ARM segment sends besides its pixels (the network's change,
nc 0.15; the calibration and feedback tables, nc 0.34) is columns of small
signed integers, each column of one kind and spread.  A logistic centred on
0 whose scale level is chosen per column, from the model's own tables,
codes them within a few per cent of their empirical entropy, without a
second entropy model to specify, test and keep exact: the tables are the
ones every pixel is coded with.  A value v is the symbol 128 + v; the
levels go first, each under a uniform distribution.
"""
from __future__ import annotations

import numpy as np


def column_levels(values: np.ndarray, tables) -> tuple[np.ndarray, float]:
    """(per column of ``values`` (rows, cols), the scale level whose logistic
    (mean 128) codes that column's symbols 128 + value smallest; the ideal
    bits of all of them, the levels' own included)."""
    s = values.ravel() + 128
    n_levels, cols = tables.cdf.shape[0], values.shape[1]
    bits = np.array([-tables.log2_probabilities(s, *row_model(tables, level, len(s)))
                     .reshape(-1, cols).sum(axis=0) for level in range(n_levels)])
    return np.argmin(bits, axis=0), float(bits.min(axis=0).sum()) + cols * np.log2(n_levels)


def encode_columns(encoder, tables, values: np.ndarray, levels: np.ndarray) -> None:
    """The levels (uniform), then the symbols row by row, each under its column's level."""
    encoder.encode(levels, uniform_rows(len(levels), tables.cdf.shape[0]))
    s = values.ravel() + 128
    encoder.encode(s, tables.frequencies(*row_model(tables, np.tile(levels, values.shape[0]), len(s))))


def decode_columns(decoder, tables, shape: tuple[int, int]) -> np.ndarray:
    """What ``encode_columns`` wrote for values of ``shape``; raises
    ValueError on a level out of range."""
    n_levels = tables.cdf.shape[0]
    levels = decoder.decode(uniform_rows(shape[1], n_levels))
    if levels.max() >= n_levels:
        raise ValueError("column scale level out of range")
    s = decoder.decode(tables.frequencies(*row_model(tables, np.tile(levels, shape[0]),
                                                     shape[0] * shape[1])))
    return (s - 128).reshape(shape)


def uniform_rows(n: int, levels: int) -> np.ndarray:
    """Frequency rows (n, 256) giving each of the first ``levels`` symbols
    the same probability (the rest, never written, the least)."""
    rows = np.ones((n, 256))
    rows[:, :levels] = 1 << 16
    return rows


def row_model(tables, level, n: int):
    """(means, levels, weights), each (n, 1): one logistic centred on symbol
    128, at scale ``level`` (one for all, or one per symbol)."""
    return (np.full((n, 1), 128 << tables.mean_frac, np.int64),
            np.broadcast_to(np.asarray(level, np.int64), (n,)).reshape(n, 1),
            np.ones((n, 1), np.int64))
