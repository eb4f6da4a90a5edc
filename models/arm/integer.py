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
            np.clip(h, 0, s.act_max, out=h)
        # head: acc at scale 2^-(weight_frac + act_frac); (n, FIELDS, K)
        out_frac = s.weight_frac + s.act_frac
        out = acc.reshape(len(acc), 12, s.mixtures)
        logits = np.clip(_round_scaled(out[:, 0:3], s.logit_frac - out_frac),
                         -s.logit_range, s.logit_range)
        means = np.clip(_round_scaled(out[:, 3:6], s.input_frac + s.mean_frac - out_frac)
                        + 128 * 2**s.mean_frac, s.mean_min, s.mean_max)
        # level = round((raw - log_scale_min) * 2^frac); log_scale_min * 2^frac is an integer
        ls_offset = -s.log_scale_min * 2**s.log_scale_frac
        assert ls_offset == int(ls_offset)
        levels = np.clip(_round_scaled(out[:, 6:9], s.log_scale_frac - out_frac) + ls_offset,
                         0, s.log_scale_levels - 1)
        coeffs = np.clip(_round_scaled(out[:, 9:12], s.coeff_frac - out_frac),
                         -s.coeff_max, s.coeff_max)
        return MixtureParams(logits.astype(np.int64), means.astype(np.int64),
                             levels.astype(np.int64), coeffs.astype(np.int64))


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
    return np.clip(m + ((acc + half) >> sh), spec.mean_min, spec.mean_max)
