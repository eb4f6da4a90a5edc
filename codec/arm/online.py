"""Online context bias for the ARM: corrections learnt while coding.

Why.  The error feedback (``feedback.py``) moves a channel's means by a
linear combination of its neighbours' residuals, fitted once per image and
sent.  What is left is non-linear and local: given the pattern of signs and
sizes of the nearby residuals, the remaining error still leans one way, and
the lean drifts across the image.  A table per image cannot say that
cheaply (thousands of contexts), but the decoder can learn it as it goes,
CALIC's bias cancellation: per context, a decaying average of the residuals
already coded there, moved into the means of the next symbols of that
context.  Nothing is sent but a flag; encoder and decoder learn the same
integers in the same order.

The quantities, per channel c of a pixel, with d its dominant component
(the largest mixture weight, the first on ties), its mean m_d and scale
level l_d after calibration and error feedback:

* a coded value v leaves u = clip(((16 v - m_d) * INV[l_d]) >> 16, +-CLIP):
  its residual in 1/64 of the predicted scale;
* the context reads u of the same channel at the left, up, up-left and
  up-right neighbours (0 outside the image) and of the pixel's previous
  channel, quantized (Q5, Q3), and the band l_d >> 3: a fine context
  (9 000 per channel) and a coarse one (3 240) that serves as its prior;
* statistics per context, in 1/256: S (sum of u) and N (count), decayed
  by ``X -= X >> DECAY_SHIFT`` after every wavefront;
* the shift in 1/256 of u: prior = S_c * 256 // (N_c + PRIOR_COUNT * 256),
  shift = (S_f * 256 + FINE_COUNT * prior * 256) // (N_f + FINE_COUNT * 256);
  every component's mean moves by (shift * SCALE[l_d] + 2^21) >> 22 (SCALE
  the scale in 1/16 pixel, in 1/256), clipped to the mean grid.

Shifts of a wavefront read only statistics of earlier wavefronts, and u is
taken against the means before the shift, so the encoder can run the whole
image in the decoder's order with the same kernels, and sets the flag
where it saves bits.  On the eight held-out 768x512 photographs at effort
7 it saved 0.20-0.42 % of the file (0.30 % in all); on Kodak's film scans
0.03 %, used on 5 of the 24 (``docs/MODELS.md``).
"""
from __future__ import annotations

import numba
import numpy as np

from models.arm.spec import ARMSpec

_jit = numba.njit(cache=True, nogil=True)

U_FRAC = 6                      # u in 1/64 of the scale
CLIP = 3 << U_FRAC              # +-3 scales
Q5_EDGES = np.array([-64, -16, 16, 64], np.int64)      # u >= edge: -1, -1/4, 1/4, 1 scale
Q3_EDGES = np.array([-19, 20], np.int64)               # about +-0.3 scale
BANDS_SHIFT = 3                 # band: the dominant level >> 3 (8 bands)
BANDS = 8
WITHIN = 5
FINE = 25 * 9 * WITHIN * BANDS  # left and up in Q5, up-left and up-right in Q3
COARSE = 81 * WITHIN * BANDS    # all four in Q3
NEIGHBOURS = ((0, -1), (-1, 0), (-1, -1), (-1, 1))     # left, up, up-left, up-right
UNIT = 256                      # statistics in 1/256
DECAY_SHIFT = 7                 # decay 1 - 1/128 a wavefront
PRIOR_COUNT = 20
FINE_COUNT = 40


def _unrounded_tables(spec: ARMSpec) -> tuple[np.ndarray, np.ndarray]:
    """2^(16 + U_FRAC) / s and 256 s in float64, with s = 16
    exp(log_scale_min + level / 2^log_scale_frac) the scale in 1/16 pixel."""
    levels = np.arange(spec.log_scale_levels)
    s = (1 << spec.mean_frac) * np.exp(spec.log_scale_min + levels / 2**spec.log_scale_frac)
    return 2.0**(16 + U_FRAC) / s, UNIT * s


def scale_tables(spec: ARMSpec) -> tuple[np.ndarray, np.ndarray]:
    """(INV, SCALE), each (levels,) int64: ``_unrounded_tables`` rounded.
    No entry of the shipped models' grids lies within 1e-6 of a rounding
    tie (``rounding_margin``, tested), so any exp accurate to 1e-12 gives
    the same tables."""
    return tuple(np.round(x).astype(np.int64) for x in _unrounded_tables(spec))


def rounding_margin(spec: ARMSpec) -> float:
    """How far the unrounded tables come to a rounding tie (tests)."""
    x = np.concatenate(_unrounded_tables(spec))
    return float(np.min(np.abs(x - np.floor(x) - 0.5)))


@_jit
def _q(u, edges):
    k = 0
    for e in edges:
        if u >= e:
            k += 1
    return k


