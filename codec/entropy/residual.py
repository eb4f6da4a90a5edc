"""Integer residuals coded by group, for latents (lossy codec, IDF).

A latent coded as ``r = z - integer part of its mean`` has a distribution
that depends only on its scale level (and, for the IDF, on the mean's
fraction, 1/16 steps); both are snapped to few values.  So every group has
one fixed frequency table (integers, built at export and stored in the
weights file), and all symbols of a group are coded in one constriction call
with one model: no per-symbol tables at all.

Each group's alphabet is ``-R .. R``; the two end symbols are escapes for
``r <= -R`` and ``r >= R``, after which the excess ``|r| - R`` follows
under a uniform model of 2^24 values (escapes are rare: R is 12 scales).
"""
from __future__ import annotations

import constriction
import numpy as np

from .coder import CDF_TOTAL

MAX_EXCESS_BITS = 24
SPECULATIVE_GROUPS = 256  # groups decoded at once before looking for escapes (``decode``)


def _table(cdf, r: int) -> np.ndarray:
    edges = np.arange(-r, r + 2) - 0.5  # boundaries of -r .. r
    c = cdf(edges)
    c[0], c[-1] = 0.0, 1.0  # the escapes take the tails
    f = np.floor(np.diff(c) * (CDF_TOTAL - 2 * r - 1)).astype(np.int64) + 1
    return f.astype(np.int32)


def _radius(scale: float, per_scale: float = 12.0, minimum: int = 3) -> int:
    return max(minimum, int(np.ceil(per_scale * scale)))


def build_gaussian_tables(scales: np.ndarray) -> list[np.ndarray]:
    """Zero-mean Gaussian frequencies, one table per scale level (export time only)."""
    from math import erf, sqrt

    return [_table(lambda e, s=s: np.array([0.5 * (1 + erf(v / (s * sqrt(2)))) for v in e]),
                   _radius(s)) for s in scales]


def build_logistic_tables(scales: np.ndarray, mean_frac: int) -> list[np.ndarray]:
    """Logistic frequencies for every (scale level, mean fraction) group, in
    the order level * 2^mean_frac + fraction (export time only)."""
    out = []
    for s in scales:
        for f in range(1 << mean_frac):
            mu = f / (1 << mean_frac)
            out.append(_table(lambda e, s=s, mu=mu: 1 / (1 + np.exp(-(e - mu) / s)), _radius(s)))
    return out


