"""Online head for the ARM: the network's last layer learnt while coding.

Why.  The per-image change (``adaptation.py``) fits the head to the whole
image and sends it; what it cannot say is how the image changes from one
region to the next, and every weight it sends costs bits.  The decoder
can instead go on training the head on the pixels it has already decoded,
as online-learning compressors do: nothing is sent but a flag, and the
model follows the image as it goes.  On the eight held-out 768x512
photographs at effort 7, on top of the sent change, the error feedback and
the online bias, it saved 0.1-4.1 % of the file (docs/MODELS.md); most of
it came from the mixture weights, which the sent change barely touches.

What is learnt: the head's weights and biases of every component's logit,
mean and log-scale (9 fields of K outputs), as an int64 change D in 2^-16
of the head's integer weight unit.  For a wavefront's pixels with last
hidden activations h (integers), the head's accumulator gains
floor((h_aug @ D) / 2^16), h_aug = [h, 2^act_frac] (the bias's input).

How it learns, all in integers so that encoder and decoder agree on any
CPU (docs/FORMAT.md §5.5 has every step):

* per coded symbol v and component k (integer weight w_k, mean m_k in 1/16
  pixel, scale level l_k, as coded: after calibration, error feedback and
  the online bias), with P_k(m, l) the CDF table's frequency of v, p =
  sum_k w_k P_k and W = sum_k w_k: the code length's slopes, by finite
  differences on the decoder's own grid, in 2^-12 and clipped to +-2^16,
  logit: (w_k (p - W P_k) << 12) // (W p),
  mean: -(w_k (P_k(m + 2, l) - P_k(m - 2, l)) << 12) // p,
  level: -(w_k (P_k(m, l + 1) - P_k(m, l - 1)) << 12) // p;
* a wavefront's slopes go into G += h_aug^T g (a float64 product of
  integers, exact); once STEP_PIXELS pixels have gone in, an Adam step per
  weight: g = G // count, M += (g - M) >> 2, V += (g^2 - V) >> 8 (M = g and
  V = g^2 at the first step), D -= (LR M) // (isqrt(V) + 1), clipped,
  LR one of ``RATES``' per field group.

A wavefront's outputs read only what earlier wavefronts taught, so the
encoder replays the decoder's loop (``codec.py``, ``_wavefronts``) with the
values it knows.
"""
from __future__ import annotations

import numba
import numpy as np

from codec.entropy.coder import CDF_TOTAL
from codec.entropy.logistic import ALPHABET
from models.arm.spec import ARMSpec

_jit = numba.njit(cache=True, nogil=True)

EXTRA_BITS = 16          # D in 2^-16 of the head's integer weight unit
GRAD_FRAC = 12           # slopes in 2^-12
GRAD_MAX = 1 << 16
MEAN_STEP = 2            # finite difference of the mean: +-2/16 pixel
STEP_PIXELS = 256        # pixels per Adam step
BETA1_SHIFT = 2          # M: 1 - 1/4
BETA2_SHIFT = 8          # V: 1 - 1/256
# Adam's step size per field group (logits, means, levels), in 2^-16 weight
# units: RATES_V1 (about 1.6, 0.1, 0.1 units a step) as nc 0.32 wrote, tuned
# on top of a sent head change; RATES (2.4, 0.025, 0.025; layout flag
# STEADY, nc 0.33) since the head starts from the shipped one: there the
# means' and levels' faster rate lost up to 2.4 % on a held-out photograph
# (docs/MODELS.md)
RATES_V1 = (104858, 6554, 6554)
RATES = (157286, 1638, 1638)
D_MAX = 1 << 32          # |D|: keeps h_aug @ D an exact float64 integer (129 * 2^13 * 2^32 < 2^53)
FIELDS = 9                # the head fields learnt: logits, means and log-scales (3 each)


@_jit
def _frequency(cdf, level, mean, v, mean_frac, m_hi):
    """Frequency (out of CDF_TOTAL) of value v under one component."""
    base = m_hi - (mean >> mean_frac)
    f = mean & ((1 << mean_frac) - 1)
    hi = CDF_TOTAL if v == ALPHABET - 1 else cdf[level, f, base + v + 1]
    lo = 0 if v == 0 else cdf[level, f, base + v]
    return hi - lo