@_jit
def shift(channel, flat, buffer, offsets, within, means, levels, dominant, fine, coarse, scale,
          mean_min, mean_max, memo):
    """The online shift of channel ``channel`` of a wavefront's pixels
    ``flat``, in place on ``means`` (n, K).  ``buffer`` (padded pixels, C)
    holds earlier wavefronts' u, ``within`` (n, C) this wavefront's u of
    earlier channels.  memo (n, 4): fine and coarse context, the dominant
    mean before the shift and the dominant level, for ``observe``."""
    for i in range(len(flat)):
        d = dominant[i]
        level = levels[i, d]
        at = flat[i]
        ul = buffer[at + offsets[0], channel]
        uu = buffer[at + offsets[1], channel]
        uul = buffer[at + offsets[2], channel]
        uur = buffer[at + offsets[3], channel]
        w = _q(within[i, channel - 1], Q5_EDGES) if channel else 2
        band = level >> BANDS_SHIFT
        f = ((((_q(ul, Q5_EDGES) * 5 + _q(uu, Q5_EDGES)) * 3 + _q(uul, Q3_EDGES)) * 3
              + _q(uur, Q3_EDGES)) * WITHIN + w) * BANDS + band
        c = ((((_q(ul, Q3_EDGES) * 3 + _q(uu, Q3_EDGES)) * 3 + _q(uul, Q3_EDGES)) * 3
              + _q(uur, Q3_EDGES)) * WITHIN + w) * BANDS + band
        prior = coarse[channel, c, 0] * UNIT // (coarse[channel, c, 1] + PRIOR_COUNT * UNIT)
        s = ((fine[channel, f, 0] * UNIT + FINE_COUNT * prior * UNIT)
             // (fine[channel, f, 1] + FINE_COUNT * UNIT))
        move = (s * scale[level] + (1 << 21)) >> 22
        memo[i, 0] = f
        memo[i, 1] = c
        memo[i, 2] = means[i, d]
        memo[i, 3] = level
        if move != 0:
            for j in range(means.shape[1]):
                means[i, j] = min(max(means[i, j] + move, mean_min), mean_max)


@_jit
def observe(channel, values, memo, inv, mean_frac, fine, coarse, within):
    """u of the coded ``values`` of ``channel`` into ``within[:, channel]``,
    and into the statistics of their contexts (read by later wavefronts)."""
    for i in range(len(values)):
        e = (values[i] << mean_frac) - memo[i, 2]
        u = min(max((e * inv[memo[i, 3]]) >> 16, -CLIP), CLIP)
        within[i, channel] = u
        fine[channel, memo[i, 0], 0] += u * UNIT
        fine[channel, memo[i, 0], 1] += UNIT
        coarse[channel, memo[i, 1], 0] += u * UNIT
        coarse[channel, memo[i, 1], 1] += UNIT


@_jit
def end_wavefront(flat, within, channels, buffer, fine, coarse):
    """The wavefront's u into the buffer; every statistic decays."""
    for i in range(len(flat)):
        for c in range(channels):
            buffer[flat[i], c] = within[i, c]
    for table in (fine, coarse):
        for c in range(table.shape[0]):
            for k in range(table.shape[1]):
                table[c, k, 0] -= table[c, k, 0] >> DECAY_SHIFT
                table[c, k, 1] -= table[c, k, 1] >> DECAY_SHIFT


@_jit
def _apply_all(values, means, levels, dominant, flat, bounds, offsets, buffer, within, memo, fine,
               coarse, inv, scale, mean_frac, mean_min, mean_max):
    """The encoder: every wavefront, channel by channel, as the decoder
    runs them; ``means`` (n, C, K) in coding order, in place."""
    channels = means.shape[1]
    for t in range(len(bounds) - 1):
        a, b = bounds[t], bounds[t + 1]
        for ch in range(channels):
            shift(ch, flat[a:b], buffer, offsets, within, means[a:b, ch], levels[a:b, ch],
                  dominant[a:b, ch], fine, coarse, scale, mean_min, mean_max, memo)
            observe(ch, values[a:b, ch], memo, inv, mean_frac, fine, coarse, within)
        end_wavefront(flat[a:b], within[:b - a], channels, buffer, fine, coarse)


class OnlineBias:
    """The state of one segment's online bias: the u of coded pixels
    (laid out like the coder's padded buffer) and each channel's context
    statistics, and a wavefront's scratch: ``within`` (its pixels' u, by
    channel) and ``memo`` (what ``observe`` needs of ``shift``).  The
    decoder calls ``shift``, ``observe`` and ``end_wavefront`` per
    wavefront; the encoder ``apply_all``."""

    def __init__(self, spec: ARMSpec, geometry, channels: int):
        self.spec, self.geo, self.channels = spec, geometry, channels
        self.inv, self.scale = scale_tables(spec)
        self.offsets = np.array([dy * geometry.stride + dx for dy, dx in NEIGHBOURS], np.int64)
        rows = geometry.height + geometry.top
        self.buffer = np.zeros((rows * geometry.stride, channels), np.int64)
        self.fine = np.zeros((channels, FINE, 2), np.int64)
        self.coarse = np.zeros((channels, COARSE, 2), np.int64)
        widest = int(np.diff(geometry.bounds).max())
        self.within = np.zeros((widest, channels), np.int64)
        self.memo = np.empty((widest, 4), np.int64)

    def apply_all(self, values: np.ndarray, means: np.ndarray, levels: np.ndarray,
                  mix: np.ndarray) -> np.ndarray:
        """The means (n, C, K) of every pixel (coding order) after the
        online shifts; values (n, >= C), levels and mix as the coder's."""
        spec, geo = self.spec, self.geo
        out = means.copy()
        # the dominant component: the largest weight, the first on ties (as the decoder's)
        dominant = np.argmax(mix, axis=-1)
        _apply_all(values[:, :self.channels].astype(np.int64), out, levels, dominant, geo.flat,
                   np.asarray(geo.bounds, np.int64), self.offsets, self.buffer, self.within,
                   self.memo, self.fine, self.coarse, self.inv, self.scale, spec.mean_frac,
                   spec.mean_min, spec.mean_max)
        return out
