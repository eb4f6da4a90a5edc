"""Zero-mean residuals coded by scale level, for the lossy codec's latents.

A latent coded as ``r = round(y - mean)`` has a distribution that depends
only on its scale, and scales are snapped to a few dozen levels.  So every
level has one fixed frequency table (integers, built at export and stored in
the weights file), and all symbols of a level are coded in one constriction
call with one model: no per-symbol tables at all.

Each level's alphabet is ``-R .. R``; the two end symbols are escapes for
``r <= -R`` and ``r >= R``, after which the excess ``|r| - R`` follows
under a uniform model of 2^24 values (escapes are rare: R is 12 scales).
"""
from __future__ import annotations

import constriction
import numpy as np

from .logistic import CDF_TOTAL

MAX_EXCESS_BITS = 24


def build_gaussian_tables(scales: np.ndarray, radius_per_scale: float = 12.0,
                          min_radius: int = 3) -> list[np.ndarray]:
    """Integer frequencies per scale level (export time only)."""
    from math import erf, sqrt

    tables = []
    for s in scales:
        r = max(min_radius, int(np.ceil(radius_per_scale * s)))
        edges = np.arange(-r, r + 2) - 0.5  # boundaries of -r .. r
        cdf = np.array([0.5 * (1 + erf(e / (s * sqrt(2)))) for e in edges])
        cdf[0], cdf[-1] = 0.0, 1.0  # escapes take the tails
        p = np.diff(cdf)
        f = np.floor(p * (CDF_TOTAL - 2 * r - 1)).astype(np.int64) + 1
        tables.append(f.astype(np.int32))
    return tables


class ZeroMeanCoder:
    def __init__(self, tables: list[np.ndarray]):
        self.radius = [(len(t) - 1) // 2 for t in tables]
        self.models = [constriction.stream.model.Categorical(t.astype(np.float64), perfect=False)
                       for t in tables]
        self._excess = constriction.stream.model.Uniform(2**MAX_EXCESS_BITS)

    def encode(self, encoder, residuals: np.ndarray, levels: np.ndarray) -> None:
        """Code ``residuals`` (int) grouped by ``levels``, in level order then
        array order; the decoder mirrors this with ``decode``."""
        residuals, levels = residuals.ravel().astype(np.int64), levels.ravel()
        for lv in np.unique(levels):
            r = residuals[levels == lv]
            rad = self.radius[lv]
            sym = np.clip(r, -rad, rad) + rad
            encoder.encode(sym.astype(np.int32), self.models[lv])
            excess = np.abs(r[np.abs(r) >= rad]) - rad
            if len(excess):
                if excess.max() >= 2**MAX_EXCESS_BITS:
                    raise ValueError("latent residual out of range")
                encoder.encode(excess.astype(np.int32), self._excess)

    def decode(self, decoder, levels: np.ndarray) -> np.ndarray:
        flat = levels.ravel()
        out = np.zeros(flat.shape, np.int64)
        for lv in np.unique(flat):
            idx = np.flatnonzero(flat == lv)
            rad = self.radius[lv]
            r = decoder.decode(self.models[lv], len(idx)).astype(np.int64) - rad
            esc = np.abs(r) >= rad
            if esc.any():
                excess = decoder.decode(self._excess, int(esc.sum())).astype(np.int64)
                r[esc] = np.sign(r[esc]) * (rad + excess)
            out[idx] = r
        return out.reshape(levels.shape)