class ResidualCoder:
    def __init__(self, tables: list[np.ndarray]):
        self.groups = len(tables)
        self.radius = [(len(t) - 1) // 2 for t in tables]
        self.probabilities = [t / t.sum() for t in tables]
        # every table's -log2 probabilities end to end, for ``bits``
        self._neg_log2 = -np.log2(np.concatenate(self.probabilities))
        self._offsets = np.concatenate([[0], np.cumsum([len(t) for t in tables])[:-1]]).astype(np.int64)
        self._radius_array = np.asarray(self.radius, np.int64)
        self.models = [constriction.stream.model.Categorical(t.astype(np.float64), perfect=False)
                       for t in tables]
        self._excess = constriction.stream.model.Uniform(2**MAX_EXCESS_BITS)

    @staticmethod
    def _by_group(groups: np.ndarray) -> tuple[np.ndarray, list[tuple[int, int, int]]]:
        """(the flat indices of ``groups`` sorted by group, stably; for each
        group present, (its id, start, end) in that order): one stable sort
        instead of a pass over the array per group, and plain slices after it."""
        flat = groups.ravel()
        order = np.argsort(flat, kind="stable")
        ordered = flat[order]
        starts = np.flatnonzero(ordered[1:] != ordered[:-1]) + 1
        bounds = np.concatenate([[0], starts, [len(flat)]]).tolist()
        ids = ordered[bounds[:-1]].tolist() if len(flat) else []
        return order, list(zip(ids, bounds[:-1], bounds[1:]))

    def encode(self, encoder, residuals: np.ndarray, groups: np.ndarray) -> float:
        """Code ``residuals`` (int) by group, in increasing group id, array
        order within a group (``decode`` mirrors this).  Returns the ideal code
        length in bits: -log2 of the table probabilities, 24 per escape."""
        residuals = residuals.ravel().astype(np.int64)
        bits = 0.0
        order, spans = self._by_group(groups)
        for g, start, end in spans:
            r = residuals[order[start:end]]
            rad = self.radius[g]
            sym = np.clip(r, -rad, rad) + rad
            encoder.encode(sym.astype(np.int32), self.models[g])
            bits += float(self._neg_log2[self._offsets[g] + sym].sum()) \
                + MAX_EXCESS_BITS * int((np.abs(r) >= rad).sum())
            excess = np.abs(r[np.abs(r) >= rad]) - rad
            if len(excess):
                if excess.max() >= 2**MAX_EXCESS_BITS:
                    raise ValueError("latent residual out of range")
                encoder.encode(excess.astype(np.int32), self._excess)
        return bits

    def bits(self, residuals: np.ndarray, groups: np.ndarray) -> float:
        """The ideal code length ``encode`` would report, without coding: one
        vectorised lookup (an encoder compares many candidate parameters)."""
        return float(self.symbol_bits(residuals, groups).sum())

    def symbol_bits(self, residuals: np.ndarray, groups: np.ndarray) -> np.ndarray:
        """Each residual's ideal bits (its escape's excess included), in the
        shape of ``residuals``: what ``bits`` sums, for callers that sum by part."""
        r = residuals.astype(np.int64)
        rad = self._radius_array[groups]
        sym = np.minimum(np.maximum(r, -rad), rad) + rad
        return self._neg_log2[self._offsets[groups] + sym] + MAX_EXCESS_BITS * (np.abs(r) >= rad)

    def best_group(self, residuals: np.ndarray) -> int:
        """The one table that codes all of ``residuals`` smallest (what the
        per-image parameters a lossy file sends are coded under)."""
        return int(np.argmin([self.bits(residuals, np.full(residuals.shape, g))
                              for g in range(self.groups)]))

    def decode(self, decoder, groups: np.ndarray) -> np.ndarray:
        """What ``encode`` wrote for ``groups``; ``decoder`` is a
        ``RangeDecoder``.

        The decoder spends its time here in per-group Python, not arithmetic
        (a 768x512 IDF image has ~100 000 groups' calls, a dozen symbols
        each).  Looking for escapes after every group (the end symbols 0 and
        2R, after which the excess follows in the stream) cost 2.6 times the
        group's decode call.  So groups are decoded ``SPECULATIVE_GROUPS`` at
        a time on a copy of the coder without looking, and the chunk's
        symbols checked at once.  Where one is an escape, the groups up to
        the first such are decoded again on the coder as it was (their
        symbols are right), then that group's excesses, then the rest of the
        chunk group by group.  The symbols are centred and put in place at
        the end."""
        order, spans = self._by_group(groups)
        if not spans:
            return np.zeros(groups.shape, np.int64)
        sorted_groups = groups.ravel()[order]
        symbols = np.empty(len(order), np.int64)
        top = 2 * self._radius_array[sorted_groups]          # each symbol's upper escape
        escapes = []
        coder = decoder.coder
        models = self.models
        for i in range(0, len(spans), SPECULATIVE_GROUPS):
            chunk = spans[i:i + SPECULATIVE_GROUPS]
            lo, hi = chunk[0][1], chunk[-1][2]
            ahead = coder.clone()
            try:
                part = np.concatenate([ahead.decode(models[g], end - start)
                                       for g, start, end in chunk])
            except Exception:     # a damaged stream may end early: look group by group
                self._decode_carefully(coder, chunk, symbols, escapes)
                continue
            escaped = np.flatnonzero((part == 0) | (part == top[lo:hi]))
            if not len(escaped):
                symbols[lo:hi] = part
                coder = ahead
                continue
            # the chunk's symbols are right up to the end of the first group with an
            # escape: decode those groups again on the coder (to move it on), then
            # that group's excesses, then the chunk's other groups one by one (so a
            # chunk costs at most about what it did when every group was looked at)
            starts = [start for _, start, _ in chunk]
            j = int(np.searchsorted(starts, lo + escaped[0], side="right")) - 1
            for g, start, end in chunk[:j + 1]:
                coder.decode(models[g], end - start)
            g, start, end = chunk[j]
            symbols[lo:end] = part[:end - lo]
            self._decode_excess(coder, g, start, part[start - lo:end - lo], escapes)
            self._decode_carefully(coder, chunk[j + 1:], symbols, escapes)
        decoder.coder = coder
        symbols -= self._radius_array[sorted_groups]
        for at, extra in escapes:
            symbols[at] += extra
        out = np.empty(len(order), np.int64)
        out[order] = symbols
        return out.reshape(groups.shape)

    def _decode_excess(self, coder, g: int, start: int, sym: np.ndarray, escapes: list) -> None:
        """The excesses of group ``g``'s escapes among its symbols ``sym``
        (which begin at ``start``), as (positions, signed excess) on ``escapes``."""
        rad = self.radius[g]
        esc = np.flatnonzero((sym == 0) | (sym == 2 * rad))
        excess = coder.decode(self._excess, len(esc)).astype(np.int64)
        escapes.append((start + esc, np.where(sym[esc] == 0, -1, 1) * excess))

    def _decode_carefully(self, coder, chunk, symbols: np.ndarray, escapes: list) -> None:
        """Groups one at a time, each looked at for escapes."""
        for g, start, end in chunk:
            rad = self.radius[g]
            sym = coder.decode(self.models[g], end - start)
            symbols[start:end] = sym
            if np.maximum.reduce(sym) == 2 * rad or np.minimum.reduce(sym) == 0:
                self._decode_excess(coder, g, start, sym, escapes)