@_jit
def slopes(channel, decoded, means, levels, weights, cdf, mean_frac, m_hi, mean_min, mean_max,
           top, out):
    """The code length's slopes in each component's mean and level for
    channel ``channel`` of a wavefront's pixels (values (n,), means, levels,
    weights (n, K) as coded), into ``out`` (n, 6 K) float64: column
    channel K + k for component k's mean, (3 + channel) K + k for its level."""
    n, k = means.shape
    for i in range(n):
        v = decoded[i, channel]
        p = 0
        total = 0
        for j in range(k):
            p += weights[i, j] * _frequency(cdf, levels[i, j], means[i, j], v, mean_frac, m_hi)
            total += weights[i, j]
        for j in range(k):
            w, m, lv = weights[i, j], means[i, j], levels[i, j]
            own = _frequency(cdf, lv, m, v, mean_frac, m_hi)
            ga = ((w * (p - total * own)) << GRAD_FRAC) // (total * p)
            dm = (_frequency(cdf, lv, min(m + MEAN_STEP, mean_max), v, mean_frac, m_hi)
                  - _frequency(cdf, lv, max(m - MEAN_STEP, mean_min), v, mean_frac, m_hi))
            dl = (_frequency(cdf, min(lv + 1, top), m, v, mean_frac, m_hi)
                  - _frequency(cdf, max(lv - 1, 0), m, v, mean_frac, m_hi))
            gm = -((w * dm) << GRAD_FRAC) // p
            gl = -((w * dl) << GRAD_FRAC) // p
            out[i, channel * k + j] = min(max(ga, -GRAD_MAX), GRAD_MAX)
            out[i, (3 + channel) * k + j] = min(max(gm, -GRAD_MAX), GRAD_MAX)
            out[i, (6 + channel) * k + j] = min(max(gl, -GRAD_MAX), GRAD_MAX)


@_jit
def _isqrt(x):
    r = int(np.sqrt(float(x)))
    while r * r > x:
        r -= 1
    while (r + 1) * (r + 1) <= x:
        r += 1
    return r


@_jit
def adam_step(grad_sum, count, first, moment, second, change, lr, beta1_shift, beta2_shift):
    """One Adam step of ``change`` (rows, cols) int64 from the summed
    slopes ``grad_sum`` (float64 integers) of ``count`` pixels."""
    rows, cols = change.shape
    for r in range(rows):
        for c in range(cols):
            g = int(grad_sum[r, c]) // count
            if first:
                moment[r, c] = g
                second[r, c] = g * g
            else:
                moment[r, c] += (g - moment[r, c]) >> beta1_shift
                second[r, c] += (g * g - second[r, c]) >> beta2_shift
            step = (lr[c] * moment[r, c]) // (_isqrt(second[r, c]) + 1)
            change[r, c] = min(max(change[r, c] - step, -D_MAX), D_MAX)


class OnlineHead:
    """One segment's online head: the change D and Adam's moments, the
    slopes gathered since the last step, and a wavefront's scratch.  Per
    wavefront: ``adjust`` (the network calls it with the hidden features
    and the head's accumulator), ``slopes`` per channel once its values are
    known, then ``observe``."""

    def __init__(self, spec: ARMSpec, widest: int, tables, rates: tuple[int, int, int] = RATES):
        self.spec, self.tables = spec, tables
        k = spec.mixtures
        self.cols = slice(0, FIELDS * k)
        width = FIELDS * k
        self.change = np.zeros((spec.hidden + 1, width), np.int64)
        self.moment = np.zeros_like(self.change)
        self.second = np.zeros_like(self.change)
        self.grad_sum = np.zeros((spec.hidden + 1, width), np.float64)
        self.count = 0
        self.steps = 0
        self.lr = np.repeat(np.array(rates, np.int64), 3 * k)
        self.features = np.empty((widest, spec.hidden + 1), np.float64)
        self.features[:, -1] = float(1 << spec.act_frac)
        self.grad = np.zeros((widest, width), np.float64)
        self._n = 0
        self._scale = 2.0 ** -EXTRA_BITS

    def adjust(self, h: np.ndarray, acc: np.ndarray) -> None:
        """The head's accumulator ``acc`` (n, outputs) of the wavefront
        whose last hidden activations are ``h`` (n, hidden), moved by D."""
        n = len(h)
        self._n = n
        feats = self.features[:n]
        feats[:, :-1] = h
        acc[:, self.cols] += np.floor((feats @ self.change) * self._scale)

    def channel(self, ch: int, decoded, means, levels, weights) -> None:
        """Slopes of channel ``ch`` of the wavefront, once its values
        (``decoded`` (n, 3), the pixels' channels so far) are known."""
        s, t = self.spec, self.tables
        slopes(ch, decoded, means, levels, weights, t.cdf, s.mean_frac, t.m_hi, s.mean_min,
               s.mean_max, s.log_scale_levels - 1, self.grad[:self._n])

    def observe(self) -> None:
        """The wavefront's slopes into the sum; an Adam step when due."""
        n = self._n
        # (columns of channels a segment does not code stay 0 from the start)
        self.grad_sum += self.features[:n].T @ self.grad[:n]
        self.count += n
        if self.count >= STEP_PIXELS:
            adam_step(self.grad_sum, self.count, self.steps == 0, self.moment, self.second,
                      self.change, self.lr, BETA1_SHIFT, BETA2_SHIFT)
            self.steps += 1
            self.grad_sum[:] = 0.0
            self.count = 0
