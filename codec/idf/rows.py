"""Rows of small signed integers range-coded under the IDF's own tables.

Why.  What an IDF segment sends besides its latents (the prior change's
weights, nc 0.18; the feedback table and the change's row levels, nc 0.35)
is rows of small signed integers, each row of one kind and spread.  A row
is coded as latent residuals of mean 0 at one scale level, the one that
codes it smallest, under the flow's own tables (``ResidualCoder``, escapes
included): no second entropy model to specify, test and keep exact.  The
ARM's counterpart is ``codec/arm/columns.py``.

A row's level is sent either with the row (``encode``: a uniform symbol
of the coder's levels first) or elsewhere (``encode_at``: the prior
change's rows, whose levels form a row of their own).
"""
from __future__ import annotations

import constriction
import numpy as np

from codec.entropy import ResidualCoder


class RowCoder:
    """Rows under ``coder``'s zero-mean tables (groups ``level << mean_frac``)."""

    def __init__(self, coder: ResidualCoder, mean_frac: int):
        self.coder = coder
        self.mean_frac = mean_frac
        self.levels = coder.groups >> mean_frac
        self._level_model = constriction.stream.model.Uniform(self.levels)

    def best_levels(self, rows: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """(per row, the scale level that codes it smallest; its ideal bits
        there, the level's own not included): one pass per level over every
        row's symbols, summed by row."""
        symbols = np.concatenate(rows)
        starts = np.cumsum([0] + [len(r) for r in rows[:-1]])
        costs = np.array([np.add.reduceat(self.coder.symbol_bits(symbols, np.full(symbols.shape, lv << self.mean_frac)),
                                          starts) for lv in range(self.levels)])
        return np.argmin(costs, axis=0).astype(np.uint8), costs.min(axis=0)

    # -- rows whose level is sent elsewhere ---------------------------------------
    def encode_at(self, encoder, values: np.ndarray, level: int) -> None:
        self.coder.encode(encoder, values, np.full(values.shape, int(level) << self.mean_frac))

    def decode_at(self, decoder, count: int, level: int) -> np.ndarray:
        """``count`` integers (unchecked: a damaged stream gives any)."""
        return self.coder.decode(decoder, np.full(count, int(level) << self.mean_frac))

    # -- rows that carry their level -----------------------------------------------
    def bits(self, values: np.ndarray) -> float:
        """The ideal bits of ``encode``'s row, its level included."""
        return float(self.best_levels([values])[1][0]) + float(np.log2(self.levels))

    def encode(self, encoder, values: np.ndarray) -> None:
        level = int(self.best_levels([values])[0][0])
        encoder.encode(np.array([level], np.int32), self._level_model)
        self.encode_at(encoder, values, level)

    def decode(self, decoder, count: int) -> np.ndarray:
        """What ``encode`` wrote for ``count`` integers (unchecked)."""
        return self.decode_at(decoder, count, int(decoder.decode(self._level_model, 1)[0]))
