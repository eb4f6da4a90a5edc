"""Per-image corrections of the IDF prior: channels coded in sequence, each
mean moved by the residuals of the channels before it, and one scale shift
per latent level.

Why.  The flow's prior gives every latent a logistic conditioned on the
coarser levels only: the channels of one level are coded as if independent
given those.  They are not.  On the held-out photos (768x512 centre crops),
a per-image linear fit of each channel's residual on the residuals of the
channels before it, at the same position, saves 2-3 % of the bits on three
photos and 18 % on the fourth, whose prior is far off.  Like the ARM's
error feedback (``codec/arm/feedback.py``) the encoder fits the corrections and
writes them; residuals are taken against the prior's own means, so the
decoder needs no more than the channels it has already decoded.

Layout of one level's corrections: int8 scale shift, then for each channel c
its min(c, PREVIOUS) coefficients in 1/64 (coefficient j reads channel
c - 1 - j).  All integer: shift = (sum coeff * residual + 32) >> 6, with
residual = z * 2^mean_frac - mean (1/16 units).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from codec.errors import FormatError

PREVIOUS = 5                     # earlier channels a channel's bias reads
COEFF_FRAC = 6
COEFF_MAX = 127
SCALE_SHIFTS = range(-4, 5)


def coefficient_counts(channels: int) -> list[int]:
    return [min(c, PREVIOUS) for c in range(channels)]


@dataclass
class LevelFeedback:
    scale_shift: int
    coeffs: list[np.ndarray]     # channel c: (min(c, PREVIOUS),) int, 1/64

    def shift(self, c: int, residuals: np.ndarray) -> np.ndarray:
        """Mean shift (1/16) of channel c from the residuals (C, ...) of the
        channels before it (only those are read)."""
        a = self.coeffs[c]
        if len(a) == 0:
            return np.zeros(residuals.shape[1:], np.int64)
        acc = np.zeros(residuals.shape[1:], np.int64)
        for j, coeff in enumerate(a):
            if coeff:
                acc += int(coeff) * residuals[c - 1 - j]
        return (acc + (1 << COEFF_FRAC - 1)) >> COEFF_FRAC


@dataclass
class IDFFeedback:
    levels: list[LevelFeedback]      # latent level 0 (finest) first

    @staticmethod
    def coefficient_count(z_channels: list[int]) -> int:
        return sum(sum(coefficient_counts(c)) for c in z_channels)

    @classmethod
    def size(cls, z_channels: list[int]) -> int:
        """Bytes of the raw table (``to_bytes``): a scale shift and the coefficients per level."""
        return len(z_channels) + cls.coefficient_count(z_channels)

    def values(self) -> tuple[np.ndarray, np.ndarray]:
        """(the levels' scale shifts, every coefficient), as ``to_bytes``
        orders them: what the coded tables send (``side_tables.py``)."""
        shifts = np.array([lv.scale_shift for lv in self.levels], np.int64)
        coeffs = np.concatenate([a for lv in self.levels for a in lv.coeffs]).astype(np.int64)
        return shifts, coeffs

    def to_bytes(self) -> bytes:
        parts = []
        for lv in self.levels:
            parts.append(np.array([lv.scale_shift], np.int8))
            parts.extend(a.astype(np.int8) for a in lv.coeffs)
        return np.concatenate(parts).tobytes()

    @classmethod
    def from_bytes(cls, data: bytes, z_channels: list[int]) -> "IDFFeedback":
        if len(data) != cls.size(z_channels):
            raise FormatError("IDF segment has a truncated feedback table")
        a = np.frombuffer(data, np.int8).astype(np.int64)
        shifts, coeffs, at = [], [], 0
        for channels in z_channels:
            n = sum(coefficient_counts(channels))
            shifts.append(a[at])
            coeffs.append(a[at + 1:at + 1 + n])
            at += 1 + n
        return cls.from_values(np.array(shifts), np.concatenate(coeffs), z_channels)

    @classmethod
    def from_values(cls, shifts: np.ndarray, coeffs: np.ndarray, z_channels: list[int]) -> "IDFFeedback":
        """The table from ``values``' two arrays, their ranges checked."""
        if (len(shifts) != len(z_channels) or len(coeffs) != cls.coefficient_count(z_channels)
                or any(int(s) not in SCALE_SHIFTS for s in shifts)
                or (len(coeffs) and not -128 <= coeffs.min() <= coeffs.max() <= 127)):   # int8, as the raw table
            raise FormatError("IDF segment has an invalid feedback table")
        levels, at = [], 0
        for shift, channels in zip(shifts, z_channels):
            per_channel = []
            for n in coefficient_counts(channels):
                per_channel.append(np.asarray(coeffs[at:at + n], np.int64))
                at += n
            levels.append(LevelFeedback(int(shift), per_channel))
        return cls(levels)


def fit_level(z: np.ndarray, means: np.ndarray, levels: np.ndarray, mean_frac: int,
              bits) -> tuple[LevelFeedback, float]:
    """The corrections of one level (encoder only; the float fit is written
    to the file, so it need not be reproducible).  z, means, levels: (C, H, W)
    integers; ``bits(z, means, levels)`` gives ideal bits.  Returns the
    corrections and the level's ideal bits with them."""
    c_all = z.shape[0]
    residual = (z << mean_frac) - means
    weight = np.exp(-levels / 8.0)           # ~ 1/scale: least squares weighted by 1/scale^2
    coeffs = []
    corrected = means.copy()
    for c in range(c_all):
        n = min(c, PREVIOUS)
        if n == 0:
            coeffs.append(np.zeros(0, np.int64))
            continue
        a = np.stack([residual[c - 1 - j].ravel() for j in range(n)], 1).astype(np.float64)
        w = weight[c].ravel()
        sol, *_ = np.linalg.lstsq(a * w[:, None], residual[c].ravel() * w, rcond=None)
        coeffs.append(np.clip(np.round(sol * 2**COEFF_FRAC), -COEFF_MAX, COEFF_MAX).astype(np.int64))
    fb = LevelFeedback(0, coeffs)
    for c in range(c_all):
        corrected[c] = means[c] + fb.shift(c, residual)
    options = {s: bits(z, corrected, levels + s) for s in SCALE_SHIFTS}
    fb.scale_shift = min(options, key=options.get)
    return fb, options[fb.scale_shift]
