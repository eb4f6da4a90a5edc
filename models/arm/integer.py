"""Exact integer form of the ARM, evaluated with NumPy in float64.

All weights, biases and activations are integers and every accumulator stays
far below 2^53, so each matrix product is exact whatever BLAS kernel, thread
count or summation order computes it; rescaling is by powers of two followed
by ``floor``, also exact.  The encoder and the decoder therefore derive the
same integer mixture parameters bit for bit on any machine.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .spec import ARMSpec


@dataclass
class MixtureParams:
    """Integer parameters of each subpixel's logistic mixture, each (n, 3, K):
    logits (1/8 units), means (1/16 pixel, before channel shifts), scale
    levels (0..levels-1) and channel coefficients (1/64: G|R, B|R, B|G)."""

    logits: np.ndarray
    means: np.ndarray
    levels: np.ndarray
    coeffs: np.ndarray


def clip(a: np.ndarray, lo, hi, out: np.ndarray | None = None) -> np.ndarray:
    """np.clip without its Python-level dispatch, which costs more than the
    work on the decoder's wavefront-sized arrays (measured)."""
    return np.minimum(np.maximum(a, lo, out=out), hi, out=out)


def _round_scaled(acc: np.ndarray, shift: int, out: np.ndarray | None = None) -> np.ndarray:
    """floor(acc * 2^shift + 1/2): exact for integer-valued float64 acc."""
    r = np.multiply(acc, float(2.0**shift), out=out)
    r += 0.5
    return np.floor(r, out=r)


class IntegerARM:
    def __init__(self, spec: ARMSpec, layers: list[tuple[np.ndarray, np.ndarray]],
                 skip: np.ndarray):
        """layers: (weight (in, out), bias (out,)) integer arrays, first to head;
        skip: (context, out) integer weights of the linear context-to-head path."""
        self.spec = spec
        self.layers = [(np.asarray(w, np.float64), np.asarray(b, np.float64)) for w, b in layers]
        # the skip accumulates at scale 2^-(weight_frac + input_frac); the head at
        # 2^-(weight_frac + act_frac): pre-multiply by the (exact) power of two
        self.skip = np.asarray(skip, np.float64) * float(2 ** (spec.act_frac - spec.input_frac))
        self._check_exactness()
        self._output_grids()

    def _check_exactness(self) -> None:
        s = self.spec
        bound = 128.0  # first-layer inputs are pixel - 128
        for w, b in self.layers:
            acc = bound * np.abs(w).sum(axis=0).max() + np.abs(b).max()
            if acc >= 2.0**52:
                raise ValueError("weights too large for exact float64 evaluation")
            bound = float(s.act_max)
        if 128.0 * np.abs(self.skip).sum(axis=0).max() >= 2.0**52:
            raise ValueError("skip weights too large for exact float64 evaluation")

    def __call__(self, context: np.ndarray) -> MixtureParams:
        """context: (n, len(neighbourhood) * 3) integers, pixel value - 128."""
        s = self.spec
        context = context.astype(np.float64)
        h = context
        last = len(self.layers) - 1
        for i, (w, b) in enumerate(self.layers):
            acc = h @ w
            acc += b
            if i == last:
                acc += context @ self.skip
                break
            in_frac = s.input_frac if i == 0 else s.act_frac
            h = _round_scaled(acc, s.act_frac - s.weight_frac - in_frac, out=acc)
            clip(h, 0, s.act_max, out=h)
        # head: acc at scale 2^-(weight_frac + act_frac); (n, FIELDS, K), each
        # field group rescaled to its grid, offset and clipped in one pass
        out = _round_scaled(acc.reshape(len(acc), 12, s.mixtures) * self._out_scale, 0)
        out += self._out_offset
        out = clip(out, self._out_lo, self._out_hi, out=out).astype(np.int64)
        return MixtureParams(out[:, 0:3], out[:, 3:6], out[:, 6:9], out[:, 9:12])

    def _output_grids(self) -> None:
        """Per field (12, 1): the power of two taking the head's scale to the
        field's grid, the offset added after rounding and the clipping bounds
        (logits, means in 1/16 around 128, scale levels, coefficients)."""
        s = self.spec
        out_frac = s.weight_frac + s.act_frac
        # level = round((raw - log_scale_min) * 2^frac); log_scale_min * 2^frac is an integer
        ls_offset = -s.log_scale_min * 2**s.log_scale_frac
        assert ls_offset == int(ls_offset)
        groups = [  # (fraction bits, offset, low, high)
            (s.logit_frac, 0, -s.logit_range, s.logit_range),
            (s.input_frac + s.mean_frac, 128 * 2**s.mean_frac, s.mean_min, s.mean_max),
            (s.log_scale_frac, ls_offset, 0, s.log_scale_levels - 1),
            (s.coeff_frac, 0, -s.coeff_max, s.coeff_max),
        ]
        col = lambda k: np.repeat([float(g[k]) for g in groups], 3)[:, None]  # noqa: E731
        self._out_scale = np.repeat([2.0 ** (g[0] - out_frac) for g in groups], 3)[:, None]
        self._out_offset, self._out_lo, self._out_hi = col(1), col(2), col(3)


def shifted_means(means: np.ndarray, coeffs: np.ndarray, channel: int,
                  r: np.ndarray | None, g: np.ndarray | None, spec: ARMSpec) -> np.ndarray:
    """Means (n, K) of ``channel`` after the shifts by the already-coded
    channels of the same pixel: round(coeff * (value - 128) * 16) in 1/16 pixel."""
    m = means[:, channel]
    if channel == 0:
        return m
    half = 1 << (spec.coeff_frac - spec.mean_frac - 1)
    sh = spec.coeff_frac - spec.mean_frac
    if channel == 1:
        acc = coeffs[:, 0] * (r[:, None] - 128)
    else:
        acc = coeffs[:, 1] * (r[:, None] - 128) + coeffs[:, 2] * (g[:, None] - 128)
    return clip(m + ((acc + half) >> sh), spec.mean_min, spec.mean_max)
