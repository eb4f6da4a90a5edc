"""Discretized logistic mixtures as exact integer frequency tables.

Why integer tables: the encoder and the decoder must compute *identical*
frequencies, on any CPU, thread count or batch shape.  Evaluating sigmoids at
run time gives last-bit differences between instruction sets; a table of
integers built once (at model export, stored in the weights file) and
combined with integer arithmetic does not.

Frequency rows are built by a compiled kernel (numba): one pass per row
instead of NumPy's gather, multiply and add passes, whose dispatch costs
more than their arithmetic at the decoder's wavefront sizes.  Its values
are integers below 2^40 held in float64, so every addition and product is
exact and any CPU, instruction set or summation order gives the same rows
(``frequencies_reference`` is the NumPy form it is tested against).

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

import numba
import numpy as np

from .coder import CDF_TOTAL

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
    """Turns integer mixture parameters into frequency rows for the coder.

    Rows are built from a table of per-symbol frequencies (differences of the
    CDF table), read as 256-entry windows; the two edge symbols then get the
    tail masses from the CDF table.  Everything is float64 holding exact
    integers (all below 2^40), which NumPy multiplies and adds exactly.
    """

    def __init__(self, cdf: np.ndarray, mix_weights: np.ndarray, mean_frac: int, mean_max: int):
        self.mean_frac = mean_frac
        self.m_hi = mean_max >> mean_frac
        self.cdf = np.ascontiguousarray(cdf, dtype=np.int64)
        self._cdf_f = self.cdf.astype(np.float64)
        pmf = self._pmf = np.diff(self._cdf_f, axis=-1, prepend=0.0)
        # windows[level, frac, start, 0:256] is a view, not a copy
        self._pmf_windows = np.lib.stride_tricks.sliding_window_view(pmf, ALPHABET, axis=-1)
        self.mix_weights = np.asarray(mix_weights, dtype=np.int64)

    def weights(self, logits: np.ndarray) -> np.ndarray:
        """Integer mixture weights (n, K) from integer logits (n, K)."""
        return self.mix_weights[logits.max(axis=1, keepdims=True) - logits]

    def frequencies(self, means: np.ndarray, levels: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """Frequency rows (n, 256), float64 holding exact integers, all >= 1.

        means, levels, weights: integer arrays (n, K)."""
        rows = np.empty((len(means), ALPHABET))
        _mixture_rows(self._pmf, self.cdf, *self._contiguous(means, levels, weights),
                      self.mean_frac, self.m_hi, rows)
        return rows

    def window_frequencies(self, means, levels, weights, width: int) -> tuple[np.ndarray, np.ndarray]:
        """(each symbol's window's first value (n,), rows (n, width + 1)
        holding exact integers: the frequencies ``frequencies`` gives the
        window's values, then the rest of the row's total, the escape's).  A
        window holds the ``width`` values centred on the integer part of
        the dominant component's mean (the largest weight, the first on
        ties), moved inside 0 ... 255 (``window.py``)."""
        n = len(means)
        starts, rows = np.empty(n, np.int64), np.empty((n, width + 1))
        _window_rows(self._pmf, self.cdf, *self._contiguous(means, levels, weights),
                     self.mean_frac, self.m_hi, width, starts, rows)
        return starts, rows

    def outside_frequencies(self, means, levels, weights, starts: np.ndarray, width: int) -> np.ndarray:
        """Rows (n, 256 - width): the frequencies ``frequencies`` gives the
        values outside each window (first value ``starts``), in increasing
        order of value."""
        rows = np.empty((len(means), ALPHABET - width))
        _outside_rows(self._pmf, self.cdf, *self._contiguous(means, levels, weights),
                      self.mean_frac, self.m_hi, width, np.ascontiguousarray(starts, np.int64), rows)
        return rows

    @staticmethod
    def _contiguous(*arrays) -> list[np.ndarray]:
        """The kernels' integer inputs as contiguous int64 arrays."""
        return [np.ascontiguousarray(a, np.int64) for a in arrays]

    def frequencies_reference(self, means: np.ndarray, levels: np.ndarray,
                              weights: np.ndarray) -> np.ndarray:
        """``frequencies`` in NumPy: the definition the kernel must match."""
        k = means.shape[1]
        m = means >> self.mean_frac
        f = means & ((1 << self.mean_frac) - 1)
        start = self.m_hi - m + 1          # table index of d = x - m at x = 0
        w = weights.astype(np.float64)
        rows = self._pmf_windows[levels[:, 0], f[:, 0], start[:, 0]]   # a gathered copy
        rows *= w[:, :1]
        for j in range(1, k):
            part = self._pmf_windows[levels[:, j], f[:, j], start[:, j]]
            part *= w[:, j:j + 1]
            rows += part
        # edge symbols take the tails: P(x <= 0) and P(x >= 255)
        low = self._cdf_f[levels, f, start]                  # cumulative up to x = 0
        high = CDF_TOTAL - self._cdf_f[levels, f, start + ALPHABET - 2]  # mass above x = 254
        rows[:, 0] = (low * w).sum(axis=1)
        rows[:, ALPHABET - 1] = (high * w).sum(axis=1)
        return rows

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


