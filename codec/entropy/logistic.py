"""Discretized logistic mixtures as exact integer frequency tables.

Why integer tables: the encoder and the decoder must compute *identical*
frequencies, on any CPU, thread count or batch shape.  Evaluating sigmoids at
run time gives last-bit differences between instruction sets; a table of
integers built once (at model export, stored in the weights file) and
combined with integer arithmetic does not.

Layout of the CDF table ``cdf[level, frac, d]``: the cumulative frequency,
out of ``TOTAL``, of a logistic with log-scale ``log_scale_min + level /
2^log_scale_frac`` and mean ``m + frac / 2^mean_frac`` at the boundary
``x + 1/2`` where ``d = x - m``.  Every entry is strictly greater than the
one before it, so no symbol ever gets frequency 0.  A pixel whose integer mean
part is ``m`` reads the 257 consecutive entries ``d = -1 - m … 255 - m``; the
first is replaced by 0 and the last by ``TOTAL`` so that the tails fall on the
symbols 0 and 255.
"""
from __future__ import annotations

import numpy as np

CDF_TOTAL_BITS = 20
CDF_TOTAL = 1 << CDF_TOTAL_BITS
MIX_WEIGHT_BITS = 12
ALPHABET = 256


def build_cdf_table(log_scale_min: float, log_scale_frac: int, levels: int,
                    mean_frac: int, mean_min: int, mean_max: int) -> np.ndarray:
    """Build the table (done once, at export; the codec only reads it)."""
    m_lo, m_hi = mean_min >> mean_frac, mean_max >> mean_frac
    d = np.arange(-1 - m_hi, ALPHABET - 1 - m_lo + 1, dtype=np.float64)
    fracs = np.arange(1 << mean_frac, dtype=np.float64) / (1 << mean_frac)
    scales = np.exp(log_scale_min + np.arange(levels) / (1 << log_scale_frac))
    u = (d[None, None, :] + 0.5 - fracs[None, :, None]) / scales[:, None, None]
    sig = 0.5 * (1.0 + np.tanh(0.5 * u))
    n = d.size
    body = np.floor(sig * (CDF_TOTAL - 2 * n)).astype(np.int64)
    table = body + np.arange(1, n + 1, dtype=np.int64)[None, None, :]
    assert np.all(np.diff(table, axis=-1) > 0) and table.max() < CDF_TOTAL
    return table.astype(np.int32)


def build_mix_weight_table(logit_frac: int, logit_range: int) -> np.ndarray:
    """weight[d] = round(2^MIX_WEIGHT_BITS * exp(-d / 2^logit_frac)), at least 1."""
    d = np.arange(2 * logit_range + 1, dtype=np.float64)
    w = np.round(np.exp(-d / (1 << logit_frac)) * (1 << MIX_WEIGHT_BITS))
    return np.maximum(w, 1).astype(np.int32)


class LogisticMixtureTables:
    """Turns integer mixture parameters into frequency rows for the coder."""

    def __init__(self, cdf: np.ndarray, mix_weights: np.ndarray, mean_frac: int, mean_max: int):
        self.mean_frac = mean_frac
        self.m_hi = mean_max >> mean_frac
        self.cdf = np.ascontiguousarray(cdf, dtype=np.int64)
        # windows[level, frac, start, 0:257] is a view, not a copy
        self.windows = np.lib.stride_tricks.sliding_window_view(self.cdf, ALPHABET + 1, axis=-1)
        self.mix_weights = np.asarray(mix_weights, dtype=np.int64)

    def weights(self, logits: np.ndarray) -> np.ndarray:
        """Integer mixture weights (n, K) from integer logits (n, K)."""
        return self.mix_weights[logits.max(axis=1, keepdims=True) - logits]

    def _window(self, means: np.ndarray, levels: np.ndarray) -> np.ndarray:
        m = means >> self.mean_frac
        f = means & ((1 << self.mean_frac) - 1)
        # d = -1 - m  is at table index  (-1 - m) - (-1 - m_hi) = m_hi - m
        return self.windows[levels, f, self.m_hi - m]

    def frequencies(self, means: np.ndarray, levels: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """Frequency rows (n, 256), float64 holding exact integers, all >= 1.

        means, levels, weights: integer arrays (n, K)."""
        n, k = means.shape
        cum = self._window(means[:, 0], levels[:, 0]) * weights[:, :1]
        for j in range(1, k):
            cum = cum + self._window(means[:, j], levels[:, j]) * weights[:, j:j + 1]
        cum[:, 0] = 0
        cum[:, ALPHABET] = CDF_TOTAL * weights.sum(axis=1)
        return np.diff(cum, axis=1).astype(np.float64)

    def log2_probabilities(self, symbols: np.ndarray, means, levels, weights) -> np.ndarray:
        """log2 of each symbol's probability under the integer model (for the
        ideal code length), without building whole rows."""
        symbols = symbols.astype(np.int64)
        total = CDF_TOTAL * weights.sum(axis=1)
        hi = np.zeros(symbols.shape, np.int64)
        lo = np.zeros(symbols.shape, np.int64)
        m = means >> self.mean_frac
        f = means & ((1 << self.mean_frac) - 1)
        base = self.m_hi - m  # index of x = -1
        for j in range(means.shape[1]):
            hi += self.cdf[levels[:, j], f[:, j], base[:, j] + symbols + 1] * weights[:, j]
            lo += self.cdf[levels[:, j], f[:, j], base[:, j] + symbols] * weights[:, j]
        hi = np.where(symbols == ALPHABET - 1, total, hi)
        lo = np.where(symbols == 0, 0, lo)
        return np.log2((hi - lo) / total)