@numba.njit(cache=True, nogil=True, inline="always")
def _component(means, levels, weights, i, j, mean_frac, m_hi):
    """(scale level, mean fraction, table index of d = x - m at x = 0,
    weight as float) of pixel i's component j: where its frequencies lie in
    the tables."""
    m = means[i, j]
    return levels[i, j], m & ((1 << mean_frac) - 1), m_hi - (m >> mean_frac) + 1, float(weights[i, j])


@numba.njit(cache=True, nogil=True)
def _mixture_rows(pmf, cdf, means, levels, weights, mean_frac, m_hi, rows):
    """rows[i] = sum over components j of weights[i, j] times the 256
    frequencies of component j's window, the edge symbols taking the tails
    (``LogisticMixtureTables.frequencies_reference`` step by step)."""
    n, k = means.shape
    for i in range(n):
        row = rows[i]
        row[:] = 0.0
        low = 0.0
        high = 0.0
        for j in range(k):
            level, f, start, w = _component(means, levels, weights, i, j, mean_frac, m_hi)
            window = pmf[level, f, start:start + ALPHABET]
            for x in range(ALPHABET):
                row[x] += window[x] * w
            low += cdf[level, f, start] * w
            high += (CDF_TOTAL - cdf[level, f, start + ALPHABET - 2]) * w
        row[0] = low
        row[ALPHABET - 1] = high



@numba.njit(cache=True, nogil=True, inline="always")
def _frequency(pmf, cdf, level, f, start, x):
    """Symbol x's frequency under one component (``_mixture_rows``' entry)."""
    if x == 0:
        return float(cdf[level, f, start])
    if x == ALPHABET - 1:
        return float(CDF_TOTAL - cdf[level, f, start + ALPHABET - 2])
    return pmf[level, f, start + x]


@numba.njit(cache=True, nogil=True)
def _window_rows(pmf, cdf, means, levels, weights, mean_frac, m_hi, width, starts, rows):
    """starts[i] = the first of the ``width`` values centred on the integer
    part of the dominant component's mean (the largest weight, the first on
    ties), moved inside 0 ... 255; rows[i, :width] = the frequencies
    ``_mixture_rows`` gives those values, rows[i, width] = the rest of the
    row's total (sum_j weights[i, j] * CDF_TOTAL), without the other
    256 - width entries."""
    n, k = means.shape
    for i in range(n):
        best = 0
        for j in range(1, k):
            if weights[i, j] > weights[i, best]:
                best = j
        lo = min(max((means[i, best] >> mean_frac) - (width // 2 - 1), 0), ALPHABET - width)
        starts[i] = lo
        row = rows[i]
        row[:] = 0.0
        total = 0.0
        for j in range(k):
            level, f, start, w = _component(means, levels, weights, i, j, mean_frac, m_hi)
            total += CDF_TOTAL * w
            row[0] += _frequency(pmf, cdf, level, f, start, lo) * w
            window = pmf[level, f, start + lo + 1:start + lo + width - 1]
            for x in range(width - 2):
                row[x + 1] += window[x] * w
            row[width - 1] += _frequency(pmf, cdf, level, f, start, lo + width - 1) * w
        inside = 0.0
        for x in range(width):
            inside += row[x]
        row[width] = total - inside


@numba.njit(cache=True, nogil=True)
def _outside_rows(pmf, cdf, means, levels, weights, mean_frac, m_hi, width, starts, rows):
    """rows[i] = the frequencies ``_mixture_rows`` gives the 256 - width
    values outside the window starts[i] ... starts[i] + width - 1, in
    increasing order of value."""
    n, k = means.shape
    for i in range(n):
        row = rows[i]
        row[:] = 0.0
        lo = starts[i]
        for j in range(k):
            level, f, start, w = _component(means, levels, weights, i, j, mean_frac, m_hi)
            for x in range(lo):
                row[x] += _frequency(pmf, cdf, level, f, start, x) * w
            for x in range(lo + width, ALPHABET):
                row[x - width] += _frequency(pmf, cdf, level, f, start, x) * w
